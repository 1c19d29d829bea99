"""Bayesian factor analysis / Bayesian PPCA: closed forms, NUTS, ARD, ArviZ, bad input.

The machine these tests were written on was a shared 2-core VM; the NUTS runs in the default
(not slow) set are deliberately tiny and check plumbing and exact identities, while the
statistical claims (r-hat near 1, ARD under NUTS, LOO over K=1..3) are in ``-m slow``.
"""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer.mcmc.util import initialize_model

from pyrogen import ConvergenceWarning, diagnostics
from pyrogen.models.bayesian_factor import BayesianFactorAnalysis, BayesianPPCA

from ._fitting import fit_honestly


def low_rank_data(n=60, D=5, rank=2, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, rank, generator=g, dtype=torch.float64) * 1.5
    h = torch.randn(n, rank, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    return h @ W.T + b + noise * torch.randn(n, D, generator=g, dtype=torch.float64)


def set_draws(model, W, noise, loc, alpha=None):
    """Store given parameter values as the model's (only) posterior draws."""
    draws = {"W": W[None], "noise": noise[None], "loc": loc[None]}
    if alpha is not None:
        draws["alpha"] = alpha[None]
    model._store_draws(draws, torch.zeros(1, dtype=torch.long))


def ppca_ml(x, K):
    """Tipping & Bishop closed form: (W, sigma2, mean) and the exact mean log-likelihood."""
    n, D = x.shape
    mean = x.mean(0)
    S = (x - mean).T @ (x - mean) / n
    evals, evecs = torch.linalg.eigh(S)
    evals, evecs = evals.flip(0), evecs.flip(1)
    sigma2 = evals[K:].mean()
    W = evecs[:, :K] * (evals[:K] - sigma2).sqrt()
    C = W @ W.T + sigma2 * torch.eye(D, dtype=x.dtype)
    ll = torch.distributions.MultivariateNormal(mean, C).log_prob(x).mean()
    return W, sigma2, mean, float(ll)


# ---------------------------------------------------------------------------- structure
@pytest.mark.parametrize("cls", [BayesianPPCA, BayesianFactorAnalysis])
@pytest.mark.parametrize("likelihood", ["collapsed", "latent"])
def test_site_names_shapes_and_plates(cls, likelihood):
    D, K, n = 5, 2, 7
    m = cls(D, K, likelihood=likelihood).double()
    x = low_rank_data(n, D)
    tr = poutine.trace(m.model).get_trace(x)
    shapes = {
        k: tuple(v["value"].shape)
        for k, v in tr.nodes.items()
        if v["type"] == "sample" and k not in ("data", "features", "components")  # plates
    }
    expected = {
        "alpha": (K,),
        "W": (D, K),
        "loc": (D,),
        "noise": () if cls is BayesianPPCA else (D,),
        "x": (n, D),
    }
    if likelihood == "latent":
        expected["h"] = (n, K)
    assert shapes == expected
    assert tr.nodes["x"]["is_observed"]
    plates = {f.name for f in tr.nodes["x"]["cond_indep_stack"]}
    assert plates == {"data"}
    assert {f.name for f in tr.nodes["W"]["cond_indep_stack"]} == {"features"}
    assert {f.name for f in tr.nodes["alpha"]["cond_indep_stack"]} == {"components"}


def test_normal_prior_has_no_alpha_site():
    m = BayesianPPCA(4, 2, w_prior="normal").double()
    tr = poutine.trace(m.model).get_trace(low_rank_data(5, 4))
    assert "alpha" not in tr.nodes
    assert "alpha" not in m.posterior_samples()


# ---------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("cls", [BayesianPPCA, BayesianFactorAnalysis])
def test_collapsed_marginal_equals_latent_form_integrated(cls):
    """log N(x; b, WW^T + Psi) = log p(x | h) + log p(h) - log p(h | x) for every h."""
    D, K, n = 5, 2, 9
    x = low_rank_data(n, D)
    collapsed = cls(D, K).double()
    latent = cls(D, K, likelihood="latent").double()
    g = torch.Generator().manual_seed(1)
    theta = {
        "alpha": torch.rand(K, generator=g, dtype=torch.float64) + 0.5,
        "W": torch.randn(D, K, generator=g, dtype=torch.float64),
        "loc": torch.randn(D, generator=g, dtype=torch.float64),
        "noise": torch.rand(() if cls is BayesianPPCA else (D,), generator=g,
                            dtype=torch.float64) + 0.2,
    }
    tr_c = poutine.trace(poutine.condition(collapsed.model, data=theta)).get_trace(x)
    log_marginal = tr_c.nodes["x"]["fn"].log_prob(x)  # (n,)
    h = torch.randn(n, K, generator=g, dtype=torch.float64) * 2.0
    tr_l = poutine.trace(poutine.condition(latent.model, data={**theta, "h": h})).get_trace(x)
    log_joint = tr_l.nodes["x"]["fn"].log_prob(x) + tr_l.nodes["h"]["fn"].log_prob(h)
    mean, cov = latent._posterior_h(x, theta["W"], latent._noise_diag(theta["noise"]),
                                    theta["loc"])
    log_post = torch.distributions.MultivariateNormal(mean, cov).log_prob(h)
    torch.testing.assert_close(log_joint - log_post, log_marginal, rtol=1e-10, atol=1e-10)


def test_collapsed_marginal_equals_quadrature_for_one_component():
    """K = 1: integrate p(x | h) p(h) over h numerically (trapezoid on [-12, 12])."""
    D = 3
    m = BayesianFactorAnalysis(D, 1, likelihood="latent", noise_floor=0.0).double()
    W = torch.tensor([[1.0], [-0.5], [2.0]], dtype=torch.float64)
    noise = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
    loc = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    x = torch.tensor([[0.5, 0.0, 1.0], [-1.0, 0.7, -2.0]], dtype=torch.float64)
    grid = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    cond = torch.distributions.Normal(loc + grid[:, None, None] * W[:, 0], noise.sqrt())
    log_integrand = cond.log_prob(x).sum(-1) + torch.distributions.Normal(0.0, 1.0).log_prob(
        grid
    )[:, None]
    numeric = torch.log(torch.trapezoid(log_integrand.exp(), grid, dim=0))
    set_draws(m, W, noise, loc, alpha=torch.ones(1, dtype=torch.float64))
    exact = m.pointwise_log_likelihood(x)[0]
    torch.testing.assert_close(exact, numeric, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("cls", [BayesianPPCA, BayesianFactorAnalysis])
@pytest.mark.parametrize("w_prior", ["ard", "normal"])
@pytest.mark.parametrize("noise_prior", ["inverse_gamma", "lognormal", "half_cauchy"])
def test_fast_potential_equals_pyro_potential(cls, w_prior, noise_prior):
    """The hand-written NUTS potential equals the one Pyro derives from ``model``."""
    x = low_rank_data(20, 4)
    m = cls(4, 2, w_prior=w_prior, noise_prior=noise_prior, w_scale=0.7, loc_scale=3.0)
    m = m.double()
    _, pyro_potential, _, _ = initialize_model(m.model, model_args=(x,))
    mine = m.potential_fn(x)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        z = {k: 0.5 * torch.randn(v.shape[1:], generator=g, dtype=torch.float64)
             for k, v in m._prior_draws(1).items()}
        torch.testing.assert_close(mine(z), pyro_potential(z), rtol=1e-12, atol=1e-9)


def test_noncentered_ard_potential_is_the_same_posterior():
    """U_nc(Z, log a) = U(W = Z a^{-1/2}, log a) + (D/2) sum log a (the Jacobian of Z -> W)."""
    from pyrogen.models.bayesian_factor import _noncentered_potential

    D, K = 4, 3
    x = low_rank_data(20, D)
    m = BayesianFactorAnalysis(D, K).double()
    pot = m.potential_fn(x)
    nc = _noncentered_potential(pot, D)
    g = torch.Generator().manual_seed(4)
    Z = torch.randn(D, K, generator=g, dtype=torch.float64)
    la = torch.randn(K, generator=g, dtype=torch.float64)
    common = {"loc": torch.zeros(D, dtype=torch.float64),
              "noise": torch.zeros(D, dtype=torch.float64), "alpha": la}
    W = Z * torch.exp(-0.5 * la)
    torch.testing.assert_close(nc({**common, "Z": Z}), pot({**common, "W": W}) + 0.5 * D * la.sum())


def test_draw_based_quantities_match_closed_forms():
    """With stored draws: log_likelihood is log-mean-exp of exact Gaussians, transform is the
    average Gaussian posterior mean (up to the alignment rotation)."""
    D, K = 4, 2
    x = low_rank_data(6, D)
    m = BayesianPPCA(D, K).double()
    g = torch.Generator().manual_seed(3)
    S = 5
    draws = {
        "W": torch.randn(S, D, K, generator=g, dtype=torch.float64),
        "noise": torch.rand(S, generator=g, dtype=torch.float64) + 0.1,
        "loc": torch.randn(S, D, generator=g, dtype=torch.float64),
        "alpha": torch.rand(S, K, generator=g, dtype=torch.float64) + 0.1,
    }
    m._store_draws(draws, torch.zeros(S, dtype=torch.long))
    dense = torch.stack([
        torch.distributions.MultivariateNormal(
            draws["loc"][s],
            draws["W"][s] @ draws["W"][s].T + (draws["noise"][s] + 1e-6) * torch.eye(D),
        ).log_prob(x)
        for s in range(S)
    ])
    torch.testing.assert_close(m.pointwise_log_likelihood(x), dense)
    ll = m.log_likelihood(x)
    assert ll.kind == "posterior_predictive" and ll.bound == "lower"
    torch.testing.assert_close(ll.values, torch.logsumexp(dense, 0) - math.log(S))
    assert ll.stderr is not None and (ll.stderr > 0).all()
    # transform: rotate back with each draw's alignment and compare W h (rotation-invariant)
    z = m.transform(x)
    R = m._alignment(draws["W"])
    expected = []
    for s in range(S):
        Wt = draws["W"][s]
        M = torch.eye(K) + Wt.T @ Wt / (draws["noise"][s] + 1e-6)
        mean = torch.linalg.solve(M, Wt.T @ (x - draws["loc"][s]).T).T / (draws["noise"][s]
                                                                        + 1e-6)
        expected.append(mean @ R[s])
    torch.testing.assert_close(z, torch.stack(expected).mean(0))


def test_single_draw_log_likelihood_is_exact_and_transform_invariant():
    D, K = 5, 2
    x = low_rank_data(8, D)
    m = BayesianFactorAnalysis(D, K).double()
    W = torch.randn(D, K, dtype=torch.float64)
    noise = torch.rand(D, dtype=torch.float64) + 0.1
    loc = torch.randn(D, dtype=torch.float64)
    set_draws(m, W, noise, loc, alpha=torch.ones(K, dtype=torch.float64))
    C = W @ W.T + torch.diag(noise + 1e-6)
    exact = torch.distributions.MultivariateNormal(loc, C).log_prob(x)
    torch.testing.assert_close(m.log_likelihood(x).values, exact)
    # the aligned code times the aligned W equals the closed-form E[Wh | x] = W M^-1 W^T Psi^-1
    Wa = m.aligned_W()[0]
    M = torch.eye(K) + W.T @ torch.diag(1 / (noise + 1e-6)) @ W
    Wh = (W @ torch.linalg.solve(M, W.T @ torch.diag(1 / (noise + 1e-6)) @ (x - loc).T)).T
    torch.testing.assert_close(m.transform(x) @ Wa.T, Wh)


@pytest.mark.slow
def test_map_with_flat_priors_matches_ppca_maximum_likelihood():
    """guide='delta' + nearly flat priors: MAP = ML; compare with the eigen closed form."""
    x = low_rank_data(300, 4, rank=1, noise=0.4, seed=5)
    m = BayesianPPCA(
        4, 1, w_prior="normal", w_scale=1e3, loc_scale=1e3, noise_prior="lognormal",
        noise_params=(0.0, 1e3), guide="delta",
    ).double()
    fit_honestly(m.fit, x, num_steps=300, lr=0.02, progress=False, seed=0, num_posterior_samples=1)
    _, sigma2, _, ll_ml = ppca_ml(x, 1)
    ll = m.log_likelihood(x).mean()
    assert abs(ll - ll_ml) < 1e-3 * abs(ll_ml)
    assert abs(float(m.posterior_noise[0]) - float(sigma2)) < 0.02 * float(sigma2)


# ---------------------------------------------------------------------------- SVI / ARD
@pytest.mark.slow
def test_svi_ard_switches_off_unneeded_components():
    """Rank-2 data, K=5 with ARD: 3 columns are shrunk to relevance < 0.5, 2 stay large.

    Deterministic given the seed; measured relevances were [273, 246, 0.30, 0.20, 0.13].
    """
    x = low_rank_data(150, 8, rank=2, noise=0.3, seed=0)
    m = BayesianPPCA(8, 5).double()
    fit_honestly(m.fit, x, num_steps=400, lr=0.03, progress=False, seed=0, num_posterior_samples=50)
    rel = m.component_relevance()
    assert m.active_components() == 2
    assert (rel[:2] > 20).all() and (rel[2:] < 0.5).all(), rel


@pytest.mark.parametrize("guide", ["lowrank", "structured"])
def test_other_guides_run(guide):
    x = low_rank_data(30, 4)
    m = BayesianFactorAnalysis(
        4, 2, guide=guide, likelihood="latent" if guide == "structured" else "collapsed"
    ).double()
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(x, num_steps=5, progress=False, seed=0, num_posterior_samples=4)
    assert hist.info["guide"] == guide and len(hist.losses) == 5
    assert m.posterior_W.shape == (4, 4, 2)
    assert torch.isfinite(m.log_likelihood(x).values).all()


def test_save_load_keeps_posterior_draws(tmp_path):
    x = low_rank_data(30, 4)
    m = BayesianPPCA(4, 2).double()
    with pytest.warns(ConvergenceWarning):
        m.fit(x, num_steps=3, progress=False, seed=0, num_posterior_samples=7)
    m.save(tmp_path / "m.pt")
    back = BayesianPPCA.load(tmp_path / "m.pt")
    assert back.posterior_W.shape == (7, 4, 2)
    torch.testing.assert_close(back.log_likelihood(x).values, m.log_likelihood(x).values)


def test_unfitted_model_uses_prior_draws():
    m = BayesianPPCA(4, 2, num_prior_draws=11).double()
    assert not m.is_fitted
    assert m.posterior_samples()["W"].shape == (11, 4, 2)
    assert m.log_likelihood(low_rank_data(5, 4)).info["fitted"] is False


# ---------------------------------------------------------------------------- NUTS + ArviZ
@pytest.fixture(scope="module")
def nuts_ppca():
    """4 sequential NUTS chains on a tiny problem (plumbing, not convergence)."""
    pyro.set_rng_seed(0)
    x = low_rank_data(30, 3, rank=1, noise=0.3, seed=1)
    m = BayesianPPCA(3, 1, w_prior="normal").double()
    hist = m.fit(x, method="nuts", num_samples=10, warmup_steps=10, num_chains=4,
                 max_tree_depth=4, progress=False, seed=0)
    return m, x, hist


def test_nuts_four_chains(nuts_ppca):
    m, x, hist = nuts_ppca
    assert hist.method == "nuts" and len(m.mcmc) == 4
    assert m.posterior_W.shape == (40, 3, 1)
    assert m.posterior_chain.tolist() == [c for c in range(4) for _ in range(10)]
    assert len(hist.losses) == 40 and len(hist.metrics["divergences_per_chain"]) == 4
    assert torch.isfinite(m.log_likelihood(x).values).all()
    s = m.sample(5)
    assert s.shape == (5, 3) and torch.isfinite(s).all()


def test_inference_data_groups_and_dims(nuts_ppca):
    m, x, _ = nuts_ppca
    idata = m.to_inference_data()
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata.groups()
    post = idata.posterior
    assert post["W"].dims == ("chain", "draw", "features", "components")
    assert post["W"].shape == (4, 10, 3, 1)
    assert post["noise"].dims == ("chain", "draw")
    assert post["WWt_diag"].dims == ("chain", "draw", "features")
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "data")
    assert idata.log_likelihood["x"].shape == (4, 10, 30)
    assert idata.sample_stats["diverging"].shape == (4, 10)
    assert idata.observed_data["x"].shape == (30, 3)
    # the log-likelihood group is the collapsed density at each draw
    ll = torch.as_tensor(idata.log_likelihood["x"].values).reshape(40, 30)
    torch.testing.assert_close(ll, m.pointwise_log_likelihood(x))


def test_summary_has_rhat_and_ess(nuts_ppca):
    m, _, _ = nuts_ppca
    df = diagnostics.summary(m.to_inference_data(), var_names=["noise", "WWt_diag"])
    for col in ("r_hat", "ess_bulk", "ess_tail"):
        assert col in df.columns
    assert list(df.index) == ["noise", "WWt_diag[0]", "WWt_diag[1]", "WWt_diag[2]"]
    assert df["r_hat"].notna().all()


def test_aligned_W_removes_sign_flips(nuts_ppca):
    """K=1: chains sit at +w or -w; aligned draws all point the way of the reference."""
    m, _, _ = nuts_ppca
    ref = m.reference_W()
    aligned = m.aligned_W()
    assert ((aligned[:, :, 0] @ ref[:, 0]) > 0).all()
    torch.testing.assert_close((aligned**2).sum(-2), (m.posterior_W**2).sum(-2))


def test_loo_prefers_true_dimension_fast():
    """Rank-2 data (D=4): PSIS-LOO on SVI posterior draws ranks K=2 above K=1 by a wide margin.

    Fast version (SVI, AutoNormal); the NUTS version over K=1..3 is the slow test below. The
    K=1 model misses a direction with variance ~4 against noise 0.09, so the elpd gap is
    ~100 nats against a dse of a few nats. Pareto-k warnings (approximate draws) are captured
    in ``df.attrs["warnings"]``, not raised.
    """
    x = low_rank_data(40, 4, rank=2, noise=0.3, seed=0)
    idatas = {}
    for K in (1, 2):
        m = BayesianPPCA(4, K, w_prior="normal").double()
        with pytest.warns(ConvergenceWarning):
            m.fit(x, num_steps=60, lr=0.05, progress=False, seed=0, num_posterior_samples=50)
        idatas[f"K={K}"] = m.to_inference_data()
    df = diagnostics.compare_loo(idatas)
    assert df.attrs["best"] == "K=2"
    assert df.loc["K=1", "elpd_diff"] > 4 * df.loc["K=1", "dse"]


def test_nuts_on_the_latent_form_via_the_pyro_model():
    """potential='model': Pyro NUTS replays ``model`` (h sampled too); draws of W are stored."""
    x = low_rank_data(8, 3, rank=1)
    m = BayesianFactorAnalysis(3, 1, likelihood="latent").double()
    hist = m.fit(x, method="nuts", potential="model", num_samples=4, warmup_steps=4,
                 progress=False, seed=0)
    assert "h" in m.mcmc.get_samples() and m.mcmc.get_samples()["h"].shape == (4, 8, 1)
    assert m.posterior_W.shape == (4, 3, 1) and len(hist.losses) == 4


# ---------------------------------------------------------------------------- slow statistics
@pytest.mark.slow
@pytest.mark.timeout(3600)  # Pyro NUTS; >600 s on a shared 2-core VM
def test_nuts_converges_rhat_and_ard_and_ml():
    """4 chains x 200 draws on rank-2 data with K=3 + ARD: r-hat < 1.05 on invariants, two
    active components, posterior mean noise near the ML value (n=100: sd ~ 6%)."""
    x = low_rank_data(100, 5, rank=2, noise=0.3, seed=0)
    m = BayesianPPCA(5, 3).double()
    m.fit(x, method="nuts", num_samples=200, warmup_steps=200, num_chains=4, progress=False,
          seed=0)
    df = diagnostics.summary(m.to_inference_data(), var_names=["noise", "WWt_diag"])
    assert (df["r_hat"] < 1.05).all(), df
    assert (df["ess_bulk"] > 50).all(), df
    assert m.active_components() == 2, m.component_relevance()
    _, sigma2, _, _ = ppca_ml(x, 2)
    assert abs(float(m.posterior_noise.mean()) / float(sigma2) - 1) < 0.2


@pytest.mark.slow
@pytest.mark.timeout(3600)  # Pyro NUTS; >600 s on a shared 2-core VM
def test_loo_chooses_true_dimension_among_three():
    """K in {1, 2, 3} on rank-2 data: K=1 clearly worse; K=3 not better than K=2 by more than
    2 dse, so the parsimonious choice (smallest K within 2 dse of the best) is K=2."""
    x = low_rank_data(80, 5, rank=2, noise=0.3, seed=0)
    idatas = {}
    for K in (1, 2, 3):
        m = BayesianPPCA(5, K, w_prior="normal").double()
        m.fit(x, method="nuts", num_samples=200, warmup_steps=200, num_chains=2,
              progress=False, seed=0)
        idatas[K] = m.to_inference_data()
    df = diagnostics.compare_loo({f"K={k}": v for k, v in idatas.items()})
    within = [k for k in (1, 2, 3)
              if df.loc[f"K={k}", "elpd_diff"] <= 2 * max(df.loc[f"K={k}", "dse"], 1e-9)]
    assert min(within) == 2, df


# ---------------------------------------------------------------------------- bad input
def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="n_components must be an int in the range"):
        BayesianPPCA(3, 4)
    with pytest.raises(ValueError, match="w_prior must be one of"):
        BayesianPPCA(3, 1, w_prior="laplace")
    with pytest.raises(ValueError, match="noise_prior must be one of"):
        BayesianFactorAnalysis(3, 1, noise_prior="gamma")
    with pytest.raises(ValueError, match="noise_params must be a tuple of 2"):
        BayesianFactorAnalysis(3, 1, noise_params=(1.0,))
    with pytest.raises(ValueError, match=r"noise_params\[1\] must be a float"):
        BayesianFactorAnalysis(3, 1, noise_params=(1.0, -0.1))
    with pytest.raises(ValueError, match="ard_rate must be a float"):
        BayesianPPCA(3, 1, ard_rate=0.0)
    with pytest.raises(ValueError, match="guide='structured'.*needs likelihood='latent'"):
        BayesianPPCA(3, 1, guide="structured")
    with pytest.raises(ValueError, match="guide must be one of"):
        BayesianPPCA(3, 1, guide="flow")
    with pytest.raises(TypeError, match="n_features must be an int"):
        BayesianPPCA(3.0, 1)


