"""Tests of the semi-supervised VAE (pyrogen/models/ssvae.py): the enumerated ELBO against a
sum over labels by hand, labelled and unlabelled rows in one SVI step, the classifier, bad
labels."""

import math

import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.poutine as poutine
import pytest
import torch

from pyrogen.models import M1M2, VAE, SemiSupervisedVAE

C, D = 3, 5


def _tiny(seed=0, **kw):
    return SemiSupervisedVAE(D, C, latent_dims=2, hidden_dims=(4,), seed=seed, **kw).double()


def _data(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, D), 0.5, dtype=torch.float64), generator=g)


def _hand_objective(m, x, y, w, alpha, seed):
    """-J^alpha by hand: per class c the conditional ELBO L(x, c) with the same noise the
    enumerated guide draws (one z per class and row, shape (C, n, d)), then
    U(x) = sum_c q(c|x) [L(x,c) - log q(c|x)] for unlabelled rows and, for labelled rows,
    sum_c q(c|x) L(x, y) (the C enumerated copies of a labelled row, weights summing to 1)
    plus alpha log q(y|x)."""
    n = x.shape[0]
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        logq = torch.log_softmax(m.classifier(x), -1)  # (n, C)
        known = y >= 0
        yc = torch.where(known[None], y.clamp(min=0)[None].expand(C, n),
                         torch.arange(C)[:, None].expand(C, n))  # (C, n)
        oh = torch.nn.functional.one_hot(yc, C).double()
        loc, scale = m._encode(x, oh)  # (C, n, d)
        z = dist.Normal(loc, scale).rsample()
        log_px = m._likelihood_dist(z, oh).log_prob(x)  # (C, n)
        log_pz = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_qz = dist.Normal(loc, scale).log_prob(z).sum(-1)
        elbo_c = log_px + log_pz - log_qz + math.log(1.0 / C)  # L(x, c), (C, n)
        q = logq.exp().T  # (C, n)
        unl = (q * (elbo_c - logq.T)).sum(0)
        lab = (q * elbo_c).sum(0) + alpha * logq.gather(1, y.clamp(min=0)[:, None])[:, 0]
        return -float((w * torch.where(known, lab, unl)).sum())


def _enum_loss(m, x, y, w, alpha, seed):
    elbo = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)
    guide = pyro.infer.config_enumerate(m.guide, "parallel")
    pyro.set_rng_seed(seed)
    return elbo.loss(poutine.scale(m.training_model, scale=w), poutine.scale(guide, scale=w),
                     x, y, None, alpha)


def test_enumerated_elbo_equals_sum_over_labels_by_hand():
    m, x = _tiny(), _data()
    y = torch.full((4,), -1)
    w = torch.ones(4, dtype=torch.float64)
    for seed in (0, 1):
        assert _enum_loss(m, x, y, w, 0.0, seed) == pytest.approx(
            _hand_objective(m, x, y, w, 0.0, seed), rel=1e-12)
    # y=None (no labels at all) enumerates the "y" site: same value
    elbo = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)
    pyro.set_rng_seed(0)
    loss = elbo.loss(m.model, pyro.infer.config_enumerate(m.guide, "parallel"), x)
    assert loss == pytest.approx(_hand_objective(m, x, y, w, 0.0, 0), rel=1e-12)


