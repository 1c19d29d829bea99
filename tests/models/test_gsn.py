"""Markov-chain generators (pyrogen/models/gsn.py): exact chain tests on tiny binary problems,
clamping, walk-back as a Pyro program, the discriminant GSN, bad input."""

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyrogen.models import GSN, DenoisingAutoencoder
from pyrogen.models.gsn import AutoregressiveBernoulli, _all_binary_states, stationary_distribution

# a correlated distribution over {0,1}^3 (not a product, not pairwise-only)
P3 = torch.tensor([0.30, 0.02, 0.05, 0.13, 0.04, 0.16, 0.08, 0.22], dtype=torch.float64)


def _data(p, total=1000):
    """Rows of the 2^D states in exact proportion p (empirical distribution = p)."""
    d = int(math.log2(len(p)))
    return _all_binary_states(d, torch.float64).repeat_interleave((p * total).round().long(), 0)


def _true_posterior(p, c):
    """R*[j, k] = P(x = s_k | x~ = s_j) proportional to p(s_k) C(s_j | s_k)."""
    r = p[None, :] * c.T
    return r / r.sum(1, keepdim=True)


@pytest.mark.parametrize("corruption,noise", [("salt_and_pepper", 0.3), ("flip", 0.15),
                                              ("salt_and_pepper", 0.9)])
def test_chain_with_true_posterior_is_consistent(corruption, noise):
    """Bengio et al. (2013): with P(x | x~) the true posterior, the chain x -> x~ -> x is Gibbs
    sampling on p(x) C(x~ | x) and its stationary distribution is the data distribution
    (exact: transition matrix over all 2^3 states, float64, no randomness)."""
    m = DenoisingAutoencoder(3, (4,), corruption=corruption, noise=noise).double()
    c = m.corruption_matrix()
    torch.testing.assert_close(c.sum(1), torch.ones(8, dtype=torch.float64))
    # the kernel itself: salt-and-pepper flips each unit with probability noise / 2
    f = noise / 2 if corruption == "salt_and_pepper" else noise
    assert c[0, 0] == pytest.approx((1 - f) ** 3) and c[0, 7] == pytest.approx(f**3)
    pi = stationary_distribution(c @ _true_posterior(P3, c))
    torch.testing.assert_close(pi, P3, rtol=0, atol=1e-12)


def test_stationary_distribution_checks_and_solves():
    t = torch.tensor([[0.9, 0.1], [0.3, 0.7]], dtype=torch.float64)
    torch.testing.assert_close(stationary_distribution(t), torch.tensor([0.75, 0.25],
                                                                        dtype=torch.float64))
    with pytest.raises(ValueError, match="row-stochastic"):
        stationary_distribution(torch.tensor([[0.5, 0.1], [0.3, 0.7]]))
    with pytest.raises(ValueError, match="square"):
        stationary_distribution(torch.ones(2, 3) / 3)
    with pytest.raises(TypeError, match="transition must be a torch.Tensor"):
        stationary_distribution([[1.0]])


