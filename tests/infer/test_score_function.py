"""Score-function estimators: unbiasedness against the exact ELBO gradient by enumeration, and
measured variance reduction by the baselines.

Tiny Helmholtz machine [4, 2, 2] (16 hidden configurations), three examples, float64, fixed
seeds. Each unbiasedness check is a per-coordinate z-test at 5 standard errors over 36
coordinates: under a Gaussian approximation a correct estimator fails with probability about
2e-5; score-function estimates are heavy-tailed, so the sample standard error can be optimistic
(with 400 draws and seed 0 one coordinate of Trace_ELBO sat at 5.9 standard errors; with 2000
draws, seed 1, the largest |z| over 36 coordinates was 2.6), hence 1000 draws here.
"""

import pyro
import pytest
import torch

from pyrogen.infer.score_function import (
    NeuralBaseline,
    OptimalBaselineReinforce,
    with_baseline,
)
from pyrogen.models import HelmholtzMachine

X = torch.tensor([[1.0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.float64)


def _model():
    torch.manual_seed(0)
    m = HelmholtzMachine([4, 2, 2]).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
    return m


def _params(m):
    return [*m.rec.parameters(), *m.gen.parameters(), m.top_bias]


def _flat(params):
    return torch.cat([torch.zeros_like(p).flatten() if p.grad is None else p.grad.flatten()
                      for p in params])


def _exact_grad(m):
    ps = _params(m)
    for p in ps:
        p.grad = None
    (-m.exact_elbo(X).sum()).backward()
    g = _flat(ps).clone()
    for p in ps:
        p.grad = None
    return g


def _estimator(kind, m):
    if kind == "trace_elbo":
        return pyro.infer.Trace_ELBO(), m.guide
    if kind == "optimal":
        return OptimalBaselineReinforce(num_particles=4), m.guide
    if kind == "reinforce_batch":
        return OptimalBaselineReinforce(num_particles=4, use_baseline=False), m.guide
    module = None
    if kind in ("nn", "nvil"):
        module = NeuralBaseline(4, ["h1", "h2"], hidden=8).double()
    return pyro.infer.TraceGraph_ELBO(), with_baseline(m.guide, kind, module=module)


def _draws(kind, m, reps, warmup=0):
    loss, guide = _estimator(kind, m)
    ps = _params(m)
    out = []
    for r in range(warmup + reps):
        for p in ps:
            p.grad = None
        loss.loss_and_grads(m.model, guide, X)
        if r >= warmup:
            out.append(_flat(ps).clone())
    return torch.stack(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["trace_elbo", "none", "decaying_avg", "nn", "nvil", "optimal", "reinforce_batch"]
)
def test_gradient_is_unbiased_for_the_exact_elbo(kind):
    m = _model()
    exact = _exact_grad(m)
    pyro.set_rng_seed(1)
    est = _draws(kind, m, reps=1000)
    mean = est.mean(0)
    se = est.std(0) / est.shape[0] ** 0.5
    ok = (mean - exact).abs() <= 5 * se + 1e-10
    assert ok.all(), ((mean - exact)[~ok], se[~ok])


def _guide_variance(est, n_guide):
    return float(est[:, :n_guide].var(0).sum())


@pytest.mark.slow
def test_baselines_reduce_gradient_variance():
    """Measured total variance (sum over the 16 recognition-parameter coordinates) of one-sample
    estimates; printed with ``pytest -s``. Observed (seed 0): none ~= 1.0 (relative),
    decaying average and optimal baseline well below."""
    m = _model()
    n_guide = sum(p.numel() for p in m.rec.parameters())
    pyro.set_rng_seed(0)
    var = {}
    var["none"] = _guide_variance(_draws("none", m, reps=400), n_guide)
    var["decaying_avg"] = _guide_variance(_draws("decaying_avg", m, reps=400, warmup=50),
                                          n_guide)
    # NVIL: train the baseline network alone for a while (lr 0 on the model and guide)
    module = NeuralBaseline(4, ["h1", "h2"], hidden=8).double()
    guide = with_baseline(m.guide, "nvil", module=module, name="test_baseline")
    optim = pyro.optim.Adam(lambda name: {"lr": 0.02 if "baseline" in name else 0.0})
    svi = pyro.infer.SVI(m.model, guide, optim, pyro.infer.TraceGraph_ELBO())
    for _ in range(300):
        svi.step(X)
    ps = _params(m)
    est = []
    loss = pyro.infer.TraceGraph_ELBO()
    for _ in range(400):
        for p in ps:
            p.grad = None
        loss.loss_and_grads(m.model, guide, X)
        est.append(_flat(ps).clone())
    var["nvil"] = _guide_variance(torch.stack(est), n_guide)
    # the optimal per-parameter baseline against plain REINFORCE with the same batch-level
    # learning signal (TraceGraph's per-site downstream costs are a different, already
    # Rao-Blackwellized, signal)
    var["batch REINFORCE (K=4)"] = _guide_variance(_draws("reinforce_batch", m, reps=400),
                                                   n_guide)
    var["optimal baseline (K=4)"] = _guide_variance(_draws("optimal", m, reps=400), n_guide)
    print({k: round(v / var["none"], 3) for k, v in var.items()})
    assert var["decaying_avg"] < 0.8 * var["none"]
    assert var["nvil"] < 0.8 * var["none"]
    assert var["optimal baseline (K=4)"] < 0.8 * var["batch REINFORCE (K=4)"]


@pytest.mark.slow
def test_relaxed_estimator_is_biased():
    import functools

    m = _model()
    exact = _exact_grad(m)
    guide = functools.partial(m.relaxed_guide, temperature=0.5)
    loss = pyro.infer.Trace_ELBO()
    ps = _params(m)
    pyro.set_rng_seed(0)
    est = []
    for _ in range(300):
        for p in ps:
            p.grad = None
        loss.loss_and_grads(m.model, guide, X)
        est.append(_flat(ps).clone())
    est = torch.stack(est)
    n_guide = sum(p.numel() for p in m.rec.parameters())
    se = est.std(0) / est.shape[0] ** 0.5
    # biased: some recognition coordinate is many standard errors away from the exact gradient
    assert ((est.mean(0) - exact)[:n_guide].abs() > 6 * se[:n_guide]).any()
    # measured (seed 0, temperature 0.5): its variance is NOT lower than TraceGraph's here
    # (about 1.3x); reported, not asserted


def test_bad_arguments():
    m = _model()
    with pytest.raises(ValueError, match="kind must be one of"):
        with_baseline(m.guide, "median")
    with pytest.raises(TypeError, match="module must be a NeuralBaseline"):
        with_baseline(m.guide, "nn")
    with pytest.raises(ValueError, match="num_particles must be"):
        OptimalBaselineReinforce(num_particles=1)
    with pytest.raises(ValueError, match="site must be one of"):
        NeuralBaseline(4, ["h1"]).site("h9")
    assert with_baseline(m.guide, "none") == m.guide
