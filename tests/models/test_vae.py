"""VAE and ConditionalVAE: exact answers on the linear-Gaussian VAE (PPCA), gradients by finite
differences, the per-epoch report (reconstruction, KL, active units), objectives, bad input.

The linear-Gaussian VAE :math:`z \\sim N(0, I)`, :math:`x \\mid z \\sim N(Wz + \\mu, s^2 I)` has
marginal :math:`N(\\mu, WW^T + s^2 I)`: PPCA's, with a closed-form maximum-likelihood solution.
"""

import math
import warnings

import pyro
import pyro.infer
import pytest
import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_digits
from pyrogen.evaluation import LogLikelihood
from pyrogen.infer.iwae import IWAE_ELBO
from pyrogen.models import PPCA, VAE, ConditionalVAE
from pyrogen.models.vae import active_units

D, Q = 4, 2


# ----------------------------------------------------------------------------- helpers
def linear_vae(d=D, q=Q):
    return VAE(
        d, latent_dims=q, hidden_dims=(), likelihood="gaussian", gaussian_scale="isotropic"
    ).double()


def exact_log_lik(m: VAE, x):
    """log N(x; mu, W W^T + s^2 I) from the linear VAE's decoder."""
    lin = m.decoder[0]
    w, mu = lin.weight.detach(), lin.bias.detach()
    cov = w @ w.T + m.decoder_scale.detach() ** 2 * torch.eye(w.shape[0], dtype=w.dtype)
    return torch.distributions.MultivariateNormal(mu, cov).log_prob(x)


def set_linear_model(m: VAE, seed=0, posterior_encoder=True, widen=2.0):
    """Random decoder; encoder = exact posterior mean with a diagonal scale wider than the
    posterior in every direction (bounded importance weights), or random."""
    g = torch.Generator().manual_seed(seed)
    d, q = m.decoder[0].weight.shape
    w = torch.randn(d, q, generator=g, dtype=torch.float64)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    s = 0.5
    with torch.no_grad():
        m.decoder[0].weight.copy_(w)
        m.decoder[0].bias.copy_(mu)
        m.decoder_log_scale.fill_(math.log(s))
        if posterior_encoder:
            mmat = w.T @ w + s**2 * torch.eye(q, dtype=torch.float64)
            a = torch.linalg.solve(mmat, w.T)
            post_cov = s**2 * torch.linalg.inv(mmat)
            lam = torch.linalg.eigvalsh(post_cov).max()
            m.encoder.loc.weight.copy_(a)
            m.encoder.loc.bias.copy_(-a @ mu)
            m.encoder.log_scale.weight.zero_()
            m.encoder.log_scale.bias.fill_(0.5 * math.log(widen * float(lam)))
        else:
            for p in m.encoder.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return w, mu, s


def sample_linear(w, mu, s, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, w.shape[1], generator=g, dtype=torch.float64)
    return z @ w.T + mu + s * torch.randn(n, w.shape[0], generator=g, dtype=torch.float64)


def ppca_ml_log_lik(x, q):
    """Tipping & Bishop (1999) closed form: mean log-lik per example at the ML solution."""
    n, d = x.shape
    xc = x - x.mean(0)
    lam, u = torch.linalg.eigh(xc.T @ xc / n)
    lam, u = lam.flip(0), u.flip(1)
    s2 = lam[q:].mean()
    w = u[:, :q] * torch.sqrt(lam[:q] - s2)
    cov = w @ w.T + s2 * torch.eye(d, dtype=x.dtype)
    return float(torch.distributions.MultivariateNormal(x.mean(0), cov).log_prob(x).mean())


@pytest.fixture(scope="module")
def digits():
    d = load_digits(binarize="threshold")
    return d.x[:400], d.y[:400]


