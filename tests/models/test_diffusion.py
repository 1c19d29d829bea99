"""Diffusion inversion (pyrogen/models/diffusion.py): the bound against exact answers.

Binomial diffusion (``BinomialDiffusion``): on D = 3 bits and T = 3 steps the reverse chain's
marginal p(x_0) and the ELBO are computed exactly by summing over all 2^D states and all forward
paths.

Exact answers used: (i) the forward chain's marginals :math:`q(x_t \\mid x_0)` (closed form);
(ii) with an affine noise network (``hidden_dims=()``) the reverse chain is linear-Gaussian,
so :math:`\\log p_\\theta(x_0)` is exact by propagating means and covariances; (iii) on a 1-D
two-component Gaussian mixture the data density is known, and :math:`\\mathbb E_{data}\\log
p_\\theta(x) \\le \\mathbb E_{data} \\log p_{data}(x)` (Gibbs' inequality).

Statistical tests use float64, fixed seeds and tolerances of 4-5 standard errors; the failure
rate of each comparison under the null is stated where it is made.
"""

import math

import pyro
import pyro.infer
import pyro.poutine as poutine
import pytest
import torch

from pyrogen.evaluation import LogLikelihood
from pyrogen.models import DiffusionModel
from pyrogen.models.diffusion import diffusion_schedule


@pytest.fixture(autouse=True)
def _clean():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


def _mixture(n, seed):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 2, (n,), generator=g).double() * 2 - 1
    return (c + 0.3 * torch.randn(n, generator=g, dtype=torch.float64))[:, None]


def _mixture_log_prob(x):
    comps = torch.stack([torch.distributions.Normal(m, 0.3).log_prob(x[:, 0]) for m in (-1.0, 1.0)])
    return torch.logsumexp(comps, 0) - math.log(2)


