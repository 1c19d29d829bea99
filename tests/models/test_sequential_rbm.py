"""Sequence RBMs (pyrogen/models/sequential_rbm.py): CRBM and RNN-RBM against brute force.

Statistical tests use fixed seeds and float64; each states its failure rate for a correct
implementation (over the random seed).
"""

import math

import pyro
import pytest
import torch

from pyrogen.datasets import bouncing_balls, polyphonic_chords
from pyrogen.distributions.energy import enumerate_binary_states
from pyrogen.models import RNNRBM, BernoulliRBM, ConditionalRBM, load
from pyrogen.models.sequential_rbm import check_sequences


def _randomize(model, scale=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _crbm(nv=3, nh=2, d=2, seed=0, **kw):
    return _randomize(ConditionalRBM(nv, nh, n_delay=d, **kw).double(), seed=seed)


def _rnnrbm(nv=3, nh=2, nu=2, seed=0, **kw):
    return _randomize(RNNRBM(nv, nh, n_recurrent=nu, **kw).double(), seed=seed)


MAKERS = {"crbm": _crbm, "rnnrbm": _rnnrbm}


def _all_sequences(nv, t):
    states = enumerate_binary_states(nv * t, dtype=torch.float64)
    return states.reshape(-1, t, nv)


def _brute_joint(model, x3):
    """log P(v_t | v_<t) by enumerating BOTH layers of each step's RBM (n, T)."""
    b, c = model.dynamic_biases(x3)
    W = model.weight
    vs = enumerate_binary_states(model.n_features, dtype=torch.float64)
    hs = enumerate_binary_states(model.n_hidden, dtype=torch.float64)

    def neg_e(v, h, b, c):  # v (..., nv), h (..., nh)
        return (v * b).sum(-1) + (h * c).sum(-1) + ((v @ W) * h).sum(-1)

    vv = vs[:, None, None, None, :]
    hh = hs[None, :, None, None, :]
    log_z = torch.logsumexp(neg_e(vv, hh, b, c).flatten(0, 1), 0)
    num = torch.logsumexp(neg_e(x3[None], hs[:, None, None, :], b, c), 0)
    return num - log_z


@pytest.mark.parametrize("kind", list(MAKERS))
def test_free_energy_and_step_log_prob_equal_brute_force(kind):
    model = MAKERS[kind]()
    x = _all_sequences(3, 2)[::5]
    d = model.step_distribution(x)
    b, c = model.dynamic_biases(x)
    hs = enumerate_binary_states(2, dtype=torch.float64)
    neg_e = (x * b).sum(-1)[None] + (hs[:, None, None] * c).sum(-1) + (
        (x @ model.weight)[None] * hs[:, None, None]
    ).sum(-1)
    torch.testing.assert_close(-d.free_energy(x), torch.logsumexp(neg_e, 0))
    ll = model.log_likelihood(x, per_frame=True)
    assert ll.kind == "exact"
    torch.testing.assert_close(ll.values, _brute_joint(model, x).reshape(-1))


@pytest.mark.parametrize("kind", list(MAKERS))
def test_sequence_probabilities_sum_to_one(kind):
    """P(v_1..T) over all 2^(n_v T) sequences sums to 1 (zero-padded history / learned u_0)."""
    model = MAKERS[kind]()
    x = _all_sequences(3, 3)
    ll = model.log_likelihood(x)
    assert ll.shape == (x.shape[0],)
    assert abs(float(torch.logsumexp(ll.values, 0))) < 1e-10
    # totals are sums of the per-frame conditionals
    pf = model.log_likelihood(x, per_frame=True).values.reshape(x.shape[0], 3)
    torch.testing.assert_close(pf.sum(-1), ll.values)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_ais_agrees_with_exact_within_its_standard_error(kind):
    """Per-step log Z_t by AIS vs exact enumeration. Each of the 12 conditionals must lie
    within 4 standard errors (failure rate < 1e-3 per run for a calibrated estimator)."""
    model = MAKERS[kind](nv=5, nh=4, seed=1)
    x = polyphonic_chords(3, 4, seed=0)[..., :5].double()
    exact = model.log_likelihood(x, per_frame=True)
    ais = model.log_likelihood(x, per_frame=True, method="ais", num_chains=200,
                               num_betas=300, seed=0)
    assert ais.kind == "ais_estimate" and ais.stderr is not None
    z = (ais.values - exact.values) / ais.stderr
    assert float(z.abs().max()) < 4.0, z
    tot = model.log_likelihood(x, method="ais", num_chains=200, num_betas=300, seed=0)
    torch.testing.assert_close(tot.stderr, ais.stderr.reshape(3, 4).pow(2).sum(-1).sqrt())


@pytest.mark.parametrize("via", ["sample", "pyro.markov"])
@pytest.mark.parametrize("kind", list(MAKERS))
def test_sampler_matches_exact_sequence_distribution(kind, via):
    """Chi-square goodness of fit of 6000 sampled sequences (n_v = 2, T = 2: 16 outcomes)
    against the exact P(v_1, v_2), drawn by ``sample`` or by the generative Pyro program
    (``model(None, num_data, n_frames)``, a ``pyro.markov`` loop); p-value threshold 1e-3
    (failure rate 0.1% per case)."""
    from scipy.stats import chisquare

    model = MAKERS[kind](nv=2, nh=2)
    pyro.set_rng_seed(0)
    if via == "sample":
        s = model.sample(6000, n_frames=2)
    else:
        tr = pyro.poutine.trace(model.model).get_trace(None, num_data=6000, n_frames=2)
        assert [k for k in tr.nodes if k.startswith("x_")] == ["x_0", "x_1"]
        s = tr.nodes["_RETURN"]["value"]
    idx = (s.reshape(6000, 4) * (2 ** torch.arange(4, dtype=torch.float64))).sum(-1).long()
    counts = torch.bincount(idx, minlength=16).double()
    probs = model.log_likelihood(_all_sequences(2, 2)).values.exp()
    p = chisquare(counts.numpy(), (probs * 6000).numpy()).pvalue
    assert p > 1e-3, p


def test_gibbs_sampling_branch_matches_exact():
    """n_hidden = n_visible = 17 > 16: frames by block Gibbs (100 steps from the previous
    frame); first-frame marginals within 5 s.e. of the exact ones (enumeration of the 2^17
    visible states); failure rate < 1e-3 over 17 units for a well-mixed sampler."""
    model = _randomize(ConditionalRBM(17, 17, n_delay=1, sample_steps=100).double(), 0.15)
    pyro.set_rng_seed(0)
    s = model.sample(400, n_frames=1)
    d = model.step_distribution(s[:1])  # the first frame's conditional (zero history)
    vs = enumerate_binary_states(17, dtype=torch.float64)
    p = torch.softmax(d.unnormalized_log_prob(vs[:, None, None, :])[:, 0, 0], 0)
    want = (p @ vs).detach()
    se = (want * (1 - want) / 400).sqrt() + 0.01
    assert float(((s[:, 0].mean(0) - want).abs() / se).max()) < 5.0


@pytest.mark.parametrize("kind", list(MAKERS))
def test_predict_next_exact_equals_brute_force(kind):
    model = MAKERS[kind]()
    x = _all_sequences(3, 2)[::7]
    pred = model.predict_next(x)
    b, c = model.dynamic_biases(x)
    vs = enumerate_binary_states(3, dtype=torch.float64)
    # P(v | past) for every v by brute force
    ll = torch.stack([
        _brute_joint(model, torch.where(
            torch.arange(2)[None, :, None] == t, v.expand(x.shape), x))[:, t]
        for v in vs for t in (0, 1)
    ]).reshape(len(vs), 2, x.shape[0]).permute(0, 2, 1)  # (S, n, T)
    want = (ll.exp()[..., None] * vs[:, None, None, :]).sum(0)
    torch.testing.assert_close(pred, want)


def test_predict_next_monte_carlo_branch():
    model = _crbm(nv=3, nh=13, seed=2)
    with torch.no_grad():
        model.weight.mul_(0.3)
    x = _all_sequences(3, 2)[::9]
    exact = torch.stack([
        (model.log_likelihood(torch.cat([x[:, :1], v.expand(x.shape[0], 1, 3)], 1),
                              per_frame=True).values.reshape(-1, 2)[:, 1].exp()[:, None] * v)
        for v in enumerate_binary_states(3, dtype=torch.float64)
    ]).sum(0)
    pyro.set_rng_seed(0)
    mc = model.predict_next(x, num_samples=3000, num_steps=30)[:, 1]
    assert float((mc - exact).abs().max()) < 0.05


def test_crbm_history_and_biases():
    model = _crbm(nv=2, nh=2, d=2)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)
    h = model.history(x)
    want = torch.tensor([[[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0]]], dtype=torch.float64)
    torch.testing.assert_close(h, want)
    # generation state follows the same convention
    s = model._init_state(1)
    for t in range(3):
        torch.testing.assert_close(s, h[:, t])
        s = model._next_state(s, x[:, t])