# ----------------------------------------------------------------------------- exact answers
def test_linear_vae_elbo_below_exact_and_is_converges():
    m = linear_vae()
    w, mu, s = set_linear_model(m)
    x = sample_linear(w, mu, s, 6)
    exact = exact_log_lik(m, x)
    elbo = m.elbo(x, num_particles=2000)
    assert elbo.kind == "elbo" and elbo.bound == "lower"
    # the diagonal q is twice as wide as the posterior: the gap is >= 0.3 nats per example,
    # the ELBO's Monte Carlo error ~0.02; a 6-sigma margin fails with prob. < 1e-8
    assert (elbo.values + 6 * elbo.stderr < exact).all()
    errs = {}
    for k in (1, 10, 100, 5000):
        pyro.set_rng_seed(k)
        ll = m.log_likelihood(x, num_particles=k, batch_size=3, chunk=1000)
        assert ll.kind == "is_estimate" and ll.values.shape == (6,)
        errs[k] = float((ll.values - exact).abs().mean())
    # weights are bounded (q wider than p(z|x), relative variance ~1): error ~ 1/sqrt(k),
    # ~0.25 nats at k = 10 and ~0.012 at k = 5000
    assert errs[5000] < errs[10] / 8
    assert errs[5000] < 0.04
    # with k = 5000 the estimate sits within its delta-method standard error of the truth
    z = (ll.values - exact) / ll.stderr
    assert z.abs().max() < 5  # 6 examples, |N(0,1)| > 5 has prob. 6e-7 each
    assert ll.info["min_ess"] > 500


def test_linear_vae_bounds_with_random_encoder():
    m = linear_vae()
    w, mu, s = set_linear_model(m, posterior_encoder=False)
    x = sample_linear(w, mu, s, 8)
    exact = exact_log_lik(m, x)
    elbo = m.elbo(x, num_particles=2000)
    iw = m.iwae_bound(x, num_particles=50, num_repeats=20)
    assert iw.kind == "iwae_bound"
    assert (elbo.values + 6 * elbo.stderr < exact).all()
    # L_1 <= L_50 <= log p(x), each up to 6 standard errors
    assert (elbo.values < iw.values + 6 * iw.stderr).all()
    assert (iw.values < exact + 6 * iw.stderr).all()
    assert iw.mean() > elbo.mean()


def _ppca_optimum(d, q, n, steps, lr):
    pyro.set_rng_seed(0)
    g = torch.Generator().manual_seed(3)
    scales = torch.linspace(2.0, 1.0, q, dtype=torch.float64)
    w_true = torch.randn(d, q, generator=g, dtype=torch.float64) * scales
    x = sample_linear(w_true, torch.zeros(d, dtype=torch.float64), 0.4, n, seed=4)
    target = ppca_ml_log_lik(x, q)
    # the foundation's PPCA (closed form) agrees with the formula above
    ppca = PPCA(d, q).double()
    ppca.fit(x, progress=False)
    assert ppca.log_likelihood(x).mean() == pytest.approx(target, abs=1e-6)
    m = linear_vae(d, q)
    svi = pyro.infer.SVI(
        m.model, m.guide, pyro.optim.ClippedAdam({"lr": lr, "lrd": 0.05 ** (1 / steps)}),
        pyro.infer.TraceMeanField_ELBO(),
    )
    for _ in range(steps):
        svi.step(x)
    return m, x, target


def test_linear_vae_optimum_matches_ppca():
    m, x, target = _ppca_optimum(3, 1, 200, 700, 0.05)
    got = float(exact_log_lik(m, x).mean())
    # the VAE optimum is PPCA's ML solution (Lucas et al. 2019); SGD noise leaves < 0.01 nats
    assert got == pytest.approx(target, abs=0.01)
    assert got <= target + 1e-9  # nothing beats the ML solution
    # at the optimum the posterior is exactly Gaussian with diagonal covariance: ELBO tight
    elbo = m.elbo(x, num_particles=100)
    assert elbo.mean() == pytest.approx(target, abs=0.03)


@pytest.mark.slow
def test_linear_vae_optimum_matches_ppca_two_components():
    m, x, target = _ppca_optimum(5, 2, 400, 3000, 0.05)
    got = float(exact_log_lik(m, x).mean())
    assert got == pytest.approx(target, abs=5e-3)
    assert got <= target + 1e-9
    # q = 2: the posterior is diagonal only in the learned rotation; the ELBO is still tight
    elbo = m.elbo(x, num_particles=200)
    assert elbo.mean() == pytest.approx(target, abs=0.03)