@torch.no_grad()
def _exact_log_marginal(model: DiffusionModel, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x_0) of a diffusion model whose reverse mean is affine in x_t: propagate
    x_T ~ N(0, I), x_{t-1} = A_t x_t + c_t + sigma_t eps."""
    d = model.n_features
    mean = torch.zeros(d, dtype=torch.float64)
    cov = torch.eye(d, dtype=torch.float64)
    var = model.reverse_variances.double()
    eye = torch.eye(d, dtype=torch.float64)
    for t in range(model.num_timesteps, 0, -1):
        c = model._reverse_mean(torch.zeros(1, d, dtype=torch.float64), t)[0]
        a = (model._reverse_mean(eye, t) - c).T  # column j = A e_j
        mean = a @ mean + c
        cov = a @ cov @ a.T + var[t - 1] * eye
    return torch.distributions.MultivariateNormal(mean, cov).log_prob(x)


# ------------------------------------------------------------------------------ schedule
def test_schedules_lie_in_open_unit_interval():
    for sched in ("cosine", "linear"):
        for t in (1, 5, 50, 1000):
            b = diffusion_schedule(sched, t)
            assert b.shape == (t,) and b.dtype == torch.float64
            assert ((b > 0) & (b < 1)).all()
    lin = diffusion_schedule("linear", 1000)
    torch.testing.assert_close(lin[[0, -1]], torch.tensor([1e-4, 0.02], dtype=torch.float64))
    assert diffusion_schedule([0.1, 0.2]).tolist() == [0.1, 0.2]
    m = DiffusionModel(2, schedule=[0.1, 0.5, 0.9], hidden_dims=(4,))
    assert m.num_timesteps == 3
    torch.testing.assert_close(m.alphas_cumprod.double(),
                               torch.tensor([0.9, 0.45, 0.045], dtype=torch.float64))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"schedule must hold floats in the open interval "
                                         r"\(0, 1\). Got 1.5 at position 1"):
        DiffusionModel(2, schedule=[0.1, 1.5])
    with pytest.raises(ValueError, match="open interval"):
        DiffusionModel(2, schedule=[0.0])
    with pytest.raises(ValueError, match="open interval"):
        DiffusionModel(2, schedule=[float("nan")])
    with pytest.raises(ValueError, match="beta_range must hold floats in the open interval"):
        DiffusionModel(2, schedule="linear", beta_range=(0.1, 1.0))
    with pytest.raises(ValueError, match="num_timesteps must be an int in the range"):
        DiffusionModel(2, num_timesteps=0)
    with pytest.raises(TypeError, match="num_timesteps must be an int"):
        DiffusionModel(2, num_timesteps=2.5)
    with pytest.raises(ValueError, match="num_timesteps must equal the length"):
        DiffusionModel(2, num_timesteps=3, schedule=[0.1, 0.2])
    with pytest.raises(ValueError, match="schedule must be one of"):
        DiffusionModel(2, schedule="quadratic")
    with pytest.raises(ValueError, match="beta_range is for schedule='linear' only"):
        DiffusionModel(2, beta_range=(0.1, 0.2))
    with pytest.raises(TypeError, match="hidden_dims must be a sequence"):
        DiffusionModel(2, hidden_dims=8)
    with pytest.raises(ValueError, match="hidden_dims entries must be an int"):
        DiffusionModel(2, hidden_dims=(8, 0))
    with pytest.raises(ValueError, match="reverse_variance must be one of"):
        DiffusionModel(2, reverse_variance="fixed")
    with pytest.raises(ValueError, match="n_features must be an int"):
        DiffusionModel(0)


def test_bad_data_and_arguments():
    m = DiffusionModel(2, num_timesteps=3, hidden_dims=(4,)).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="features"):
        m.elbo(torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="features"):
        m.fit(torch.randn(5, 3, dtype=torch.float64), progress=False)
    bad = x.clone()
    bad[1, 1] = float("nan")
    for fn in (m.elbo, m.elbo_terms, m.log_likelihood, m.transform):
        with pytest.raises(ValueError, match="x must be finite"):
            fn(bad)
    with pytest.raises(ValueError, match="loss must be one of"):
        m.fit(x, loss="l2", progress=False)
    with pytest.raises(ValueError, match="num_particles must be an int"):
        m.elbo(x, num_particles=1)
    with pytest.raises(ValueError, match="estimator must be one of"):
        m.elbo(x, estimator="iwae")
    with pytest.raises(ValueError, match="t must be an int in the range"):
        m.transform(x, t=4)
    with pytest.raises(ValueError, match="n must be"):
        m.sample_chain(0)


# ------------------------------------------------------------------------------ forward chain
@pytest.mark.parametrize("which", ["guide", "posterior_guide"])
def test_forward_chain_marginals_match_closed_form(which):
    """Both guides are q(x_{1:T} | x_0): marginal mean sqrt(abar_t) x_0, variance 1 - abar_t,
    lag-one covariance sqrt(alpha_t) (1 - abar_{t-1}). N = 40,000 paths; 5-se tolerances on 3 x
    2 x T x 3 = 90 statistics (two-sided normal tail 5.7e-7 each: failure rate < 1e-4)."""
    m = DiffusionModel(2, num_timesteps=5, hidden_dims=(4,)).double()
    x0 = torch.tensor([[1.5, -0.5], [0.0, 2.0], [-1.0, 0.3]], dtype=torch.float64)
    n = 40_000
    with torch.no_grad(), pyro.plate("particles", n, dim=-2):
        tr = poutine.trace(getattr(m, which)).get_trace(x0)
    abar = m.alphas_cumprod
    paths = {t: tr.nodes[f"x_{t}"]["value"] for t in range(1, 6)}
    paths[0] = x0.expand(n, 3, 2)
    for t in range(1, 6):
        xt = paths[t]
        assert xt.shape == (n, 3, 2)
        v = 1 - abar[t - 1]
        mean_err = xt.mean(0) - abar[t - 1].sqrt() * x0
        assert (mean_err.abs() < 5 * (v / n).sqrt()).all(), (t, mean_err)
        var_err = xt.var(0) - v
        assert (var_err.abs() < 5 * v * math.sqrt(2 / n)).all(), (t, var_err)
        if t >= 2:
            prev = paths[t - 1]
            cov = ((xt - xt.mean(0)) * (prev - prev.mean(0))).mean(0)
            want = (1 - m.betas[t - 1]).sqrt() * (1 - abar[t - 2])
            # se of a sample covariance <= sqrt(var_x var_y (1 + rho^2) / n) <= sqrt(2 var var / n)
            se = math.sqrt(2 * float(v * (1 - abar[t - 2])) / n)
            assert ((cov - want).abs() < 5 * se).all(), (t, cov, want)


# ------------------------------------------------------------------------------ the bound
def _perturb(m: DiffusionModel, scale: float, seed: int = 0) -> DiffusionModel:
    """Move an untrained model (exactly N(0, I)) away from N(0, I): random output layer and
    learned variances (the identities tested hold for any parameters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.eps_net.net[-1].parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
        v = m.log_reverse_variance
        v.add_(scale * torch.randn(v.shape, generator=g, dtype=v.dtype))
    return m


def test_untrained_model_is_standard_normal():
    """The zero output layer and the N(0, I)-optimal noise prediction make the untrained
    reverse chain the reversal of the forward chain for N(0, I) data: p_theta(x_0) = N(0, I),
    the posterior equals q, so every log-weight equals log N(x; 0, I) (zero variance)."""
    m = DiffusionModel(2, num_timesteps=6, hidden_dims=(8,)).double()
    x = torch.tensor([[0.5, -1.0], [2.0, 0.3]], dtype=torch.float64)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1).double()
    torch.testing.assert_close(_exact_log_marginal(m, x), ref)
    ll = m.log_likelihood(x, num_particles=50)
    torch.testing.assert_close(ll.values, ref)
    assert float(ll.stderr.max()) < 1e-6
    tr = m.elbo(x, num_particles=50, estimator="trace")
    torch.testing.assert_close(tr.values, ref)


