"""The annealing loop: AIS and SMC against exact enumeration, reproducibility, bad input.

Statistical tests use float64 and fixed seeds; each states its failure rate over seeds.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from pyrogen.infer.annealing import (
    AISWarning,
    RBMBaseRatePath,
    SingleSiteGibbs,
    ais,
    smc,
)

D64 = torch.float64


def all_binary(n):
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=D64)


def tiny_rbm(nv=6, nh=4, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(nv, nh, generator=g, dtype=D64)
    b = torch.randn(nv, generator=g, dtype=D64)
    c = torch.randn(nh, generator=g, dtype=D64)
    return W, b, c


def exact_log_z(W, b, c):
    v = all_binary(W.shape[0])
    return torch.logsumexp(v @ b + F.softplus(v @ W + c).sum(-1), 0)


def replicated(W, b, c, reps):
    """`reps` independent runs in one call: the same RBM repeated along a batch dimension."""
    return RBMBaseRatePath(W.expand(reps, *W.shape), b, c)


def z_test_mean_z(log_z, exact):
    """Mean of Z-hat / Z over runs and its standard error."""
    ratio = torch.exp(log_z.double() - exact)
    return float(ratio.mean()), float(ratio.std() / math.sqrt(ratio.numel()))


# --------------------------------------------------------------------------------------------
# unbiasedness for Z (not log Z)
# --------------------------------------------------------------------------------------------
def test_ais_mean_of_z_hat_is_exact_z():
    """600 independent AIS runs (4 chains, 8 temperatures): mean of Z-hat/Z within 4 standard
    errors of 1. Failure rate over seeds ~6e-5 under the CLT (the weights of this short path
    have finite variance: their spread below is ~0.5). Jensen: mean log Z-hat is below log Z."""
    W, b, c = tiny_rbm(scale=1.2, seed=1)
    exact = exact_log_z(W, b, c)
    res = ais(replicated(W, b, c, 600), 8, 4, seed=11, warn=False)
    mean, se = z_test_mean_z(res.log_z, exact)
    assert abs(mean - 1) < 4 * se, (mean, se)
    assert se < 0.05
    assert float(res.log_z.mean()) < float(exact)


def test_smc_fixed_schedule_mean_of_z_hat_is_exact_z():
    """Same with resampling at every temperature (threshold 1): the SMC estimate of Z is
    unbiased for a fixed schedule (Del Moral 2004). 600 runs, 16 particles, 8 temperatures;
    |mean - 1| < 4 se: failure rate ~6e-5."""
    W, b, c = tiny_rbm(scale=1.2, seed=1)
    exact = exact_log_z(W, b, c)
    res = smc(replicated(W, b, c, 600), 8, 16, resample_threshold=1.0, seed=12, warn=False)
    assert bool(res.resampled[1:-1].all()) and not bool(res.resampled[-1])
    mean, se = z_test_mean_z(res.log_z, exact)
    assert abs(mean - 1) < 4 * se, (mean, se)
    assert se < 0.05


def test_smc_adaptive_matches_exact_and_is_reproducible():
    W, b, c = tiny_rbm(seed=2)
    path = RBMBaseRatePath(W, b, c)
    exact = exact_log_z(W, b, c)
    r1 = smc(path, num_chains=500, seed=3)
    r2 = smc(path, num_chains=500, seed=3)
    r3 = smc(path, num_chains=500, seed=4)
    torch.testing.assert_close(r1.betas, r2.betas, rtol=0, atol=0)
    torch.testing.assert_close(r1.log_z, r2.log_z, rtol=0, atol=0)
    assert r1.betas[0] == 0 and r1.betas[-1] == 1 and (r1.betas.diff() > 0).all()
    assert r1.num_betas == len(r1.betas) > 3
    assert not torch.equal(r1.betas, r3.betas)
    assert r1.stderr_method == "genealogy (Eve-index)"
    # 5 (asymptotic) standard errors: failure rate < 1e-5 if the stderr is right; the
    # adaptive-schedule bias is O(1/M), far below it here
    assert abs(float(r1.log_z - exact)) < 5 * float(r1.log_z_stderr)
    assert float(r1.log_z_stderr) < 0.1
    assert 1 <= int(r1.num_eves) <= 500


def test_smc_stderr_equals_delta_method_without_resampling():
    """With resampling off, the genealogy estimator is the delta-method value of AIS
    (up to the unbiased-variance factor M / (M - 1))."""
    W, b, c = tiny_rbm(seed=3)
    path = RBMBaseRatePath(W, b, c)
    a = ais(path, 20, 50, seed=6)
    s = smc(path, 20, 50, resample_threshold=0.0, seed=6)
    torch.testing.assert_close(a.log_z, s.log_z)
    torch.testing.assert_close(s.log_z_stderr * math.sqrt(50 / 49), a.log_z_stderr)
    assert int(s.num_eves) == 50


# --------------------------------------------------------------------------------------------
# random numbers keyed by chain block
# --------------------------------------------------------------------------------------------
def test_ais_chains_split_over_processes_equal_one_run():
    W, b, c = tiny_rbm(seed=4)
    path = RBMBaseRatePath(W.float(), b.float(), c.float())
    whole = ais(path, 30, 96, seed=7, chain_block_size=32)
    first = ais(path, 30, 64, seed=7, chain_block_size=32)
    second = ais(path, 30, 32, seed=7, chain_block_size=32, first_block=2)
    torch.testing.assert_close(
        torch.cat([first.log_weights, second.log_weights]), whole.log_weights, rtol=0, atol=0
    )
    torch.testing.assert_close(torch.cat([first.samples, second.samples]), whole.samples)
    assert whole.samples.dtype == torch.float32 and whole.log_z.dtype == torch.float32


def test_ais_with_explicit_kernel_and_moves():
    """A user kernel (single-site Gibbs on the RBM path, 2 moves per temperature)."""
    W, b, c = tiny_rbm(seed=5)
    path = RBMBaseRatePath(W, b, c)
    res = ais(path, 50, 300, kernel=SingleSiteGibbs(path), num_moves=2, seed=8)
    # 5 stderr: failure rate ~6e-7
    assert abs(float(res.log_z - exact_log_z(W, b, c))) < 5 * float(res.log_z_stderr)
    assert res.betas.shape == (50,)


# --------------------------------------------------------------------------------------------
# bad input, NaN and the reliability warning
# --------------------------------------------------------------------------------------------
class NaNPath(RBMBaseRatePath):
    """An RBM path whose log density is NaN above beta = 0.5."""

    def log_density(self, x, beta):
        out = super().log_density(x, beta)
        return out * float("nan") if beta > 0.5 else out

    def log_density_fn(self, x):
        return lambda beta: self.log_density(x, beta)

    def anneal_step(self, x, beta_prev, beta, generator=None):
        x_new, inc = super().anneal_step(x, beta_prev, beta, generator)
        return x_new, inc * float("nan") if beta > 0.5 else inc


def test_bad_input_and_nan():
    W, b, c = tiny_rbm()
    path = RBMBaseRatePath(W, b, c)
    for fn in (ais, smc):
        with pytest.raises(ValueError, match="betas must be non-decreasing"):
            fn(path, torch.tensor([0.0, 0.6, 0.5, 1.0]), 10)
        with pytest.raises(ValueError, match="betas must start at 0 and end at 1"):
            fn(path, torch.tensor([0.1, 0.5, 1.0]), 10)
        with pytest.raises(ValueError, match="betas must start at 0 and end at 1"):
            fn(path, torch.tensor([0.0, 0.5, 0.9]), 10)
        with pytest.raises(ValueError, match="num_chains must be an int in the range"):
            fn(path, 10, 0)
        with pytest.raises(TypeError, match="path must be an AnnealingPath"):
            fn("rbm", 10, 10)
        with pytest.raises(TypeError, match="kernel must have init"):
            fn(path, 10, 10, kernel=object())
        with pytest.raises(ValueError, match="either seed or generator"):
            fn(path, 10, 10, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="target_cess must be a float in the range"):
        smc(path, None, 10, target_cess=1.0)
    nan_path = NaNPath(W, b, c)
    betas = torch.linspace(0, 1, 11, dtype=D64)
    with pytest.raises(FloatingPointError, match=r"beta=0\.6"):
        ais(nan_path, betas, 10, seed=0)
    with pytest.raises(FloatingPointError, match=r"beta=0\.6"):
        smc(nan_path, betas, 10, seed=0)
    with pytest.raises(FloatingPointError, match="NaN"):
        smc(nan_path, None, 10, seed=0)


def test_low_ess_warns():
    """Two temperatures on a strongly coupled RBM: the weights collapse on a few chains."""
    W, b, c = tiny_rbm(nv=8, nh=6, scale=3.0, seed=6)
    with pytest.warns(AISWarning, match="effective sample size"):
        ais(RBMBaseRatePath(W, b, c), 2, 2000, seed=0)