@pytest.mark.parametrize("reconstruction", ["factorial", "autoregressive"])
def test_sampler_implements_transition_matrix(reconstruction):
    """One step of ``chain`` from every state of {0,1}^3 has the distribution of the row of
    ``transition_matrix`` (C R). 4000 chains per state; each of the 64 frequencies within 4.5
    binomial standard errors (fixed seed; false-alarm rate < 64 * 7e-6 < 5e-4)."""
    m = DenoisingAutoencoder(3, (5,), noise=0.4, reconstruction=reconstruction, seed=1).double()
    if reconstruction == "autoregressive":
        with torch.no_grad():
            m.autoregressive.copy_(torch.randn(3, 3, generator=torch.Generator().manual_seed(2),
                                               dtype=torch.float64) * 2)
    t = m.transition_matrix()
    states = _all_binary_states(3, torch.float64)
    n = 4000
    x0 = states.repeat_interleave(n, 0)
    x1 = m.chain(x0, 1, seed=0)[0]
    codes = (x1 * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    freq = torch.stack([torch.bincount(codes[i * n:(i + 1) * n], minlength=8)
                        for i in range(8)]).double() / n
    se = (t * (1 - t) / n).sqrt()
    assert ((freq - t).abs() <= 4.5 * se + 1e-12).all(), (freq - t).abs().max()


def test_sample_reaches_the_stationary_distribution():
    """``sample`` (burn-in, many chains, thinning) against the exact stationary distribution of
    the same chain: 3000 draws, each of the 8 frequencies within 4.5 standard errors (draws of
    one chain are correlated: thin=5 on a chain whose second eigenvalue is checked < 0.5, so
    they are nearly independent; false-alarm rate < 1e-3)."""
    m = DenoisingAutoencoder(3, (5,), noise=0.6, seed=3).double()
    t = m.transition_matrix()
    assert torch.linalg.eigvals(t).abs().sort().values[-2] < 0.5
    pi = stationary_distribution(t)
    s = m.sample(3000, num_steps=20, num_chains=300, thin=5, seed=0)
    assert s.shape == (3000, 3)
    codes = (s * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / 3000
    assert ((freq - pi).abs() <= 4.5 * (pi * (1 - pi) / 3000).sqrt()).all()


def test_autoregressive_bernoulli_normalizes_and_samples():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, generator=g, dtype=torch.float64)
    w = torch.randn(3, 3, generator=g, dtype=torch.float64)
    d = AutoregressiveBernoulli(logits, w)
    states = _all_binary_states(3, torch.float64)
    lp = d.log_prob(states.unsqueeze(1))  # (8, 2)
    torch.testing.assert_close(lp.exp().sum(0), torch.ones(2, dtype=torch.float64))
    pyro.set_rng_seed(0)
    s = d.sample((20000,))[:, 0]
    codes = (s * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(codes, minlength=8).double() / 20000
    p = lp[:, 0].exp()
    assert ((freq - p).abs() <= 4.5 * (p * (1 - p) / 20000).sqrt()).all()  # fails < 1e-4


P2 = torch.tensor([0.45, 0.05, 0.15, 0.35], dtype=torch.float64)


@pytest.mark.slow
@pytest.mark.parametrize("p,reconstruction,tv_max", [
    (P2, "autoregressive", 0.03),  # measured 0.0096
    (P3, "factorial", 0.2),  # measured 0.128
])
def test_trained_dae_chain_approaches_data_distribution(p, reconstruction, tv_max):
    """A DAE fitted (600 full-batch Adam steps of SVI on the reconstruction loss) to 1000 rows
    whose empirical distribution is exactly p: the stationary distribution of its exact
    transition matrix is close to p in total variation. On 2 bits an autoregressive
    P(x | x~) can represent the true posterior (the corruption adds no interaction between
    units), so the chain is consistent up to optimization error; on 3 bits a factorial one
    cannot, and the stationary distribution is visibly off (benchmarks/README.md,
    "Markov-chain generators"). Fixed seeds, deterministic; 93 s and 215 s at load 20 on the
    2-core VM."""
    d = int(math.log2(len(p)))
    m = DenoisingAutoencoder(d, (16,), noise=0.3, reconstruction=reconstruction).double()
    m.fit(_data(p), num_steps=600, lr=1e-2, tol=None, seed=0, progress=False)
    pi = stationary_distribution(m.transition_matrix())
    assert 0.5 * (pi - p).abs().sum() < tv_max


def _models():
    return [
        DenoisingAutoencoder(6, (8,), noise=0.3, sample_steps=4).double(),
        DenoisingAutoencoder(6, (8,), reconstruction="autoregressive", sample_steps=4).double(),
        DenoisingAutoencoder(6, (8,), likelihood="gaussian", noise=0.5, sample_steps=4).double(),
        GSN(6, 8, sample_steps=4).double(),
        GSN(6, 8, n_classes=3, sample_steps=4).double(),
    ]


@pytest.mark.parametrize("i", range(5))
def test_clamped_units_never_change(i):
    m = _models()[i]
    g = torch.Generator().manual_seed(i)
    if m.config["likelihood"] == "bernoulli":
        x = torch.bernoulli(torch.full((10, 6), 0.5, dtype=torch.float64), generator=g)
    else:
        x = torch.randn(10, 6, generator=g, dtype=torch.float64)
    mask = torch.tensor([True, True, True, False, False, False])
    out = m.inpaint(x, mask, num_steps=5, seed=0)
    assert torch.equal(out[:, :3], x[:, :3])
    mask2 = torch.rand(10, 6, generator=g) < 0.5
    trajectory = m.chain(x, 6, mask=mask2.int(), mean=True, seed=0)
    assert trajectory.shape == (6, 10, 6)
    assert all(torch.equal(step[mask2], x[mask2]) for step in trajectory)
    if m.config["likelihood"] == "bernoulli":
        free = m.inpaint(x, ~mask, num_steps=3, seed=1)[:, :3]
        assert ((free == 0) | (free == 1)).all()


def test_inpaint_and_sample_are_seeded():
    m = _models()[0]
    x = torch.ones(4, 6, dtype=torch.float64)
    mask = torch.arange(6) < 3
    assert torch.equal(m.inpaint(x, mask, seed=5), m.inpaint(x, mask, seed=5))
    assert torch.equal(m.sample(9, seed=5), m.sample(9, seed=5))
    assert m.sample(9, num_chains=2, thin=3).shape == (9, 6)


@pytest.mark.parametrize("walkback", [1, 3])
def test_walkback_loss_is_the_reconstruction_nll(walkback):
    """The negative ELBO of model/guide equals -sum_k log P(x | x~_k) exactly: the corruption,
    walk-back and latent-noise sites cancel between model and guide."""
    for m in (DenoisingAutoencoder(5, (4,), walkback=walkback).double(),
              GSN(5, 4, walkback=walkback).double()):
        x = torch.bernoulli(torch.full((7, 5), 0.5, dtype=torch.float64),
                            generator=torch.Generator().manual_seed(0))
        guide = poutine.trace(m.guide).get_trace(x)
        model = poutine.trace(poutine.replay(m.model, trace=guide)).get_trace(x)
        model.compute_log_prob()
        guide.compute_log_prob()
        recon = [s for s in model.nodes if s.startswith("x_recon_")]
        assert len(recon) == walkback
        nll = -sum(model.nodes[s]["log_prob_sum"] for s in recon)
        elbo = model.log_prob_sum() - guide.log_prob_sum()
        torch.testing.assert_close(-elbo, nll)
        loss = pyro.infer.Trace_ELBO().differentiable_loss(m.model, m.guide, x)
        assert torch.isfinite(loss)


def test_fit_history_names_the_loss():
    m = DenoisingAutoencoder(5, (4,), walkback=2).double()
    x = torch.bernoulli(torch.full((20, 5), 0.5, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(0))
    h = m.fit(x, num_steps=3, tol=None, progress=False, seed=0)
    assert h.info["loss_name"] == "reconstruction_nll" and h.info["walkback"] == 2
    h = m.fit(x, num_steps=1, tol=None, progress=False, seed=0, walkback=3)
    assert h.info["walkback"] == 3 and m.config["walkback"] == 3
    assert len([s for s in poutine.trace(m.model).get_trace(x).nodes
                if s.startswith("x_recon_")]) == 3
    with pytest.raises(ValueError, match="walkback must be"):
        m.fit(x, num_steps=1, progress=False, walkback=0)


def test_log_likelihood_is_labelled_parzen():
    m = _models()[0]
    x = torch.ones(3, 6, dtype=torch.float64)
    ll = m.log_likelihood(x, num_samples=50)
    assert ll.kind == "parzen_unreliable" and ll.bound is None
    assert "unreliable" in ll.description and ll.mean_stderr() is not None


def test_discriminant_gsn_learns_labels():
    """The discriminant GSN (x clamped, chain over (y, h)) separates three classes given by two
    bits of x (fixed seeds; 100 Adam steps; training accuracy >= 0.9)."""
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((150, 6), 0.5, dtype=torch.float64), generator=g)
    y = (x[:, 0] + x[:, 1]).long()
    m = GSN(6, 16, n_classes=3, noise=0.2, hidden_noise=0.1, walkback=2).double()
    h = m.fit(x, y, num_steps=100, lr=5e-2, tol=None, progress=False, seed=0)
    assert h.info["loss_name"] == "label_reconstruction_nll"
    proba = m.predict_proba(x, num_steps=10)
    torch.testing.assert_close(proba.sum(1), torch.ones(150, dtype=torch.float64))
    assert (m.predict(x) == y).double().mean() >= 0.9


def test_hybrid_criterion_adds_the_unsupervised_loss():
    x = torch.bernoulli(torch.full((8, 4), 0.5, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(0))
    y = torch.zeros(8, dtype=torch.long)
    m = GSN(4, 5, n_classes=2, unsupervised_weight=0.5, walkback=2).double()
    tr = poutine.trace(m.supervised_model).get_trace(x, y)
    assert {"y_recon_0", "y_recon_1", "x_recon_0", "x_recon_1"} <= set(tr.nodes)
    assert tr.nodes["x_recon_0"]["scale"] == 0.5


def test_save_load_autoregressive(tmp_path):
    m = DenoisingAutoencoder(4, (3,), reconstruction="autoregressive").double()
    with torch.no_grad():
        m.autoregressive.add_(1.0)
    m.save(tmp_path / "dae.pt")
    back = DenoisingAutoencoder.load(tmp_path / "dae.pt")
    torch.testing.assert_close(back.transition_matrix(), m.transition_matrix())


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("noise", [0.0, 1.0, 1.5, -0.2, float("nan")])
def test_binary_corruption_level_outside_open_unit_interval(noise):
    with pytest.raises(ValueError, match=r"noise must be .*\(0(\.0)?, 1(\.0)?\)"):
        DenoisingAutoencoder(4, noise=noise)
    with pytest.raises(ValueError, match="noise must be"):
        GSN(4, noise=noise, corruption="flip")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="noise must be"):
        DenoisingAutoencoder(4, likelihood="gaussian", noise=0.0)
    with pytest.raises(ValueError, match="corruption must match the likelihood"):
        DenoisingAutoencoder(4, likelihood="gaussian", corruption="flip")
    with pytest.raises(ValueError, match="corruption must be one of"):
        DenoisingAutoencoder(4, corruption="dropout")
    with pytest.raises(ValueError, match="reconstruction='autoregressive' needs"):
        DenoisingAutoencoder(4, likelihood="gaussian", reconstruction="autoregressive")
    with pytest.raises(ValueError, match="walkback must be"):
        DenoisingAutoencoder(4, walkback=0)
    with pytest.raises(TypeError, match="hidden_dims must be"):
        DenoisingAutoencoder(4, hidden_dims=())
    with pytest.raises(ValueError, match="n_classes must be 0"):
        GSN(4, n_classes=1)
    with pytest.raises(ValueError, match="hidden_noise must be"):
        GSN(4, hidden_noise=-1.0)


def test_bad_mask_and_data():
    m = DenoisingAutoencoder(4, (3,), sample_steps=2).double()
    x = torch.ones(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"mask must have shape \(4,\) or \(5, 4\)"):
        m.inpaint(x, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        m.chain(x, 2, mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor"):
        m.inpaint(x, [True, False, True, False])
    with pytest.raises(ValueError, match="mask must be boolean"):
        m.inpaint(x, torch.tensor([0, 2, 1, 0]))
    with pytest.raises(ValueError, match="x must be binary"):
        m.fit(x * 0.5, num_steps=1, progress=False)
    with pytest.raises(ValueError, match="x0 must be binary"):
        m.chain(x * 0.5, 2)
    with pytest.raises(ValueError, match="features"):
        m.inpaint(x[:, :3], torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_steps must be"):
        m.chain(x, 0)
    with pytest.raises(ValueError, match="x0 must have 3 rows"):
        m.sample(6, num_chains=3, x0=x)
    with pytest.raises(ValueError, match="n_features must be <= 10"):
        DenoisingAutoencoder(11).double().transition_matrix()
    with pytest.raises(ValueError, match="needs binary data"):
        DenoisingAutoencoder(3, likelihood="gaussian").transition_matrix()


def test_bad_labels():
    x = torch.ones(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="predict_proba needs a GSN built with n_classes"):
        GSN(4, 3).double().predict_proba(x)
    m = GSN(4, 3, n_classes=2).double()
    with pytest.raises(ValueError, match="y must hold labels in"):
        m.fit(x, torch.tensor([0, 1, 2, 0, 1]), num_steps=1, progress=False)
    with pytest.raises(TypeError, match="y must be a tensor"):
        m.fit(x, [0, 1, 0, 1, 0], num_steps=1, progress=False)
    with pytest.raises(ValueError, match="y needs a GSN built with n_classes"):
        GSN(4, 3).double().fit(x, torch.zeros(5, dtype=torch.long), progress=False)
