"""DBN (pyrogen/models/dbn.py): exact answers on tiny models, the bounds' sides, Hinton et al.'s
layer-wise guarantee, the Pyro programs, training paths and bad input."""

import itertools
import math
import warnings

import pyro
import pytest
import torch

from pyrogen import ConvergenceWarning
from pyrogen.infer.importance import per_example_log_weights
from pyrogen.models import DBN, BernoulliRBM
from pyrogen.models.dbn import pretrain_rbm_stack

D = torch.float64


def _params(sizes, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    ws = [scale * torch.randn(sizes[l], sizes[l + 1], generator=g, dtype=D)
          for l in range(len(sizes) - 1)]
    bs = [0.5 * torch.randn(s, generator=g, dtype=D) for s in sizes]
    return ws, bs


def _binary(n, d, seed=1, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, d), p, dtype=D), generator=g)


def _configs(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=D)


def _bern(logits, v):
    return (v * logits).sum(-1) - torch.nn.functional.softplus(logits).sum(-1)


def _brute_force_log_p(ws, bs, x):
    """log p(x) of a 3-hidden-layer DBN summing over every unit of every hidden layer."""
    h1s, h2s, h3s = (_configs(w.shape[1]) for w in ws)
    top = [(h2, h3, (bs[2] * h2).sum() + (bs[3] * h3).sum() + h2 @ ws[2] @ h3)
           for h2 in h2s for h3 in h3s]
    log_z = torch.logsumexp(torch.stack([t for _, _, t in top]), 0)
    terms = [
        t - log_z + _bern(bs[1] + ws[1] @ h2, h1) + _bern(bs[0] + ws[0] @ h1, x)
        for h1 in h1s for h2, _, t in top
    ]
    return torch.logsumexp(torch.stack(terms), 0)


def test_exact_log_likelihood_equals_brute_force():
    sizes = [5, 3, 4, 2]
    ws, bs = _params(sizes)
    m = DBN.from_parameters(ws, bs)
    x = _binary(9, 5)
    assert m.exact and m.log_likelihood_kind == "exact"
    ll = m.log_likelihood(x)
    assert ll.kind == "exact"
    torch.testing.assert_close(ll.values, _brute_force_log_p(ws, bs, x), rtol=0, atol=1e-10)
    # normalized: sums to one over all 2^5 visible vectors
    total = torch.logsumexp(m.exact_log_likelihood(_configs(5)).detach(), 0)
    assert abs(float(total)) < 1e-10


def test_exact_elbo_below_exact_and_equal_with_true_posterior():
    ws, bs = _params([5, 3, 4, 2])
    m = DBN.from_parameters(ws, bs)
    x = _binary(9, 5)
    with torch.no_grad():
        gap = m.exact_log_likelihood(x) - m.exact_elbo(x)
    assert (gap > 1e-6).all()  # random recognition weights: a strict lower bound


def test_importance_weights_are_log_joint_minus_log_q():
    """The model/guide traces score exactly log p(x, h) - log q(h | x) (exact log Z)."""
    ws, bs = _params([5, 3, 4, 2])
    m = DBN.from_parameters(ws, bs)
    x = _binary(6, 5)
    log_z = m.log_normalizer(method="exact")
    from pyrogen.models.dbn import _FixedLogZ

    m._fit_normalizer = _FixedLogZ(log_z)
    try:
        w = per_example_log_weights(m.model, m.guide, (x,), num_particles=3, max_plate_nesting=1)
    finally:
        m._fit_normalizer = None
    hs = [w.guide_trace.nodes[f"h{l}"]["value"] for l in (1, 2)]
    with torch.no_grad():
        lp = m.log_joint(x, hs, log_z.log_z)
        lq = m.recognition_log_prob(x, hs)
    torch.testing.assert_close(w.log_p, lp, rtol=0, atol=1e-10)
    torch.testing.assert_close(w.log_q, lq, rtol=0, atol=1e-10)


def test_monte_carlo_bound_is_unbiased_for_the_exact_bound():
    """z-test per example (Bonferroni over 8 examples, family-wise failure rate 1e-3)."""
    ws, bs = _params([5, 3, 4, 2])
    m = DBN.from_parameters(ws, bs)
    x = _binary(8, 5)
    pyro.set_rng_seed(3)
    ll = m.log_likelihood(x, method="bound", num_samples=2000)
    assert ll.kind == "elbo" and ll.bound == "lower"
    z = (ll.values - m.exact_elbo(x).detach()) / ll.stderr
    assert z.abs().max() < 4.1  # two-sided 1e-3 / 8


