r"""Post-hoc alignment of factor-model draws, so that r-hat of ``W`` means something.

Linear factor models are identified only up to a symmetry group acting on the columns of the
loading matrix :math:`W` (``(D, K)``):

* **Gaussian latents** (FA, PPCA): :math:`W \to W R`, :math:`R \in O(K)` leaves the
  likelihood unchanged (:math:`W W^\top` is invariant). :func:`procrustes_align` rotates each
  draw onto a reference (orthogonal Procrustes); :func:`factor_summaries` gives the
  rotation-invariant quantities ``WWt_diag`` and ``col_norm2``. This is the same alignment as
  :meth:`pyrogen.models.BayesianPPCA.aligned_W` (same reference, same solution), in NumPy.
* **Non-Gaussian latents** (noisy ICA, sparse coding): only signed permutations
  :math:`W \to W P S` remain (:math:`P` a permutation, :math:`S` a diagonal of signs).
  :func:`signed_permutation_align` matches each draw's columns to a reference by the Hungarian
  algorithm on :math:`|W_s^\top W_\mathrm{ref}|` and flips signs; the reference is refined as the
  mean of the aligned draws (a few fixed-point iterations, as in label-switching relabelling
  algorithms [1]_).

Both accept draws with any leading shape (``(S, D, K)`` or ``(chains, draws, D, K)``).

References
----------
.. [1] M. Stephens, "Dealing with label switching in mixture models", JRSS B 62(4), 2000.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "factor_summaries",
    "reference_W",
    "procrustes_align",
    "signed_permutation_align",
    "apply_signed_permutation",
]


def _as_draws(W, name="W") -> np.ndarray:
    W = np.asarray(W, dtype=float)
    if W.ndim < 2:
        raise ValueError(f"{name} must have shape (..., D, K). Got shape {W.shape} instead.")
    return W


def factor_summaries(W) -> dict[str, np.ndarray]:
    r"""Rotation-invariant summaries of ``W`` draws (``(..., D, K)``).

    Returns ``{"WWt_diag": (..., D), "col_norm2": (..., K)}``: the diagonal of
    :math:`W W^\top` and the squared column norms sorted in decreasing order within each draw
    (invariant to column permutations and signs; to rotations only jointly with the
    eigen-structure, which is why ``WWt_diag`` is the primary convergence check).
    """
    W = _as_draws(W)
    return {
        "WWt_diag": (W**2).sum(-1),
        "col_norm2": -np.sort(-(W**2).sum(-2), axis=-1),
    }


def reference_W(W) -> np.ndarray:
    r""":math:`W_\mathrm{ref} = U_K \Lambda_K^{1/2}` from the posterior mean of :math:`W W^\top`
    over all draws (columns by decreasing eigenvalue, each column's largest-magnitude entry
    positive); the target of :func:`procrustes_align`. Identical to
    :meth:`pyrogen.models.BayesianPPCA.reference_W`."""
    W = _as_draws(W)
    D, K = W.shape[-2:]
    flat = W.reshape(-1, D, K)
    C = np.einsum("sik,sjk->ij", flat, flat) / flat.shape[0]
    evals, evecs = np.linalg.eigh(C)
    evals, evecs = evals[::-1][:K], evecs[:, ::-1][:, :K]
    ref = evecs * np.sqrt(np.clip(evals, 0.0, None))
    idx = np.abs(ref).argmax(0)
    s = np.sign(ref[idx, np.arange(K)])
    return ref * np.where(s == 0, 1.0, s)


def procrustes_align(W, ref=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Rotate each draw onto ``ref``: :math:`R_s = \arg\min_{R \in O(K)}
    \lVert W_s R - W_\mathrm{ref}\rVert_F = U V^\top` with :math:`U \Sigma V^\top =
    W_s^\top W_\mathrm{ref}`.

    Parameters
    ----------
    W : array, shape ``(..., D, K)``
    ref : array, shape ``(D, K)``, optional
        Default :func:`reference_W` of the same draws.

    Returns
    -------
    aligned : array ``(..., D, K)``
        :math:`W_s R_s`.
    R : array ``(..., K, K)``
        The rotations (apply :math:`h_s R_s` to latent codes).
    """
    W = _as_draws(W)
    ref = reference_W(W) if ref is None else np.asarray(ref, dtype=float)
    if ref.shape != W.shape[-2:]:
        raise ValueError(f"ref must have shape {W.shape[-2:]}. Got {ref.shape} instead.")
    U, _, Vh = np.linalg.svd(np.swapaxes(W, -1, -2) @ ref)
    R = U @ Vh
    return W @ R, R


