"""SigmoidBeliefNet / HelmholtzMachine / FVSBN against brute-force enumeration.

Statistical tests use fixed seeds and float64; each states its failure rate under a correct
implementation.
"""

import functools
import itertools
import math

import pyro
import pytest
import torch

from pyrogen import ConvergenceWarning
from pyrogen.infer.importance import importance_log_likelihood
from pyrogen.models import FVSBN, HelmholtzMachine, SigmoidBeliefNet


def _random_sbn(cls, sizes, seed, scale=1.5):
    torch.manual_seed(seed)
    m = cls(sizes, seed=None).double()  # initialised from (and advancing) the global state
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(scale * torch.randn_like(p))
    return m


def _all_x(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)


def _brute_log_px(m, x):
    """log p(x) by explicit loops over every hidden layer, book eq. 20.70 written out."""
    sizes = m.layer_sizes
    top_bias = m.top_bias.detach()
    ws = [lin.weight.detach() for lin in m.gen]  # (lower, upper): w[i, j] = W_ji
    bs = [lin.bias.detach() for lin in m.gen]
    out = []
    for row in x:
        total = 0.0
        for hid in itertools.product(*[itertools.product([0, 1], repeat=s) for s in sizes[1:]]):
            layers = [row.tolist()] + [list(h) for h in hid]
            lp = 0.0
            top = layers[-1]
            for i, s in enumerate(top):
                p = 1 / (1 + math.exp(-float(top_bias[i])))
                lp += math.log(p if s else 1 - p)
            for l in range(len(sizes) - 1):
                w, b = ws[l], bs[l]
                for i, s in enumerate(layers[l]):
                    a = float(b[i]) + sum(float(w[i, j]) * layers[l + 1][j]
                                          for j in range(sizes[l + 1]))
                    p = 1 / (1 + math.exp(-a))
                    lp += math.log(p if s else 1 - p)
            total += math.exp(lp)
        out.append(math.log(total))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("cls", [SigmoidBeliefNet, HelmholtzMachine])
def test_exact_log_likelihood_matches_brute_force_and_normalizes(cls):
    m = _random_sbn(cls, [3, 2, 2], seed=0)
    x = _all_x(3)
    ll = m.log_likelihood(x)
    assert ll.kind == "exact" and ll.stderr is None
    torch.testing.assert_close(ll.values, _brute_log_px(m, x), rtol=1e-10, atol=1e-10)
    # sum_x p(x) = 1
    torch.testing.assert_close(torch.logsumexp(ll.values, 0), torch.tensor(0.0).double(),
                               atol=1e-12, rtol=0)