def test_closed_form_elbo_equals_trace_elbo_in_expectation():
    """Three estimators of one ELBO: the closed-form KL decomposition, the log-weight along
    forward paths (what Trace_ELBO averages on model/guide), and Pyro's own Trace_ELBO and
    TraceMeanField_ELBO (posterior_guide, analytic KL). 4,000 draws each; differences within
    4.5 combined se (two-sided 6.8e-6 per comparison; 5 comparisons per example-set)."""
    m = _perturb(DiffusionModel(2, schedule=[0.1, 0.2, 0.3, 0.4, 0.5], hidden_dims=(8,),
                                seed=1).double(), 0.3)
    x = torch.tensor([[0.5, -1.0], [1.2, 0.3], [-0.7, 0.9]], dtype=torch.float64)
    k = 4000
    cf = m.elbo(x, num_particles=k, estimator="closed_form")
    tr = m.elbo(x, num_particles=k, estimator="trace")
    assert cf.kind == tr.kind == "elbo" and cf.bound == "lower"
    diff = cf.values - tr.values
    se = (cf.stderr**2 + tr.stderr**2).sqrt()
    assert (diff.abs() < 4.5 * se).all(), (cf.values, tr.values, se)
    # Pyro's own estimators of the summed ELBO, vectorized particles
    total_cf, total_se = float(cf.values.sum()), float((cf.stderr**2).sum().sqrt())
    for loss, guide in [
        (pyro.infer.Trace_ELBO, m.guide),
        (pyro.infer.TraceMeanField_ELBO, m.posterior_guide),
    ]:
        draws = torch.tensor([
            -loss(num_particles=200, vectorize_particles=True, max_plate_nesting=1).loss(
                m.model, guide, x)
            for _ in range(20)
        ], dtype=torch.float64)
        se = math.sqrt(total_se**2 + float(draws.var()) / len(draws))
        assert abs(float(draws.mean()) - total_cf) < 4.5 * se, (loss, draws.mean(), total_cf)