def test_bad_fit_arguments():
    x = low_rank_data(10, 3)
    m = BayesianPPCA(3, 1).double()
    with pytest.raises(ValueError, match="method must be one of"):
        m.fit(x, method="gibbs", progress=False)
    with pytest.raises(ValueError, match="num_chains must be an int in the range"):
        m.fit(x, method="nuts", num_chains=0, progress=False)
    with pytest.raises(ValueError, match="chain_method must be one of"):
        m.fit(x, method="nuts", chain_method="vectorized", progress=False)
    with pytest.raises(ValueError, match="init must be one of"):
        m.fit(x, method="nuts", init="zeros", progress=False)
    with pytest.raises(ValueError, match="x must have 3 features"):
        m.fit(x[:, :2], method="nuts", progress=False)
    with pytest.raises(ValueError, match="chain_method='parallel' needs potential='model'"):
        m.fit(x, method="nuts", num_chains=2, chain_method="parallel", progress=False)
    latent = BayesianPPCA(3, 1, likelihood="latent").double()
    with pytest.raises(ValueError, match="potential='fast' needs likelihood='collapsed'"):
        latent.fit(x, method="nuts", num_samples=1, warmup_steps=0, progress=False)
    with pytest.raises(ValueError, match="threshold must be a float"):
        m.active_components(threshold=-1.0)
    with pytest.raises(TypeError, match="x must have the model's dtype"):
        m.transform(x.float())
