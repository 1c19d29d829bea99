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
