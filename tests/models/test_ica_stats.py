"""Tests of pyrogen.models.ica_stats: the Jarque-Bera test against scipy, the Amari distance,
the identifiability warning."""

import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from pyrogen.models.ica_stats import (
    NonIdentifiableWarning,
    amari_distance,
    gaussianity_test,
    warn_if_gaussian,
)


def test_gaussianity_test_values():
    g = torch.Generator().manual_seed(0)
    s = torch.cat(
        [torch.randn(4000, 1, generator=g, dtype=torch.float64),
         torch.rand(4000, 1, generator=g, dtype=torch.float64)], 1
    )
    r = gaussianity_test(s)
    ref = scipy.stats.jarque_bera(s.numpy(), axis=0)
    np.testing.assert_allclose(r["statistic"].numpy(), ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(r["p_value"].numpy(), ref.pvalue, rtol=1e-8, atol=1e-300)
    assert abs(float(r["excess_kurtosis"][1]) + 1.2) < 0.1
    with pytest.raises(ValueError, match="n >= 8"):
        gaussianity_test(torch.zeros(3, 2))


def test_amari_distance():
    a = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    perm = torch.tensor([[0.0, 2, 0], [0, 0, -1], [3, 0, 0]], dtype=torch.float64)
    assert amari_distance(perm @ torch.linalg.inv(a), a) < 1e-12
    assert amari_distance(torch.ones(3, 3) + torch.eye(3), torch.eye(3)) > 0.3
    with pytest.raises(ValueError, match="unmixing must have shape"):
        amari_distance(torch.ones(2, 3), torch.ones(2, 3))


def test_warn_if_gaussian_only_for_two_or_more_gaussian_sources():
    two = {"p_value": torch.tensor([0.5, 0.2, 1e-9]), "n": 100}
    with pytest.warns(NonIdentifiableWarning, match=r"sources \[0, 1\] of 3"):
        warn_if_gaussian(two, 0.01, stacklevel=2)
    one = {"p_value": torch.tensor([0.5, 1e-9, 1e-9]), "n": 100}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_gaussian(one, 0.01, stacklevel=2)
