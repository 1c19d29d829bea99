"""DeepBoltzmannMachine against brute force on small models (pyrogen/distributions/dbm.py).

Statistical tests: fixed seeds, float64; each threshold's failure rate is stated where used.
"""

from __future__ import annotations

import pytest
import torch
from pyro.distributions.testing.gof import multinomial_goodness_of_fit

from pyrogen.distributions import DBMJoint, DeepBoltzmannMachine, enumerate_binary_states
from pyrogen.normalizers import AIS, CD, PCD, Exact, ExactLimitError

DT = torch.float64


def _params(sizes, scale=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = [scale * torch.randn(sizes[i], sizes[i + 1], generator=g, dtype=DT)
         for i in range(len(sizes) - 1)]
    b = [0.5 * torch.randn(n, generator=g, dtype=DT) for n in sizes]
    return w, b


def _brute(d):
    """All joint states: (-E, layers) by brute force over every unit."""
    n = sum(d.sizes)
    s = enumerate_binary_states(n, dtype=DT)
    layers, start = [], 0
    for k in d.sizes:
        layers.append(s[:, start:start + k])
        start += k
    return -d.energy(layers), layers


@pytest.mark.parametrize("sizes", [[6, 3, 4], [5, 4, 2], [4, 3, 2, 3]])
def test_exact_log_z_equals_brute_force(sizes):
    d = DeepBoltzmannMachine(*_params(sizes))
    neg_e, _ = _brute(d)
    torch.testing.assert_close(d.enumerate_log_z(), torch.logsumexp(neg_e, 0))
    torch.testing.assert_close(Exact()(d).log_z, torch.logsumexp(neg_e, 0))


@pytest.mark.parametrize("sizes", [[8, 3, 2], [9, 2, 4], [8, 2, 3, 2]])
def test_log_prob_sums_to_one_and_marginal_is_brute_force(sizes):
    d = DeepBoltzmannMachine(*_params(sizes))
    v = enumerate_binary_states(sizes[0], dtype=DT)
    lp = d.log_prob(v)
    assert d.last_log_prob_kind == "exact"
    torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros((), dtype=DT))
    neg_e, layers = _brute(d)
    idx = (layers[0] * 2 ** torch.arange(sizes[0], dtype=DT)).sum(-1).long()
    brute = torch.stack([torch.logsumexp(neg_e[idx == i], 0) for i in range(2 ** sizes[0])])
    torch.testing.assert_close(d.exact_marginal(v), brute)


def test_exact_gradient_matches_brute_force():
    w, b = _params([5, 3, 2])
    w = [t.requires_grad_() for t in w]
    d = DeepBoltzmannMachine(w, b)
    (g1,) = torch.autograd.grad(d.enumerate_log_z(), [w[0]])
    neg_e, _ = _brute(d)
    (g2,) = torch.autograd.grad(torch.logsumexp(neg_e, 0), [w[0]])
    torch.testing.assert_close(g1, g2)


def test_mean_field_bound_is_a_lower_bound_and_monotone():
    d = DeepBoltzmannMachine(*_params([8, 4, 3], scale=1.2))
    v = enumerate_binary_states(8, dtype=DT)
    exact = d.exact_marginal(v)
    prev = None
    for iters in (0, 1, 3, 10):
        mf = d.mean_field_bound(v, d.mean_field(v, num_iters=iters))
        assert (mf <= exact + 1e-10).all()
        if prev is not None:  # block coordinate ascent never decreases the bound
            assert (mf >= prev - 1e-10).all()
        prev = mf
    dm = DeepBoltzmannMachine(*_params([8, 4, 3], scale=1.2), marginal="mean_field")
    lp = dm.log_prob(v)
    assert dm.last_log_prob_kind == "mean_field_lower_bound - log Z exact"
    assert (lp <= d.log_prob(v) + 1e-10).all()


def test_ais_log_z_on_dbm_path_vs_exact():
    """Fixed seed; |error| < 4 standard errors + 0.05 nats (failure rate < 1e-4 for a
    well-behaved estimate)."""
    d = DeepBoltzmannMachine(*_params([10, 4, 3], scale=0.6))
    est = AIS(num_chains=200, num_betas=1000, seed=3)(d)
    exact = d.enumerate_log_z()
    assert est.kind == "ais_estimate"
    assert abs(float(est.log_z - exact)) < 4 * float(est.stderr) + 0.05


def _visible_counts(v):
    idx = (v * 2 ** torch.arange(v.shape[-1], dtype=v.dtype)).sum(-1).long()
    return torch.bincount(idx, minlength=2 ** v.shape[-1]).to(DT)