# ----------------------------------------------------------------------------- gradients
def _loss_fn(m, x, loss, seed):
    def f():
        pyro.set_rng_seed(seed)
        return loss.differentiable_loss(m.model, m.guide, x)

    return f


@pytest.mark.parametrize(
    "loss",
    [pyro.infer.Trace_ELBO(), IWAE_ELBO(num_particles=4)],
    ids=["Trace_ELBO", "IWAE_ELBO"],
)
def test_reparametrized_gradient_matches_finite_differences(loss):
    """With the noise eps fixed (same seed), the loss is a smooth function of every parameter
    and autograd's pathwise gradient must match central differences (float64)."""
    torch.manual_seed(0)
    m = VAE(3, latent_dims=2, hidden_dims=(4,), likelihood="gaussian", activation="tanh").double()
    x = torch.randn(5, 3, dtype=torch.float64)
    f = _loss_fn(m, x, loss, seed=11)
    params = [p for p in m.parameters()]
    value = f()
    grads = torch.autograd.grad(value, params)
    eps = 1e-6
    checked = 0
    for p, gp in zip(params, grads):
        flat = p.data.view(-1)
        for i in range(min(flat.numel(), 6)):
            old = float(flat[i])
            flat[i] = old + eps
            up = float(f().detach())
            flat[i] = old - eps
            down = float(f().detach())
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert gp.view(-1)[i].item() == pytest.approx(fd, rel=1e-5, abs=1e-6)
            checked += 1
    assert checked > 30
    # encoder parameters influence the loss only through the reparametrized sample (and the
    # entropy): their gradient is non-zero
    enc = [g for (name, _), g in zip(m.named_parameters(), grads) if name.startswith("encoder")]
    assert any(g.abs().max() > 1e-4 for g in enc)


# ----------------------------------------------------------------------------- training / report
def test_fit_reports_reconstruction_kl_and_active_units(digits):
    x, _ = digits
    m = VAE(64, latent_dims=5, hidden_dims=(32,))
    with pytest.warns(ConvergenceWarning):
        h = m.fit(x, num_epochs=4, batch_size=50, progress=False, seed=0, monitor_size=200)
    for key in ("train_loss", "reconstruction", "kl", "elbo", "active_units", "kl_weight"):
        assert len(h.metrics[key]) == 4
    assert h.metrics["train_loss"][-1] < h.metrics["train_loss"][0]
    rec, kl, elbo = (h.metrics[k][-1] for k in ("reconstruction", "kl", "elbo"))
    assert elbo == pytest.approx(rec - kl)
    assert kl >= 0 and rec < 0
    assert 0 <= h.metrics["active_units"][-1] <= 5
    assert len(h.losses) == 4 * 8
    assert h.info["num_epochs"] == 4


def test_posterior_collapse_is_visible_with_large_beta(digits):
    """beta = 20 drives q(z|x) to the prior: KL ~ 0 and no active unit; beta = 1 does not."""
    x, _ = digits
    out = {}
    for beta in (1.0, 20.0):
        pyro.clear_param_store()
        m = VAE(64, latent_dims=4, hidden_dims=(32,))
        with pytest.warns(ConvergenceWarning):
            h = m.fit(x, num_epochs=20, batch_size=50, beta=beta, lr=1e-2, progress=False, seed=0,
                      loss="analytic_kl")
        out[beta] = (h.metrics["kl"][-1], h.metrics["active_units"][-1])
        assert h.info["beta"] == beta
    # (seeded; with beta = 1 the KL first collapses, then recovers after ~12 epochs)
    assert out[1.0][1] >= 3 and out[1.0][0] > 1.0
    assert out[20.0][1] == 0 and out[20.0][0] < 0.05