@pytest.mark.parametrize("kind", list(MAKERS))
def test_svi_cd_gradient_reaches_the_temporal_weights(kind):
    """One SVI step with CD-1 per time step moves the autoregressive / recurrent weights."""
    model = MAKERS[kind](nv=4, nh=3)
    x = polyphonic_chords(4, 5, seed=1)[..., :4].double()
    names = {"crbm": ["autoregressive_weight", "past_hidden_weight"],
             "rnnrbm": ["recurrent_weight", "input_weight", "state_hidden_weight"]}[kind]
    before = {n: getattr(model, n).detach().clone() for n in names}
    svi = pyro.infer.SVI(model.model, model.guide, pyro.optim.Adam({"lr": 0.01}),
                         pyro.infer.Trace_ELBO())
    pyro.set_rng_seed(0)
    assert math.isfinite(svi.step(x))
    for n in names:
        assert not torch.equal(before[n], getattr(model, n).detach()), n


def test_cd_surrogate_gradient_is_the_per_step_cd_rule():
    """d loss / d b_t of the SVI surrogate = -(v_t - v'_t) with v'_t the CD-1 sample: checked
    through the autoregressive weight A (dL/dA = -sum_t hist_t (v_t - v'_t)^T in expectation):
    with k = 200 Gibbs steps the CD chains are exact draws, so the average over 40 repeats
    approaches the exact gradient (tolerance 4 s.e. of the mean; failure rate < 1e-3)."""
    model = _crbm(nv=3, nh=2, d=1, k=200, seed=3)
    x = _all_sequences(3, 2)[::4]
    exact_loss = -model.log_likelihood(x).values.sum()
    # exact gradient of -log P through autograd on the brute-force formula
    lp = _brute_joint(model, x).sum()
    (g_exact,) = torch.autograd.grad(-lp, model.autoregressive_weight)
    assert torch.isfinite(exact_loss)
    pyro.set_rng_seed(0)
    grads = []
    for _ in range(40):
        tr = pyro.poutine.trace(model.model).get_trace(x)
        loss = -tr.log_prob_sum()
        (g,) = torch.autograd.grad(loss, model.autoregressive_weight)
        grads.append(g)
    g = torch.stack(grads)
    se = g.std(0) / math.sqrt(40) + 1e-3
    assert float(((g.mean(0) - g_exact).abs() / se).max()) < 4.5


