"""User-defined energy-based distributions: subclassing EnergyBasedDistribution gives log_prob
(Exact or AIS), sampling, expand and SVI for free. The Ising chain below is the worked example of
docs/models/energy_based.rst."""

import math

import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro.distributions import constraints
from pyro.distributions.testing.gof import auto_goodness_of_fit, multinomial_goodness_of_fit
from pyro.infer import SVI, Trace_ELBO

import pyrogen.distributions.energy as energy_module
from pyrogen.distributions import (
    BinaryEnergyBasedDistribution,
    EnergyBasedDistribution,
    enumerate_binary_states,
)
from pyrogen.normalizers import AIS, PCD, Exact

D = torch.float64
#: per-test probability of a spurious failure of the goodness-of-fit tests
TEST_FAILURE_RATE = 1e-3


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class IsingChain(BinaryEnergyBasedDistribution):
    """-E(x) = J sum_i s_i s_{i+1} + h sum_i s_i with spins s = 2x - 1 (the docs example)."""

    arg_constraints = {"coupling": constraints.real, "field": constraints.real}

    def __init__(self, coupling, field, num_units, *, normalizer=None, validate_args=None):
        self.coupling, self.field = torch.broadcast_tensors(
            torch.as_tensor(coupling), torch.as_tensor(field)
        )
        super().__init__(
            self.coupling.shape,
            (num_units,),
            normalizer=normalizer,
            validate_args=validate_args,
        )

    @property
    def dtype(self):
        return self.coupling.dtype

    @property
    def device(self):
        return self.coupling.device

    def unnormalized_log_prob(self, value):
        s = 2 * value - 1
        pair = (s[..., 1:] * s[..., :-1]).sum(-1)
        return self.coupling * pair + self.field * s.sum(-1)


class DoubleWell(EnergyBasedDistribution):
    """A continuous energy: E(x) = a (x^2 - 1)^2 on the real line (event shape (1,))."""

    arg_constraints = {"height": constraints.positive}
    support = constraints.independent(constraints.real, 1)

    def __init__(self, height, *, normalizer=None, validate_args=None):
        self.height = torch.as_tensor(height, dtype=D)
        super().__init__(
            self.height.shape, (1,), normalizer=normalizer, validate_args=validate_args
        )

    @property
    def dtype(self):
        return self.height.dtype

    @property
    def device(self):
        return self.height.device

    def unnormalized_log_prob(self, value):
        x = value[..., 0]
        return -self.height * (x**2 - 1) ** 2

    def base_distribution(self, data=None):
        return pdist.Normal(torch.zeros(*self.param_batch_shape, 1, dtype=D), 1.5).to_event(1)

    def transition(self, x, num_steps=1):
        with torch.no_grad():
            for _ in range(num_steps):
                prop = x + 0.7 * torch.randn_like(x)
                log_a = self.unnormalized_log_prob(prop) - self.unnormalized_log_prob(x)
                accept = torch.rand_like(log_a).log() < log_a
                x = torch.where(accept.unsqueeze(-1), prop, x)
            return x


def _brute_ising_log_z(J, h, n):
    s = 2 * enumerate_binary_states(n, dtype=D) - 1
    return torch.logsumexp(J * (s[:, 1:] * s[:, :-1]).sum(-1) + h * s.sum(-1), 0)


def test_enumerate_binary_states():
    s = enumerate_binary_states(3, dtype=D)
    assert s.shape == (8, 3)
    assert torch.equal(s[5], torch.tensor([1.0, 0.0, 1.0], dtype=D))  # 5 = 0b101, bit i = unit i
    assert len({tuple(r.tolist()) for r in s}) == 8
    assert torch.equal(enumerate_binary_states(3, 2, 4, dtype=D), s[2:4])


def test_user_energy_gets_exact_log_prob_batched():
    J = torch.tensor([0.3, -0.5, 1.0], dtype=D)
    d = IsingChain(J, torch.tensor(0.2, dtype=D), 9)
    assert d.batch_shape == (3,)
    log_z = Exact()(d).log_z
    for k in range(3):
        torch.testing.assert_close(log_z[k], _brute_ising_log_z(J[k], 0.2, 9))
    s = enumerate_binary_states(9, dtype=D).unsqueeze(1)
    torch.testing.assert_close(d.log_prob(s).logsumexp(0), torch.zeros(3, dtype=D))


