"""Tests of the few-label probe (pyrogen/probes.py)."""

import math

import numpy as np
import pytest
import torch

from pyrogen.probes import ProbeResult, few_label_probe, probe_representations, t_interval


def _separable(n, seed, n_classes=4, d=6):
    """A code whose first n_classes coordinates are the one-hot class (times 3) plus small
    noise: linearly separable with a wide margin."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    codes = rng.normal(scale=0.3, size=(n, d))
    codes[np.arange(n), y] += 3.0
    return codes, y


def test_separable_code_is_probed_to_100_percent():
    ctr, ytr = _separable(400, 0)
    cte, yte = _separable(400, 1)
    r = few_label_probe(ctr, ytr, cte, yte, k_per_class=5, seeds=(0, 1, 2))
    assert isinstance(r, ProbeResult)
    assert r.mean > 0.99 and min(r.accuracies) > 0.98
    assert r.k_per_class == 5 and r.n_test == 400 and len(r.accuracies) == 3
    assert "k=5" in str(r) and r.to_dict()["mean"] == r.mean


def test_noise_is_probed_to_chance():
    """Labels independent of the codes: mean accuracy over 10 seeds of a 4-class problem on
    2000 test points lies within 0.05 of 1/4 (binomial sd per seed ~0.01; the seed-to-seed
    spread of a 20-example fit is larger but the mean of 10 stays far inside 0.05)."""
    rng = np.random.default_rng(0)
    ctr, cte = rng.normal(size=(500, 10)), rng.normal(size=(2000, 10))
    ytr, yte = rng.integers(0, 4, 500), rng.integers(0, 4, 2000)
    r = few_label_probe(ctr, ytr, cte, yte, k_per_class=5, seeds=range(10))
    assert abs(r.mean - 0.25) < 0.05
    assert r.chance == pytest.approx(np.bincount(yte).max() / 2000)
    assert r.ci_low < r.mean < r.ci_high


def test_t_interval():
    m, lo, hi = t_interval([0.5, 0.7])
    assert m == pytest.approx(0.6)
    assert hi - m == pytest.approx(12.706 * np.std([0.5, 0.7], ddof=1) / math.sqrt(2))
    assert math.isnan(t_interval([0.3])[1])


def test_probe_representations_runs_raw_and_models():
    ctr, ytr = _separable(200, 0)
    cte, yte = _separable(100, 1)

    class Enc:
        def transform(self, x):
            return torch.as_tensor(x[:, :4])

    out = probe_representations({"first4": Enc()}, ctr, ytr, cte, yte, (1, 3), seeds=(0, 1))
    assert set(out) == {"raw pixels", "first4"}
    assert set(out["first4"]) == {1, 3}
    assert out["first4"][3].mean > 0.95
    with pytest.raises(TypeError, match="encoders"):
        probe_representations({"bad": 3}, ctr, ytr, cte, yte, 1, seeds=(0,), raw=False)


def test_bad_input():
    ctr, ytr = _separable(50, 0)
    cte, yte = _separable(20, 1)
    with pytest.raises(ValueError, match=r"y_train must have shape \(50,\).*Got shape \(49,\)"):
        few_label_probe(ctr, ytr[:49], cte, yte, 2)
    with pytest.raises(ValueError, match=r"y_test must have shape \(20,\)"):
        few_label_probe(ctr, ytr, cte, yte[:5], 2)
    with pytest.raises(ValueError, match="k_per_class must be at most the size of the smallest"):
        few_label_probe(ctr, ytr, cte, yte, 1000)
    with pytest.raises(ValueError, match="k_per_class must be an int in the range"):
        few_label_probe(ctr, ytr, cte, yte, 0)
    bad = yte.copy()
    bad[0] = 7
    with pytest.raises(ValueError, match=r"y_test holds label\(s\) \[7\] absent from y_train"):
        few_label_probe(ctr, ytr, cte, bad, 2)
    neg = ytr.copy()
    neg[0] = -1
    with pytest.raises(ValueError, match="y_train must hold labels >= 0"):
        few_label_probe(ctr, neg, cte, yte, 2)
    with pytest.raises(TypeError, match="y_train must hold int labels"):
        few_label_probe(ctr, ytr.astype(float), cte, yte, 2)
    with pytest.raises(ValueError, match="codes_test must have 6 columns"):
        few_label_probe(ctr, ytr, cte[:, :3], yte, 2)
    nan = ctr.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="codes_train must be finite"):
        few_label_probe(nan, ytr, cte, yte, 2)
    with pytest.raises(TypeError, match="codes_train must be a 2-D tensor or array"):
        few_label_probe([[0.0]], ytr, cte, yte, 2)
    with pytest.raises(ValueError, match="seeds must hold at least one seed"):
        few_label_probe(ctr, ytr, cte, yte, 2, seeds=())