def test_elbo_below_exact_and_importance_sampling_converges():
    """Affine noise network: p_theta(x_0) is Gaussian, log p exact. Per example, the ELBO is
    below it (one-sided 4-se slack: failure rate 3e-5 each), the IS estimate with K = 20,000
    matches it within 4 se + 0.01 nats, and the IS gap shrinks with K (K = 1, 10, 1000)."""
    m = _perturb(DiffusionModel(1, schedule=[0.2, 0.3, 0.4, 0.5], hidden_dims=(), seed=2).double(),
                 0.3)
    x = torch.linspace(-2.5, 2.5, 8, dtype=torch.float64)[:, None]
    exact = _exact_log_marginal(m, x)
    elbo = m.elbo(x, num_particles=4000)
    assert (elbo.values <= exact + 4 * elbo.stderr).all()
    assert float((exact - elbo.values).mean()) > 0.5  # the bound is not tight here
    ll = m.log_likelihood(x, num_particles=20_000, chunk=5000)
    assert isinstance(ll, LogLikelihood) and ll.kind == "is_estimate" and ll.bound == "lower"
    assert ((ll.values - exact).abs() < 4 * ll.stderr + 0.01).all(), (ll.values, exact)
    gaps = []
    for k in (1, 10, 1000):
        reps = torch.stack([m.log_likelihood(x, num_particles=k).values for _ in range(5)])
        gaps.append(float((exact - reps.mean(0)).mean()))
    assert gaps[0] > gaps[1] > gaps[2] > -0.02, gaps


def test_bounds_on_a_gaussian_mixture():
    """1-D mixture 0.5 N(-1, 0.3^2) + 0.5 N(1, 0.3^2), exact log p_data known. After a short
    fit: mean ELBO <= mean IS estimate (+3 se) and, paired per test point, mean IS - exact
    log p_data <= 3 se of the paired mean (Gibbs: E log p_theta <= E log p_data; one-sided
    1.3e-3). A sanity floor: the fitted model is not worse than 1.5 nats below the data."""
    x_train, x_test = _mixture(300, 0), _mixture(200, 1)
    m = DiffusionModel(1, num_timesteps=10, hidden_dims=(32, 32), seed=0).double()
    hist = m.fit(x_train, num_steps=100, lr=1e-2, tol=None, progress=False, seed=0)
    assert all(math.isfinite(v) for v in hist.losses)
    exact = _mixture_log_prob(x_test)
    elbo = m.elbo(x_test, num_particles=50)
    ll = m.log_likelihood(x_test, num_particles=500)
    assert elbo.mean() <= ll.mean() + 3 * math.hypot(elbo.mean_stderr(), ll.mean_stderr())
    d = ll.values - exact
    assert float(d.mean()) <= 3 * float(d.std()) / math.sqrt(len(d)) + 3 * ll.mean_stderr()
    assert ll.mean() > float(exact.mean()) - 1.5


# ------------------------------------------------------------------------------ sampling
def test_predictive_and_sample_shapes():
    m = DiffusionModel(3, num_timesteps=4, hidden_dims=(8,)).double()
    out = pyro.infer.Predictive(m.model, num_samples=5)(None, 7)
    assert set(out) >= {f"x_{t}" for t in range(5)}
    for t in range(5):
        assert out[f"x_{t}"].shape == (5, 7, 3)
    x = torch.randn(6, 3, dtype=torch.float64)
    post = pyro.infer.Predictive(m.model, guide=m.guide, num_samples=2,
                                 return_sites=["x_1", "x_4"])(x)
    assert post["x_1"].shape == (2, 6, 3)
    assert m.sample(11).shape == (11, 3)
    chain = m.sample_chain(4)
    assert chain.shape == (5, 4, 3) and torch.isfinite(chain).all()
    torch.testing.assert_close(m.transform(x), m.alphas_cumprod[-1].sqrt() * x)
    torch.testing.assert_close(m.transform(x, t=0), x)


def _flat_grad(loss, m):
    params = [p for p in m.parameters() if p.requires_grad]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])


