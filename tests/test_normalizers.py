"""Normalizers (Exact, AIS, PCD, CD) and the Pyro SVI / MCMC integration.

Statistical tests use fixed seeds and float64 and state their failure rate: the probability that
a correct implementation fails for a random seed.
"""

import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from pyrogen.distributions import (
    RBM,
    BoltzmannMachine,
    GaussianBernoulliRBM,
    enumerate_binary_states,
)
from pyrogen.normalizers import AIS, CD, PCD, SMC, Exact, LogZEstimate

D = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread is faster on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rbm_params(nv, nh, scale=0.6, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    out = [
        scale * torch.randn(nv, nh, generator=g, dtype=D),
        scale * torch.randn(nv, generator=g, dtype=D),
        scale * torch.randn(nh, generator=g, dtype=D),
    ]
    return [t.requires_grad_(requires_grad) for t in out]


def _brute_log_lik(x, W, b, c):
    """Mean log p(x) by enumerating every (v, h) jointly; differentiable, independent code."""
    nv, nh = W.shape
    s = enumerate_binary_states(nv + nh, dtype=D)
    v, h = s[:, :nv], s[:, nv:]
    log_z = torch.logsumexp(v @ b + h @ c + torch.einsum("si,ij,sj->s", v, W, h), 0)
    hs = enumerate_binary_states(nh, dtype=D)
    unnorm = torch.logsumexp(
        (x @ b).unsqueeze(-1) + (hs @ c) + torch.einsum("ni,ij,sj->ns", x, W, hs), -1
    )
    return unnorm - log_z


# ------------------------------------------------------------------------------ estimate object
def test_log_z_estimate_kinds():
    with pytest.raises(ValueError, match="kind must be one of"):
        LogZEstimate(torch.zeros(()), kind="elbo")
    e = LogZEstimate(torch.tensor(1.5), kind="ais_estimate", stderr=torch.tensor(0.1))
    assert "1.5" in repr(e) and "ais_estimate" in repr(e) and not e.is_exact


# ------------------------------------------------------------------------------ SVI + Exact
def test_svi_gradient_with_exact_equals_autograd_through_enumeration():
    W0, b0, c0 = _rbm_params(6, 5)
    x = torch.bernoulli(
        torch.full((40, 6), 0.4, dtype=D), generator=torch.Generator().manual_seed(1)
    )

    def model(x):
        W = pyro.param("W", W0.clone())
        b = pyro.param("b", b0.clone())
        c = pyro.param("c", c0.clone())
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", RBM(W, b, c, normalizer=Exact()), obs=x)

    def guide(x):
        pass

    loss = Trace_ELBO().loss_and_grads(model, guide, x)
    W, b, c = _rbm_params(6, 5, requires_grad=True)
    ref = -_brute_log_lik(x, W, b, c).sum()
    ref.backward()
    assert math.isclose(loss, float(ref.detach()), rel_tol=1e-10)
    for name, t in [("W", W), ("b", b), ("c", c)]:
        torch.testing.assert_close(pyro.param(name).unconstrained().grad, t.grad)


# ------------------------------------------------------------------------------ AIS normalizer
def test_ais_value_stderr_and_seeded_determinism():
    W, b, c = _rbm_params(20, 12)
    d = RBM(W, b, c)
    exact = Exact()(d).log_z
    torch.manual_seed(0)
    est = AIS(num_chains=100, num_betas=300)(d)
    assert est.kind == "ais_estimate" and not est.stale
    assert est.stderr is not None and 0 < float(est.stderr) < 0.1
    assert 1 < float(est.ess) <= 100 and est.log_weights.shape == (100,)
    # failure rate: |z| > 5 for a correct, delta-method-normal estimate: < 1e-6 (plus the
    # O(1/ess) bias, tiny here)
    assert abs(float(est.log_z - exact)) < 5 * float(est.stderr) + 0.02
    a = AIS(num_chains=10, num_betas=50, seed=3)
    torch.testing.assert_close(a(d).log_z, a(d).log_z)
    # data-fitted base rates are accepted
    data = d.sample((50,))
    assert torch.isfinite(AIS(num_chains=10, num_betas=50, data=data)(d).log_z)


def test_ais_on_boltzmann_machine_and_gbrbm():
    torch.manual_seed(4)
    g = torch.Generator().manual_seed(2)
    A = 0.3 * torch.randn(8, 8, generator=g, dtype=D)
    U = (A + A.T) / 2 * (1 - torch.eye(8, dtype=D))
    bm = BoltzmannMachine(U, 0.3 * torch.randn(8, generator=g, dtype=D))
    est = AIS(num_chains=100, num_betas=100)(bm)
    # failure rate < 1e-6 (5 standard errors), see above
    assert abs(float(est.log_z - Exact()(bm).log_z)) < 5 * float(est.stderr) + 0.02
    W, b, c = _rbm_params(4, 5, scale=0.4)
    gb = GaussianBernoulliRBM(W, b, c, torch.full((4,), 0.8, dtype=D))
    est = AIS(num_chains=100, num_betas=100)(gb)
    assert abs(float(est.log_z - Exact()(gb).log_z)) < 5 * float(est.stderr) + 0.02


def test_ais_bad_arguments():
    with pytest.raises(ValueError, match="num_chains must be"):
        AIS(num_chains=1)
    with pytest.raises(ValueError, match="betas must start at 0 and end at 1"):
        AIS(betas=torch.tensor([0.0, 0.5, 0.9]))
    with pytest.raises(ValueError, match="betas must be non-decreasing"):
        SMC(betas=torch.tensor([0.0, 0.5, 0.4, 1.0]))
    with pytest.raises(TypeError, match="base must be None"):
        AIS(num_chains=4, num_betas=5, base="uniform")(RBM(*_rbm_params(4, 3)))


def test_smc_normalizer_value_kind_and_gradient():
    """SMC (adaptive schedule) on a small RBM: value within 5 genealogy standard errors of the
    exact log Z (failure rate ~6e-7 if the asymptotic stderr holds), kind "smc_estimate",
    deterministic for a seed, and a gradient (the weighted-particle surrogate) that flows."""
    W, b, c = _rbm_params(6, 4)
    W.requires_grad_(True)
    d = RBM(W, b, c, normalizer=SMC(num_chains=400, seed=3))
    est = d.log_normalizer()
    assert est.kind == "smc_estimate"
    exact = Exact()(RBM(W.detach(), b, c)).log_z
    assert abs(float(est.log_z.detach() - exact)) < 5 * float(est.stderr)
    assert float(d.normalizer(d).log_z.detach()) == float(est.log_z.detach())
    est.log_z.backward()
    assert W.grad is not None and torch.isfinite(W.grad).all()


# ------------------------------------------------------------------------------ PCD / CD values
def test_pcd_value_is_refreshed_on_schedule_and_flagged_stale():
    d = RBM(*_rbm_params(5, 3))
    pcd = PCD(num_chains=20, num_steps=1, refresh_every=3)
    kinds = [pcd(d).kind for _ in range(7)]
    assert kinds == ["exact", "stale_exact", "stale_exact"] * 2 + ["exact"]
    est = pcd(d)
    assert est.stale and est.info["calls_since_refresh"] == 1
    torch.testing.assert_close(est.log_z, Exact()(d).log_z)
    assert pcd.chains.shape == (20, 5)
    # an AIS estimator gives "stale_ais_estimate" with its standard error
    pcd = PCD(num_chains=5, estimator=AIS(num_chains=10, num_betas=20), refresh_every=10)
    pcd(d)
    est = pcd(d)
    assert est.kind == "stale_ais_estimate" and est.stderr is not None
    pcd.reset()
    assert pcd.chains is None and pcd(d).kind == "ais_estimate"


def test_refresh_every_none_is_every_100_calls_unless_a_trainer_schedules_it():
    d = RBM(*_rbm_params(5, 3))
    for norm in (PCD(num_chains=4, refresh_every=None), CD(refresh_every=None)):
        x = (torch.rand(4, 5) < 0.5).to(d.dtype)
        call = (lambda n=norm: n(d)) if isinstance(norm, PCD) else (lambda n=norm, x=x: n(d, x))
        kinds = [call().kind for _ in range(101)]
        assert kinds[0] == "exact" and kinds[100] == "exact"
        assert set(kinds[1:100]) == {"stale_exact"}
        norm.schedule_refreshes(True)  # a trainer's schedule: only requests refresh
        assert {call().kind for _ in range(150)} == {"stale_exact"}
        norm.request_refresh()
        assert [call().kind for _ in range(2)] == ["exact", "stale_exact"]
        norm.schedule_refreshes(False)
    with pytest.raises(ValueError, match="refresh_every must be"):
        PCD(refresh_every=0)


def test_pcd_cd_bad_arguments():
    d = RBM(*_rbm_params(5, 3))
    with pytest.raises(ValueError, match="CD needs the data"):
        CD()(d)
    with pytest.raises(TypeError, match="estimator must be"):
        PCD(estimator="ais")
    with pytest.raises(ValueError, match="num_steps must be"):
        CD(num_steps=0)
    with pytest.raises(ValueError, match="init must"):
        PCD(num_chains=4, init=torch.zeros(3, 5, dtype=D))(d)


def test_pcd_chains_follow_parameter_batch_not_data_plate():
    W, b, c = _rbm_params(5, 3)
    pcd = PCD(num_chains=7)
    d = RBM(W, b, c, normalizer=pcd).expand((40,))
    lp = d.log_prob(torch.zeros(40, 5, dtype=D))
    assert lp.shape == (40,) and pcd.chains.shape == (7, 5)


# ------------------------------------------------------------------------------ gradients in
# expectation (statistical)
def _exact_log_z_grad(W, b, c):
    W, b, c = (t.detach().clone().requires_grad_() for t in (W, b, c))
    (g := torch.autograd.grad(Exact()(RBM(W, b, c)).log_z, (W, b, c)))
    return torch.cat([t.flatten() for t in g])


def _surrogate_grad(normalizer, W, b, c, value=None):
    W, b, c = (t.detach().clone().requires_grad_() for t in (W, b, c))
    d = RBM(W, b, c)
    g = torch.autograd.grad(normalizer(d, value=value).log_z, (W, b, c))
    return torch.cat([t.flatten() for t in g])


def _assert_mean_matches(samples, target, z_max):
    mean = samples.mean(0)
    se = samples.std(0) / math.sqrt(samples.shape[0])
    z = (mean - target) / se.clamp_min(1e-12)
    assert z.abs().max() < z_max, f"max |z| = {float(z.abs().max()):.2f}"


@pytest.mark.parametrize("which", ["pcd", "cd"])
def test_pcd_cd_surrogate_gradients_match_exact_in_expectation(which):
    # Chains started from exact model samples stay exactly distributed after any number of Gibbs
    # steps, so the PCD gradient and the CD-k gradient at model-distributed data are unbiased
    # for grad log Z. 300 independent repetitions; 4.5 sigma on each of the 24 coordinates:
    # failure rate <= 24 * 6.8e-6 = 1.6e-4 (normal approximation of the mean).
    torch.manual_seed(0)
    W, b, c = _rbm_params(4, 3)
    exact = _exact_log_z_grad(W, b, c)
    d = RBM(W, b, c)
    reps = []
    for _ in range(300):
        start = d.sample((20,))
        if which == "pcd":
            norm = PCD(num_chains=20, num_steps=2, init=start)
            reps.append(_surrogate_grad(norm, W, b, c))
        else:
            reps.append(_surrogate_grad(CD(num_steps=1), W, b, c, value=start))
    _assert_mean_matches(torch.stack(reps), exact, 4.5)


def _fused_log_z_grad(normalizer, W, b, c, x):
    """-(gradient of the fused RBM.log_prob(x).mean() minus that of -F(x).mean()): the
    fused path's estimate of grad log Z."""
    W, b, c = (t.detach().clone().requires_grad_() for t in (W, b, c))
    d = RBM(W, b, c, normalizer=normalizer).expand((x.shape[0],))
    g_lp = torch.autograd.grad(d.log_prob(x).mean(), (W, b, c))
    g_f = torch.autograd.grad(d.unnormalized_log_prob(x).mean(), (W, b, c))
    assert d.last_log_z.info["fused"]
    return torch.cat([(f - lp).flatten() for lp, f in zip(g_lp, g_f)])


def test_fused_rbm_log_prob_matches_generic_value_and_surrogate_gradient():
    # deterministic: the fused autograd function gives the value and the gradient of
    # -F(x) - (log Z + s - stop_grad(s)) with s the mean -F over the negative rows
    from pyrogen.distributions.boltzmann import _ContrastiveLogProb

    W, b, c = _rbm_params(6, 4, requires_grad=True)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(7, 6, generator=g, dtype=D) < 0.5).to(D)
    neg = (torch.rand(5, 6, generator=g, dtype=D) < 0.5).to(D)
    up = torch.randn(7, generator=g, dtype=D)
    d = RBM(W, b, c)
    s = d.unnormalized_log_prob(neg).mean()
    ref = d.unnormalized_log_prob(x) - (1.5 + s - s.detach())
    vv = torch.cat([x, neg])
    sig = torch.sigmoid(vv @ W.detach() + c.detach())
    lz = torch.tensor(1.5, dtype=D)
    out = _ContrastiveLogProb.apply(W, b, c, vv, sig, d.unnormalized_log_prob(x).detach(), lz)
    torch.testing.assert_close(out, ref.detach())
    for a, e in zip(
        torch.autograd.grad((out * up).sum(), (W, b, c)),
        torch.autograd.grad((ref * up).sum(), (W, b, c)),
    ):
        torch.testing.assert_close(a, e)
    # through log_prob: same value as Exact (the PCD/CD value is the refreshed exact log Z)
    for norm in (PCD(num_chains=5, num_steps=2), CD(num_steps=2)):
        lp = RBM(W, b, c, normalizer=norm).expand((7,)).log_prob(x)
        torch.testing.assert_close(lp.detach(), RBM(W, b, c).log_prob(x).detach())
    # the PCD state after a fused step: visible chains and their hidden draws
    pcd = PCD(num_chains=5)
    RBM(W, b, c, normalizer=pcd).expand((7,)).log_prob(x)
    assert pcd.chains.shape == (5, 6) and pcd.hidden is None
    pcd = PCD(num_chains=5, reuse_hidden=True)
    RBM(W, b, c, normalizer=pcd).expand((7,)).log_prob(x)
    assert pcd.chains.shape == (5, 6) and pcd.hidden.shape == (5, 4)
    pcd(RBM(W, b, c))  # the generic path drops the hidden state
    assert pcd.hidden is None
    with pytest.raises(TypeError, match="fused must be a bool"):
        CD(fused=1)
    with pytest.raises(TypeError, match="reuse_hidden must be a bool"):
        PCD(reuse_hidden="yes")