@pytest.mark.slow
def test_crbm_beats_per_frame_rbm_on_bouncing_balls():
    """Equal budget (SVI steps, frames per step, lr, CD-1, hidden units): the CRBM's exact
    per-frame log-likelihood of held-out videos beats the per-frame RBM's by over 2 nats."""
    x = bouncing_balls(20, 10, size=8, seed=0).double()
    test = bouncing_balls(15, 10, size=8, seed=1).double()
    crbm = ConditionalRBM(64, 8, n_delay=2).double()
    crbm.fit(x, num_steps=100, lr=0.02, batch_size=10, seed=0, progress=False)
    rbm = BernoulliRBM(64, 8, training="cd").double()
    rbm.fit(x.reshape(-1, 64), num_steps=100, lr=0.02, batch_size=100, seed=0,
            progress=False, tol=None)
    per_frame_crbm = crbm.log_likelihood(test).values.sum() / 150
    per_frame_rbm = rbm.log_likelihood(test.reshape(-1, 64)).mean()
    assert float(per_frame_crbm) > float(per_frame_rbm) + 2.0


def test_fit_improves_exact_log_likelihood():
    x = polyphonic_chords(20, 8, seed=0).double()
    model = RNNRBM(12, 6, n_recurrent=6).double()
    before = model.log_likelihood(x).mean()
    hist = model.fit(x, num_steps=60, lr=0.05, batch_size=10, seed=0, progress=False)
    assert hist.converged is None and len(hist.losses) == 60
    assert hist.info["loss_log_z_kind"] in ("exact", "stale_exact")
    assert model.log_likelihood(x).mean() > before + 10