def test_gradient_estimators_agree_under_subsampling():
    """The three training objectives have the same gradient in expectation, on a minibatch of
    5 of N = 40 rows (the data plate scaled by N/B). 30 independent draws of 200 vectorized
    particles each; every coordinate within 5 combined se (t with 29 df: 2.4e-5 per
    coordinate, 33 parameters x 2 comparisons: failure rate < 0.2%)."""
    m = _perturb(DiffusionModel(1, schedule=[0.2, 0.3, 0.4, 0.5], hidden_dims=(4,),
                                time_embedding_dim=4, seed=3).double(), 0.3)
    xb = _mixture(5, 4)
    pyro.set_rng_seed(1)
    losses = {
        "closed_form": lambda: -m._terms(xb.expand(200, 5, 1)).sum(-1).mean(0).sum() * 8,
        "elbo": lambda: pyro.infer.Trace_ELBO(
            num_particles=200, vectorize_particles=True, max_plate_nesting=1
        ).differentiable_loss(m.model, m.guide, xb, num_data=40),
        "analytic_kl": lambda: pyro.infer.TraceMeanField_ELBO(
            num_particles=200, vectorize_particles=True, max_plate_nesting=1
        ).differentiable_loss(m.model, m.posterior_guide, xb, num_data=40),
    }
    # the Pyro form of the closed-form objective is the same number
    pyro.set_rng_seed(2)
    a = pyro.infer.Trace_ELBO(max_plate_nesting=1).differentiable_loss(
        m._closed_form_model, m._empty_guide, xb, num_data=40)
    pyro.set_rng_seed(2)
    torch.testing.assert_close(a, -m._terms(xb).sum() * 8)
    draws = {k: torch.stack([_flat_grad(f(), m) for _ in range(30)]) for k, f in losses.items()}
    ref = draws["closed_form"]
    for k in ("elbo", "analytic_kl"):
        se = (ref.var(0) / 30 + draws[k].var(0) / 30).sqrt()
        diff = (ref.mean(0) - draws[k].mean(0)).abs()
        assert (diff <= 5 * se + 1e-9).all(), (k, diff / se)


@pytest.mark.parametrize("loss", ["closed_form", "analytic_kl", "elbo"])
def test_every_loss_fits(loss):
    """Each estimator of the bound runs through fit, with the loss labelled, and no warning
    (TraceMeanField_ELBO accepts posterior_guide's site order)."""
    x = _mixture(60, 3)
    m = DiffusionModel(1, num_timesteps=5, hidden_dims=(8,), seed=0).double()
    hist = m.fit(x, num_steps=10, lr=1e-2, tol=None, progress=False, seed=0, loss=loss,
                 batch_size=20)
    assert "negative ELBO" in hist.info["loss"] and len(hist.losses) == 10
    assert all(math.isfinite(v) for v in hist.losses)
    hist = m.fit(x, num_steps=3, tol=None, progress=False, loss=pyro.infer.Trace_ELBO())
    assert "Trace_ELBO" in hist.info["loss"]


def test_simple_loss_is_labelled_not_a_bound_and_keeps_variances():
    """Ho et al.'s L_simple: the recorded loss is the squared error (labelled not a bound), the
    variances get no gradient, and the factor is minus the per-example noise-prediction error."""
    x = _mixture(60, 5)
    m = DiffusionModel(1, num_timesteps=5, hidden_dims=(8,), seed=0).double()
    v0 = m.reverse_variances.detach().clone()
    hist = m.fit(x, num_steps=5, lr=1e-2, tol=None, progress=False, seed=0, loss="simple")
    assert "not a bound" in hist.info["loss"]
    torch.testing.assert_close(m.reverse_variances.detach(), v0)
    pyro.set_rng_seed(3)
    tr = poutine.trace(m._simple_model).get_trace(x)
    pyro.set_rng_seed(3)
    xt, noise, t = m._noised(x)
    want = -((noise - m._eps(xt, t)) ** 2).sum(-1).sum(0)
    torch.testing.assert_close(tr.nodes["simple_loss"]["fn"].log_factor, want)