def test_kl_warmup_ramps_the_kl_weight(digits):
    x, _ = digits
    m = VAE(64, latent_dims=3, hidden_dims=(16,))
    with pytest.warns(ConvergenceWarning):
        h = m.fit(x, num_epochs=4, batch_size=100, kl_warmup=2, progress=False, seed=0)
    # 4 steps per epoch: the weight after epoch e is min(1, 4e / 8)
    assert h.metrics["kl_weight"] == pytest.approx([0.5, 1.0, 1.0, 1.0])
    assert m.kl_weight == 1.0  # restored after fit


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loss="elbo"),
        dict(loss="analytic_kl"),
        dict(loss="iwae", num_particles=5),
        dict(loss="elbo", num_particles=3),
        dict(loss=pyro.infer.RenyiELBO(alpha=0.5, num_particles=2)),
    ],
    ids=["elbo", "analytic_kl", "iwae", "elbo3", "renyi"],
)
def test_objectives_train(kwargs, digits):
    x, _ = digits
    m = VAE(64, latent_dims=3, hidden_dims=(16,))
    with pytest.warns(ConvergenceWarning):
        h = m.fit(x, num_epochs=3, batch_size=100, lr=3e-3, progress=False, seed=0, **kwargs)
    assert h.metrics["train_loss"][-1] < h.metrics["train_loss"][0]


def test_jit_loss_matches_plain(digits):
    x, _ = digits
    m = VAE(64, latent_dims=3, hidden_dims=(16,))
    jit_loss = pyro.infer.JitTrace_ELBO(ignore_jit_warnings=True, max_plate_nesting=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*",
                                category=DeprecationWarning)
        jit_loss.loss(m.model, m.guide, x[:100], num_data=400)  # compiles
        pyro.set_rng_seed(7)
        a = jit_loss.loss(m.model, m.guide, x[:100], num_data=400)
    pyro.set_rng_seed(7)
    b = pyro.infer.Trace_ELBO().loss(m.model, m.guide, x[:100], num_data=400)
    assert a == pytest.approx(b, rel=1e-5)
    with pytest.warns(ConvergenceWarning):
        h = m.fit(x, num_epochs=3, batch_size=100, lr=3e-3, progress=False, seed=0, jit=True)
    assert h.metrics["train_loss"][-1] < h.metrics["train_loss"][0]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(latent_dims=(4, 2), hidden_dims=(16,), top_hidden_dims=(8,)),
        dict(architecture="conv", image_shape=(8, 8), conv_channels=(4, 8), hidden_dims=(16,)),
        dict(architecture="conv", image_shape=(8, 8), conv_channels=(4,), hidden_dims=(),
             likelihood="gaussian", gaussian_scale="network"),
    ],
    ids=["two-layers", "conv", "conv-gaussian"],
)
def test_architectures_end_to_end(kwargs, digits):
    x, _ = digits
    m = VAE(64, **kwargs)
    with pytest.warns(ConvergenceWarning):
        h = m.fit(x, num_epochs=2, batch_size=100, progress=False, seed=0)
    assert math.isfinite(h.metrics["elbo"][-1])
    if len(m.latent_dims) == 2:
        assert "active_units_z2" in h.metrics
    ll = m.log_likelihood(x[:10], num_particles=50)
    el = m.elbo(x[:10], num_particles=50)
    assert ll.mean() > el.mean() - 3 * el.mean_stderr()
    assert m.reconstruct(x[:3]).shape == (3, 64)
    assert m.sample(4, mean=True).shape == (4, 64)


def test_latent_grid_and_pictures(digits):
    x, _ = digits
    m = VAE(64, latent_dims=2, hidden_dims=(16,))
    grid = m.latent_grid(5)
    assert grid.shape == (25, 64)
    assert ((grid >= 0) & (grid <= 1)).all()
    with pytest.raises(ValueError, match="latent_dims"):
        VAE(64, latent_dims=3).latent_grid(5)
    s = m.sample(6)
    assert ((s == 0) | (s == 1)).all()
    assert active_units(torch.zeros(1, 3)) == 0