@pytest.mark.parametrize("which", ["pcd", "pcd-reuse-hidden", "cd", "cd-2"])
def test_fused_pcd_cd_gradients_match_exact_in_expectation(which):
    # As test_pcd_cd_surrogate_gradients_match_exact_in_expectation, through the fused
    # RBM.log_prob path: chains (PCD) or data (CD) drawn exactly from the model stay exactly
    # distributed, so the fused estimate of grad log Z is unbiased. 300 repetitions, 4.5 sigma
    # on each of 24 coordinates: failure rate <= 24 * 6.8e-6 = 1.6e-4 per case.
    torch.manual_seed(3)
    W, b, c = _rbm_params(4, 3)
    exact = _exact_log_z_grad(W, b, c)
    d = RBM(W, b, c)
    reps = []
    for _ in range(300):
        start = d.sample((20,))
        if which.startswith("pcd"):
            norm = PCD(num_chains=20, num_steps=2, init=start, reuse_hidden=which != "pcd")
            x = torch.zeros(3, 4, dtype=D)
            if which != "pcd":  # a first call draws the hidden state, the second reuses it
                _fused_log_z_grad(norm, W, b, c, x)
            reps.append(_fused_log_z_grad(norm, W, b, c, x))
        else:
            norm = CD(num_steps=2 if which == "cd-2" else 1)
            reps.append(_fused_log_z_grad(norm, W, b, c, start))
    _assert_mean_matches(torch.stack(reps), exact, 4.5)


