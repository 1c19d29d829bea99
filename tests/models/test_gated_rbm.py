"""Factored gated RBM (pyrogen/models/gated_rbm.py) against brute-force enumeration.

Statistical tests: fixed seeds, float64, failure rate stated in each.
"""

import pyro
import pytest
import torch

from pyrogen.datasets import shifted_digit_pairs
from pyrogen.distributions.energy import enumerate_binary_states
from pyrogen.models import GatedRBM, load


def _model(nx=3, ny=3, nh=2, nf=4, scale=0.8, seed=0, **kw):
    m = GatedRBM(nx, ny, nh, nf, **kw).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def _brute_log_p(m, x, y):
    """log P(y | x) by enumerating y and h with the factored three-way energy."""
    ys = enumerate_binary_states(m.n_output, dtype=torch.float64)
    hs = enumerate_binary_states(m.n_hidden, dtype=torch.float64)
    xx = x[:, None, None, :]
    neg = -m.energy(xx, ys[None, :, None, :], hs[None, None, :, :])  # (n, Sy, Sh)
    log_z = torch.logsumexp(neg.flatten(1), 1)
    num = torch.logsumexp(-m.energy(x[:, None, :], y[:, None, :], hs[None]), 1)
    return num - log_z


def _rows(n, nx=3, ny=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, nx + ny), 0.5, dtype=torch.float64), generator=g)


def test_free_energy_equals_sum_over_mapping_units():
    m = _model()
    data = _rows(10)
    x, y = m.split(data)
    d = m.conditional(x)
    hs = enumerate_binary_states(2, dtype=torch.float64)
    want = torch.logsumexp(-m.energy(x[:, None, :], y[:, None, :], hs[None]), 1)
    torch.testing.assert_close(-d.free_energy(y), want)


def test_conditional_log_likelihood_exact_equals_brute_force():
    m = _model()
    data = _rows(12)
    ll = m.log_likelihood(data)
    assert ll.kind == "exact" and ll.shape == (12,)
    x, y = m.split(data)
    torch.testing.assert_close(ll.values, _brute_log_p(m, x, y))
    # normalized over y for each x
    x0 = x[:1].expand(8, 3)
    ys = enumerate_binary_states(3, dtype=torch.float64)
    total = m.log_likelihood(torch.cat([x0, ys], -1)).values.logsumexp(0)
    assert abs(float(total)) < 1e-10


def test_ais_agrees_with_exact_within_its_standard_error():
    """Each of 8 log Z(x) by AIS within 4 s.e. of the exact value (failure rate < 1e-3)."""
    m = _model(nx=4, ny=5, nh=4, nf=6, scale=0.6, seed=1)
    data = _rows(8, 4, 5, seed=2)
    exact = m.log_likelihood(data)
    est = m.log_likelihood(data, method="ais", num_chains=200, num_betas=300, seed=0)
    assert est.kind == "ais_estimate" and est.stderr is not None
    assert float(((est.values - exact.values) / est.stderr).abs().max()) < 4.0


def test_output_sampler_matches_exact_conditional():
    """Chi-square test of 4000 draws of y | x (8 outcomes) against the exact P(y | x);
    p-value threshold 1e-3 (failure rate 0.1%)."""
    from scipy.stats import chisquare

    m = _model(seed=3)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64).expand(4000, 3)
    pyro.set_rng_seed(0)
    y = m.sample_output(x)
    idx = (y * torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)).sum(-1).long()
    counts = torch.bincount(idx, minlength=8).double()
    ys = enumerate_binary_states(3, dtype=torch.float64)
    p = _brute_log_p(m, x[:8], ys).exp().detach()
    assert chisquare(counts.numpy(), (p * 4000).numpy()).pvalue > 1e-3


def test_cd_training_raises_conditional_likelihood_of_shifts():
    x, y, _ = shifted_digit_pairs(100, seed=0)
    data = torch.cat([x, y], -1).double()
    m = GatedRBM(64, 64, 6, 8).double()
    before = m.log_likelihood(data).mean()
    m.fit(data, num_steps=30, lr=0.03, batch_size=50, seed=0, progress=False)
    assert m.log_likelihood(data).mean() > before + 5.0


def test_protocol_and_bad_input(tmp_path):
    m = _model()
    data = _rows(6)
    assert m.transform(data).shape == (6, 2)
    assert m.sample(5).shape == (5, 6)
    m.save(tmp_path / "g.pt")
    back = load(tmp_path / "g.pt")
    torch.testing.assert_close(back.log_likelihood(data).values, m.log_likelihood(data).values)
    with pytest.raises(ValueError, match="binary"):
        m.log_likelihood(torch.full((2, 6), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="features"):
        m.log_likelihood(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="features"):
        m.sample_output(torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_factors"):
        GatedRBM(3, 3, 2, 0)
    with pytest.raises(ValueError, match="method must be"):
        m.log_likelihood(data, method="nope")