def test_labelled_and_unlabelled_rows_mix_in_one_step():
    """One TraceEnum_ELBO step on a batch holding both: the loss equals the hand sum of the
    labelled terms (with the classification term) and the unlabelled ones, each row scaled by
    its own subsampling factor, and one svi.step changes encoder, decoder and classifier."""
    m, x = _tiny(), _data()
    y = torch.tensor([1, -1, -1, 0])
    w = torch.tensor([2.0, 3.0, 3.0, 2.0], dtype=torch.float64)
    assert _enum_loss(m, x, y, w, 0.7, 3) == pytest.approx(
        _hand_objective(m, x, y, w, 0.7, 3), rel=1e-12)
    # the fit's step: params of the three networks all move
    before = {k: v.clone() for k, v in m.state_dict().items()}
    h = m.fit(x, y, num_epochs=1, batch_size=2, labelled_batch_size=2, tol=None,
              progress=False, seed=0)
    assert h.info["n_labelled"] == 2 and h.info["labelled_batch_size"] == 2
    assert h.info["classification_weight"] == pytest.approx(0.1 * 4 / 2)
    moved = {k.split(".")[0] for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
    assert {"encoder", "decoder", "classifier"} <= moved


def test_all_labelled_batch_takes_the_observed_path():
    m, x = _tiny(), _data()
    y = torch.tensor([0, 1, 2, 1])
    tr = poutine.trace(m.guide).get_trace(x, y)
    assert "y" not in tr.nodes and "y_unlabelled" not in tr.nodes
    ll = m.elbo(x, y, num_particles=10)
    assert ll.kind == "elbo" and ll.values.shape == (4,) and torch.isfinite(ll.values).all()


def test_elbo_unlabelled_is_the_q_weighted_sum_plus_entropy():
    """elbo(x) = sum_c q(c|x) elbo(x, c) - sum_c q log q with the classes enumerated; with the
    same seed per class the two computations coincide."""
    m, x = _tiny(), _data()
    pyro.set_rng_seed(0)
    u = m.elbo(x, num_particles=50)
    pyro.set_rng_seed(0)
    logq = torch.log_softmax(m.classifier(x), -1).detach()
    parts = torch.stack([m.elbo(x, torch.full((4,), c), num_particles=50).values
                         for c in range(C)], -1)
    want = (logq.exp() * (parts - logq)).sum(-1)
    torch.testing.assert_close(u.values, want, rtol=1e-12, atol=1e-12)
    assert (u.stderr > 0).all()


def test_semi_supervised_fit_learns_a_separable_problem():
    """Two classes of binary vectors (first half on vs second half on, 10% flips); 4 labels
    out of 200: the classifier reaches > 90% on fresh data (seeded, float64; a failure
    here is a regression, not chance: the margin is wide)."""
    g = torch.Generator().manual_seed(1)
    n, d = 200, 8
    lab = torch.randint(0, 2, (n + 200,), generator=g)
    proto = torch.zeros(2, d, dtype=torch.float64)
    proto[0, : d // 2] = 1
    proto[1, d // 2 :] = 1
    flips = torch.rand(n + 200, d, generator=g, dtype=torch.float64) < 0.1
    x = (proto[lab] + flips.double()) % 2
    y = torch.full((n,), -1)
    y[:2] = lab[:2]
    y[(lab[:n] != lab[0]).nonzero()[0]] = lab[(lab[:n] != lab[0]).nonzero()[0]]
    m = SemiSupervisedVAE(d, 2, latent_dims=2, hidden_dims=(16,), seed=0).double()
    m.fit(x[:n], y, num_epochs=15, batch_size=50, lr=2e-2, tol=None, progress=False, seed=0,
          classification_weight=5.0)
    acc = float((m.predict(x[n:]) == lab[n:]).double().mean())
    assert acc > 0.9
    p = m.predict_proba(x[n:])
    torch.testing.assert_close(p.sum(-1), torch.ones(200, dtype=torch.float64))
    assert m.transform(x[:5]).shape == (5, 2)
    assert m.transform(x[:5], y[:5]).shape == (5, 2)
    assert m.sample(6, torch.tensor([0, 1, 0, 1, 0, 1])).shape == (6, d)


def test_m1m2_on_vae_codes():
    x = _data(40)
    m1 = VAE(D, latent_dims=3, hidden_dims=(4,)).double()
    m1.fit(x, num_epochs=1, batch_size=20, tol=None, progress=False)
    y = torch.full((40,), -1)
    y[:6] = torch.tensor([0, 1, 2, 0, 1, 2])
    mm = M1M2(m1, C, latent_dims=2, hidden_dims=(4,))
    h = mm.fit(x, y, num_epochs=1, batch_size=20, tol=None, progress=False)
    assert h.info["n_labelled"] == 6
    assert mm.m2.n_features == 3 and mm.m2.likelihood == "gaussian"
    assert mm.predict(x).shape == (40,) and mm.predict_proba(x).shape == (40, C)
    assert mm.transform(x).shape == (40, 2)
    with pytest.raises(TypeError, match="m1 must be a fitted pyrogen VAE"):
        M1M2("vae", C)


def test_save_load_round_trip(tmp_path):
    m, x = _tiny(), _data()
    m.save(tmp_path / "m.pt")
    m2 = SemiSupervisedVAE.load(tmp_path / "m.pt")
    torch.testing.assert_close(m2.predict_proba(x), m.predict_proba(x))


@pytest.mark.parametrize(
    "y, exc, match",
    [
        (torch.tensor([0, 1, 3, -1]), ValueError, r"y must hold labels in \[0, 2\] \(or -1"),
        (torch.tensor([0, 1, -2, -1]), ValueError, r"labels in \[0, 2\]"),
        (torch.tensor([0, 1, 2]), ValueError, r"shape \(4,\)"),
        (torch.tensor([0.0, 1, 2, -1]), ValueError, "integer tensor"),
        ([0, 1, 2, -1], TypeError, "tensor of int labels"),
    ],
)
def test_bad_labels(y, exc, match):
    m, x = _tiny(), _data()
    with pytest.raises(exc, match=match):
        m.fit(x, y, num_epochs=1, progress=False)
    with pytest.raises(exc, match=match):
        m.elbo(x, y)


def test_bad_arguments():
    m, x = _tiny(), _data()
    y = torch.tensor([0, -1, -1, 1])
    with pytest.raises(ValueError, match="labelled_batch_size"):
        m.fit(x, y, labelled_batch_size=0, progress=False)
    with pytest.raises(ValueError, match="classification_weight"):
        m.fit(x, y, classification_weight=-1.0, progress=False)
    with pytest.raises(ValueError, match="method"):
        m.fit(x, y, method="em", progress=False)
    with pytest.raises(ValueError, match=r"labels in \[0, 2\]\. "):
        m.sample(4, torch.tensor([0, -1, 1, 1]))


def test_log_likelihood_sums_the_classes_and_lies_above_the_elbo():
    """log p(x) = logsumexp_c log p(x, c) (the prior 1/C counted once: it is inside the
    per-class estimates), and the IS estimate is not below the label-summed ELBO."""
    m, x = _tiny(), _data()
    pyro.set_rng_seed(0)
    ll = m.log_likelihood(x, num_particles=200)
    pyro.set_rng_seed(0)
    parts = torch.stack([m.log_likelihood(x, torch.full((4,), c), num_particles=200).values
                         for c in range(C)])
    torch.testing.assert_close(ll.values, torch.logsumexp(parts, 0))
    u = m.elbo(x, num_particles=200)
    assert (ll.values > u.values - 4 * (ll.stderr**2 + u.stderr**2).sqrt()).all()