@pytest.mark.parametrize("exact", [True, False])
def test_block_gibbs_and_exact_sampler_gof(exact):
    """Chi-square (pyro's multinomial_goodness_of_fit) of the visible states against the exact
    probabilities; threshold 1e-3 (failure rate 1e-3 for independent exact draws; the Gibbs
    chains, 40 steps on a weakly coupled model, are close to that)."""
    torch.manual_seed(0)
    d = DeepBoltzmannMachine(*_params([4, 3, 2], scale=0.7), mcmc_steps=40)
    probs = d.log_prob(enumerate_binary_states(4, dtype=DT)).exp()
    if exact:
        v = d.sample((4000,))
    else:
        v = d.transition(d.init_chains(4000), 40)[:, :4]
    assert multinomial_goodness_of_fit(probs, _visible_counts(v)) > 1e-3


def test_pcd_chains_and_gradient_trick():
    torch.manual_seed(1)
    w, b = _params([6, 3, 2])
    w = [t.requires_grad_() for t in w]
    pcd = PCD(num_chains=7, num_steps=2)
    d = DeepBoltzmannMachine(w, b, normalizer=pcd)
    est = d.log_normalizer()
    assert pcd.chains.shape == (7, 11)
    torch.testing.assert_close(est.log_z.detach(), d.enumerate_log_z().detach())
    (g,) = torch.autograd.grad(est.log_z, [w[0]])
    chains = pcd.chains
    v, h1 = chains[:, :6], chains[:, 6:9]
    torch.testing.assert_close(g, v.T @ h1 / 7)


def test_joint_site_scores_energy_minus_log_z():
    w, b = _params([5, 3, 2])
    d = DeepBoltzmannMachine(w, b)
    v = torch.tensor([[1.0, 0, 1, 0, 0]], dtype=DT)
    hs = [torch.tensor([[1.0, 1, 0]], dtype=DT), torch.tensor([[0.0, 1]], dtype=DT)]
    j = d.joint(hs)
    torch.testing.assert_close(j.log_prob(v), -d.energy([v, *hs]) - d.enumerate_log_z())
    with pytest.raises(NotImplementedError, match="not a distribution of v"):
        j.sample()
    with pytest.raises(ValueError, match="hiddens must hold 2"):
        DBMJoint(d, hs[:1])


def test_expand_and_annealing_path_state():
    d = DeepBoltzmannMachine(*_params([5, 3, 2]))
    e = d.expand((4,))
    assert e.batch_shape == (4,) and e.log_prob(torch.zeros(4, 5, dtype=DT)).shape == (4,)
    path = d.annealing_path()
    x = path.init(3)
    torch.testing.assert_close(path.log_density(x, 1.0), d.annealing_state_log_prob(x))


def test_bad_input():
    w, b = _params([5, 3, 2])
    with pytest.raises(ValueError, match="depth >= 2"):
        DeepBoltzmannMachine(w[:1], b[:2])
    with pytest.raises(ValueError, match="do not chain"):
        DeepBoltzmannMachine([w[0], torch.zeros(4, 2, dtype=DT)], b)
    with pytest.raises(ValueError, match=r"biases\[1\] must have shape \(3,\)"):
        DeepBoltzmannMachine(w, [b[0], b[2], b[2]])
    with pytest.raises(ValueError, match="biases must hold one vector per layer"):
        DeepBoltzmannMachine(w, b[:2])
    with pytest.raises(TypeError, match="weights must be a list"):
        DeepBoltzmannMachine(w[0], b)
    with pytest.raises(ValueError, match="must be binary"):
        DeepBoltzmannMachine(w, b, validate_args=True).log_prob(torch.full((5,), 0.5, dtype=DT))
    with pytest.raises(TypeError, match="dtype"):
        DeepBoltzmannMachine(w, b).log_prob(torch.zeros(5, dtype=torch.float32))
    with pytest.raises(ValueError, match="last dimension 5"):
        DeepBoltzmannMachine(w, b).log_prob(torch.zeros(4, dtype=DT))
    with pytest.raises(ValueError, match="CD"):
        DeepBoltzmannMachine(w, b, normalizer=CD())
    with pytest.raises(ValueError, match="marginal must be one of"):
        DeepBoltzmannMachine(w, b, marginal="nope")
    big = DeepBoltzmannMachine(*_params([30, 25, 30]), normalizer=Exact(max_units=20))
    with pytest.raises(ExactLimitError, match="past its limit"):
        big.log_prob(torch.zeros(30, dtype=DT))


def test_mean_field_entropy_finite_at_saturation_float32():
    """Saturated mean-field probabilities (mu = 0 or 1 in float32) give a finite bound."""
    w, b = _params([5, 3, 2], scale=30.0)
    d = DeepBoltzmannMachine([t.float() for t in w], [t.float() for t in b])
    v = torch.ones(4, 5)
    mu = d.mean_field(v)
    assert any(((m == 0) | (m == 1)).any() for m in mu)
    assert torch.isfinite(d.mean_field_bound(v, mu)).all()
