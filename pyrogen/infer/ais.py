r"""Annealed importance sampling (AIS) and RAISE: a façade over :mod:`pyrogen.infer.annealing`.

The engine lives in the package :mod:`pyrogen.infer.annealing` (protocol in ``base``, defaults
in ``defaults``, schedules, kernels, paths, the one annealing loop for AIS and SMC, RAISE);
this module re-exports the names it has always offered, so ``from pyrogen.infer.ais import
ais, RBMBaseRatePath`` keeps working. New code can import from :mod:`pyrogen.infer` (flat).

AIS (Neal 2001 [1]_) moves particles from a tractable :math:`f_0` to the target :math:`f_1`
through :math:`f_{\beta_k}`; the mean weight :math:`\hat Z = Z_0 \frac1M \sum_m w_m` is an
*unbiased estimate of Z* (not of :math:`\log Z`). RAISE (Burda, Grosse & Salakhutdinov 2015
[2]_) runs the chain backwards from data for a conservative (lower) estimate of
:math:`\log p(x)`.

References
----------
.. [1] R. M. Neal. Annealed importance sampling. *Statistics and Computing* 11:125-139, 2001.
.. [2] Y. Burda, R. Grosse and R. Salakhutdinov. Accurate and conservative estimates of MRF
   log-likelihood using reverse annealing. *AISTATS* 2015.
"""

from __future__ import annotations

from .annealing import (
    DEFAULT_NUM_BETAS,
    SM_SCHEDULE_SEGMENTS,
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
    "AnnealingPath",
    "AISState",
    "AISInfo",
    "AISResult",
    "RAISEResult",
    "ais",
    "ais_init",
    "ais_step",
    "reverse_ais",
    "schedule",
    "SM_SCHEDULE_SEGMENTS",
    "DEFAULT_NUM_BETAS",
    "RBMBaseRatePath",
    "GeometricPath",
    "base_rate_visible_bias",
]
