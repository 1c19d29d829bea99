"""Inference algorithms Pyro lacks.

* :mod:`pyrogen.infer.ais` — annealed importance sampling (:func:`~pyrogen.infer.ais.ais`) and
  its reverse, RAISE (:func:`~pyrogen.infer.ais.reverse_ais`), with the Salakhutdinov & Murray
  base-rate path for RBMs and a generic geometric path.
"""

from .ais import (
    AISInfo,
    AISResult,
    AISState,
    AnnealingPath,
    GeometricPath,
    RAISEResult,
    RBMBaseRatePath,
    ais,
    ais_init,
    ais_step,
    base_rate_visible_bias,
    reverse_ais,
    schedule,
)

__all__ = [
    "AISInfo",
    "AISResult",
    "AISState",
    "AnnealingPath",
    "GeometricPath",
    "RAISEResult",
    "RBMBaseRatePath",
    "ais",
    "ais_init",
    "ais_step",
    "base_rate_visible_bias",
    "reverse_ais",
    "schedule",
]
