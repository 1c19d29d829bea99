"""Per-example refinement of q and the amortization gap, checked where the answer is known: for
a linear-Gaussian VAE with orthogonal decoder columns the posterior is a diagonal Gaussian, so
the best ELBO in the family equals log p(x) exactly."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.infer.refine import AmortizationGap, RefinedGuide, amortization_gap, refine
from pyrogen.models import VAE


def diagonal_posterior_vae(seed=0):
    """x = W z + mu + 0.5 eps with orthogonal columns of W: p(z|x) has diagonal covariance."""
    g = torch.Generator().manual_seed(seed)
    m = VAE(4, latent_dims=2, hidden_dims=(), likelihood="gaussian",
            gaussian_scale="isotropic").double()
    q, _ = torch.linalg.qr(torch.randn(4, 2, generator=g, dtype=torch.float64))
    w = q * torch.tensor([2.0, 1.0], dtype=torch.float64)
    mu = torch.randn(4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.decoder[0].weight.copy_(w)
        m.decoder[0].bias.copy_(mu)
        m.decoder_log_scale.fill_(math.log(0.5))
        for p in m.encoder.parameters():  # a poor encoder
            p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    z = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x = z @ w.T + mu + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    cov = w @ w.T + 0.25 * torch.eye(4, dtype=torch.float64)
    exact = dist.MultivariateNormal(mu, cov).log_prob(x)
    return m, x, exact


def test_refinement_closes_the_amortization_gap():
    m, x, exact = diagonal_posterior_vae()
    gap = amortization_gap(m.model, m.guide, x, num_steps=300, lr=0.05, num_particles=10,
                           elbo_particles=500, is_particles=2000)
    assert isinstance(gap, AmortizationGap)
    assert gap.elbo_amortized.kind == "elbo" and gap.elbo_refined.kind == "elbo"
    assert gap.log_likelihood.kind == "is_estimate"
    # the poor encoder leaves several nats; refinement recovers the exact posterior
    assert gap.amortization_gap > 1.0
    # best diagonal Gaussian = exact posterior: refined ELBO ~ log p(x) (SGD noise ~0.02)
    assert (gap.elbo_refined.values - exact).abs().max() < 0.05
    assert abs(gap.approximation_gap) < 0.05
    # the IS estimate with the refined proposal is essentially exact
    assert (gap.log_likelihood.values - exact).abs().max() < 0.01
    assert gap.info["refine_curve"][-1] < gap.info["refine_curve"][0]
    d = gap.to_dict()
    assert d["amortization_gap"] == pytest.approx(gap.amortization_gap)


def test_refine_leaves_model_parameters_alone():
    m, x, _ = diagonal_posterior_vae()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    refined, losses = refine(m.model, m.guide, x, num_steps=20)
    assert isinstance(refined, RefinedGuide) and len(losses) == 20
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    loc, log_scale, event = refined.params["z"]
    assert loc.shape == (6, 2) and event == 1 and not loc.requires_grad
    # starts from the encoder's output: zero offsets, the same site distribution
    r0, _ = refine(m.model, m.guide, x, num_steps=0)
    assert not r0.params["z"][0].any() and not r0.params["z"][1].any()
    enc_loc, enc_scale = m.encoder(x)
    fn = pyro.poutine.trace(r0).get_trace(x).nodes["z"]["fn"].base_dist
    torch.testing.assert_close(fn.loc, enc_loc)
    torch.testing.assert_close(fn.scale, enc_scale)
    # after refinement: the encoder's output shifted by the offsets
    fn = pyro.poutine.trace(refined).get_trace(x).nodes["z"]["fn"].base_dist
    torch.testing.assert_close(fn.loc, enc_loc + loc)
    torch.testing.assert_close(fn.scale, enc_scale * log_scale.exp())


def test_vae_method_and_bad_input():
    m, x, _ = diagonal_posterior_vae()
    gap = m.amortization_gap(x, num_steps=5, elbo_particles=10, is_particles=20)
    assert len(gap.elbo_refined) == 6
    with pytest.raises(ValueError, match="num_steps must be an int"):
        refine(m.model, m.guide, x, num_steps=-1)
    with pytest.raises(ValueError, match="lr must be a float"):
        refine(m.model, m.guide, x, lr=0.0)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            b = pyro.sample("b", dist.Laplace(torch.zeros(x.shape[0], dtype=x.dtype), 1.0))
            pyro.sample("x", dist.Normal(b, 1.0), obs=x[:, 0])

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("b", dist.Laplace(torch.zeros(x.shape[0], dtype=x.dtype), 0.5))

    with pytest.raises(ValueError, match="refine needs Normal or Bernoulli guide sites"):
        refine(model, guide, x)


# ---------------------------------------------------------------- Bernoulli sites (SBNs)
def enumerable_sbn(seed=0, helmholtz=False):
    """SBN 8-3-2 (H = 5, 32 configurations) with strong couplings and a poor recognition
    network (mean-field, or bottom-up with ``helmholtz``): the exact posterior, the exact ELBO
    of any such q and the exact log p(x) are all computable by enumeration."""
    from pyrogen.models import HelmholtzMachine, SigmoidBeliefNet

    g = torch.Generator().manual_seed(seed)
    m = (HelmholtzMachine if helmholtz else SigmoidBeliefNet)([8, 3, 2]).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(1.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
        for lin in m.rec:
            lin.weight.mul_(0.1)
    x = m.sample(6)
    return m, x


def mean_field_log_q(logits_by_site, configs, split):
    """log q(h) of per-example mean-field Bernoulli logits over all configurations, (2^H, n)."""
    hs = split(configs)
    total = 0.0
    for logits, h in zip(logits_by_site, hs):
        lg = logits.unsqueeze(0)  # (1, n, h_l)
        hh = h.unsqueeze(1)  # (2^H, 1, h_l)
        total = total + (hh * torch.nn.functional.logsigmoid(lg)
                         + (1 - hh) * torch.nn.functional.logsigmoid(-lg)).sum(-1)
    return total


def test_refine_bernoulli_elbo_reaches_the_best_mean_field_elbo():
    pyro.set_rng_seed(0)
    m, x = enumerable_sbn()
    configs = m.hidden_configs()
    table = m.exact_log_joint_table(x).detach().T  # (2^H, n)

    def exact_elbo(logits):
        lq = mean_field_log_q(logits, configs, m._hidden_split)
        return (lq.exp() * (table - lq)).sum(0)

    def logits(refined):  # mean-field recognition net + the refined per-example offsets
        return [m.rec[l](x).detach() + refined.params[f"h{l + 1}"][0] for l in (0, 1)]

    r0, _ = refine(m.model, m.guide, x, num_steps=0)
    assert r0.params["h1"][1] is None and r0.params["h1"][2] == 1
    assert not r0.params["h1"][0].any()  # starts from the encoder
    init = logits(r0)
    # the exact optimum of the same per-example family from the same start: deterministic
    # gradient ascent on the enumerated ELBO
    best = [t.clone().requires_grad_(True) for t in init]
    opt = torch.optim.Adam(best, lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        (-exact_elbo(best).sum()).backward()
        opt.step()
    best_elbo = exact_elbo([t.detach() for t in best])
    before = exact_elbo(init)
    refined, losses = refine(m.model, m.guide, x, num_steps=800, lr=0.05, num_particles=20)
    after = exact_elbo(logits(refined))
    assert (best_elbo - before).mean() > 0.5  # the poor encoder leaves a real gap
    # the score-function estimator (leave-one-out baseline) gets there: with data and RNG
    # seeds 0-9 (this test with the seed varied) the worst example was 0.024 nats short;
    # 0.05 is twice that (no failure seen in those 10 runs)
    assert (best_elbo - after).max() < 0.05
    assert losses[-1] < losses[0]


def test_refine_bernoulli_inclusive_matches_posterior_marginals_and_improves_is():
    """The inclusive-KL minimizer in a fully factorized family matches the posterior's
    marginals (moment matching), so the refined proposal's probabilities must equal the exact
    marginals p(h_i = 1 | x_n) up to SGD noise and the finite-K self-normalization bias."""
    pyro.set_rng_seed(1)
    m, x = enumerable_sbn()
    post = m.exact_posterior(x).detach()  # (n, 2^H)
    marginals = post @ m.hidden_configs()  # (n, H)
    exact = m.exact_log_likelihood(x).detach()
    refined, _ = refine(m.model, m.guide, x, num_steps=1000, lr=0.05, num_particles=50,
                        objective="inclusive")
    enc_logits = [m.rec[i](x).detach() for i in (0, 1)]
    probs = torch.cat([torch.sigmoid(enc_logits[i] + refined.params[f"h{i + 1}"][0])
                       for i in (0, 1)], -1)
    enc = torch.sigmoid(torch.cat(enc_logits, -1))
    assert (enc - marginals).abs().max() > 0.3  # the encoder is far off
    # Monte Carlo error of the final iterate plus the O(1/K) bias of K = 50 self-normalized
    # weights: with seeds 0-9 the worst marginal was 0.026 off; 0.05 is about twice that
    assert (probs - marginals).abs().max() < 0.05
    # IS with the refined proposal: closer to the exact log p(x) and a higher ESS at equal k
    from pyrogen.infer.importance import importance_log_likelihood

    ll_ref = importance_log_likelihood(m.model, refined, x, num_particles=200, max_plate_nesting=1)
    ll_enc = importance_log_likelihood(m.model, m.guide, x, num_particles=200, max_plate_nesting=1)
    err_ref = (ll_ref.values - exact).abs().mean()
    err_enc = (ll_enc.values - exact).abs().mean()
    assert err_ref < err_enc
    assert ll_ref.info["ess"].mean() > 2 * ll_enc.info["ess"].mean()


def test_refine_bernoulli_bad_input_and_model_untouched():
    m, x = enumerable_sbn()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match="num_particles must be >= 2"):
        refine(m.model, m.guide, x, num_steps=3, num_particles=1)
    with pytest.raises(ValueError, match="objective must be one of"):
        refine(m.model, m.guide, x, objective="exclusive")
    gap = amortization_gap(m.model, m.guide, x, num_steps=5, elbo_particles=10,
                           is_particles=20, objective="inclusive")
    assert gap.info["objective"] == "inclusive" and len(gap.log_likelihood) == 6
    assert gap.log_likelihood.info["ess"].shape == (6,)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_refine_keeps_the_hierarchical_guide_of_a_helmholtz_machine():
    """q(h1|x) q(h2|h1): the refined guide shifts both layers' logits but keeps h2's dependence
    on the sampled h1, so at zero offsets it is exactly the encoder and the ELBO objective can
    only start from the encoder's ELBO (both computed exactly by enumeration)."""
    from pyrogen.models.sbn import _bern_logp

    pyro.set_rng_seed(2)
    m, x = enumerable_sbn(2, helmholtz=True)
    configs = m.hidden_configs()
    h1, h2 = (h.unsqueeze(1) for h in m._hidden_split(configs))
    lp = m.log_joint(x.unsqueeze(0), [h1, h2]).detach()

    def exact_elbo(refined):
        d1, d2 = refined.params["h1"][0], refined.params["h2"][0]
        lq = (_bern_logp(m.rec[0](x) + d1, h1) + _bern_logp(m.rec[1](h1) + d2, h2)).detach()
        return (lq.exp() * (lp - lq)).sum(0)

    r0, _ = refine(m.model, m.guide, x, num_steps=0)
    torch.testing.assert_close(exact_elbo(r0), m.exact_elbo(x).detach())
    # the refined guide's h2 logits read the sampled h1 (not one frozen draw)
    tr = pyro.poutine.trace(r0).get_trace(x)
    torch.testing.assert_close(tr.nodes["h2"]["fn"].base_dist.logits,
                               m.rec[1](tr.nodes["h1"]["value"]))
    refined, _ = refine(m.model, m.guide, x, num_steps=500, lr=0.05, num_particles=20)
    gain = exact_elbo(refined) - exact_elbo(r0)
    # exact ELBO per example: over data seeds 2-6 the mean gain was 3.0-4.9 nats and the
    # smallest per-example gain 1.87, each within 0.03-0.19 nats of log p(x) afterwards
    assert gain.mean() > 2.0 and gain.min() > 1.0