def test_protocol_on_batches_of_sequences(tmp_path):
    model = _crbm(nv=4, nh=3)
    x = polyphonic_chords(5, 6, seed=0)[..., :4].double()
    assert model.log_likelihood(x).shape == (5,)
    assert model.log_likelihood(x, per_frame=True).shape == (30,)
    assert model.transform(x).shape == (5, 6, 3)
    assert model.predict_next(x).shape == (5, 6, 4)
    assert model.sample(3, n_frames=4).shape == (3, 4, 4)
    assert model.sample(4).shape == (4, 4)
    # a 2-D x is one sequence
    torch.testing.assert_close(model.log_likelihood(x[0]).values,
                               model.log_likelihood(x[:1], per_frame=True).values)
    model.save(tmp_path / "m.pt")
    back = load(tmp_path / "m.pt")
    assert isinstance(back, ConditionalRBM) and back.n_delay == 2
    torch.testing.assert_close(back.log_likelihood(x).values, model.log_likelihood(x).values)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_bad_input(kind):
    model = MAKERS[kind]()
    with pytest.raises(ValueError, match="length 0"):
        model.log_likelihood(torch.zeros(0, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="length 0"):
        model.fit(torch.zeros(2, 0, 3, dtype=torch.float64), progress=False)
    with pytest.raises(ValueError, match="length 0"):
        check_sequences(torch.zeros(4, 0, 3), 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"\(n, T, n_features\)"):
        model.log_likelihood(torch.zeros(2, 2, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="features"):
        model.transform(torch.zeros(2, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="binary"):
        model.log_likelihood(torch.full((2, 4, 3), 0.5, dtype=torch.float64))
    with pytest.raises(TypeError, match="dtype"):
        model.log_likelihood(torch.zeros(2, 4, 3, dtype=torch.float32))
    with pytest.raises(ValueError, match="n_frames"):
        model.sample(2, n_frames=0)
    with pytest.raises(ValueError, match="x must be a tensor"):
        model.model(None)
    with pytest.raises(ValueError, match="n_frames"):
        model.model(None, n_frames=0)
    with pytest.raises(ValueError, match="method must be"):
        model.log_likelihood(torch.zeros(2, 4, 3, dtype=torch.float64), method="nope")


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="n_delay"):
        ConditionalRBM(4, 3, n_delay=0)
    with pytest.raises(ValueError, match="n_recurrent"):
        RNNRBM(4, 3, n_recurrent=0)
    with pytest.raises(TypeError, match="n_hidden"):
        ConditionalRBM(4, 2.5)


def test_sequences_in_order_matter_for_the_crbm():
    """Time order is part of the input: reversing a sequence changes its probability."""
    model = _crbm(nv=3, nh=2)
    x = _all_sequences(3, 3)[[5, 77, 300]]
    rev = x.flip(1)
    assert not torch.allclose(model.log_likelihood(x).values, model.log_likelihood(rev).values)
