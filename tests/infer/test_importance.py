"""importance_log_likelihood: exact on a conjugate model, standard errors that are right,
chunking/batching, tuple data, bad input."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.evaluation import LogLikelihood
from pyrogen.infer.importance import (
    guess_max_plate_nesting,
    importance_log_likelihood,
    log_importance_weights,
    per_example_log_weights,
)

NOISE = 0.5


def model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2, dtype=x.dtype), 1.0)
                        .to_event(1))
        pyro.sample("x", dist.Normal(z.sum(-1, keepdim=True), NOISE).to_event(1), obs=x)


def exact(x):
    # x = z1 + z2 + noise: N(0, 2 + NOISE^2)
    return dist.Normal(torch.tensor(0.0, dtype=x.dtype), math.sqrt(2 + NOISE**2)).log_prob(x[:, 0])


def make_guide(widen=1.0):
    """The exact posterior of (z1, z2) is correlated; this guide uses the exact marginal means
    and a diagonal scale `widen` times the exact marginal sd (so weights vary)."""
    v = 2 + NOISE**2

    def guide(x):
        loc = (x / v).expand(x.shape[0], 2)
        sd = math.sqrt(1 - 1 / v) * widen
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, sd).to_event(1))

    return guide


@pytest.fixture
def x():
    return torch.linspace(-2.0, 3.0, 7, dtype=torch.float64).unsqueeze(-1)


def test_exact_posterior_guide_gives_exact_value_and_zero_stderr():
    def model1(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros_like(x[:, 0]), 1.0))
            pyro.sample("x", dist.Normal(z, NOISE), obs=x[:, 0])

    def guide1(x):
        v = 1 + NOISE**2
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x[:, 0] / v, math.sqrt(1 - 1 / v)))

    x = torch.randn(9, 1, dtype=torch.float64)
    ll = importance_log_likelihood(model1, guide1, x, num_particles=37, batch_size=4, chunk=10)
    truth = dist.Normal(torch.tensor(0.0, dtype=torch.float64),
                        math.sqrt(1 + NOISE**2)).log_prob(x[:, 0])
    torch.testing.assert_close(ll.values, truth, rtol=0, atol=1e-10)
    assert ll.stderr.abs().max() < 1e-6
    assert ll.info["min_ess"] == pytest.approx(37, rel=1e-8)


def test_converges_and_is_within_stderr(x):
    truth = exact(x)
    errs = []
    for k in (10, 100, 10000):
        pyro.set_rng_seed(k)
        ll = importance_log_likelihood(model, make_guide(1.5), x, num_particles=k, chunk=999)
        errs.append(float((ll.values - truth).abs().mean()))
    assert isinstance(ll, LogLikelihood) and ll.kind == "is_estimate" and ll.bound == "lower"
    assert errs[-1] < errs[0] / 10
    z = (ll.values - truth) / ll.stderr
    assert z.abs().max() < 5  # 7 values, |N(0,1)| > 5: prob. 6e-7 each


def test_stderr_matches_spread_over_repeats(x):
    """The delta-method standard error agrees with the empirical spread of repeated estimates
    (200 repeats: the ratio's sampling error is ~5%; band [0.75, 1.33] fails with prob. < 1e-6
    for light-tailed weights as here)."""
    reps = []
    ses = []
    for r in range(200):
        pyro.set_rng_seed(r)
        ll = importance_log_likelihood(model, make_guide(1.3), x, num_particles=200, chunk=64)
        reps.append(ll.values)
        ses.append(ll.stderr)
    reps = torch.stack(reps)
    ratio = reps.std(0) / torch.stack(ses).mean(0)
    assert ((ratio > 0.75) & (ratio < 1.33)).all(), ratio
    # consistent: the mean over repeats is within 5 standard errors of log p(x) (its downward
    # bias, ~ se^2 / 2 ~ 1e-3, is below what 200 repeats resolve)
    truth = exact(x)
    assert ((reps.mean(0) - truth).abs() < 5 * reps.std(0) / math.sqrt(200)).all()


def test_chunk_and_batch_do_not_change_the_estimator(x):
    """Chunking only splits the particle sum: same seed and one chunk vs many chunks give
    estimates agreeing within their standard errors, and the sums match exactly when the
    particle draws coincide (chunk >= k)."""
    pyro.set_rng_seed(0)
    a = importance_log_likelihood(model, make_guide(1.5), x, num_particles=300, chunk=300,
                                  batch_size=100)
    pyro.set_rng_seed(0)
    lw = log_importance_weights(model, make_guide(1.5), x, num_particles=300).double()
    torch.testing.assert_close(a.values, torch.logsumexp(lw, 0) - math.log(300))
    b = importance_log_likelihood(model, make_guide(1.5), x, num_particles=300, chunk=7,
                                  batch_size=3)
    assert ((a.values - b.values).abs() < 5 * torch.sqrt(a.stderr**2 + b.stderr**2)).all()
    assert b.info["chunk"] == 7 and b.info["num_particles"] == 300


def test_tuple_data_and_nesting():
    def cmodel(x, y):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(y, 1.0))
            pyro.sample("x", dist.Normal(z, NOISE), obs=x)

    def cguide(x, y):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(y + (x - y) / (1 + NOISE**2),
                                         math.sqrt(1 - 1 / (1 + NOISE**2))))

    x = torch.randn(6, dtype=torch.float64)
    y = torch.randn(6, dtype=torch.float64)
    ll = importance_log_likelihood(cmodel, cguide, (x, y), num_particles=5, batch_size=4)
    torch.testing.assert_close(
        ll.values, dist.Normal(y, math.sqrt(1 + NOISE**2)).log_prob(x), rtol=0, atol=1e-10
    )
    assert guess_max_plate_nesting(cmodel, cguide, (x, y)) == 1


def test_bad_input(x):
    with pytest.raises(ValueError, match="num_particles must be an int"):
        importance_log_likelihood(model, make_guide(), x, num_particles=0)
    with pytest.raises(ValueError, match="chunk must be an int"):
        importance_log_likelihood(model, make_guide(), x, chunk=0)
    with pytest.raises(TypeError, match="x must be a Tensor, a numpy array or a tuple of them"):
        importance_log_likelihood(model, make_guide(), [x.tolist()])
    with pytest.raises(ValueError, match="same number of rows"):
        importance_log_likelihood(lambda a, b: None, lambda a, b: None, (x, x[:3]))

    def gmodel(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x[:, 0])

    def gguide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="outside the plate 'data'"):
        importance_log_likelihood(gmodel, gguide, x, num_particles=3)


# ---------------------------------------------------------------------------------------------
# The per-example weighting core: masks, scales, the subsampling scale, detached samples
# ---------------------------------------------------------------------------------------------
def _masked_model(kind):
    """z ~ N(0, 1) with guide = prior (log p(z) - log q(z) = 0 exactly) and x ~ N(0, 1)
    observed, row 1's observation masked out in one of Pyro's three ways."""

    def model(x, mask):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
            d = dist.Normal(torch.zeros_like(x), 1.0)
            if kind == "poutine.mask":
                with pyro.poutine.mask(mask=mask):
                    pyro.sample("x", d, obs=x)
            elif kind == "Distribution.mask":
                pyro.sample("x", d.mask(mask), obs=x)
            else:  # obs_mask: the masked entry becomes a latent site x_unobserved of the model
                pyro.sample("x", d, obs=x, obs_mask=mask)

    return model


def _prior_guide(x, mask):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))


@pytest.mark.parametrize("kind", ["poutine.mask", "Distribution.mask", "obs_mask"])
def test_masked_row_has_the_latent_only_log_weight(kind):
    """Issue 13, bug 2: the unmasked row's log-weight is log N(x_0; 0, 1), the masked row's is
    the latent-only log-weight, here exactly 0, for every particle, in the core, in
    log_importance_weights and in importance_log_likelihood."""
    x = torch.tensor([1.2, 1.2], dtype=torch.float64)
    mask = torch.tensor([True, False])
    model = _masked_model(kind)
    row0 = float(dist.Normal(0.0, 1.0).log_prob(torch.tensor(1.2)))
    expected = torch.tensor([[row0, 0.0]] * 5, dtype=torch.float64)
    iw = per_example_log_weights(model, _prior_guide, (x, mask), num_particles=5)
    torch.testing.assert_close(iw.log_weights, expected)
    assert iw.data_scale == 1.0 and iw.log_p.shape == iw.log_q.shape == (5, 2)
    torch.testing.assert_close(
        log_importance_weights(model, _prior_guide, x, mask, num_particles=5), expected
    )
    ll = importance_log_likelihood(model, _prior_guide, (x, mask), num_particles=5)
    torch.testing.assert_close(ll.values, expected[0])


def test_scales_are_kept_and_the_subsampling_scale_is_returned_apart():
    """poutine.scale(0.5) on the observation halves its contribution; the data plate's N/B is
    divided out of the weights and returned as data_scale."""

    def model(x, scale, idx=None):
        with pyro.plate("data", 10, subsample=idx):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
            with pyro.poutine.scale(scale=scale):
                pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    def guide(x, scale, idx=None):
        with pyro.plate("data", 10, subsample=idx):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))

    x = torch.tensor([0.3, -1.0, 2.0, 0.0, 1.0], dtype=torch.float64)
    idx = torch.arange(5)
    full = dist.Normal(0.0, 1.0).log_prob(x)
    iw = per_example_log_weights(model, guide, (x, 0.5, idx), num_particles=3)
    torch.testing.assert_close(iw.log_weights, 0.5 * full.expand(3, 5))
    assert iw.data_scale == pytest.approx(2.0)


def test_detach_gives_log_q_at_fixed_samples():
    """Hierarchical reparametrized guide q(z1) q(z2 | z1): with detach=True the gradient of
    log q wrt the guide's parameter a is the score at fixed (z1, z2) (no path through z1), and
    log p carries no gradient to the guide; with detach=False the path is there."""
    a = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(torch.zeros_like(x), 1.0))
            z2 = pyro.sample("z2", dist.Normal(z1, 1.0))
            pyro.sample("x", dist.Normal(z2, 0.5), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(a * x, 1.0))
            pyro.sample("z2", dist.Normal(a * z1, 0.8))

    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    iw = per_example_log_weights(model, guide, (x,), num_particles=4, detach=True)
    assert not iw.log_p.requires_grad
    z1 = iw.guide_trace.nodes["z1"]["value"]
    z2 = iw.guide_trace.nodes["z2"]["value"]
    assert not z1.requires_grad and not z2.requires_grad
    (g,) = torch.autograd.grad(iw.log_q.sum(), [a])
    # d/da [log N(z1; a x, 1) + log N(z2; a z1, 0.8)] at fixed z1, z2
    score = ((z1 - a * x) * x + (z2 - a * z1) * z1 / 0.8**2).sum()
    torch.testing.assert_close(g, score.detach())
    iw = per_example_log_weights(model, guide, (x,), num_particles=4, detach=False)
    assert iw.log_p.requires_grad and iw.guide_trace.nodes["z2"]["value"].requires_grad