def test_inclusive_gradient_has_no_pathwise_part_through_upper_samples():
    """Hierarchical Normal guide q(z1) q(z2 | z1): the inclusive gradient is
    -sum_k w_k grad log q(z_k) at *fixed* z_k, so the offset of z1 gets only the z1 term
    (checked against the formula evaluated on the traced samples)."""
    from pyrogen.infer.refine import _OffsetMessenger, _refine_loss

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(torch.zeros_like(x), 1.0))
            z2 = pyro.sample("z2", dist.Normal(z1, 1.0))
            pyro.sample("x", dist.Normal(z2, 0.5), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(0.3 * x, 1.0))
            pyro.sample("z2", dist.Normal(0.5 * z1 + 0.2 * x, 0.8))

    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    refined, _ = refine(model, guide, x, num_steps=0)
    with torch.no_grad():  # non-zero offsets, so the check is not at a special point
        for a, b, _ in refined.params.values():
            a.copy_(torch.tensor([0.2, -0.1, 0.3]))
            b.copy_(torch.tensor([0.1, 0.0, -0.2]))
    for t in refined.tensors():
        t.requires_grad_(True)
    pyro.set_rng_seed(3)
    loss, lw = _refine_loss(model, refined, (x,), {}, 7, 1, "data", "inclusive")
    d1 = refined.params["z1"][0]
    (g,) = torch.autograd.grad(loss, [d1])
    # the same draws again, traced, and the formula at fixed z
    pyro.set_rng_seed(3)
    with pyro.plate("_pyrogen_particles", 7, dim=-2):
        with _OffsetMessenger(refined.params):
            tr = pyro.poutine.trace(guide).get_trace(x)
    z1 = tr.nodes["z1"]["value"].detach()
    w = torch.softmax(lw.detach(), 0)
    ls1 = refined.params["z1"][1].detach()
    # d/d delta1 of log N(z1; 0.3x + delta1, e^ls1) = (z1 - mean) / var
    score = (z1 - 0.3 * x - d1.detach()) / (ls1.exp() ** 2)
    torch.testing.assert_close(g, -(w * score).sum(0))