# ----------------------------------------------------------------------------- conditional
def test_conditional_vae(digits):
    x, y = digits
    m = ConditionalVAE(64, 10, latent_dims=2, hidden_dims=(32,))
    with pytest.warns(ConvergenceWarning):
        h = m.fit(x, y, num_epochs=3, batch_size=100, progress=False, seed=0, loss="analytic_kl")
    assert h.metrics["train_loss"][-1] < h.metrics["train_loss"][0]
    cond = m.log_likelihood(x[:6], y[:6], num_particles=400)
    marg = m.log_likelihood(x[:6], num_particles=400)
    assert isinstance(marg, LogLikelihood) and marg.kind == "is_estimate"
    # cond estimates log p(x, y) (the model observes y under its 1/C prior): log p(x) >= it
    assert (marg.values > cond.values - 5 * cond.stderr).all()
    # the marginal is the log-sum-exp of the per-class estimates of log p(x, c)
    per_class = torch.stack(
        [m.log_likelihood(x[:6], torch.full((6,), c), num_particles=400).values
         for c in range(10)]
    )
    manual = torch.logsumexp(per_class, 0)
    assert (manual - marg.values).abs().max() < 0.05
    s = m.sample(5, y=torch.arange(5))
    assert s.shape == (5, 64)
    assert m.transform(x[:4], y[:4]).shape == (4, 2)
    assert m.latent_grid(3, y=7).shape == (9, 64)
    # unlabelled data: y is summed out by enumeration (TraceEnum_ELBO)
    with pytest.warns(ConvergenceWarning):
        h2 = m.fit(x, num_epochs=1, batch_size=100, progress=False, seed=0)
    assert math.isfinite(h2.losses[-1])
    with pytest.raises(ValueError, match="y must hold labels"):
        m.log_likelihood(x[:3], torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(3,\)"):
        m.log_likelihood(x[:3], torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="loss must be 'elbo'"):
        m.fit(x, loss="iwae", num_epochs=1, progress=False)


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments(digits):
    x, _ = digits
    with pytest.raises(ValueError, match="likelihood must be one of"):
        VAE(64, likelihood="poisson")
    with pytest.raises(ValueError, match="architecture must be one of"):
        VAE(64, architecture="rnn")
    with pytest.raises(ValueError, match="image_shape must be"):
        VAE(64, architecture="conv", image_shape=(4, 16), conv_channels=(4, 8, 16))
    with pytest.raises(ValueError, match="image_shape must be"):
        VAE(64, architecture="conv")
    with pytest.raises(ValueError, match="latent_dims must be"):
        VAE(64, latent_dims=(2, 2, 2))
    with pytest.raises(ValueError, match="latent_dims must be an int"):
        VAE(64, latent_dims=0)
    with pytest.raises(TypeError, match="hidden_dims must be a tuple"):
        VAE(64, hidden_dims=16)
    with pytest.raises(TypeError, match="unexpected keyword"):
        VAE(64, n_hidden=3)
    m = VAE(64, latent_dims=(3, 2), hidden_dims=(8,))
    with pytest.raises(ValueError, match="loss='analytic_kl' needs one stochastic layer"):
        m.fit(x, loss="analytic_kl", progress=False)
    with pytest.raises(ValueError, match="loss must be one of"):
        m.fit(x, loss="elbo2", progress=False)
    with pytest.raises(ValueError, match="x must be binary"):
        m.fit(x * 0.5, progress=False)
    with pytest.raises(ValueError, match="x must be binary"):
        m.log_likelihood(x * 0.5)
    with pytest.raises(ValueError, match="beta must be a float"):
        m.fit(x, beta=-1.0, progress=False)
    with pytest.raises(ValueError, match="num_particles must be an int"):
        m.log_likelihood(x, num_particles=0)
    with pytest.raises(ValueError, match="jit=True"):
        m.fit(x, loss="iwae", jit=True, progress=False)


@pytest.mark.slow
def test_mnist_short_training_improves_is_log_lik(mnist_path):
    """A few hundred steps on binarized MNIST: the IS estimate beats the ELBO and both improve."""
    from pyrogen.datasets import load_binarized_mnist

    train = load_binarized_mnist(mnist_path, "train", limit=5000)
    test = load_binarized_mnist(mnist_path, "test", limit=200)
    m = VAE(784, latent_dims=20, hidden_dims=(200,))
    before = m.log_likelihood(test.x, num_particles=100).mean()
    m.fit(train.x, num_epochs=5, batch_size=100, progress=False, seed=0, loss="analytic_kl",
          data_info=train.info)
    ll = m.log_likelihood(test.x, num_particles=500)
    el = m.elbo(test.x, num_particles=20)
    assert ll.mean() > before + 100
    assert ll.mean() > el.mean()
    assert m.data_info["binarization"] == "fixed"
