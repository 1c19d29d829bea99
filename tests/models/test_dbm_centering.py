"""Centered DBMs (Montavon & Müller 2012, book §20.4.5): the centered energy against the
ordinary energy of the converted parameters, the running average of the offsets and one
centered SVI step against hand-written ones, bad offsets."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyrogen.distributions import DeepBoltzmannMachine, enumerate_binary_states
from pyrogen.distributions.dbm import (
    center_dbm_parameters,
    centered_dbm_energy,
    check_offsets,
    uncenter_dbm_parameters,
)
from pyrogen.models import DBM

DT = torch.float64
SIZES = [5, 3, 2]


def _params(seed=0, sizes=SIZES):
    g = torch.Generator().manual_seed(seed)
    w = [torch.randn(a, b, generator=g, dtype=DT) for a, b in zip(sizes[:-1], sizes[1:])]
    b = [0.5 * torch.randn(n, generator=g, dtype=DT) for n in sizes]
    m = [torch.rand(n, generator=g, dtype=DT) for n in sizes]
    return w, b, m


def _data(n=12, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(d, generator=g, dtype=DT) * 0.8 + 0.1
    return torch.bernoulli(p.expand(n, d), generator=g)


def _bern(p):
    """The draw pyrogen._random.bernoulli makes with the global RNG: U < p."""
    return (torch.empty_like(p).uniform_() < p).to(p.dtype)


def _split(states, sizes):
    return list(torch.split(states, sizes, dim=-1))


def _marginal(log_joint, visible, v):
    """log sum_h p(v, h) for each row of v, by brute force over the enumerated states."""
    hit = (visible.unsqueeze(0) == v.unsqueeze(1)).all(-1)  # (len(v), num_states)
    return torch.logsumexp(log_joint.masked_fill(~hit, float("-inf")), -1)


def test_centered_energy_is_the_converted_energy_plus_a_constant_so_log_z_and_log_prob_agree():
    w, b, m = _params()
    pw, pb, const = uncenter_dbm_parameters(w, b, m)
    d = DeepBoltzmannMachine(pw, pb)
    states = _split(enumerate_binary_states(sum(SIZES), dtype=DT), SIZES)
    e_c = centered_dbm_energy(states, w, b, m)
    diff = e_c - d.energy(states)
    # the difference is one constant over all 2^10 states, and it is C
    torch.testing.assert_close(diff, const.expand_as(diff), rtol=0, atol=1e-12)
    # exact log Z: brute force over the centered energy = Exact of the converted DBM - C
    log_zc = torch.logsumexp(-e_c, 0)
    torch.testing.assert_close(log_zc, d.enumerate_log_z() - const, rtol=0, atol=1e-12)
    # log p(v): brute-force marginal of the centered Boltzmann distribution = converted log_prob
    v = enumerate_binary_states(SIZES[0], dtype=DT)
    brute = _marginal(-e_c - log_zc, states[0], v)
    torch.testing.assert_close(d.log_prob(v), brute, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        DeepBoltzmannMachine.from_centered(w, b, m).log_prob(v), brute, rtol=0, atol=1e-12
    )
    # center_dbm_parameters inverts the conversion
    _, back = center_dbm_parameters(pw, pb, m)
    for got, want in zip(back, b):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_centered_model_log_likelihood_is_exact_on_the_centered_energy():
    """DBM(centering=True): log_likelihood (through the converted distribution) equals brute
    force over the centered energy of its own parameters and offsets."""
    model = DBM(6, [3, 2], centering=True, init_scale=0.7, seed=3).double()
    w, b, m = _params(1, [6, 3, 2])
    with torch.no_grad():
        for p, t in zip([*model.biases], b):
            p.copy_(t)
    model.set_offsets(m)
    sizes = [6, 3, 2]
    states = _split(enumerate_binary_states(11, dtype=DT), sizes)
    e_c = centered_dbm_energy(states, model.weights, model.biases, model.offsets).detach()
    v = enumerate_binary_states(6, dtype=DT)
    log_p = _marginal(-e_c - torch.logsumexp(-e_c, 0), states[0], v)
    ll = model.log_likelihood(v)
    assert ll.kind == "exact"
    torch.testing.assert_close(ll.values, log_p, rtol=0, atol=1e-10)


def test_set_offsets_keeps_the_distribution_and_update_offsets_matches_hand_written():
    x = _data(12, 6)
    model = DBM(6, [3, 2], centering=True, offset_rate=0.3, init_scale=0.8, seed=0).double()
    w0, b0, m0 = _params(2, [6, 3, 2])
    with torch.no_grad():
        for p, t in zip(model.biases, b0):
            p.copy_(t)
    model.set_offsets(m0)
    assert bool(model.offsets_initialized)
    # set_offsets changed the centered biases, not the distribution
    pw, pb = model.plain_parameters()
    want_pb = uncenter_dbm_parameters(model.weights, b0, [torch.zeros_like(t) for t in m0])[1]
    for got, want in zip(pb, want_pb):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-12)
    # the running average, by hand: mean field of the ordinary DBM, batch means, then
    # mu <- (1 - nu) mu + nu mean and b~_l <- b~_l + W_{l+1} dmu_{l+1} + W_l^T dmu_{l-1}
    s = torch.sigmoid
    W1, W2 = (t.detach() for t in model.weights)
    c0, c1, c2 = (t.detach().clone() for t in model.biases)
    p0, p1, p2 = (t.detach() for t in pb)
    H1 = s(p1 + 2 * x @ W1)
    H2 = s(p2 + H1 @ W2)
    for _ in range(model.config["mean_field_iters"]):
        H1 = s(p1 + x @ W1 + H2 @ W2.T)
        H2 = s(p2 + H1 @ W2)
    nu = 0.3
    new = [(1 - nu) * mu + nu * a for mu, a in zip(m0, (x.mean(0), H1.mean(0), H2.mean(0)))]
    d0, d1, d2 = (a - b for a, b in zip(new, m0))
    want_b = [c0 + W1 @ d1, c1 + d0 @ W1 + W2 @ d2, c2 + d1 @ W2]
    model.update_offsets(x)
    for got, want in zip(model.offsets, new):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for got, want in zip(model.biases, want_b):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-12)
    for got, want in zip(model.plain_parameters()[1], pb):  # same distribution
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-12)


def _centered_steps(W, b, m, V, steps, eps, k, num_chains, mf_iters, nu):
    """Algorithm 20.1 with the centered gradient (Montavon & Müller 2012), by hand, for two
    hidden layers: mean field and Gibbs chains of the ordinary DBM (biases
    b_l = b~_l - W_{l+1} mu_{l+1} - W_l^T mu_{l-1}); update
    W_l += eps [<(x_{l-1} - mu_{l-1})(x_l - mu_l)^T>_data - <same>_chains],
    b~_l += eps [<x_l>_data - <x_l>_chains]; then the running average of the offsets with the
    bias reparametrization."""
    s = torch.sigmoid
    W1, W2 = W[0].clone(), W[1].clone()
    c0, c1, c2 = (t.clone() for t in b)
    m0, m1, m2 = (t.clone() for t in m)

    def plain():
        return c0 - W1 @ m1, c1 - m0 @ W1 - W2 @ m2, c2 - m1 @ W2

    p0, p1, p2 = plain()
    Vt = _bern(s(p0).expand(num_chains, -1).contiguous())
    H1t = _bern(s(p1).expand(num_chains, -1).contiguous())
    H2t = _bern(s(p2).expand(num_chains, -1).contiguous())
    n = V.shape[0]
    for _ in range(steps):
        p0, p1, p2 = plain()
        H1 = s(p1 + 2 * V @ W1)
        H2 = s(p2 + H1 @ W2)
        for _ in range(mf_iters):
            H1 = s(p1 + V @ W1 + H2 @ W2.T)
            H2 = s(p2 + H1 @ W2)
        for _ in range(k):
            Vt = _bern(s(p0 + H1t @ W1.T))
            H2t = _bern(s(p2 + H1t @ W2))
            H1t = _bern(s(p1 + Vt @ W1 + H2t @ W2.T))
        dW1 = (V - m0).T @ (H1 - m1) / n - (Vt - m0).T @ (H1t - m1) / num_chains
        dW2 = (H1 - m1).T @ (H2 - m2) / n - (H1t - m1).T @ (H2t - m2) / num_chains
        W1, W2 = W1 + eps * dW1, W2 + eps * dW2
        c0 = c0 + eps * (V.mean(0) - Vt.mean(0))
        c1 = c1 + eps * (H1.mean(0) - H1t.mean(0))
        c2 = c2 + eps * (H2.mean(0) - H2t.mean(0))
        # running average of the offsets with the batch's data-phase means, reparametrized
        n0 = (1 - nu) * m0 + nu * V.mean(0)
        n1 = (1 - nu) * m1 + nu * H1.mean(0)
        n2 = (1 - nu) * m2 + nu * H2.mean(0)
        c0 = c0 + W1 @ (n1 - m1)
        c1 = c1 + (n0 - m0) @ W1 + W2 @ (n2 - m2)
        c2 = c2 + (n1 - m1) @ W2
        m0, m1, m2 = n0, n1, n2
    return [W1, W2], [c0, c1, c2], [m0, m1, m2]


def test_centered_svi_step_equals_hand_written_centered_gradient_step():
    """SVI(model, guide, SGD(lr = eps / m), Trace_ELBO) on a centered DBM, followed by
    update_offsets with the batch means the guide recorded (what fit does after every step),
    gives the hand-written centered Algorithm 20.1, step for step, with the same random
    numbers."""
    x = _data(12, 6)
    model = DBM(6, [4, 3], k=2, num_chains=5, mean_field_iters=3, init_scale=0.5, seed=1,
                centering=True, offset_rate=0.2).double()
    _, b, m = _params(4, [6, 4, 3])
    with torch.no_grad():
        for p, t in zip(model.biases, b):
            p.copy_(t)
    model.set_offsets(m)
    W0 = [t.detach().clone() for t in model.weights]
    B0 = [t.detach().clone() for t in model.biases]
    M0 = [t.detach().clone() for t in model.offsets]
    eps, steps = 0.1, 3
    pyro.clear_param_store()
    torch.manual_seed(123)
    svi = pyro.infer.SVI(
        model.model, model.guide, pyro.optim.SGD({"lr": eps / x.shape[0]}), pyro.infer.Trace_ELBO()
    )
    cb = model._offset_callback(None)  # what fit runs after each optimizer step
    for i in range(steps):
        svi.step(x)
        cb(i, 0.0)
    torch.manual_seed(123)
    W_ref, b_ref, m_ref = _centered_steps(W0, B0, M0, x, steps, eps, k=2, num_chains=5,
                                          mf_iters=3, nu=0.2)
    got = [*model.weights, *model.biases, *model.offsets]
    for g, want in zip(got, [*W_ref, *b_ref, *m_ref]):
        torch.testing.assert_close(g.detach(), want, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(model.offsets[1], M0[1])


def test_fit_initialises_offsets_from_the_data_and_checkpoints_round_trip(tmp_path):
    x = _data(40, 6)
    model = DBM(6, [3, 2], centering=True, num_chains=10, seed=0).double()
    assert not bool(model.offsets_initialized)
    model.fit(x, num_steps=1, lr=1e-12, progress=False, tol=None, seed=0)  # ~offsets only
    assert bool(model.offsets_initialized)
    mus = model.distribution().mean_field(x)
    nu = model.config["offset_rate"]
    torch.testing.assert_close(model.offsets[0], x.mean(0), rtol=0, atol=1e-12)
    # initialised from the data, then one running-average step with the same batch: unchanged
    for got, mu in zip(model.offsets[1:], mus):
        torch.testing.assert_close(got, mu.mean(0), rtol=0, atol=1e-9)
    assert 0 < nu < 1
    hist = model.fit(x, num_steps=5, lr=0.05, progress=False, tol=None, seed=0)
    assert "centered" in hist.info["learning_rule"]
    path = tmp_path / "c.pt"
    model.save(path)
    back = DBM.load(path).double()
    assert back.centering and bool(back.offsets_initialized)
    torch.testing.assert_close(back.log_likelihood(x).values, model.log_likelihood(x).values)


def test_centering_is_opt_in_and_leaves_the_plain_checkpoint_unchanged():
    plain = DBM(6, [3, 2], seed=0)
    assert "centering" not in plain.config and plain.offsets is None
    assert sorted(plain.state_dict()) == sorted(
        ["base_rate_logits", "weight1", "weight2", "bias0", "bias1", "bias2"]
    )
    centered = DBM(6, [3, 2], seed=0, centering=True)
    # same initial weights; offsets zero until fit or set_offsets: the same distribution
    for a, c in zip(plain.weights, centered.weights):
        torch.testing.assert_close(a, c)
    assert {"offset0", "offset1", "offset2", "offsets_initialized"} <= set(centered.state_dict())


def test_pretraining_a_centered_model_gives_the_ordinary_models_distribution():
    x = _data(30, 6)
    kw = dict(method="pretrain", num_steps=4, lr=0.05, progress=False, tol=None, seed=0)
    a = DBM(6, [3, 2], seed=0).double()
    a.fit(x, **kw)
    c = DBM(6, [3, 2], seed=0, centering=True).double()
    c.set_offsets([torch.full((n,), 0.3, dtype=DT) for n in (6, 3, 2)])
    c.fit(x, **kw)
    for got, want in zip([*c.plain_parameters()[0], *c.plain_parameters()[1]],
                         [*a.weights, *a.biases]):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=1e-9, atol=1e-10)


def test_bad_offsets_give_clear_errors_naming_the_argument():
    w, b, m = _params()
    with pytest.raises(ValueError, match=r"offsets\[1\] must have shape \(3,\)"):
        uncenter_dbm_parameters(w, b, [m[0], torch.rand(4, dtype=DT), m[2]])
    with pytest.raises(ValueError, match=r"offsets\[0\] must lie in \[0, 1\]"):
        uncenter_dbm_parameters(w, b, [m[0] + 1.5, m[1], m[2]])
    with pytest.raises(ValueError, match=r"offsets\[2\] must lie in \[0, 1\]"):
        check_offsets([m[0], m[1], torch.full((2,), float("nan"), dtype=DT)], SIZES)
    with pytest.raises(ValueError, match="offsets must hold one vector per layer: 3"):
        centered_dbm_energy([torch.zeros(n, dtype=DT) for n in SIZES], w, b, m[:2])
    with pytest.raises(TypeError, match="offsets must be a list"):
        DeepBoltzmannMachine.from_centered(w, b, torch.zeros(10, dtype=DT))
    with pytest.raises(TypeError, match=r"offsets\[0\] must have dtype torch.float64"):
        check_offsets([m[0].float(), m[1], m[2]], SIZES, DT)
    model = DBM(6, [3, 2], centering=True).double()
    with pytest.raises(ValueError, match=r"offsets\[1\] must have shape \(3,\)"):
        model.set_offsets([torch.zeros(6, dtype=DT), torch.zeros(2, dtype=DT),
                           torch.zeros(2, dtype=DT)])
    with pytest.raises(ValueError, match=r"offsets\[0\] must lie in \[0, 1\]"):
        model.set_offsets([torch.full((6,), -0.1, dtype=DT), torch.zeros(3, dtype=DT),
                           torch.zeros(2, dtype=DT)])
    with pytest.raises(RuntimeError, match="centering=True"):
        DBM(6, [3, 2]).set_offsets([torch.zeros(n) for n in (6, 3, 2)])
    with pytest.raises(ValueError, match="offset_rate"):
        DBM(6, [3, 2], centering=True, offset_rate=1.5)
    with pytest.raises(TypeError, match="centering must be a bool"):
        DBM(6, [3, 2], centering="yes")
    with pytest.raises(ValueError, match="update_offsets needs x"):
        model.update_offsets()


# ---------------------------------------------------------------- multi-prediction training
def test_mean_field_masked_clamps_the_observed_units_and_matches_hand_written():
    model = DBM(6, [3, 2], init_scale=0.8, mean_field_iters=4, seed=0).double()
    x = _data(5, 6)
    mask = torch.zeros(5, 6, dtype=torch.bool)
    mask[:, :3] = True
    d = model.distribution()
    mus, logits = d.mean_field_masked(x, mask)
    s = torch.sigmoid
    W1, W2 = (t.detach() for t in model.weights)
    b0, b1, b2 = (t.detach() for t in model.biases)
    V = torch.where(mask, s(b0).expand_as(x), x)
    H1 = s(b1 + 2 * V @ W1)
    H2 = s(b2 + H1 @ W2)
    for _ in range(4):
        H1 = s(b1 + V @ W1 + H2 @ W2.T)
        A = b0 + H1 @ W1.T
        V = torch.where(mask, s(A), x)
        H2 = s(b2 + H1 @ W2)
    for got, want in zip([*mus, logits], [V, H1, H2, A]):
        torch.testing.assert_close(got.detach(), want, rtol=1e-12, atol=1e-12)
    assert (mus[0][~mask] == x[~mask]).all()
    with pytest.raises(ValueError, match="mask must broadcast"):
        d.mean_field_masked(x, torch.ones(4, dtype=torch.bool))


def test_multi_prediction_training_lowers_its_loss_and_inpaints_better_than_unfitted():
    """fit(method="mp") on 300 binarized digits: the loss (masked cross-entropy per row) falls,
    and the masked pixels of held-out digits are predicted better than by the unfitted model
    and by the per-pixel majority of the training data."""
    from pyrogen.datasets import load_digits

    x = load_digits(binarize="threshold", dtype=DT).x
    tr, te = x[:300], x[1500:1650]
    mask = torch.rand(te.shape, generator=torch.Generator().manual_seed(1), dtype=DT) < 0.5

    def accuracy(m):
        p = m.inpaint(te, mask)
        assert (p[~mask] == te[~mask]).all()
        return float(((p > 0.5).to(DT) == te)[mask].to(DT).mean())

    majority = float(((tr.mean(0) > 0.5).to(DT).expand_as(te) == te)[mask].to(DT).mean())
    model = DBM(64, [16, 16], mean_field_iters=5, seed=0).double()
    before = accuracy(model)
    hist = model.fit(tr, method="mp", num_steps=150, lr=0.03, batch_size=100, tol=None,
                     progress=False, seed=0)
    assert hist.method == "mp"
    losses = torch.tensor(hist.losses)
    assert float(losses[-15:].mean()) < 0.85 * float(losses[:15].mean())
    after = accuracy(model)
    assert after > before + 0.2 and after > majority + 0.03, (before, majority, after)
    assert torch.isfinite(model.log_likelihood(te[:20]).values).all()
    with pytest.raises(ValueError, match="mp_mask_prob"):
        model.fit(tr, method="mp", num_steps=1, mp_mask_prob=1.0, progress=False, tol=None)