def test_ancestral_samples_follow_exact_distribution():
    m = _random_sbn(SigmoidBeliefNet, [3, 2, 2], seed=1, scale=1.0)
    pyro.set_rng_seed(0)
    n = 20000
    s = m.sample(n)
    codes = (s * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    counts = torch.bincount(codes, minlength=8).double()
    p = m.log_likelihood(_all_x(3)).values.exp()
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    # chi-square with 7 dof: P(chi2 > 24.3) = 1e-3 (failure rate 1e-3 for a correct sampler)
    assert chi2 < 24.3, chi2


def test_sample_return_hidden_shapes_and_top_down_order():
    m = _random_sbn(HelmholtzMachine, [5, 3, 2], seed=2)
    x, hs = m.sample(4, return_hidden=True)
    assert x.shape == (4, 5) and [h.shape for h in hs] == [(4, 3), (4, 2)]


@pytest.mark.parametrize("cls", [SigmoidBeliefNet, HelmholtzMachine])
def test_importance_sampled_log_likelihood_converges_to_exact(cls):
    m = _random_sbn(cls, [5, 3, 2], seed=3, scale=1.0)
    pyro.set_rng_seed(0)
    x = m.sample(6)
    exact = m.log_likelihood(x).values
    errs = {}
    for k in (10, 20000):
        est = m.log_likelihood(x, num_particles=k, chunk=5000)
        assert est.kind == "is_estimate" and est.bound == "lower"
        errs[k] = (est.values - exact).abs().mean()
        if k == 20000:
            # per-example z-test at 5 delta-method stderrs (+1e-3 for the delta method's own
            # error); a correct estimator fails with probability ~1e-5 over 6 examples
            assert ((est.values - exact).abs() < 5 * est.stderr + 1e-3).all(), (
                est.values - exact, est.stderr)
    assert errs[20000] < errs[10] / 5
    # the shared F estimator directly gives the same kind of result
    ll = importance_log_likelihood(m.model, m.guide, x, num_particles=50)
    assert ll.kind == "is_estimate"


def test_exact_elbo_is_below_exact_log_likelihood():
    m = _random_sbn(HelmholtzMachine, [4, 2, 2], seed=4)
    x = _all_x(4)
    gap = m.exact_log_likelihood(x) - m.exact_elbo(x)
    assert (gap >= -1e-12).all() and gap.max() > 1e-3


def test_large_model_uses_importance_sampling():
    m = SigmoidBeliefNet([10, 12, 10], num_is_particles=20).double()
    assert not m.exact and m.log_likelihood_kind == "is_estimate"
    x = torch.bernoulli(torch.full((3, 10), 0.5, dtype=torch.float64))
    ll = m.log_likelihood(x)
    assert ll.kind == "is_estimate" and ll.stderr.shape == (3,)
    with pytest.raises(ValueError, match="at most 24 hidden units"):
        SigmoidBeliefNet([4, 20, 10]).double().exact_log_likelihood(x[:, :4])


@pytest.mark.parametrize("method", ["wake_sleep", "rws", "nvil", "reinforce", "concrete", "svi"])
def test_every_fit_method_runs_and_improves_exact_likelihood(method):
    teacher = _random_sbn(HelmholtzMachine, [6, 3, 2], seed=5, scale=2.0)
    pyro.set_rng_seed(0)
    x = teacher.sample(200)
    m = HelmholtzMachine([6, 3, 2], seed=1).double()
    before = m.log_likelihood(x).mean()
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(x, method=method, num_steps=60, lr=0.05, batch_size=50, seed=0,
                     progress=False)
    assert hist.method == method and len(hist.losses) == 60
    assert m.log_likelihood(x).mean() > before + 0.2
    if method == "wake_sleep":
        assert len(hist.metrics["wake_loss"]) == len(hist.metrics["sleep_loss"]) == 60


@pytest.mark.parametrize("normalize", [True, False])
def test_nvil_variance_normalization_option(normalize):
    teacher = _random_sbn(HelmholtzMachine, [6, 3, 2], seed=5, scale=2.0)
    pyro.set_rng_seed(0)
    x = teacher.sample(200)
    m = HelmholtzMachine([6, 3, 2], seed=1).double()
    before = m.log_likelihood(x).mean()
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(x, method="nvil", num_steps=60, lr=0.05, batch_size=50, seed=0,
                     progress=False, variance_normalization=normalize)
    assert hist.info["variance_normalization"] is normalize
    assert m.log_likelihood(x).mean() > before + 0.2


@pytest.mark.parametrize("normalize", [False, True])
def test_nvil_fit_of_one_model_does_not_change_another(normalize):
    """Two SBNs fitted by NVIL one after the other in one process: the second ends exactly where
    it ends when fitted alone (each fit owns its decaying averages, running variance and
    baseline network). Failed before the fix: Pyro kept the averages in the global param
    store under the site name ("h1"), so the second fit started from the first one's."""
    x = _random_sbn(HelmholtzMachine, [6, 3, 2], seed=5, scale=2.0).sample(100)

    def fresh(seed):
        return HelmholtzMachine([6, 3, 2], seed=seed).double()

    kw = dict(method="nvil", num_steps=15, lr=0.05, batch_size=50, progress=False,
              variance_normalization=normalize)
    pyro.clear_param_store()
    b_alone = fresh(2)
    with pytest.warns(ConvergenceWarning):
        b_alone.fit(x, seed=1, **kw)
    pyro.clear_param_store()
    a, b = fresh(3), fresh(2)
    with pytest.warns(ConvergenceWarning):
        a.fit(x, seed=0, **kw)
    with pytest.warns(ConvergenceWarning):
        b.fit(x, seed=1, **kw)
    for p, q in zip(b_alone.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_nvil_refit_trains_its_new_baseline_network():
    """A second fit registers a fresh baseline network under the model's name; the param store
    holds that network's tensors (not the first fit's, which would shadow it)."""
    x = _random_sbn(HelmholtzMachine, [6, 3, 2], seed=5, scale=2.0).sample(60)
    m = HelmholtzMachine([6, 3, 2], seed=0).double()
    for _ in range(2):
        with pytest.warns(ConvergenceWarning):
            m.fit(x, method="nvil", num_steps=3, lr=0.05, batch_size=30, progress=False, seed=0)
        module = m.training_state["nvil_baseline"]
        store = pyro.get_param_store()
        keys = [k for k in store.keys() if k.startswith(f"{m._pyro_name}_nvil_baseline$$$")]
        assert len(keys) == len(list(module.parameters())) > 0
        own = {id(p) for p in module.parameters()}
        assert all(id(store._params[k]) in own for k in keys)


def test_relaxed_guide_runs_under_trace_elbo():
    m = HelmholtzMachine([4, 3, 2]).double()
    x = torch.bernoulli(torch.full((5, 4), 0.5, dtype=torch.float64))
    svi = pyro.infer.SVI(m.model, functools.partial(m.relaxed_guide, temperature=0.3),
                         pyro.optim.Adam({"lr": 1e-2}), pyro.infer.Trace_ELBO())
    w0 = m.rec[0].weight.detach().clone()
    assert math.isfinite(svi.step(x))
    assert not torch.equal(w0, m.rec[0].weight.detach())  # pathwise gradient reached the guide


def test_pyro_reweighted_wake_sleep_runs_with_sleep_phase():
    # the guide accepts pyro's `observations` keyword (sleep-phi dreams)
    m = HelmholtzMachine([4, 3, 2]).double()
    x = torch.bernoulli(torch.full((5, 4), 0.5, dtype=torch.float64))
    loss = pyro.infer.ReweightedWakeSleep(num_particles=3, insomnia=0.5,
                                          vectorize_particles=True, max_plate_nesting=1)
    svi = pyro.infer.SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-2}), loss)
    out = svi.step(x)
    assert all(math.isfinite(v) for v in out)