def _match(W, ref):
    """Permutation and signs of each draw's columns best matching ``ref`` (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    S, _, K = W.shape
    perm = np.empty((S, K), dtype=int)
    signs = np.empty((S, K))
    G = np.einsum("sdi,dj->sij", W, ref)  # (S, K, K): column i of draw s vs ref column j
    for s in range(S):
        rows, cols = linear_sum_assignment(-np.abs(G[s]))
        p = np.empty(K, dtype=int)
        p[cols] = rows  # ref column j <- draw column p[j]
        perm[s] = p
        g = G[s, p, np.arange(K)]
        signs[s] = np.where(g < 0, -1.0, 1.0)
    return perm, signs


def apply_signed_permutation(A, perm, signs) -> np.ndarray:
    """``A[..., perm] * signs`` per draw: apply the column map of
    :func:`signed_permutation_align` to draws of ``W`` (``(..., D, K)``) or of codes ``h``
    (``(..., n, K)``) with the same leading shape as ``perm`` (``(..., K)``)."""
    A = np.asarray(A, dtype=float)
    perm = np.asarray(perm)
    lead = perm.shape[:-1]
    K = perm.shape[-1]
    if A.shape[: len(lead)] != lead or A.shape[-1] != K:
        raise ValueError(
            f"A must have shape {lead} + (m, {K}). Got {A.shape} instead."
        )
    flatA = A.reshape(-1, A.shape[-2], K)
    fp, fs = perm.reshape(-1, K), np.asarray(signs).reshape(-1, K)
    out = np.take_along_axis(flatA, fp[:, None, :], axis=-1) * fs[:, None, :]
    return out.reshape(A.shape)


def signed_permutation_align(W, ref=None, num_iter: int = 5):
    r"""Align draws of ``W`` under the signed-permutation symmetry of ICA / sparse coding.

    Each draw's columns are permuted and sign-flipped to best match ``ref`` (maximum total
    :math:`|\langle W_{s,:,\pi(k)}, W_{\mathrm{ref},:,k}\rangle|`, Hungarian algorithm, cost
    :math:`O(K^3)` per draw). Without ``ref``, the reference starts at the draw with the
    largest total column norm and is replaced by the mean of the aligned draws ``num_iter``
    times.

    Parameters
    ----------
    W : array, shape ``(..., D, K)``
    ref : array, shape ``(D, K)``, optional
    num_iter : int
        Reference refinements when ``ref`` is ``None``.

    Returns
    -------
    aligned : array ``(..., D, K)``
    perm : int array ``(..., K)``
        ``aligned[..., :, k] = signs[..., k] * W[..., :, perm[..., k]]``.
    signs : array ``(..., K)`` of :math:`\pm 1`
    """
    W = _as_draws(W)
    lead, (D, K) = W.shape[:-2], W.shape[-2:]
    flat = W.reshape(-1, D, K)
    if ref is None:
        ref = flat[np.argmax((flat**2).sum((-2, -1)))]
        iters = max(int(num_iter), 1)
    else:
        ref = np.asarray(ref, dtype=float)
        if ref.shape != (D, K):
            raise ValueError(f"ref must have shape {(D, K)}. Got {ref.shape} instead.")
        iters = 1
    for _ in range(iters):
        perm, signs = _match(flat, ref)
        aligned = apply_signed_permutation(flat, perm, signs)
        ref = aligned.mean(0)
    return aligned.reshape(W.shape), perm.reshape(*lead, K), signs.reshape(*lead, K)
