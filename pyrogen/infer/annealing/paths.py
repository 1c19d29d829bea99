r"""Annealing paths. They are data: the concrete paths live at the distribution level
(:mod:`pyrogen.distributions.paths`, so that distributions can offer them without importing the
engine) and are re-exported here with the engine's names.

* :class:`RBMBaseRatePath` -- Salakhutdinov & Murray (2008): weights and hidden biases scaled
  by :math:`\beta`, visible biases from a base-rate model;
* :class:`GeometricPath` -- :math:`p_0^{1-\beta} f_1^\beta` for any unnormalized density;
* :class:`DBMPath` -- Salakhutdinov & Hinton (2009): a DBM with the odd layers summed out;
* :class:`RBMInterpolationPath` -- parameters interpolated between two RBMs
  (:math:`\log Z_1 - \log Z_0`).
"""

from __future__ import annotations

from ...distributions.paths import (
    DBMPath,
    GeometricPath,
    RBMBaseRatePath,
    RBMInterpolationPath,
    base_rate_visible_bias,
)

__all__ = [
    "GeometricPath",
    "RBMBaseRatePath",
    "DBMPath",
    "RBMInterpolationPath",
    "base_rate_visible_bias",
]