# ============================================================================== binomial diffusion
def _binomial(D=3, betas=(0.2, 0.45, 0.7), scale=0.7, seed=0, base_rate=0.5):
    from pyrogen.models.diffusion import BinomialDiffusion

    m = BinomialDiffusion(D, schedule=list(betas), base_rate=base_rate, hidden_dims=(8,),
                          time_embedding_dim=4, seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a non-trivial reverse chain (the output layer starts at zero)
        for p in m.net.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return m


def _states(D):
    import itertools

    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=torch.float64)


def _bern_log_prob(probs_or_logits, x, logits=False):
    d = (torch.distributions.Bernoulli(logits=probs_or_logits) if logits
         else torch.distributions.Bernoulli(probs=probs_or_logits))
    return d.log_prob(x).sum(-1)


@torch.no_grad()
def _exact_binomial(m, X):
    """Exact log p(x_0) (forward algorithm over the 2^D states of the reverse chain) and the
    exact ELBO E_q[log p(x_{0:T}) - log q(x_{1:T} | x_0)] (sum over every forward path)."""
    import itertools

    S = _states(m.n_features)
    ns, T = S.shape[0], m.num_timesteps
    # trans[t][i, j] = log p(x_{t-1} = S_j | x_t = S_i)
    # fwd[t][i, j] = log q(x_t = S_j | x_{t-1} = S_i)
    trans = {t: _bern_log_prob(m.reverse_logits(S, t)[:, None, :], S[None], logits=True)
             for t in range(1, T + 1)}
    fwd = {t: _bern_log_prob(m._step_probs(S, t)[:, None, :], S[None]) for t in range(1, T + 1)}
    log_pt = _bern_log_prob(m.base_rate, S)  # p(x_T)
    for t in range(T, 0, -1):
        log_pt = torch.logsumexp(log_pt[:, None] + trans[t], 0)
    idx = [int(sum(int(v) << (len(x) - 1 - k) for k, v in enumerate(x.tolist()))) for x in X]
    exact = log_pt[idx]
    elbos = []
    prior = _bern_log_prob(m.base_rate, S)
    for i0 in idx:
        total = 0.0
        for path in itertools.product(range(ns), repeat=T):  # (x_1, ..., x_T)
            states = (i0, *path)
            lq = sum(fwd[t][states[t - 1], states[t]] for t in range(1, T + 1))
            lp = prior[states[T]] + sum(trans[t][states[t], states[t - 1]]
                                        for t in range(1, T + 1))
            total = total + lq.exp() * (lp - lq)
        elbos.append(total)
    return exact, torch.stack(elbos)


def test_binomial_forward_marginals_match_closed_form():
    """q(x_t = 1 | x_0) = abar_t x_0 + (1 - abar_t) pi: exactly (2x2 kernel products) and in
    the guide's samples (N = 40,000 paths; 5-se tolerance on 2 x 3 x 3 = 18 frequencies, two-sided
    normal tail 5.7e-7 each)."""
    m = _binomial(base_rate=[0.2, 0.5, 0.9])
    x0 = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    pi = m.base_rate
    for t in range(1, 4):
        prob1 = x0.clone()
        for s in range(1, t + 1):  # one kernel step at a time: P(x_s = 1) = p (1 - b) + pi b
            b = m.betas[s - 1]
            prob1 = prob1 * (1 - b) + pi * b
        torch.testing.assert_close(m.forward_marginal(x0, t), prob1)
        torch.testing.assert_close(m.transform(x0, t), prob1)
    n = 40_000
    with torch.no_grad(), pyro.plate("particles", n, dim=-2):
        tr = poutine.trace(m.guide).get_trace(x0)
    for t in range(1, 4):
        freq = tr.nodes[f"x_{t}"]["value"].mean(0)
        p = m.forward_marginal(x0, t)
        se = torch.sqrt(p * (1 - p) / n)
        assert ((freq - p).abs() < 5 * se + 1e-12).all(), (t, freq, p)
    # stationary: the marginal tends to the base rate
    torch.testing.assert_close(m.forward_marginal(x0, 3), pi * (1 - m.alphas_cumprod[2])
                               + x0 * m.alphas_cumprod[2])


