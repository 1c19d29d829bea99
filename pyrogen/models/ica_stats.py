r"""Statistics of ICA solutions: separation quality and identifiability (book §13.2).

* :func:`amari_distance` — how far an estimated unmixing is from inverting the true mixing, up
  to permutation and scale (Amari, Cichocki & Yang 1996).
* :func:`gaussianity_test` — the Jarque–Bera test of each recovered source (Jarque & Bera 1987).
* :class:`NonIdentifiableWarning` and :func:`warn_if_gaussian` — the warning the ICA models raise
  when two or more recovered sources pass as Gaussian (Comon 1994: the mixing of Gaussian sources
  is identifiable only up to a rotation).

The ICA models import them from here; :mod:`pyrogen.models.ica` re-exports the public ones.
"""

from __future__ import annotations

import warnings

import torch

__all__ = ["NonIdentifiableWarning", "amari_distance", "gaussianity_test", "warn_if_gaussian"]


class NonIdentifiableWarning(UserWarning):
    """Two or more recovered sources are indistinguishable from Gaussian.

    ICA identifies the mixing only up to permutation and scale when at most one source is
    Gaussian (Comon 1994); any rotation of two Gaussian sources fits equally well, so the
    corresponding rows of the unmixing matrix are arbitrary.
    """


def amari_distance(unmixing, mixing) -> float:
    r"""Amari distance between an estimated unmixing matrix and the true mixing matrix.

    With :math:`P = B A` (``unmixing @ mixing``, shape ``(K, K)``),

    .. math::

        d(P) = \frac{1}{2K(K-1)} \Big[\sum_i \Big(\frac{\sum_j |p_{ij}|}{\max_j |p_{ij}|} - 1
        \Big) + \sum_j \Big(\frac{\sum_i |p_{ij}|}{\max_i |p_{ij}|} - 1\Big)\Big] \in [0, 1],

    zero exactly when :math:`P` is a scaled permutation matrix (perfect separation); Amari,
    Cichocki & Yang (1996), *NIPS 8*.

    Parameters
    ----------
    unmixing : array-like, shape ``(K, D)``
    mixing : array-like, shape ``(D, K)``
    """
    b = torch.as_tensor(unmixing, dtype=torch.float64)
    a = torch.as_tensor(mixing, dtype=torch.float64)
    if b.dim() != 2 or a.dim() != 2 or b.shape[1] != a.shape[0] or b.shape[0] != a.shape[1]:
        raise ValueError(
            "unmixing must have shape (K, D) and mixing shape (D, K). Got "
            f"{tuple(b.shape)} and {tuple(a.shape)} instead."
        )
    k = b.shape[0]
    if k < 2:
        return 0.0
    p = (b @ a).abs()
    rows = (p.sum(1) / p.max(1).values - 1).sum()
    cols = (p.sum(0) / p.max(0).values - 1).sum()
    return float((rows + cols) / (2 * k * (k - 1)))


def gaussianity_test(s) -> dict:
    r"""Jarque–Bera test of Gaussianity of each column of ``s`` (Jarque & Bera 1987).

    .. math::

        JB = \frac{n}{6}\Big(S^2 + \frac{(K - 3)^2}{4}\Big) \sim \chi^2_2
        \text{ under Gaussianity (asymptotically)},

    with sample skewness :math:`S` and kurtosis :math:`K`; the :math:`\chi^2_2` survival function
    is :math:`e^{-JB/2}`. Cost :math:`O(n K)`.

    Returns
    -------
    dict with tensors of shape ``(n_columns,)``: ``"statistic"``, ``"p_value"``, ``"skewness"``,
    ``"excess_kurtosis"``, and ``"n"``.
    """
    s = torch.as_tensor(s, dtype=torch.float64)
    if s.dim() != 2 or s.shape[0] < 8:
        raise ValueError(
            f"s must have shape (n, k) with n >= 8. Got shape {tuple(s.shape)} instead."
        )
    n = s.shape[0]
    c = s - s.mean(0)
    var = (c**2).mean(0).clamp_min(1e-300)
    skew = (c**3).mean(0) / var**1.5
    kurt = (c**4).mean(0) / var**2 - 3.0
    jb = n / 6.0 * (skew**2 + kurt**2 / 4.0)
    return {
        "statistic": jb,
        "p_value": torch.exp(-jb / 2),
        "skewness": skew,
        "excess_kurtosis": kurt,
        "n": n,
    }


def warn_if_gaussian(gaussianity: dict, alpha: float, stacklevel: int) -> None:
    """Warn (:class:`NonIdentifiableWarning`) when two or more sources pass as Gaussian."""
    p = gaussianity["p_value"]
    gauss = [i for i in range(len(p)) if float(p[i]) > alpha]
    if len(gauss) >= 2:
        warnings.warn(
            f"sources {gauss} of {len(p)} are indistinguishable from Gaussian (Jarque-Bera "
            f"p-values {[round(float(p[i]), 3) for i in gauss]} > alpha={alpha}, "
            f"n={gaussianity['n']}); their mixing is not identifiable (any rotation "
            "of them fits equally well), so these components are arbitrary.",
            NonIdentifiableWarning,
            stacklevel=stacklevel,
        )
