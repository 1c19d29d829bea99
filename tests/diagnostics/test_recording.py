"""RecordingNUTS: Pyro's NUTS plus the per-draw statistics NumPyro keeps.

Exact checks: the same Markov chain as NUTS; ``lp`` equals the closed-form log joint at the
draw; the relations between energy, lp, steps and depth. Statistical check (fixed seed): the
kinetic part of the recorded energy, ``energy + lp``, is chi^2_d / 2 distributed at
stationarity (the selected momentum is a draw from N(0, M)).
"""

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS

from pyrogen import diagnostics
from pyrogen.diagnostics import recording

from ._models import data, pyro_model, pyro_vector_model


def run(kernel, x, samples=60, warmup=60, chains=1):
    m = MCMC(kernel, num_samples=samples, warmup_steps=warmup, num_chains=chains,
             disable_progbar=True)
    m.run(x)
    return m


def test_same_chain_as_nuts_and_exact_lp():
    x = data()
    pyro.set_rng_seed(1)
    rec = run(diagnostics.RecordingNUTS(pyro_model), x, 40, 40)
    pyro.set_rng_seed(1)
    plain = run(NUTS(pyro_model), x, 40, 40)
    mu = rec.get_samples()["mu"]
    torch.testing.assert_close(mu, plain.get_samples()["mu"], rtol=0, atol=0)

    st = diagnostics.mcmc_sample_stats(rec)
    assert set(st) == set(diagnostics.SAMPLE_STATS)
    assert all(v.shape == (1, 40) for v in st.values())
    # lp = log p(x, mu) at the draw (mu is unconstrained: no Jacobian)
    exact = dist.Normal(0.0, 1.0).log_prob(mu) + dist.Normal(mu[:, None], 1.0).log_prob(x).sum(-1)
    np.testing.assert_allclose(st["lp"][0], exact.numpy(), rtol=1e-10)
    # energy = potential + kinetic >= potential = -lp
    assert (st["energy"][0] + st["lp"][0] >= -1e-12).all()
    # a tree of depth d has at most 2^d - 1 leapfrog steps
    assert (st["n_steps"] >= 1).all() and (st["n_steps"] <= 2 ** st["tree_depth"] - 1).all()
    assert ((st["acceptance_rate"] >= 0) & (st["acceptance_rate"] <= 1)).all()
    # after warm-up the step size is frozen at the adapted value
    assert np.all(st["step_size"][0] == rec.kernel.step_size)
    assert st["diverging"].sum() == len(rec._diagnostics[0]["divergences"])
    # to_inference_data carries them; BFMI = sum of squared energy steps / sum of squares
    idata = diagnostics.to_inference_data(rec, posterior_predictive=False)
    e = st["energy"][0]
    np.testing.assert_allclose(diagnostics.bfmi(idata),
                               [np.sum(np.diff(e) ** 2) / np.sum((e - e.mean()) ** 2)],
                               rtol=1e-10)