@pytest.mark.parametrize("exact", [True, False])
def test_user_energy_sampler_gof(exact, monkeypatch):
    torch.manual_seed(0)
    if not exact:  # the generic single-site Gibbs kernel
        monkeypatch.setattr(energy_module, "EXACT_SAMPLE_MAX_UNITS", 0)
    d = IsingChain(torch.tensor(0.6, dtype=D), torch.tensor(-0.2, dtype=D), 4)
    d.mcmc_steps = 20
    x = d.sample((3000,))
    idx = (x * (2 ** torch.arange(4, dtype=D))).sum(-1).long()
    counts = torch.bincount(idx, minlength=16)
    probs = d.log_prob(enumerate_binary_states(4, dtype=D)).exp()
    assert multinomial_goodness_of_fit(probs, counts) > TEST_FAILURE_RATE


def test_user_energy_gets_ais_through_the_geometric_path():
    torch.manual_seed(1)
    d = IsingChain(torch.tensor(0.8, dtype=D), torch.tensor(0.1, dtype=D), 10)
    est = AIS(num_chains=100, num_betas=100)(d)
    # failure rate < 1e-6 (5 delta-method standard errors, + 0.02 for the O(1/ess) bias)
    assert abs(float(est.log_z - Exact()(d).log_z)) < 5 * float(est.stderr) + 0.02


def test_user_energy_trains_by_svi():
    # fit the coupling of an Ising chain by SVI with the exact normalizer, then with PCD
    torch.manual_seed(2)
    true = IsingChain(torch.tensor(0.7, dtype=D), torch.tensor(0.0, dtype=D), 6)
    x = true.sample((2000,))
    for normalizer in [Exact(), PCD(num_chains=200)]:
        pyro.clear_param_store()

        def model(x, normalizer=normalizer):
            J = pyro.param("J", torch.tensor(0.0, dtype=D))
            h = pyro.param("h", torch.tensor(0.0, dtype=D))
            with pyro.plate("data", x.shape[0]):
                pyro.sample("x", IsingChain(J, h, 6, normalizer=normalizer), obs=x)

        svi = SVI(model, lambda x: None, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
        for _ in range(150):
            svi.step(x)
        # the MLE from 2000 rows is within ~0.03 of the truth
        assert abs(pyro.param("J").item() - 0.7) < 0.1
        assert abs(pyro.param("h").item()) < 0.1


def test_continuous_user_energy_ais_vs_quadrature_and_sampler():
    torch.manual_seed(3)
    d = DoubleWell(torch.tensor([1.0, 3.0], dtype=D), normalizer=AIS(num_chains=200, num_betas=200))
    grid = torch.linspace(-4, 4, 80001, dtype=D).reshape(-1, 1, 1)
    quad = torch.logsumexp(d.unnormalized_log_prob(grid), 0) + math.log(8 / 80000)
    est = d.log_normalizer()
    assert est.kind == "ais_estimate"
    assert (est.log_z - quad).abs().max() < 5 * est.stderr.max() + 0.02
    with pytest.raises(TypeError, match="AIS"):
        Exact()(d)
    # MCMC sampling (no enumeration for a continuous event) against the quadrature density
    one = DoubleWell(torch.tensor(1.0, dtype=D))
    one.mcmc_steps = 200
    x = one.sample((2000,))
    log_p = one.unnormalized_log_prob(x) - quad[0]
    assert auto_goodness_of_fit(x, log_p.exp()) > TEST_FAILURE_RATE


def test_expand_and_validation_for_user_energy():
    d = IsingChain(torch.tensor(0.3, dtype=D), torch.tensor(0.0, dtype=D), 5, validate_args=True)
    e = d.expand((4,))
    assert e.batch_shape == (4,) and e.sample((2,)).shape == (2, 4, 5)
    with pytest.raises(ValueError, match="support"):
        e.log_prob(torch.full((4, 5), 0.5, dtype=D))


def test_binary_transition_takes_a_generator():
    """The default single-site Gibbs move draws from the generator it is given (the annealing
    engine's chain-block generators), not from the global RNG."""
    d = IsingChain(torch.tensor(0.7, dtype=D), torch.tensor(0.1, dtype=D), 5)
    x = torch.zeros(64, 5, dtype=D)
    a = d.transition(x, 3, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(99)
    b = d.transition(x, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, d.transition(x, 3, generator=torch.Generator().manual_seed(5)))
