import math

import pytest
import torch

from pyrogen.evaluation import KINDS, LogLikelihood


def test_exact_has_no_stderr_and_labels():
    ll = LogLikelihood(torch.tensor([-1.0, -3.0]), "exact")
    assert ll.shape == (2,) and len(ll) == 2
    assert ll.mean() == -2.0
    assert ll.mean_stderr() is None
    assert ll.bound is None
    assert "[exact]" in str(ll)
    assert ll.to_dict()["kind"] == "exact"


def test_stderr_combines_per_example_and_shared():
    ll = LogLikelihood(
        torch.tensor([-1.0, -3.0]), "ais_estimate", stderr=torch.tensor([0.3, 0.4]),
        shared_stderr=0.1,
    )
    # sqrt(0.3^2 + 0.4^2)/2 = 0.25, combined with 0.1 in quadrature
    assert math.isclose(ll.mean_stderr(), math.sqrt(0.25**2 + 0.1**2), rel_tol=1e-6)
    assert ll.bound == "upper"
    assert "±" in str(ll)


def test_every_kind_declares_a_description():
    for desc, bound in KINDS.values():
        assert desc and bound in (None, "lower", "upper")


def test_bad_kind_and_shape():
    with pytest.raises(ValueError, match="kind must be one of"):
        LogLikelihood(torch.zeros(2), "likelihood-ish")
    with pytest.raises(ValueError, match=r"values must have shape \(n,\)"):
        LogLikelihood(torch.zeros(2, 2), "exact")


def test_parzen_log_likelihood_matches_direct_sum_and_is_labelled():
    from pyrogen.evaluation import parzen_log_likelihood

    g = torch.Generator().manual_seed(0)
    s = torch.bernoulli(torch.full((30, 5), 0.5, dtype=torch.float64), generator=g)
    x = torch.bernoulli(torch.full((4, 5), 0.5, dtype=torch.float64), generator=g)
    ll = parzen_log_likelihood(s, x, kernel="bernoulli", bandwidth=0.1, chunk_size=7)
    k = torch.where(x[None] == s[:, None], 0.9, 0.1).double().prod(-1)  # (30, 4)
    torch.testing.assert_close(ll.values, k.mean(0).log())
    assert ll.kind == "parzen_unreliable" and ll.bound is None and ll.stderr is not None
    r = torch.randn(50, 3, generator=g, dtype=torch.float64)
    ll = parzen_log_likelihood(r, r[:2], bandwidth=0.5)
    dens = torch.distributions.Normal(r[:, None], 0.5).log_prob(r[None, :2]).sum(-1).exp()
    torch.testing.assert_close(ll.values, dens.mean(0).log())
    with pytest.raises(ValueError, match="bandwidth must be"):
        parzen_log_likelihood(s, x, kernel="bernoulli", bandwidth=0.5)
    with pytest.raises(ValueError, match="samples must have 5 features"):
        parzen_log_likelihood(s[:, :3], x)
    with pytest.raises(ValueError, match="x must be binary"):
        parzen_log_likelihood(s, x * 0.5, kernel="bernoulli", bandwidth=0.1)
