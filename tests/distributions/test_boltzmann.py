"""BoltzmannMachine, RBM and GaussianBernoulliRBM against brute-force enumeration.

Statistical tests use fixed seeds and float64; each states its failure rate (the probability
that a correct implementation fails it for a random seed).
"""

import math

import pytest
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit, multinomial_goodness_of_fit

import pyrogen.distributions.boltzmann as boltzmann_module
import pyrogen.distributions.energy as energy_module
from pyrogen.distributions import (
    RBM,
    BoltzmannMachine,
    GaussianBernoulliRBM,
    enumerate_binary_states,
)
from pyrogen.normalizers import Exact, ExactLimitError

#: per-test probability of a spurious failure of the goodness-of-fit tests
TEST_FAILURE_RATE = 1e-3

D = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread is faster on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rbm_params(nv, nh, batch=(), scale=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(*batch, nv, nh, generator=g, dtype=D)
    b = scale * torch.randn(*batch, nv, generator=g, dtype=D)
    c = scale * torch.randn(*batch, nh, generator=g, dtype=D)
    return W, b, c


def _bm_params(n, batch=(), scale=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = scale * torch.randn(*batch, n, n, generator=g, dtype=D)
    U = (A + A.mT) / 2 * (1 - torch.eye(n, dtype=D))
    b = scale * torch.randn(*batch, n, generator=g, dtype=D)
    return U, b


def _brute_rbm_log_z(W, b, c):
    """log sum_{v,h} exp(b.v + c.h + v W h) over *all* units, written independently."""
    nv, nh = W.shape[-2:]
    s = enumerate_binary_states(nv + nh, dtype=D)
    v, h = s[:, :nv], s[:, nv:]
    neg_e = v @ b + h @ c + torch.einsum("si,ij,sj->s", v, W, h)
    return torch.logsumexp(neg_e, 0)


def _brute_bm_log_z(U, b):
    n = U.shape[-1]
    s = enumerate_binary_states(n, dtype=D)
    return torch.logsumexp(torch.einsum("si,ij,sj->s", s, U, s) + s @ b, 0)


# ------------------------------------------------------------------------------ Exact vs brute
@pytest.mark.parametrize("nv,nh", [(10, 8), (6, 9)])
def test_rbm_exact_matches_enumeration_over_all_units(nv, nh):
    W, b, c = _rbm_params(nv, nh, batch=(2,))
    d = RBM(W, b, c)
    log_z = Exact(chunk_size=100)(d).log_z  # small chunks exercise the chunking
    for k in range(2):
        torch.testing.assert_close(log_z[k], _brute_rbm_log_z(W[k], b[k], c[k]))


def test_bm_exact_matches_enumeration():
    U, b = _bm_params(10, batch=(3,))
    log_z = Exact(chunk_size=77)(BoltzmannMachine(U, b)).log_z
    for k in range(3):
        torch.testing.assert_close(log_z[k], _brute_bm_log_z(U[k], b[k]))


def test_gbrbm_exact_matches_quadrature():
    # 1 visible unit: integrate exp(-E(v,h)) over v on a fine grid, sum over h
    W, b, c = _rbm_params(1, 3, seed=3)
    sigma = torch.tensor([0.8], dtype=D)
    d = GaussianBernoulliRBM(W, b, c, sigma)
    grid = torch.linspace(-15, 15, 60001, dtype=D).unsqueeze(-1)
    dv = 30 / 60000
    h = enumerate_binary_states(3, dtype=D)
    e = d.energy(grid.unsqueeze(1), h.unsqueeze(0))  # (G, 8)
    brute = torch.logsumexp(-e, dim=1).logsumexp(0) + math.log(dv)
    torch.testing.assert_close(Exact()(d).log_z, brute, rtol=0, atol=1e-6)
    # the free energy is the joint energy with h summed out
    torch.testing.assert_close(-d.free_energy(grid[:5]), torch.logsumexp(-e[:5], 1))


def test_rbm_free_energy_sums_out_hidden():
    W, b, c = _rbm_params(5, 4)
    d = RBM(W, b, c)
    v = enumerate_binary_states(5, dtype=D)
    h = enumerate_binary_states(4, dtype=D)
    joint = -d.energy(v.unsqueeze(1), h.unsqueeze(0))
    torch.testing.assert_close(-d.free_energy(v), torch.logsumexp(joint, 1))


# ------------------------------------------------------------------------------ normalization
def test_bm_log_prob_sums_to_one_batched():
    U, b = _bm_params(10, batch=(2, 3))
    d = BoltzmannMachine(U, b)
    s = enumerate_binary_states(10, dtype=D).reshape(-1, 1, 1, 10)
    lp = d.log_prob(s)
    assert lp.shape == (1024, 2, 3)
    torch.testing.assert_close(lp.logsumexp(0), torch.zeros(2, 3, dtype=D), atol=1e-10, rtol=0)


def test_rbm_log_prob_sums_to_one_batched():
    W, b, c = _rbm_params(10, 8, batch=(3,))
    d = RBM(W, b[0], c)  # broadcasting: one visible bias for the batch
    assert d.batch_shape == (3,) and d.event_shape == (10,)
    s = enumerate_binary_states(10, dtype=D).unsqueeze(1)
    lp = d.log_prob(s)
    torch.testing.assert_close(lp.logsumexp(0), torch.zeros(3, dtype=D), atol=1e-10, rtol=0)


def test_rbm_exact_prefers_smaller_layer_both_ways_agree():
    W, b, c = _rbm_params(7, 12)
    a = Exact()(RBM(W, b, c)).log_z
    # the transposed RBM (swap roles of v and h) has the same partition function
    t = Exact()(RBM(W.T.contiguous(), c, b)).log_z
    torch.testing.assert_close(a, t)


def test_gbrbm_log_prob_integrates_to_one_2d():
    W, b, c = _rbm_params(2, 3, scale=0.5, seed=5)
    d = GaussianBernoulliRBM(W, b, c, torch.tensor([0.6, 1.1], dtype=D))
    g = torch.linspace(-9, 9, 601, dtype=D)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    mass = d.log_prob(grid).exp().sum() * (18 / 600) ** 2
    torch.testing.assert_close(mass, torch.tensor(1.0, dtype=D), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ shapes
def test_expand_shares_parameters_and_log_z():
    W, b, c = _rbm_params(6, 4, batch=(3,))
    d = RBM(W, b, c)
    e = d.expand((5, 3))
    assert e.batch_shape == (5, 3) and e.param_batch_shape == (3,)
    x = torch.bernoulli(torch.full((5, 3, 6), 0.5, dtype=D))
    torch.testing.assert_close(e.log_prob(x), d.log_prob(x))
    assert e.last_log_z.log_z.shape == (3,)
    assert e.sample((2,)).shape == (2, 5, 3, 6)
    with pytest.raises(ValueError, match="batch_shape"):
        d.expand((4,))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RBM(*_rbm_params(5, 3, batch=(2,))),
        lambda: BoltzmannMachine(*_bm_params(5, batch=(2,))),
        lambda: GaussianBernoulliRBM(*_rbm_params(5, 3, batch=(2,)), 0.5),
    ],
)
def test_sample_and_log_prob_shapes(make):
    d = make()
    for shape in [(), (4,), (2, 3)]:
        x = d.sample(shape)
        assert x.shape == (*shape, 2, 5)
        assert d.log_prob(x).shape == (*shape, 2)
    # a value that broadcasts against the batch
    assert d.log_prob(d.sample((4,))[:, :1]).shape == (4, 2)


def test_conditionals_are_pyro_distributions():
    W, b, c = _rbm_params(5, 3)
    d = RBM(W, b, c)
    v = d.sample((4,))
    ph = d.hidden_given_visible(v)
    assert ph.event_shape == (3,) and ph.batch_shape == (4,)
    torch.testing.assert_close(ph.mean, torch.sigmoid(c + v @ W))
    h = ph.sample()
    pv = d.visible_given_hidden(h)
    torch.testing.assert_close(pv.mean, torch.sigmoid(b + h @ W.T))
    # P(h|v) = P(v,h)/P(v) by enumeration
    hs = enumerate_binary_states(3, dtype=D)
    joint = -d.energy(v[:1], hs) - (-d.free_energy(v[:1]))
    torch.testing.assert_close(d.hidden_given_visible(v[:1]).log_prob(hs), joint)
    gb = GaussianBernoulliRBM(W, b, c, 0.5)
    x = gb.sample((4,))
    hs = enumerate_binary_states(3, dtype=D)
    joint = -gb.energy(x[:1], hs) + gb.free_energy(x[:1])
    torch.testing.assert_close(gb.hidden_given_visible(x[:1]).log_prob(hs), joint)
    assert gb.visible_given_hidden(hs).event_shape == (5,)


def test_gbrbm_log_prob_differentiable_in_x():
    W, b, c = _rbm_params(3, 2)
    d = GaussianBernoulliRBM(W, b, c, torch.tensor([0.5, 1.0, 2.0], dtype=D))
    x = torch.randn(4, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: d.log_prob(x), (x,))
    (g,) = torch.autograd.grad(d.log_prob(x).sum(), x)
    ph = d.hidden_given_visible(x.detach()).mean
    expected = -(x.detach() - b) / d.sigma**2 + (ph @ W.T) / d.sigma**2
    torch.testing.assert_close(g, expected)


# ------------------------------------------------------------------------------ samplers (gof)
def _binary_gof(d, n, num_samples):
    """Pearson chi^2 of sample counts against exp(log_prob) over all 2^n states."""
    x = d.sample((num_samples,))
    states = enumerate_binary_states(n, dtype=D)
    idx = (x * (2 ** torch.arange(n, dtype=D))).sum(-1).long()
    counts = torch.bincount(idx, minlength=2**n)
    probs = d.log_prob(states).exp()
    return multinomial_goodness_of_fit(probs, counts)


@pytest.mark.parametrize("exact", [True, False])
def test_rbm_sampler_gof(exact, monkeypatch):
    torch.manual_seed(0)
    if not exact:  # force block Gibbs sampling
        monkeypatch.setattr(boltzmann_module, "EXACT_SAMPLE_MAX_UNITS", 0)
    d = RBM(*_rbm_params(5, 3), mcmc_steps=30)
    assert _binary_gof(d, 5, 4000) > TEST_FAILURE_RATE
    # the other orientation (enumerate the visible side)
    if exact:
        d = RBM(*_rbm_params(3, 5))
        assert _binary_gof(d, 3, 4000) > TEST_FAILURE_RATE


@pytest.mark.parametrize("exact", [True, False])
def test_bm_sampler_gof(exact, monkeypatch):
    torch.manual_seed(1)
    if not exact:  # force Gibbs sampling
        monkeypatch.setattr(energy_module, "EXACT_SAMPLE_MAX_UNITS", 0)
    d = BoltzmannMachine(*_bm_params(4, scale=0.8), mcmc_steps=30)
    assert _binary_gof(d, 4, 4000) > TEST_FAILURE_RATE


def test_sampler_detects_a_wrong_distribution():
    # the gof test has power: samples of one RBM against log_prob of another fail
    torch.manual_seed(2)
    d = RBM(*_rbm_params(5, 3))
    other = RBM(*_rbm_params(5, 3, seed=9))
    x = d.sample((4000,))
    idx = (x * (2 ** torch.arange(5, dtype=D))).sum(-1).long()
    counts = torch.bincount(idx, minlength=32)
    probs = other.log_prob(enumerate_binary_states(5, dtype=D)).exp()
    assert multinomial_goodness_of_fit(probs, counts) < TEST_FAILURE_RATE


@pytest.mark.parametrize("exact", [True, False])
def test_gbrbm_sampler_gof(exact, monkeypatch):
    torch.manual_seed(3)
    if not exact:
        monkeypatch.setattr(boltzmann_module, "EXACT_SAMPLE_MAX_UNITS", 0)
    W, b, c = _rbm_params(2, 3, scale=0.8, seed=4)
    d = GaussianBernoulliRBM(W, b, c, torch.tensor([0.7, 1.2], dtype=D), mcmc_steps=30)
    x = d.sample((3000,))
    gof = auto_goodness_of_fit(x, d.log_prob(x).exp())
    assert gof > TEST_FAILURE_RATE


def test_mcmc_init_and_steps_are_used():
    d = RBM(*_rbm_params(20, 20), mcmc_steps=0, mcmc_init=torch.ones(20, dtype=D))
    assert torch.equal(d.sample((3,)), torch.ones(3, 20, dtype=D))
    with pytest.raises(ValueError, match="mcmc_init must broadcast"):
        RBM(*_rbm_params(20, 20), mcmc_init=torch.ones(7, dtype=D)).sample((3,))
    with pytest.raises(ValueError, match="mcmc_steps must be"):
        RBM(*_rbm_params(4, 3), mcmc_steps=-1)


# ------------------------------------------------------------------------------ bad input
def test_non_binary_value_with_validation():
    d = RBM(*_rbm_params(4, 3), validate_args=True)
    with pytest.raises(ValueError, match="support"):
        d.log_prob(torch.tensor([0.0, 0.5, 1.0, 1.0], dtype=D))
    bm = BoltzmannMachine(*_bm_params(4), validate_args=True)
    with pytest.raises(ValueError, match="support"):
        bm.log_prob(torch.tensor([0.0, 2.0, 1.0, 1.0], dtype=D))


def test_wrong_value_shape():
    d = RBM(*_rbm_params(4, 3), validate_args=True)
    with pytest.raises(ValueError, match="size"):
        d.log_prob(torch.zeros(2, 5, dtype=D))


def test_wrong_parameter_shapes():
    W, b, c = _rbm_params(4, 3)
    with pytest.raises(ValueError, match="visible_bias must have last dimension 4"):
        RBM(W, b[:3], c)
    with pytest.raises(ValueError, match="hidden_bias must have last dimension 3"):
        RBM(W, b, torch.zeros(4, dtype=D))
    with pytest.raises(ValueError, match="weight must have shape"):
        RBM(b, b, c)
    with pytest.raises(ValueError, match="sigma must have last dimension 4"):
        GaussianBernoulliRBM(W, b, c, torch.ones(3, dtype=D))
    with pytest.raises(ValueError, match="weight must be a square matrix"):
        BoltzmannMachine(W, b)
    with pytest.raises(ValueError, match="bias must have last dimension 4"):
        BoltzmannMachine(torch.zeros(4, 4, dtype=D), torch.zeros(3, dtype=D))


def _makers():
    W, b, c = _rbm_params(4, 3)
    U, a = _bm_params(4)
    return {
        "BoltzmannMachine": (BoltzmannMachine, {"weight": U, "bias": a}),
        "RBM": (RBM, {"weight": W, "visible_bias": b, "hidden_bias": c}),
        "GaussianBernoulliRBM": (GaussianBernoulliRBM,
                                 {"weight": W, "visible_bias": b, "hidden_bias": c,
                                  "sigma": torch.ones(4, dtype=D)}),
    }


@pytest.mark.parametrize("name", ["BoltzmannMachine", "RBM", "GaussianBernoulliRBM"])
@pytest.mark.parametrize("bad_dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_parameters_are_refused_at_construction(name, bad_dtype):
    """Before: an integer RBM weight was accepted and failed later inside softplus."""
    cls, params = _makers()[name]
    for key in params:
        kw = dict(params, **{key: params[key].round().to(bad_dtype)})
        with pytest.raises(TypeError, match=rf"{key} must be a floating-point tensor\. Got "
                                            rf"dtype {bad_dtype}"):
            cls(**kw)


@pytest.mark.parametrize("name", ["BoltzmannMachine", "RBM", "GaussianBernoulliRBM"])
def test_mixed_parameter_dtypes_are_refused(name):
    cls, params = _makers()[name]
    key = [k for k in params if k != "weight"][0]
    with pytest.raises(TypeError, match=rf"{key} must have the dtype of weight, torch.float64\. "
                                        r"Got torch.float32"):
        cls(**dict(params, **{key: params[key].float()}))
    # numbers and lists take weight's dtype
    d = cls(**dict(params, **{key: params[key].tolist()}))
    assert getattr(d, key).dtype == D


@pytest.mark.parametrize("name", ["BoltzmannMachine", "RBM", "GaussianBernoulliRBM"])
def test_log_prob_refuses_a_value_of_another_float_dtype(name):
    """Before: RBM.log_prob silently cast a float64 value to a float32 RBM."""
    cls, params = _makers()[name]
    d32 = cls(**{k: v.float() for k, v in params.items()})
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    with pytest.raises(TypeError, match=r"value must have the .*'s dtype torch.float32\. Got "
                                        r"torch.float64 instead"):
        d32.log_prob(x)
    # the same value in the distribution's dtype, and exact binary (bool/int) values, work
    ref = d32.log_prob(x.float())
    if name != "GaussianBernoulliRBM":
        torch.testing.assert_close(d32.log_prob(x.bool()), ref)
        torch.testing.assert_close(d32.log_prob(x.long()), ref)


def test_bm_weight_must_be_symmetric_with_zero_diagonal():
    U, b = _bm_params(4)
    bad = U.clone()
    bad[0, 1] += 0.5
    with pytest.raises(ValueError, match="weight must be symmetric"):
        BoltzmannMachine(bad, b, validate_args=True)
    diag = U + torch.eye(4, dtype=D)
    with pytest.raises(ValueError, match="weight must have a zero diagonal"):
        BoltzmannMachine(diag, b, validate_args=True)


def test_bad_sigma_and_nan_parameters():
    W, b, c = _rbm_params(4, 3)
    with pytest.raises(ValueError, match="sigma"):
        GaussianBernoulliRBM(W, b, c, -torch.ones(4, dtype=D), validate_args=True)
    with pytest.raises(ValueError, match="weight"):
        RBM(W * float("nan"), b, c, validate_args=True)


def test_exact_past_its_limit_suggests_ais():
    d = RBM(*_rbm_params(30, 25))
    with pytest.raises(ExactLimitError, match="AIS"):
        d.log_prob(torch.zeros(30, dtype=D))
    with pytest.raises(ValueError, match=r"max_units=20"):
        BoltzmannMachine(*_bm_params(21)).log_prob(torch.zeros(21, dtype=D))
    with pytest.raises(ValueError, match="max_units must be an int in the range"):
        Exact(max_units=31)


def test_normalizer_must_be_callable():
    with pytest.raises(TypeError, match="normalizer must be"):
        RBM(*_rbm_params(4, 3), normalizer="exact")
