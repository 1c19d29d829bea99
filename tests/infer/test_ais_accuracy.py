"""AIS accuracy against exact answers (issue 14): the default ``ais()`` on enumerable RBMs.

Default run: patch RBMs (each hidden unit sees one image patch, so log Z is a sum of small
enumerable patch log normalizers) at small size, float64, fixed seeds. Slow + MNIST: the
default within 0.1 nats of the exact log Z of 784-visible RBMs trained on binarized MNIST in
at least 9 of 10 seeds.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from pyrogen.infer.annealing import RBMBaseRatePath, ais, base_rate_visible_bias
from pyrogen.testing.rbm_fixtures import (
    patch_rbm_log_z_exact,
    patch_rbm_mask,
    random_patch_rbm,
    rbm_log_z_exact,
    train_patch_rbm,
)


# --------------------------------------------------------------------------------------------
# the fixtures themselves
# --------------------------------------------------------------------------------------------
def _brute_log_z(W, b, c):
    nv, nh = W.shape
    v = ((torch.arange(2**nv)[:, None] >> torch.arange(nv)) & 1).double()
    h = ((torch.arange(2**nh)[:, None] >> torch.arange(nh)) & 1).double()
    e = (v @ b)[:, None] + (h @ c)[None] + v @ W.double() @ h.T
    return float(torch.logsumexp(e.reshape(-1), 0))


def test_rbm_log_z_exact_matches_brute_force_both_orientations():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(7, 5, generator=g, dtype=torch.float64)
    b = torch.randn(7, generator=g, dtype=torch.float64)
    c = torch.randn(5, generator=g, dtype=torch.float64)
    brute = _brute_log_z(W, b, c)
    assert rbm_log_z_exact(W, b, c) == pytest.approx(brute, abs=1e-10)
    assert rbm_log_z_exact(W.T, c, b) == pytest.approx(brute, abs=1e-10)  # visible enumerated
    with pytest.raises(ValueError, match="shapes"):
        rbm_log_z_exact(W, c, b)


def test_patch_rbm_log_z_is_the_full_enumeration():
    p = random_patch_rbm(image_shape=(8, 8), patch_shape=(4, 4), hidden_per_patch=4, seed=1)
    assert p.n_visible == 64 and p.n_hidden == 16
    assert bool(((p.weight != 0) <= (p.mask != 0)).all())  # no weight outside the patches
    full = rbm_log_z_exact(p.weight, p.visible_bias, p.hidden_bias)  # 2^16 hidden states
    assert p.log_z == pytest.approx(full, abs=1e-9)


def test_patch_rbm_mask_partitions_the_image():
    mask, patches = patch_rbm_mask((28, 28), (4, 7), 3)
    assert mask.shape == (784, 28 * 3)
    assert sorted(torch.cat([v for v, _ in patches]).tolist()) == list(range(784))
    assert bool((mask.sum(1) == 3).all())  # every pixel sees its patch's 3 hidden units
    with pytest.raises(ValueError, match="divide"):
        patch_rbm_mask((28, 28), (5, 5), 3)


def test_train_patch_rbm_keeps_the_structure_and_exact_log_z():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 64, generator=g) < 0.3).float()
    p = train_patch_rbm(x, image_shape=(8, 8), patch_shape=(4, 4), hidden_per_patch=3,
                        epochs=1, persistent=True, seed=0)
    assert bool(((p.weight != 0) <= (p.mask != 0)).all())
    assert p.log_z == pytest.approx(
        patch_rbm_log_z_exact(p.weight, p.visible_bias, p.hidden_bias, p.patches), abs=1e-9
    )
    assert p.log_z == pytest.approx(
        rbm_log_z_exact(p.weight, p.visible_bias, p.hidden_bias), abs=1e-4  # float32 weights
    )


# --------------------------------------------------------------------------------------------
# the default on a small patch RBM: its reported standard error covers its error
# --------------------------------------------------------------------------------------------
def test_default_ais_error_within_3_reported_se_on_patch_rbm():
    """``ais(path)`` with every default, a fixed seed, float64: |error| <= 3 reported se.

    If the delta-method se is calibrated, a seed fails with probability ~0.3% (normal tail);
    the seed is fixed, so the test is deterministic. (One seed: the default's 10,000
    temperatures cost a few seconds even on this 64 x 16 model.)
    """
    p = random_patch_rbm(image_shape=(8, 8), patch_shape=(4, 4), hidden_per_patch=4, scale=2.0,
                         seed=3)
    path = RBMBaseRatePath(p.weight, p.visible_bias, p.hidden_bias)
    for seed in range(1):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the default must not warn of a low ESS here
            r = ais(path, seed=seed)
        err = float(r.log_z) - p.log_z
        se = float(r.log_z_stderr)
        assert abs(err) <= 3 * se, (seed, err, se)
        assert se < 0.05, (seed, se)


# --------------------------------------------------------------------------------------------
# MNIST-trained 784 x 15-20 RBMs (slow)
# --------------------------------------------------------------------------------------------
def _train_rbm_cd1(x, n_hidden, epochs, lr=0.05, batch_size=100, seed=0):
    """Plain-torch CD-1 (the test does not depend on the model classes)."""
    g = torch.Generator().manual_seed(seed)
    n, nv = x.shape
    W = 0.01 * torch.randn(nv, n_hidden, generator=g)
    b = base_rate_visible_bias(x, 1e-2).clone()
    c = torch.zeros(n_hidden)

    def bern(p):
        return (torch.rand(p.shape, generator=g) < p).float()

    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            v0 = x[perm[i : i + batch_size]]
            ph0 = torch.sigmoid(v0 @ W + c)
            v1 = bern(torch.sigmoid(bern(ph0) @ W.T + b))
            ph1 = torch.sigmoid(v1 @ W + c)
            W += lr * (v0.T @ ph0 - v1.T @ ph1) / len(v0)
            b += lr * (v0.mean(0) - v1.mean(0))
            c += lr * (ph0.mean(0) - ph1.mean(0))
    return W, b, c


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.timeout(3600)  # 10 default runs (~12 CPU s each) + enumeration; >600 s when shared
@pytest.mark.parametrize("n_hidden,epochs,seed", [(15, 10, 0), (20, 5, 1)])
def test_default_ais_within_0p1_nats_in_9_of_10_seeds(mnist_path, n_hidden, epochs, seed):
    """Issue 14: ``ais(path)`` with the defaults within 0.1 nats of the exact log Z in >= 9 of
    10 seeds, and within 3 reported standard errors in all 10, on CD-1 784 x H MNIST RBMs.

    (PCD-trained and long-trained RBMs are harder: see ``docs/models/ais.rst`` for the
    measured errors there.)
    """
    from pyrogen.datasets import load_binarized_mnist

    torch.set_num_threads(1)
    x = load_binarized_mnist(mnist_path, "train", dtype=torch.float32, limit=10000).x
    W, b, c = _train_rbm_cd1(x, n_hidden, epochs, seed=seed)
    exact = rbm_log_z_exact(W, b, c)
    path = RBMBaseRatePath(W, b, c, base_rate_visible_bias(x))
    errs, ses = [], []
    for s in range(10):
        r = ais(path, seed=s)
        errs.append(float(r.log_z) - exact)
        ses.append(float(r.log_z_stderr))
    assert sum(abs(e) <= 0.1 for e in errs) >= 9, (errs, ses)
    assert all(abs(e) <= 3 * s for e, s in zip(errs, ses)), (errs, ses)