def test_binomial_untrained_model_is_the_base_rate_product():
    from pyrogen.models.diffusion import BinomialDiffusion

    m = BinomialDiffusion(3, schedule=[0.3, 0.6], base_rate=[0.2, 0.5, 0.7],
                          hidden_dims=(4,)).double()
    X = _states(3)
    exact, elbo = _exact_binomial(m, X)
    torch.testing.assert_close(exact, _bern_log_prob(m.base_rate, X))
    assert (elbo <= exact + 1e-12).all()


def test_binomial_elbo_below_exact_log_p_and_importance_sampling_consistent():
    """On all 8 states of D = 3, T = 3: exact ELBO <= exact log p(x) (strictly somewhere); both
    ELBO estimators agree with the exact ELBO and the IS estimate with the exact log p(x) within
    5 standard errors (8 x 3 comparisons at a two-sided tail of 5.7e-7 each, for the ELBO
    means; the IS estimate's delta-method se, min ESS checked to be large enough for it)."""
    m = _binomial()
    X = _states(3)
    exact, elbo_exact = _exact_binomial(m, X)
    torch.testing.assert_close(torch.logsumexp(exact, 0), torch.tensor(0.0, dtype=torch.float64))
    assert (elbo_exact <= exact + 1e-12).all()
    assert (exact - elbo_exact).max() > 0.05
    pyro.set_rng_seed(1)
    for est in ("closed_form", "trace"):
        e = m.elbo(X, num_particles=4000, estimator=est)
        assert e.kind == "elbo"
        assert ((e.values - elbo_exact).abs() < 5 * e.stderr).all(), (est, e.values, elbo_exact)
    ll = m.log_likelihood(X, num_particles=4000)
    assert ll.kind == "is_estimate"
    assert ll.info["min_ess"] > 20  # weights not degenerate: the delta-method se is usable
    assert ((ll.values - exact).abs() < 5 * ll.stderr).all(), (ll.values, exact)
    assert (ll.values > elbo_exact - 0.05).all()


def test_binomial_fit_predictive_and_bad_input():
    from pyrogen.models.diffusion import BinomialDiffusion

    g = torch.Generator().manual_seed(0)
    z = torch.rand(300, 1, generator=g) < 0.5  # two modes: all-on and all-off (noisy)
    x = torch.bernoulli(torch.where(z, 0.9, 0.1).expand(300, 4).double(), generator=g)
    m = BinomialDiffusion(4, num_timesteps=4, hidden_dims=(16,), seed=0).double()
    before = float(m.elbo(x, num_particles=50).values.mean())
    for loss in ("closed_form", "elbo"):
        pyro.clear_param_store()
        h = m.fit(x, num_steps=150, lr=0.02, batch_size=100, loss=loss, tol=None,
                  progress=False, seed=0)
        assert "negative ELBO" in h.info["loss"]
    after = float(m.elbo(x, num_particles=50).values.mean())
    assert after > before + 0.3
    draws = pyro.infer.Predictive(m.model, num_samples=3)(None, 5)["x_0"]
    assert draws.shape == (3, 5, 4) and set(draws.unique().tolist()) <= {0.0, 1.0}
    assert m.sample_chain(2).shape == (5, 2, 4)
    with pytest.raises(ValueError, match="x must be binary"):
        m.elbo(x * 0.5)
    with pytest.raises(ValueError, match="x must be binary"):
        m.fit(x + 0.5, progress=False)
    with pytest.raises(ValueError, match="x must be binary"):
        m.log_likelihood(x - 1)
    with pytest.raises(ValueError, match=r"schedule must hold floats in the open interval"):
        BinomialDiffusion(2, schedule=[0.1, 1.0])
    with pytest.raises(ValueError, match=r"schedule must hold floats in the open interval"):
        BinomialDiffusion(2, schedule=[0.0, 0.5])
    with pytest.raises(ValueError, match=r"base_rate must hold floats in the open interval"):
        BinomialDiffusion(2, base_rate=1.0)
    with pytest.raises(ValueError, match=r"base_rate must hold 2 floats"):
        BinomialDiffusion(2, base_rate=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="loss must be one of"):
        m.fit(x, loss="simple", progress=False)
