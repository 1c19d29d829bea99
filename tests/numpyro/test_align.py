"""Alignment of factor-model draws: NumPy Procrustes equals the torch model's, signed
permutations are recovered exactly."""

import numpy as np
import pytest

pytest.importorskip("numpyro")

import torch  # noqa: E402

from pyrogen.models import BayesianPPCA  # noqa: E402
from pyrogen.numpyro import (  # noqa: E402
    apply_signed_permutation,
    factor_summaries,
    procrustes_align,
    reference_W,
    signed_permutation_align,
)


def _rotations(S, K, rng):
    q, r = np.linalg.qr(rng.normal(size=(S, K, K)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]


def test_procrustes_matches_torch_model():
    rng = np.random.default_rng(0)
    S, D, K = 30, 6, 3
    base = rng.normal(size=(D, K))
    W = base @ _rotations(S, K, rng) + 0.05 * rng.normal(size=(S, D, K))
    m = BayesianPPCA(D, K).double()
    m._store_draws({"W": torch.tensor(W), "noise": torch.ones(S), "loc": torch.zeros(S, D),
                    "alpha": torch.ones(S, K)}, torch.zeros(S, dtype=torch.long))
    np.testing.assert_allclose(reference_W(W), m.reference_W().numpy(), atol=1e-10)
    aligned, R = procrustes_align(W)
    np.testing.assert_allclose(aligned, m.aligned_W().numpy(), atol=1e-10)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(K), R.shape),
                               atol=1e-10)
    # the aligned draws agree up to the noise, the raw ones do not
    assert np.abs(aligned - aligned.mean(0)).max() < 0.5
    assert np.abs(W - W.mean(0)).max() > 1.0
    # chain-shaped input gives the same as flat input
    a2, _ = procrustes_align(W.reshape(3, 10, D, K))
    np.testing.assert_allclose(a2.reshape(S, D, K), aligned, atol=1e-12)


def test_factor_summaries_are_rotation_invariant():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(5, 4, 3))
    Wr = W @ _rotations(5, 3, rng)
    s, sr = factor_summaries(W), factor_summaries(Wr)
    np.testing.assert_allclose(s["WWt_diag"], sr["WWt_diag"], atol=1e-12)
    perm = W[..., [2, 0, 1]] * np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(factor_summaries(perm)["col_norm2"], s["col_norm2"], atol=1e-12)
    assert np.all(np.diff(s["col_norm2"], axis=-1) <= 0)


def test_signed_permutation_recovers_known_maps():
    rng = np.random.default_rng(2)
    S, D, K = 40, 7, 4
    ref = rng.normal(size=(D, K)) * np.array([3.0, 2.0, 1.5, 1.0])
    perms = np.stack([rng.permutation(K) for _ in range(S)])
    signs = rng.choice([-1.0, 1.0], size=(S, K))
    # draw s has column perms[s, k] = signs[s, k] * ref[:, k] (+ noise)
    W = np.empty((S, D, K))
    for s in range(S):
        W[s][:, perms[s]] = ref * signs[s] + 0.05 * rng.normal(size=(D, K))
    aligned, p, sg = signed_permutation_align(W, ref=ref)
    np.testing.assert_array_equal(p, perms)
    np.testing.assert_array_equal(sg, signs)
    assert np.abs(aligned - ref).max() < 0.3
    # without a reference: aligned to one labelling, up to a global signed permutation
    aligned2, _, _ = signed_permutation_align(W)
    spread = np.abs(aligned2 - aligned2.mean(0)).max()
    assert spread < 0.3
    # codes follow their atoms: h_s W_s^T is unchanged by the map
    h = rng.normal(size=(S, 5, K))
    h_al = apply_signed_permutation(h, p, sg)
    np.testing.assert_allclose(np.einsum("snk,sdk->snd", h_al, aligned),
                               np.einsum("snk,sdk->snd", h, W), atol=1e-12)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="W must have shape"):
        procrustes_align(np.zeros(3))
    with pytest.raises(ValueError, match="ref must have shape"):
        procrustes_align(np.zeros((2, 3, 2)), ref=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="ref must have shape"):
        signed_permutation_align(np.zeros((2, 3, 2)), ref=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="A must have shape"):
        apply_signed_permutation(np.zeros((2, 3, 2)), np.zeros((2, 3), int), np.ones((2, 3)))
