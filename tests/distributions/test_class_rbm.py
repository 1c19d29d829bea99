"""ClassRBM (the classification RBM's joint p(v, y)) against brute-force enumeration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pyrogen.distributions import ClassRBM, enumerate_binary_states
from pyrogen.normalizers import AIS


def _tiny(D=4, H=3, C=3, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    p = [scale * torch.randn(*s, generator=g, dtype=torch.float64)
         for s in ((D, H), (D,), (H,), (C, H), (C,))]
    return ClassRBM(*p)


def _all_states(d):
    D, C = d.n_visible, d.n_classes
    V = enumerate_binary_states(D, dtype=torch.float64)
    E = torch.eye(C, dtype=torch.float64)
    return torch.cat([V.repeat_interleave(C, 0), E.repeat(len(V), 1)], -1)


def _brute_log_unnorm(d, x):
    """log sum_h exp(-E(v, y, h)) by enumerating the hidden states."""
    hs = enumerate_binary_states(d.n_hidden, dtype=torch.float64)
    return torch.logsumexp(torch.stack([-d.energy(x, h.expand(len(x), -1)) for h in hs]), 0)


def test_free_energy_log_z_and_log_prob_equal_brute_force():
    d = _tiny()
    x = _all_states(d)
    lu = _brute_log_unnorm(d, x)
    torch.testing.assert_close(d.unnormalized_log_prob(x), lu)
    log_z = torch.logsumexp(lu, 0)
    torch.testing.assert_close(d.enumerate_log_z(), log_z)
    lp = d.log_prob(x)
    torch.testing.assert_close(lp, lu - log_z)
    torch.testing.assert_close(torch.logsumexp(lp, 0), torch.zeros((), dtype=torch.float64))


def test_class_posterior_sums_to_one_and_equals_brute_force():
    d = _tiny()
    x = _all_states(d)
    V = x[:: d.n_classes, : d.n_visible]
    lp = torch.log_softmax(d.class_logits(V), -1)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(len(V), dtype=torch.float64))
    bf = _brute_log_unnorm(d, x).reshape(len(V), d.n_classes)
    torch.testing.assert_close(lp, bf - torch.logsumexp(bf, -1, keepdim=True))


def test_ais_base_rate_path_estimates_the_exact_log_z():
    # stochastic: 200 chains x 1000 temperatures; |error| < 4 stderr + 0.02 fails far less than
    # once in 10^4 seeds for a well-mixed run (the tolerance's 0.02 covers AIS's small bias)
    d = _tiny(D=6, H=4, C=3, seed=1)
    exact = float(d.log_normalizer().log_z)
    est = AIS(num_chains=200, num_betas=1000, seed=0)(d)
    assert abs(float(est.log_z) - exact) < 4 * float(est.stderr) + 0.02


def test_block_gibbs_leaves_the_joint_invariant_chi_square():
    # 40,000 draws after 30 Gibbs steps from a uniform start, 2^3 x 2 = 16 states; the
    # chi-square statistic (15 dof) exceeds 45 with probability below 1e-4
    torch.manual_seed(0)
    d = _tiny(D=3, H=2, C=2, seed=2)
    x = _all_states(d)
    s = d.transition(d.init_chains(40_000), num_steps=30)
    assert bool((s[:, d.n_visible :].sum(-1) == 1).all())
    code = (s[:, : d.n_visible] @ (2.0 ** torch.arange(d.n_visible, dtype=torch.float64))
            * d.n_classes + s[:, d.n_visible :].argmax(-1)).long()
    # x enumerates v as bits (unit i = bit i) with the class fastest, as ``code`` does
    counts = torch.bincount(code, minlength=len(x)).double()
    expected = 40_000 * d.log_prob(x).exp()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45.0


def test_exact_normalizer_gradient_is_autograd_of_brute_force():
    d = _tiny(D=3, H=3, C=2, seed=3)
    params = [d.weight, d.visible_bias, d.hidden_bias, d.class_weight, d.class_bias]
    for p in params:
        p.requires_grad_(True)
    x = _all_states(d)[[0, 5, 9]]
    g1 = torch.autograd.grad(d.log_prob(x).sum(), params)
    lu_all = _brute_log_unnorm(d, _all_states(d))
    g2 = torch.autograd.grad((_brute_log_unnorm(d, x) - torch.logsumexp(lu_all, 0)).sum(),
                             params)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_bad_parameters_and_values():
    D, H, C = 3, 2, 2
    z = torch.zeros
    with pytest.raises(ValueError, match="class_weight must have shape"):
        ClassRBM(z(D, H), z(D), z(H), z(C, H + 1), z(C))
    with pytest.raises(ValueError, match="class_bias must have shape"):
        ClassRBM(z(D, H), z(D), z(H), z(C, H), z(C + 1))
    with pytest.raises(ValueError, match="hidden_bias must have shape"):
        ClassRBM(z(D, H), z(D), z(H + 1), z(C, H), z(C))
    with pytest.raises(TypeError, match="dtype of weight"):
        ClassRBM(z(D, H), z(D, dtype=torch.float64), z(H), z(C, H), z(C))
    d = ClassRBM(z(D, H), z(D), z(H), z(C, H), z(C), validate_args=True)
    with pytest.raises(ValueError, match="one-hot"):
        d.log_prob(torch.tensor([[1.0, 0.0, 1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError):
        d.log_prob(torch.tensor([[0.5, 0.0, 1.0, 1.0, 0.0]]))
    d.log_prob(torch.cat([torch.ones(1, D), F.one_hot(torch.tensor([1]), C).float()], -1))
