r"""Transforms (bijections) used by pyrogen's distributions and models.

* :class:`MatrixTransform` — :math:`y = M x` for a square invertible matrix, with the exact
  :math:`\log|\det M|`; :class:`pyrogen.models.ICA` observes its data through it.
* :func:`check_invertible` — the numerical-singularity check it (and the models) use.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import constraints
from torch.distributions.transforms import Transform

__all__ = ["MatrixTransform", "check_invertible"]


class MatrixTransform(Transform):
    r"""Bijection :math:`y = M x` for a square invertible matrix :math:`M` (event dim 1).

    ``log_abs_det_jacobian`` is :math:`\log|\det M|` from ``torch.linalg.slogdet`` (cost
    :math:`O(D^3)` once per call, independent of the batch); the inverse solves with an LU
    factorization. Use ``MatrixTransform(U).inv`` to map sources to data given an *unmixing*
    matrix ``U``.

    Raises
    ------
    ValueError
        If ``matrix`` is not square, or is singular (zero determinant or condition number above
        ``1 / (10 eps)`` of its dtype).
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, matrix: torch.Tensor, cache_size: int = 0, check: bool = True):
        super().__init__(cache_size=cache_size)
        if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(
                f"matrix must be square, shape (D, D). Got shape {tuple(matrix.shape)} instead."
            )
        if check:
            check_invertible(matrix, "matrix")
        self.matrix = matrix

    def __eq__(self, other):
        return isinstance(other, MatrixTransform) and other.matrix is self.matrix

    def _call(self, x):
        return x @ self.matrix.T

    def _inverse(self, y):
        return torch.linalg.solve(self.matrix, y.unsqueeze(-1)).squeeze(-1)

    def log_abs_det_jacobian(self, x, y):
        logdet = torch.linalg.slogdet(self.matrix).logabsdet
        return logdet.expand(x.shape[:-1])


def check_invertible(matrix: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``matrix`` is numerically singular.

    Parameters
    ----------
    matrix : Tensor, shape ``(D, D)``
    name : str
        The argument name used in the error message.

    Raises
    ------
    ValueError
        If a singular value is zero or non-finite, or the condition number exceeds
        ``1 / (10 eps)`` of the matrix's dtype.
    """
    with torch.no_grad():
        eps = torch.finfo(matrix.dtype).eps
        sv = torch.linalg.svdvals(matrix.detach())
        smax, smin = float(sv.max()), float(sv.min())
        if not math.isfinite(smax) or smin <= 0 or smax / smin > 1.0 / (10 * eps):
            cond = float("inf") if smin <= 0 else smax / smin
            raise ValueError(
                f"{name} must be invertible. Got a matrix with condition number {cond:.3g} "
                f"(limit {1.0 / (10 * eps):.3g} for {matrix.dtype}) instead."
            )