def test_ais_bound_sits_below_exact():
    """Salakhutdinov & Murray's estimate with an AIS log Z (top RBM 6x30, forced AIS by
    exact_max_units=5) lies below the exact log-likelihood, within its own error, and agrees
    with the exact variational bound; the AIS log Z agrees with the exact one."""
    sizes = [6, 3, 6, 30]
    ws, bs = _params(sizes, seed=2, scale=0.5)
    m = DBN.from_parameters(ws, bs, exact_max_units=5, ais_num_chains=200, ais_num_betas=500)
    exact_twin = DBN.from_parameters(ws, bs)
    x = _binary(20, 6, seed=4)
    assert m.log_likelihood_kind == "ais_bound"
    pyro.set_rng_seed(0)
    ll = m.log_likelihood(x, num_samples=200, seed=0)
    assert ll.kind == "ais_bound" and ll.bound is None and ll.shared_stderr is not None
    exact = exact_twin.log_likelihood(x).values
    se = ll.mean_stderr()
    assert ll.mean() < float(exact.mean()) + 3 * se
    elbo = float(m.exact_elbo(x).detach().mean())
    assert abs(ll.mean() - elbo) < 4 * se
    ais = m.log_normalizer(method="ais", seed=0)
    ex = m.log_normalizer(method="exact")
    assert abs(float(ais.log_z - ex.log_z)) < max(4 * float(ais.stderr), 0.02)
    # importance-sampled estimate with the same AIS log Z: labelled the same way
    imp = m.log_likelihood(x, method="importance", num_samples=200, seed=0)
    assert imp.kind == "ais_bound" and imp.stderr is not None


