"""WakeSleep: each phase's gradient against its exact expectation by enumeration, the SVI
interface, and steady improvement of the exact log-likelihood on data from a known SBN.

Statistical tests use fixed seeds and float64 and state their failure rates.
"""

import itertools
import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.infer.wake_sleep import WakeSleep, sleep_phase_loss
from pyrogen.models import HelmholtzMachine


def _random_hm(sizes, seed, scale=1.0):
    torch.manual_seed(seed)
    m = HelmholtzMachine(sizes).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(scale * torch.randn_like(p))
    return m


def _gen_params(m):
    return [*m.gen.parameters(), m.top_bias]


def _rec_params(m):
    return list(m.rec.parameters())


def _flat(params):
    return torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()
                      for p in params])


def _zero(params):
    for p in params:
        p.grad = None


def _check_unbiased(samples, exact, z=5.0):
    """Per-coordinate z-test of the mean of i.i.d. estimates against the exact value."""
    mean = samples.mean(0)
    se = samples.std(0) / samples.shape[0] ** 0.5
    ok = (mean - exact).abs() <= z * se + 1e-10
    assert ok.all(), ((mean - exact)[~ok], se[~ok])


def test_wake_gradient_matches_exact_expectation():
    m = _random_hm([4, 2, 2], seed=0)
    x = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.float64)
    gp = _gen_params(m)
    # exact: sum_h q(h|x) grad_theta log p(x, h), q held fixed
    configs = m.hidden_configs()
    hs = [h.unsqueeze(1) for h in m._hidden_split(configs)]
    with torch.no_grad():
        q = m.recognition_log_prob(x.unsqueeze(0), hs).exp()
    _zero(gp)
    (-(q * m.log_joint(x.unsqueeze(0), hs)).sum()).backward()
    exact = _flat(gp).clone()
    ws = WakeSleep()
    pyro.set_rng_seed(0)
    est = []
    for _ in range(600):
        _zero(gp)
        ws.wake_loss(m.model, m.guide, x).backward()
        est.append(_flat(gp).clone())
    # 5-sigma per coordinate (20 coordinates): failure rate about 1e-5 for a correct estimator
    _check_unbiased(torch.stack(est), exact)


def test_sleep_gradient_matches_exact_expectation():
    m = _random_hm([3, 2, 1], seed=1)
    rp = _rec_params(m)
    n = 2  # dreams per call (the batch size)
    configs = m.hidden_configs()
    xs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)), dtype=torch.float64)
    hs = [h.unsqueeze(1) for h in m._hidden_split(configs)]
    with torch.no_grad():
        p = m.log_joint(xs.unsqueeze(0), hs).exp()  # (2^H, 2^D) joint p(x, h)
    assert abs(float(p.sum()) - 1) < 1e-12
    _zero(rp)
    (-n * (p * m.recognition_log_prob(xs.unsqueeze(0), hs)).sum()).backward()
    exact = _flat(rp).clone()
    x = torch.zeros(n, 3, dtype=torch.float64)  # only its shape matters for dreams
    pyro.set_rng_seed(0)
    est = []
    for _ in range(600):
        _zero(rp)
        sleep_phase_loss(m.model, m.guide, (x,), {}).backward()
        est.append(_flat(rp).clone())
    # 5-sigma per coordinate (11 coordinates): failure rate about 1e-5
    _check_unbiased(torch.stack(est), exact)


def test_phases_touch_only_their_parameters_and_are_reported():
    m = _random_hm([4, 3, 2], seed=2)
    x = torch.bernoulli(torch.full((6, 4), 0.5, dtype=torch.float64))
    ws = WakeSleep()
    ws.wake_loss(m.model, m.guide, x).backward()
    assert all(p.grad is None or (p.grad == 0).all() for p in _rec_params(m))
    assert any(p.grad is not None and (p.grad != 0).any() for p in _gen_params(m))
    _zero(list(m.parameters()))
    ws.sleep_loss(m.model, m.guide, x).backward()
    assert all(p.grad is None or (p.grad == 0).all() for p in _gen_params(m))
    svi = pyro.infer.SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-2}), loss=ws)
    value = svi.step(x)
    assert value == ws.last["wake"] and ws.last["sleep"] > 0
    assert len(ws.history["wake"]) == len(ws.history["sleep"]) == 1
    assert ws.loss(m.model, m.guide, x) == ws.last["wake"]