def test_pcd_gradient_from_any_start_converges():
    # PCD from the uniform base: after burn-in the chains are model samples; average of
    # 200 successive calls (correlated, so compared with a loose absolute tolerance)
    torch.manual_seed(1)
    W, b, c = _rbm_params(4, 3)
    exact = _exact_log_z_grad(W, b, c)
    pcd = PCD(num_chains=200, num_steps=1)
    for _ in range(50):
        _surrogate_grad(pcd, W, b, c)
    g = torch.stack([_surrogate_grad(pcd, W, b, c) for _ in range(200)]).mean(0)
    torch.testing.assert_close(g, exact, atol=0.03, rtol=0)


def test_ais_surrogate_gradient_matches_exact():
    # the self-normalized AIS gradient is consistent (bias O(1/num_chains)); 60 repetitions,
    # 4.5 sigma on 24 coordinates plus an allowance of 0.02 for the O(1/S) bias:
    # failure rate <= 1.6e-4
    torch.manual_seed(2)
    W, b, c = _rbm_params(4, 3)
    exact = _exact_log_z_grad(W, b, c)
    reps = torch.stack(
        [_surrogate_grad(AIS(num_chains=50, num_betas=20), W, b, c) for _ in range(60)]
    )
    mean, se = reps.mean(0), reps.std(0) / math.sqrt(60)
    assert ((mean - exact).abs() < 4.5 * se + 0.02).all()


