"""Per-example reweighted wake-sleep vs the exact gradient, and the difference from
``pyro.infer.ReweightedWakeSleep`` (one weight per particle for the whole batch)."""

import pyro
import pytest
import torch

from pyrogen.infer.importance import per_example_log_weights
from pyrogen.infer.rws import ReweightedWakeSleep
from pyrogen.models import HelmholtzMachine


def _hm(seed, scale=1.5, sizes=(6, 3, 2)):
    torch.manual_seed(seed)
    m = HelmholtzMachine(list(sizes)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(scale * torch.randn_like(p))
        for p in m.rec.parameters():  # a broad proposal: light-tailed importance weights
            p.mul_(0.2)
    return m


def _gen(m):
    return [*m.gen.parameters(), m.top_bias]


def _flat(ps):
    return torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()
                      for p in ps])


def _exact_wake_theta(m, x):
    ps = _gen(m)
    for p in ps:
        p.grad = None
    (-m.exact_log_likelihood(x).sum()).backward()
    g = _flat(ps).clone()
    for p in ps:
        p.grad = None
    return g


def _mean_grad(loss, m, x, reps):
    ps = _gen(m)
    out = []
    for _ in range(reps):
        for p in ps:
            p.grad = None
        loss.loss_and_grads(m.model, m.guide, x)
        out.append(_flat(ps).clone())
    return torch.stack(out).mean(0)


def test_wake_theta_converges_to_exact_log_likelihood_gradient():
    m = _hm(0)
    pyro.set_rng_seed(0)
    x = m.sample(8)
    exact = _exact_wake_theta(m, x)
    pyro.set_rng_seed(1)
    g = _mean_grad(ReweightedWakeSleep(num_particles=4000), m, x, reps=3)
    # self-normalized IS: bias O(1/K), sd O(1/sqrt(K)) -> about 1% here (fixed seeds)
    assert float((g - exact).norm() / exact.norm()) < 0.05


def test_per_example_weights_beat_pyros_batch_weights():
    """Same K, same batch of 32: the per-example estimator is far closer to the exact gradient
    of sum_n log p(x_n) than pyro's, whose single batch-level weight per particle has an
    effective sample size near 1."""
    m = _hm(1)
    pyro.set_rng_seed(0)
    x = m.sample(32)
    exact = _exact_wake_theta(m, x)
    ours = ReweightedWakeSleep(num_particles=10)
    theirs = pyro.infer.ReweightedWakeSleep(num_particles=10, insomnia=1.0,
                                            vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(1)
    g_ours = _mean_grad(ours, m, x, reps=30)
    pyro.set_rng_seed(1)
    g_theirs = _mean_grad(theirs, m, x, reps=30)
    err_ours = float((g_ours - exact).norm() / exact.norm())
    err_theirs = float((g_theirs - exact).norm() / exact.norm())
    print(f"relative gradient error: per-example {err_ours:.3f}, pyro batch-level "
          f"{err_theirs:.3f}")
    assert err_ours < 0.5 * err_theirs
    # effective sample sizes
    lw = per_example_log_weights(m.model, m.guide, (x,), {}, num_particles=10).log_weights
    lw = lw.detach()
    ess_example = float((torch.softmax(lw, 0).pow(2).sum(0).reciprocal()).mean())
    ess_batch = float(torch.softmax(lw.sum(1), 0).pow(2).sum().reciprocal())
    assert ess_batch < 1.5 < ess_example


def test_minibatch_scale():
    """Ours scales the loss by N/B; pyro's puts N/B inside the log-weights."""
    m = _hm(2)
    pyro.set_rng_seed(0)
    x = m.sample(5)
    ours = ReweightedWakeSleep(num_particles=5)
    pyro.set_rng_seed(3)
    a = ours.loss(m.model, m.guide, x)
    pyro.set_rng_seed(3)
    b = ours.loss(m.model, m.guide, x, num_data=50)
    assert b == pytest.approx(10 * a, rel=1e-12)
    theirs = pyro.infer.ReweightedWakeSleep(num_particles=5, insomnia=1.0,
                                            vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(3)
    with torch.no_grad():
        c = float(theirs._loss(m.model, m.guide, (x,), {})[0])
        pyro.set_rng_seed(3)
        d = float(theirs._loss(m.model, m.guide, (x,), {"num_data": 50})[0])
    assert d != pytest.approx(10 * c, rel=1e-6)


def test_iwae_loss_is_a_stochastic_bound_and_insomnia_runs():
    m = _hm(3, sizes=(4, 2, 2))
    pyro.set_rng_seed(0)
    x = m.sample(6)
    exact = float(m.exact_log_likelihood(x).sum().detach())
    loss = ReweightedWakeSleep(num_particles=3, insomnia=0.5)
    vals = torch.tensor([loss.loss(m.model, m.guide, x) for _ in range(300)])
    # E[-IWAE] >= -log p(x): 4 standard errors of slack (failure rate ~3e-5)
    assert float(vals.mean()) >= -exact - 4 * float(vals.std()) / 300**0.5
    svi = pyro.infer.SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-2}), loss)
    assert svi.step(x) == loss.last["iwae"] and loss.last["ess"] >= 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_particles must be"):
        ReweightedWakeSleep(num_particles=0)
    with pytest.raises(ValueError, match="insomnia must be"):
        ReweightedWakeSleep(insomnia=1.5)
    m = _hm(4)
    x = torch.ones(2, 6, dtype=torch.float64)

    def outside(x):
        pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", pyro.distributions.Bernoulli(0.5).expand([x.shape[0], 6])
                        .to_event(1), obs=x)

    def guide(x):
        pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="must lie inside the plate"):
        ReweightedWakeSleep().loss(outside, guide, x)
    assert m is not None