def test_greedy_layer_keeps_then_raises_the_bound():
    """Hinton et al. (2006): a second layer initialised as the transpose of the first RBM
    leaves the variational bound at log p_RBM(x) (q is then the exact posterior); training
    that layer on the aggregated posterior raises the bound."""
    x = _binary(40, 6, seed=5, p=0.3)
    x[:20, :3] = 1.0
    rbm = BernoulliRBM(6, 4, training="exact", seed=0).double()
    rbm.fit(x, method="exact", num_steps=30, lr=0.05, tol=None, progress=False, seed=0)
    W, b, c = (t.detach().clone() for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    dbn = DBN.from_parameters([W, W.T.clone()], [b, c, b], recognition_biases=[c])
    with torch.no_grad():
        rbm_ll = rbm.log_likelihood(x).values
        bound0 = dbn.exact_elbo(x)
        torch.testing.assert_close(dbn.exact_log_likelihood(x), rbm_ll, rtol=0, atol=1e-9)
    torch.testing.assert_close(bound0, rbm_ll, rtol=0, atol=1e-9)
    # second RBM: starts as the transpose, trained (exact gradient) on samples of q(h1 | x)
    top = BernoulliRBM(4, 6, training="exact", seed=0).double()
    with torch.no_grad():
        top.weight.copy_(W.T)
        top.visible_bias.copy_(c)
        top.hidden_bias.copy_(b)
        g = torch.Generator().manual_seed(0)
        h1 = torch.bernoulli(rbm.transform(x).repeat(500, 1), generator=g)
    top.fit(h1, method="exact", num_steps=300, lr=0.1, tol=None, progress=False, seed=0)
    dbn2 = DBN.from_parameters([W, top.weight.detach().clone()],
                               [b, top.visible_bias.detach().clone(),
                                top.hidden_bias.detach().clone()],
                               recognition_biases=[c], recognition_weights=[W])
    with torch.no_grad():
        bound1 = dbn2.exact_elbo(x)
    # deterministic (exact gradients, fixed draws): measured gain 0.0045 nats per example
    assert float(bound1.mean()) > float(bound0.mean()) + 1e-3


def test_greedy_fit_loads_the_stack_and_reports_layers():
    x = _binary(60, 6, seed=6, p=0.4)
    for propagate in ("probabilities", "samples"):
        m = DBN([6, 4, 3], training="exact").double()
        h = m.fit(x, method="greedy", num_steps=20, lr=0.05, tol=None, progress=False,
                  propagate=propagate, seed=0)
        assert h.method == "greedy" and len(h.metrics["layer_final_loss"]) == 2
        assert h.info["layer_steps"] == [20, 20] and h.converged is None
        torch.testing.assert_close(m.rec_weight(1), m.weight(1))  # tied after greedy
        assert torch.isfinite(m.log_likelihood(x).values).all()
    # the stack helper directly: the first layer's representation feeds the second
    res = pretrain_rbm_stack(x, [4, 3], training="exact", num_steps=5, tol=None, progress=False)
    assert len(res.layers) == 2 and res.inputs[1].shape == (60, 4)
    assert res.inputs[1].min() >= 0 and res.inputs[1].max() <= 1


def test_greedy_non_convergence_is_one_warning():
    x = _binary(40, 6, seed=6)
    m = DBN([6, 4, 3], training="exact").double()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = m.fit(x, method="greedy", num_steps=3, lr=0.05, progress=False)
    assert h.converged is False
    assert [w.category for w in caught] == [ConvergenceWarning]


def test_up_down_is_wake_sleep_and_unties_recognition():
    x = _binary(60, 6, seed=7, p=0.4)
    m = DBN([6, 4, 3], init_scale=0.3).double()
    m.fit(x, method="greedy", num_steps=10, lr=0.05, tol=None, progress=False)
    before = m.log_likelihood(x).mean()
    h = m.fit(x, method="up_down", num_steps=30, lr=0.02, tol=None, progress=False, seed=0)
    assert h.method == "up_down" and len(h.metrics["sleep_loss"]) == 30
    assert not torch.equal(m.rec_weight(1), m.weight(1))
    assert math.isfinite(m.log_likelihood(x).mean()) and math.isfinite(before)
    h = m.fit(x, method="rws", num_steps=5, num_particles=3, tol=None, progress=False)
    assert h.method == "rws"


def test_predictive_samples_the_dbn():
    ws, bs = _params([5, 3, 4, 2])
    m = DBN.from_parameters(ws, bs)
    out = pyro.infer.Predictive(m.model, num_samples=4)(None, num_data=6)
    assert out["x"].shape == (4, 6, 5) and out["h2"].shape == (4, 6, 4)
    assert ((out["x"] == 0) | (out["x"] == 1)).all()
    x, hs = m.sample(8, return_hidden=True)
    assert x.shape == (8, 5) and [h.shape[1] for h in hs] == [3, 4]
    assert m.transform(x).shape == (8, 2) and m.transform(x, layer=1).shape == (8, 3)


def test_sampler_matches_exact_marginal():
    """Exact top-RBM sampling then ancestral: chi-square against the enumerated p(x)
    (4 visible units, 16 cells, 20000 draws; failure rate 1e-3)."""
    ws, bs = _params([4, 3, 3, 2], seed=8)
    m = DBN.from_parameters(ws, bs)
    torch.manual_seed(0)
    x = m.sample(20000)
    idx = (x * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=D)).sum(-1).long()
    counts = torch.bincount(idx, minlength=16).double()
    p = m.exact_log_likelihood(_configs(4)).detach().exp()
    chi2 = float(((counts - 20000 * p) ** 2 / (20000 * p)).sum())
    assert chi2 < 37.7  # chi2(15) quantile 0.999


def test_bad_input():
    ws, bs = _params([5, 3, 4, 2])
    with pytest.raises(ValueError, match="layer_sizes"):
        DBN([5, 3])
    with pytest.raises(ValueError, match="do not chain"):
        DBN.from_parameters([ws[0], ws[2], ws[1]], bs)
    with pytest.raises(ValueError, match=r"biases\[1\]"):
        DBN.from_parameters(ws, [bs[0], bs[2], bs[2], bs[3]])
    with pytest.raises(ValueError, match="biases must hold"):
        DBN.from_parameters(ws, bs[:-1])
    with pytest.raises(ValueError, match="recognition_biases"):
        DBN.from_parameters(ws, bs, recognition_biases=[bs[1]])
    with pytest.raises(ValueError, match="at least two"):
        DBN.from_parameters(ws[:1], bs[:2])
    with pytest.raises(TypeError, match="weights must be a list"):
        DBN.from_parameters("W", bs)
    m = DBN.from_parameters(ws, bs)
    with pytest.raises(ValueError, match="binary"):
        m.log_likelihood(torch.full((2, 5), 0.5, dtype=D))
    with pytest.raises(ValueError, match="method must be"):
        m.log_likelihood(_binary(2, 5), method="magic")
    with pytest.raises(ValueError, match="propagate must be"):
        m.fit(_binary(4, 5), method="greedy", propagate="means", progress=False)
    big = DBN([5, 30, 4])
    with pytest.raises(ValueError, match="exact_max_units"):
        big.exact_log_likelihood(_binary(2, 5).float())