# ------------------------------------------------------------------------------ SVI training
def _train(x, normalizer, steps, seed=0, lr=0.05, nh=3):
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    nv = x.shape[1]
    W0 = 0.01 * torch.randn(nv, nh, dtype=D, generator=torch.Generator().manual_seed(seed))

    def model(x):
        W = pyro.param("W", W0.clone())
        b = pyro.param("b", torch.zeros(nv, dtype=D))
        c = pyro.param("c", torch.zeros(nh, dtype=D))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", RBM(W, b, c, normalizer=normalizer), obs=x)

    svi = SVI(model, lambda x: None, pyro.optim.ClippedAdam({"lr": lr, "lrd": 0.995}), Trace_ELBO())
    for _ in range(steps):
        svi.step(x)
    W, b, c = (pyro.param(k).detach() for k in "Wbc")
    return float(RBM(W, b, c).log_prob(x).mean())


def _training_data(nv, n, seed, flip=0.2):
    """Noisy copies of two complementary prototypes (strongly correlated binary data)."""
    g = torch.Generator().manual_seed(seed)
    proto = (torch.arange(nv) < nv // 2).to(D)
    which = torch.randint(0, 2, (n, 1), generator=g).to(D)
    clean = which * proto + (1 - which) * (1 - proto)
    flips = (torch.rand(n, nv, generator=g, dtype=D) < flip).to(D)
    return (clean + flips) % 2


def test_svi_with_pcd_reaches_exact_gradient_log_likelihood():
    # tiny default version: 5 visible, 3 hidden, 200 examples, 300 steps
    x = _training_data(5, 200, seed=0)
    ll_exact = _train(x, Exact(), 300)
    ll_pcd = _train(x, PCD(num_chains=100, num_steps=1), 300)
    assert ll_pcd > ll_exact - 0.05, (ll_pcd, ll_exact)


@pytest.mark.slow
def test_svi_with_pcd_and_cd_reach_exact_gradient_log_likelihood_larger():
    x = _training_data(10, 1000, seed=1)
    ll_exact = _train(x, Exact(), 1000, nh=6)
    ll_pcd = _train(x, PCD(num_chains=200, num_steps=1), 1000, nh=6)
    ll_cd = _train(x, CD(num_steps=5), 1000, nh=6)
    assert ll_pcd > ll_exact - 0.05, (ll_pcd, ll_exact)
    assert ll_cd > ll_exact - 0.1, (ll_cd, ll_exact)


def test_bayesian_rbm_priors_with_a_guide():
    # priors on the weights, AutoNormal guide over them, PCD for log Z inside the ELBO
    x = _training_data(5, 100, seed=2)
    pcd = PCD(num_chains=50)

    def model(x):
        W = pyro.sample("W", pdist.Normal(torch.zeros(5, 3, dtype=D), 1.0).to_event(2))
        b = pyro.sample("b", pdist.Normal(torch.zeros(5, dtype=D), 1.0).to_event(1))
        c = pyro.sample("c", pdist.Normal(torch.zeros(3, dtype=D), 1.0).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", RBM(W, b, c, normalizer=pcd), obs=x)

    guide = AutoNormal(model, init_scale=0.01)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(200):
        svi.step(x)
    med = guide.median()
    fitted = float(RBM(med["W"], med["b"], med["c"]).log_prob(x).mean())
    start = float(RBM(*(torch.zeros(s, dtype=D) for s in [(5, 3), (5,), (3,)])).log_prob(x).mean())
    assert fitted > start + 0.1, (fitted, start)
    # the guide learned a posterior scale for every weight
    assert pyro.param("AutoNormal.scales.W").shape == (5, 3)


# ------------------------------------------------------------------------------ MCMC
def _bm_data(U, b, n, seed):
    torch.manual_seed(seed)
    return BoltzmannMachine(U, b).sample((n,))


def _bm_model(n_units, normalizer):
    iu = torch.triu_indices(n_units, n_units, 1)

    def model(x):
        u = pyro.sample("u", pdist.Normal(torch.zeros(iu.shape[1], dtype=D), 1.0).to_event(1))
        b = pyro.sample("b", pdist.Normal(torch.zeros(n_units, dtype=D), 1.0).to_event(1))
        U = torch.zeros(n_units, n_units, dtype=D).index_put((iu[0], iu[1]), u)
        U = U + U.T
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", BoltzmannMachine(U, b, normalizer=normalizer), obs=x)

    return model, iu


def _bm_truth(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=D)
    U = (A + A.T) / 2 * (1 - torch.eye(n, dtype=D))
    b = 0.5 * torch.randn(n, generator=g, dtype=D)
    return U, b


@pytest.mark.parametrize(
    "n,num_data,warmup,samples",
    [
        (3, 800, 30, 40),
        pytest.param(6, 3000, 200, 300, marks=pytest.mark.slow),
    ],
)
def test_nuts_over_boltzmann_machine_parameters_with_exact_recovers_couplings(
    n, num_data, warmup, samples
):
    # a doubly-intractable posterior made exact by enumeration
    U, b = _bm_truth(n)
    x = _bm_data(U, b, num_data, seed=1)
    model, iu = _bm_model(n, Exact())
    pyro.set_rng_seed(2)
    kernel = NUTS(model, max_tree_depth=5)
    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
    mcmc.run(x)
    u = mcmc.get_samples()["u"]
    true_u = U[iu[0], iu[1]]
    post_mean, post_sd = u.mean(0), u.std(0)
    # each coupling within 4 posterior sds (+0.05 for the Monte Carlo error of the mean) of the
    # truth: failure rate ~ n(n-1)/2 * 6e-5 under a normal posterior
    assert ((post_mean - true_u).abs() < 4 * post_sd + 0.05).all(), (post_mean, true_u)
    assert (post_sd < 0.3).all()


@pytest.mark.slow
def test_nuts_over_boltzmann_machine_parameters_with_ais_approximation():
    # AIS with a fixed seed is a deterministic function of the parameters, so NUTS targets a
    # well-defined *approximate* posterior. Two documented costs: (1) bias: log Z_AIS <= log Z
    # on average (Jensen), so each example's likelihood is biased upward by about
    # var(log Z_AIS)/2; (2) roughness: the seeded estimate jumps by ~stderr when a Gibbs
    # decision flips, and the potential jumps by n * stderr. So this needs stderr << 1/n: few
    # data (n = 100) and many cheap chains; the posterior is then close to the exact one.
    n = 3
    U, b = _bm_truth(n)
    x = _bm_data(U, b, 100, seed=1)
    model, iu = _bm_model(n, AIS(num_chains=4000, num_betas=10, seed=0))
    exact_model, _ = _bm_model(n, Exact())
    out = {}
    for name, m in [("ais", model), ("exact", exact_model)]:
        pyro.set_rng_seed(2)
        mcmc = MCMC(
            NUTS(m, max_tree_depth=4), num_samples=100, warmup_steps=100, disable_progbar=True
        )
        mcmc.run(x)
        out[name] = mcmc.get_samples()["u"]
    true_u = U[iu[0], iu[1]]
    u, ue = out["ais"], out["exact"]
    # the AIS posterior mean is within 0.5 exact-posterior sds (+ Monte Carlo slack) of the
    # exact posterior mean, and both cover the truth
    assert ((u.mean(0) - ue.mean(0)).abs() < 0.5 * ue.std(0) + 0.1).all(), (u.mean(0), ue.mean(0))
    assert ((ue.mean(0) - true_u).abs() < 4 * ue.std(0) + 0.05).all()


def test_nuts_denoising_under_gaussian_bernoulli_rbm_prior_with_arviz():
    import arviz as az

    W, b, c = _rbm_params(3, 4, scale=0.8, seed=7)
    sigma = torch.full((3,), 0.7, dtype=D)
    prior = GaussianBernoulliRBM(W, b, c, sigma)
    torch.manual_seed(3)
    x_true = prior.sample()
    noise = 0.3
    y = x_true + noise * torch.randn(3, dtype=D)

    def model(y):
        x = pyro.sample("x", GaussianBernoulliRBM(W, b, c, sigma))
        pyro.sample("y", pdist.Normal(x, noise).to_event(1), obs=y)

    pyro.set_rng_seed(4)
    kernel = NUTS(model, max_tree_depth=3)
    mcmc = MCMC(kernel, num_samples=120, warmup_steps=40, disable_progbar=True)
    mcmc.run(y)
    xs = mcmc.get_samples()["x"]
    # exact posterior mean by quadrature-free enumeration: given h, x|h,y is Gaussian
    hs = enumerate_binary_states(4, dtype=D)
    m = b + hs @ W.T
    prec = 1 / sigma**2 + 1 / noise**2
    post_mean_h = (m / sigma**2 + y / noise**2) / prec
    # log p(h, y) = log p(h) + log N(y; m, sigma^2 + noise^2)
    log_ph = prior._hidden_marginal_logits(hs)
    log_py_h = pdist.Normal(m, (sigma**2 + noise**2).sqrt()).log_prob(y).sum(-1)
    wts = torch.softmax(log_ph + log_py_h, 0)
    exact_mean = (wts.unsqueeze(-1) * post_mean_h).sum(0)
    idata = az.from_pyro(mcmc)
    ess = az.ess(idata)["x"].values
    assert (ess > 30).all(), ess
    se = xs.std(0) / torch.as_tensor(ess, dtype=D).sqrt()
    # failure rate ~ 3 * 6.8e-6 (4.5 MCMC standard errors, ESS-based)
    assert ((xs.mean(0) - exact_mean).abs() < 4.5 * se).all(), (xs.mean(0), exact_mean)


def test_ais_reverse_raise_is_a_conservative_check():
    # RAISE from data: a stochastic lower bound, close to exact log p(x) with enough temperatures
    torch.manual_seed(5)
    W, b, c = _rbm_params(12, 10, scale=0.5)
    d = RBM(W, b, c)
    x = d.sample((20,))
    exact = d.log_prob(x)
    r = AIS(num_betas=200).reverse(d, x, num_chains=10)
    assert r.log_prob.shape == (20,)
    gap = float((r.log_prob - exact).mean())
    se = float((r.log_prob_stderr**2).sum().sqrt() / 20)
    # lower bound in expectation: gap below 5 se (+ slack); and not far off
    assert -0.3 < gap < 5 * se + 0.02, (gap, se)
    # also on a Boltzmann machine path (reverse sweep order)
    g = torch.Generator().manual_seed(1)
    A = 0.3 * torch.randn(6, 6, generator=g, dtype=D)
    bm = BoltzmannMachine((A + A.T) / 2 * (1 - torch.eye(6, dtype=D)), torch.zeros(6, dtype=D))
    xb = bm.sample((10,))
    rb = AIS(num_betas=100).reverse(bm, xb, num_chains=10)
    assert (rb.log_prob - bm.log_prob(xb)).mean().abs() < 0.3