@pytest.mark.slow
def test_kinetic_energy_is_chi2_over_two():
    """d = 4 latent dims, 4 x 500 draws: E[energy + lp] = E[K] = d/2 = 2, sd(K) = 1, so the mean
    over 2000 draws has sd ~ 0.025 (inflated a little by autocorrelation); tolerance 0.15
    (6 sd: a false failure is essentially impossible; deterministic given the seed)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    runs = [run(diagnostics.RecordingNUTS(pyro_vector_model), x, samples=500, warmup=200)
            for _ in range(4)]
    st = diagnostics.mcmc_sample_stats(runs)
    assert st["energy"].shape == (4, 500)
    kinetic = st["energy"] + st["lp"]
    assert abs(kinetic.mean() - 2.0) < 0.15
    # the chains' records were matched to the right runs: lp is the log joint of each draw
    mu = torch.cat([r.get_samples()["mu"] for r in runs]).reshape(4, 500, 4)
    lp = (dist.Normal(0.0, 1.0).log_prob(mu).sum(-1)
          + dist.Normal(mu[:, :, None], 1.0).log_prob(x).sum((-1, -2)))
    np.testing.assert_allclose(st["lp"], lp.numpy(), rtol=1e-10)
    # a well-behaved Gaussian target: BFMI near 1, far above 0.3
    idata = diagnostics.to_inference_data(runs, posterior_predictive=False)
    assert (diagnostics.bfmi(idata) > 0.6).all()


def test_sequential_chains_in_one_mcmc():
    """num_chains=2 on one core: Pyro runs the chains one after the other in this process."""
    x = data(8)
    with warnings.catch_warnings():  # "num_chains=2 is more than available_cpu=1"
        warnings.simplefilter("ignore", UserWarning)
        m = MCMC(diagnostics.RecordingNUTS(pyro_model), num_samples=7, warmup_steps=5,
                 num_chains=2, disable_progbar=True)
    if m.num_chains != 2 or type(m.sampler).__name__ != "_UnarySampler":
        pytest.skip("Pyro chose worker processes on this machine")
    m.run(x)
    st = diagnostics.mcmc_sample_stats(m)
    assert st["energy"].shape == (2, 7)
    mu = m.get_samples(group_by_chain=True)["mu"]
    exact = dist.Normal(0.0, 1.0).log_prob(mu) + dist.Normal(mu[..., None], 1.0).log_prob(
        x).sum(-1)
    np.testing.assert_allclose(st["lp"], exact.numpy(), rtol=1e-10)
    assert math.isfinite(float(st["energy"].sum()))


# ---------------------------------------------------------------------- the private Pyro API
def test_private_pyro_api_is_as_recording_nuts_expects():
    """Fails loudly when Pyro renames, removes or re-signs a private NUTS method, a tree field
    or an MCMC attribute that pyrogen.diagnostics.recording uses (update recording.py and
    TESTED_PYRO_VERSIONS together)."""
    import inspect

    from pyro.infer.mcmc.nuts import _TreeInfo

    for name, params in recording.PRIVATE_NUTS_METHODS.items():
        assert tuple(inspect.signature(getattr(NUTS, name)).parameters) == params, name
    assert set(recording.PRIVATE_TREE_FIELDS) <= set(_TreeInfo._fields)
    recording.check_pyro_private_api()  # raises on a mismatch
    assert ".".join(pyro.__version__.split(".")[:2]) in recording.TESTED_PYRO_VERSIONS, (
        f"Pyro {pyro.__version__} is not in TESTED_PYRO_VERSIONS "
        f"{recording.TESTED_PYRO_VERSIONS}: run these tests and add it"
    )
    # MCMC's private run record, read by mcmc_divergences / mcmc_run_args
    x = data(5)
    m = MCMC(NUTS(pyro_model), num_samples=3, warmup_steps=2, disable_progbar=True)
    m.run(x)
    assert isinstance(m._diagnostics, list) and "divergences" in m._diagnostics[0]
    assert recording.mcmc_divergences(m, 0) == list(m._diagnostics[0]["divergences"])
    args, kwargs = recording.mcmc_run_args(m)
    assert args == (x,) and kwargs == {}


def test_changed_private_api_raises_naming_versions(monkeypatch):
    monkeypatch.setitem(recording.PRIVATE_NUTS_METHODS, "_build_tree", ("self", "renamed"))
    recording.check_pyro_private_api.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"Pyro .* does not have as expected.*_build_tree"
                                               r".*written for Pyro 1\.9"):
            diagnostics.RecordingNUTS(pyro_model)
    finally:
        monkeypatch.undo()
        recording.check_pyro_private_api.cache_clear()


def test_untested_pyro_version_warns(monkeypatch):
    monkeypatch.setattr(recording, "TESTED_PYRO_VERSIONS", ("0.1",))
    recording.check_pyro_private_api.cache_clear()
    try:
        with pytest.warns(UserWarning, match=r"tested with Pyro 0\.1, not"):
            recording.check_pyro_private_api()
    finally:
        monkeypatch.undo()
        recording.check_pyro_private_api.cache_clear()