def test_fvsbn_exact_normalized_autoregressive_and_sampler():
    torch.manual_seed(0)
    m = FVSBN(3).double()
    with torch.no_grad():
        m.weight.copy_(torch.randn(3, 3))
        m.bias.copy_(torch.randn(3))
    x = _all_x(3)
    ll = m.log_likelihood(x)
    assert ll.kind == "exact"
    torch.testing.assert_close(torch.logsumexp(ll.values, 0), torch.tensor(0.0).double(),
                               atol=1e-12, rtol=0)
    # upper-triangular weights are masked out: changing them does not change p
    with torch.no_grad():
        m.weight[0, 2] += 5.0
    torch.testing.assert_close(m.log_likelihood(x).values, ll.values)
    pyro.set_rng_seed(0)
    n = 20000
    s = m.sample(n)
    codes = (s * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(1).long()
    counts = torch.bincount(codes, minlength=8).double()
    p = ll.values.exp()
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    assert chi2 < 24.3, chi2  # 7 dof, failure rate 1e-3


def test_fvsbn_fit_reaches_empirical_maximum_for_independent_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.tensor([0.2, 0.7, 0.5]).double().expand(400, 3), generator=g)
    m = FVSBN(3).double()
    m.fit(x, num_steps=300, lr=0.1, progress=False, seed=0)
    # the MLE is at least as good as the independent-pixel MLE (a special case of the model)
    pm = x.mean(0)
    ind = (x * pm.log() + (1 - x) * (1 - pm).log()).sum(1).mean()
    assert m.log_likelihood(x).mean() > float(ind) - 1e-3


@pytest.mark.parametrize(
    "sizes, match",
    [([4], "layer_sizes"), ([4, 0], "layer_sizes"), ("4,2", "layer_sizes"),
     ([4, 2.5], "layer_sizes")],
)
def test_bad_layer_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        SigmoidBeliefNet(sizes)


def test_bad_fit_arguments():
    m = HelmholtzMachine([4, 2]).double()
    x = torch.bernoulli(torch.full((5, 4), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="method must be one of"):
        m.fit(x, method="gibbs", progress=False)
    with pytest.raises(ValueError, match="num_particles must be"):
        m.fit(x, method="rws", num_particles=0, progress=False)
    with pytest.raises(ValueError, match="temperature must be"):
        m.fit(x, method="concrete", temperature=0.0, progress=False)
    with pytest.raises(ValueError, match="max_enumerate must be"):
        SigmoidBeliefNet([4, 2], max_enumerate=40)