def test_minibatch_scale_applies_to_both_phases():
    m = _random_hm([4, 2], seed=3)
    x = torch.bernoulli(torch.full((5, 4), 0.5, dtype=torch.float64))
    ws = WakeSleep()
    pyro.set_rng_seed(0)
    w1 = ws.wake_loss(m.model, m.guide, x)
    pyro.set_rng_seed(0)
    w2 = ws.wake_loss(m.model, m.guide, x, num_data=50)
    torch.testing.assert_close(w2, 10 * w1)
    pyro.set_rng_seed(0)
    s1 = ws.sleep_loss(m.model, m.guide, x)
    pyro.set_rng_seed(0)
    s2 = ws.sleep_loss(m.model, m.guide, x, num_data=50)
    torch.testing.assert_close(s2, 10 * s1)


def test_wake_sleep_improves_exact_log_likelihood_steadily():
    """Data from a known SBN; wake-sleep from a random start. The exact log-likelihood,
    averaged over blocks of 100 steps, must rise block after block for the first 600 steps
    (up to 0.01 nats of noise) and close most of the gap to the true model's."""
    teacher = _random_hm([6, 3, 2], seed=10, scale=2.5)
    pyro.set_rng_seed(0)
    x = teacher.sample(500)
    target = float(teacher.log_likelihood(x).mean())
    torch.manual_seed(11)
    m = HelmholtzMachine([6, 3, 2]).double()
    ws = WakeSleep()
    svi = pyro.infer.SVI(m.model, m.guide, pyro.optim.Adam({"lr": 0.02}), loss=ws)
    pyro.set_rng_seed(1)
    start = float(m.log_likelihood(x).mean())
    curve = []
    for step in range(600):
        idx = torch.randint(0, 500, (50,))
        svi.step(x[idx], num_data=500)
        if step % 20 == 19:
            curve.append(float(m.log_likelihood(x).mean()))
    blocks = torch.tensor(curve).reshape(6, 5).mean(1)
    assert blocks[0] > start
    assert (blocks[1:] - blocks[:-1] > -0.01).all(), blocks
    gap0, gap1 = target - start, target - float(blocks[-1])
    assert gap1 < 0.5 * gap0, (start, blocks, target)


def test_bad_arguments():
    m = _random_hm([4, 2], seed=4)
    x = torch.bernoulli(torch.full((3, 4), 0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_particles must be"):
        WakeSleep(num_particles=0)
    with pytest.raises(ValueError, match="data_arg must index"):
        WakeSleep(data_arg=3).sleep_loss(m.model, m.guide, x)
    with pytest.raises(ValueError, match="observed_site must name"):
        WakeSleep(observed_site="y").sleep_loss(m.model, m.guide, x)

    def two_obs(x):
        with pyro.plate("data", x.shape[0]):
            h = pyro.sample("h", dist.Bernoulli(0.5 * torch.ones(x.shape[0])))
            pyro.sample("a", dist.Bernoulli(0.2 + 0.5 * h), obs=x[:, 0])
            pyro.sample("b", dist.Bernoulli(0.3 + 0.5 * h), obs=x[:, 1])

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("h", dist.Bernoulli(0.5 * torch.ones(x.shape[0])))

    with pytest.raises(ValueError, match="exactly one observed site"):
        WakeSleep().sleep_loss(two_obs, guide, x)


def test_wake_phase_respects_masks():
    """Issue 13, bug 2: h ~ Bernoulli(1/2) (log p(h) = -log 2 whatever h), x ~ N(0, 1) with
    row 1's observation masked out: the wake loss is 2 log 2 - log N(x_0; 0, 1) exactly."""

    def model(x, mask):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("h", dist.Bernoulli(torch.full_like(x, 0.5)))
            with pyro.poutine.mask(mask=mask):
                pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    def guide(x, mask):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("h", dist.Bernoulli(torch.full_like(x, 0.5)))

    x = torch.tensor([1.2, 1.2], dtype=torch.float64)
    mask = torch.tensor([True, False])
    expected = 2 * math.log(2.0) - float(dist.Normal(0.0, 1.0).log_prob(x[0]))
    wake = WakeSleep(num_particles=3).wake_loss(model, guide, x, mask)
    assert float(wake) == pytest.approx(expected, abs=1e-12)
