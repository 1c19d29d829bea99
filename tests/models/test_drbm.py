"""DiscriminativeRBM: exact p(y|v), the objectives as Pyro programs, classifier API, bad input."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F

from pyrogen.datasets import load_digits
from pyrogen.distributions import enumerate_binary_states
from pyrogen.models import DiscriminativeRBM


def _tiny(D=4, C=3, H=3, seed=0, **kw):
    m = DiscriminativeRBM(D, C, H, seed=seed, **kw).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    return m


def _brute_log_p_y_given_v(m, v):
    """log p(y | v) by enumerating every hidden state and class (float64)."""
    hs = enumerate_binary_states(m.n_hidden, dtype=torch.float64)  # (2^H, H)
    e = torch.eye(m.n_classes, dtype=torch.float64)  # (C, C)
    # -E(v, y, h) for every (n, y, h)
    neg_e = ((v @ m.visible_bias)[:, None, None] + (hs @ m.hidden_bias)[None, None, :]
             + (e @ m.class_bias)[None, :, None]
             + torch.einsum("nd,dk,hk->nh", v, m.weight, hs)[:, None, :]
             + torch.einsum("yc,ck,hk->yh", e, m.class_weight, hs)[None, :, :])
    lu = torch.logsumexp(neg_e, -1)  # (n, C)
    return lu - torch.logsumexp(lu, -1, keepdim=True)


def _data(m, n=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    v = torch.bernoulli(torch.full((n, m.n_visible), 0.4, dtype=torch.float64), generator=g)
    y = torch.randint(0, m.n_classes, (n,), generator=g)
    return v, y


def test_predict_proba_sums_to_one_and_equals_brute_force():
    m = _tiny()
    v, y = _data(m)
    p = m.predict_proba(v)
    torch.testing.assert_close(p.sum(-1), torch.ones(len(v), dtype=torch.float64))
    torch.testing.assert_close(p.log(), _brute_log_p_y_given_v(m, v))
    ll = m.conditional_log_likelihood(v, y)
    assert ll.kind == "exact"
    torch.testing.assert_close(ll.values, _brute_log_p_y_given_v(m, v)[torch.arange(len(y)), y])
    torch.testing.assert_close(m.predict(v), p.argmax(-1))


def test_discriminative_svi_gradient_is_autograd_of_brute_force():
    m = _tiny()
    v, y = _data(m)
    xy = m.joint(v, y)
    params = list(m.parameters())
    pyro.clear_param_store()
    loss = pyro.infer.Trace_ELBO().differentiable_loss(m.program("discriminative"), m.guide,
                                                       xy)
    g_svi = torch.autograd.grad(loss, params, allow_unused=True)
    bf = -_brute_log_p_y_given_v(m, v)[torch.arange(len(y)), y].sum()
    torch.testing.assert_close(loss, bf)
    g_bf = torch.autograd.grad(bf, params, allow_unused=True)
    for (name, p), a, b in zip(m.named_parameters(), g_svi, g_bf):
        # the visible bias cancels out of p(y | v): no gradient (None) / a zero one
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-9, msg=name)


def test_hybrid_loss_is_discriminative_plus_alpha_times_joint_and_joint_is_exact():
    m = _tiny(alpha=0.3)
    v, y = _data(m)
    xy = m.joint(v, y)
    # H = 3 <= exact_max_units: log p(v, y) is exact; the CD normalizer's value is refreshed
    # exactly at its first call, so the hybrid loss value is exact at the first step
    ll = m.log_likelihood(v, y)
    assert ll.kind == "exact"
    pyro.clear_param_store()
    loss = pyro.infer.Trace_ELBO().differentiable_loss(m.program("hybrid"), m.guide, xy)
    disc = -m.conditional_log_likelihood(v, y).values.sum()
    torch.testing.assert_close(loss, disc - 0.3 * ll.values.sum())
    # log p(v, y) = log p(y | v) + log p(v): normalized over all (v, y)
    V = enumerate_binary_states(m.n_visible, dtype=torch.float64)
    tot = torch.logsumexp(torch.stack([m.log_likelihood(V, torch.full((len(V),), c)).values
                                       for c in range(m.n_classes)]).flatten(), 0)
    torch.testing.assert_close(tot, torch.zeros((), dtype=torch.float64))


def _digits_accuracy(objective, num_steps, lr):
    d = load_digits(binarize="threshold")
    perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:600], perm[600:1000]
    x = d.x.float()
    m = DiscriminativeRBM(64, 10, 40, objective=objective, seed=0)
    h = m.fit(x[tr], d.y[tr].numpy(), num_steps=num_steps, lr=lr, batch_size=100, tol=None,
              seed=0, progress=False)
    assert len(h.losses) == num_steps
    return m.score(x[te], d.y[te])


@pytest.mark.parametrize("objective", ["discriminative", "hybrid"])
def test_discriminative_and_hybrid_objectives_learn_digits(objective):
    # fixed seeds (deterministic on one platform); 8x8 digits binarized at 0.5, 600 train /
    # 400 test images, 40 hidden units, 150 Adam steps (lr 3e-3): measured test accuracy 0.833
    # (discriminative) and 0.775 (hybrid, alpha 0.01, CD-1); threshold 0.70 (chance 0.10)
    assert _digits_accuracy(objective, 150, 3e-3) > 0.70


@pytest.mark.slow
def test_generative_objective_learns_digits():
    # as above, CD-1 on log p(v, y) alone, 1000 Adam steps (lr 1e-2): measured 0.92 (0.81 with
    # lr 3e-3); threshold 0.80
    assert _digits_accuracy("generative", 1000, 1e-2) > 0.80


def test_classifier_api_accepts_numpy_and_sample_is_one_hot():
    m = _tiny(sample_steps=3)
    v, y = _data(m)
    p = m.predict_proba(v.numpy())
    assert p.shape == (len(v), m.n_classes)
    assert 0.0 <= m.score(v.numpy(), y.numpy()) <= 1.0
    s = m.sample(5)
    assert s.shape == (5, m.n_visible + m.n_classes)
    assert bool((s[:, m.n_visible :].sum(-1) == 1).all())
    assert m.transform(v, y).shape == (len(v), m.n_hidden)


def test_bad_input():
    m = _tiny()
    v, y = _data(m)
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, 2\]"):
        m.fit(v, torch.full((len(v),), 3), num_steps=1, progress=False)
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(12,\)"):
        m.fit(v, y[:5], num_steps=1, progress=False)
    with pytest.raises(ValueError, match="y must hold integer class labels"):
        m.score(v, y.double().numpy())
    with pytest.raises(ValueError, match="x must be binary"):
        m.predict_proba(v * 0.5)
    with pytest.raises(ValueError, match="x must be binary"):
        m.fit(v + 0.25, y, num_steps=1, progress=False)
    with pytest.raises(ValueError, match="pass the labels too"):
        m.fit(v, num_steps=1, progress=False)
    bad = torch.cat([v, torch.ones(len(v), m.n_classes, dtype=torch.float64)], -1)
    with pytest.raises(ValueError, match="one-hot"):
        m.log_likelihood(bad)
    with pytest.raises(ValueError, match="objective must be one of"):
        m.fit(v, y, objective="joint", num_steps=1, progress=False)
    with pytest.raises(ValueError, match="n_classes"):
        DiscriminativeRBM(4, 1, 3)
    with pytest.raises(TypeError, match="y must be a tensor"):
        m.score(v, [0] * len(v))
    with pytest.raises(TypeError):
        m.predict_proba(v.float())  # float32 data for a float64 model: no silent cast
    np.testing.assert_allclose(  # joint rows and (v, y) give the same log-likelihood
        m.log_likelihood(m.joint(v, y)).values.numpy(), m.log_likelihood(v, y).values.numpy())
    assert torch.equal(m.joint(v, y)[:, m.n_visible :], F.one_hot(y, m.n_classes).double())
