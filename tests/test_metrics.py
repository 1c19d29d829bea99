"""pyrogen.metrics: known values on known inputs."""

import math

import pytest
import torch

from pyrogen import metrics as M

DT = torch.float64


def test_frechet_distance_of_a_set_with_itself_is_zero_and_gaussian_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 5, generator=g, dtype=DT)
    assert M.frechet_distance(a, a) < 1e-8
    # diagonal covariances: FD = |mu1 - mu2|^2 + sum (s1 - s2)^2
    mu1, mu2 = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    s1, s2 = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5])
    fd = M.frechet_distance_from_moments(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert fd == pytest.approx(8.0 + 4.0 + 2.25, abs=1e-10)


def test_classifier_score_of_a_perfect_classifier_is_the_datas_score():
    """One-hot p(y|x) on real labels: IS = exp(H(p(y))) (10 balanced classes -> 10)."""
    y = torch.arange(1000) % 10
    probs = torch.nn.functional.one_hot(y, 10).double()
    mean, _ = M.classifier_score(probs, num_splits=1)
    assert mean == pytest.approx(10.0, rel=1e-10)
    y2 = torch.cat([torch.zeros(750), torch.ones(250)]).long()
    mean, _ = M.classifier_score(torch.nn.functional.one_hot(y2, 2).double(), num_splits=1)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert mean == pytest.approx(math.exp(h), rel=1e-10)
    # uninformative classifier: score 1
    assert M.classifier_score(torch.full((50, 4), 0.25, dtype=DT), 5)[0] == pytest.approx(1.0)
    torch.testing.assert_close(M.class_histogram(probs), torch.full((10,), 0.1, dtype=DT))


def test_precision_recall_known_cases():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 2, generator=g, dtype=DT)
    assert M.precision_recall(real, real.clone(), k=3) == (1.0, 1.0)
    far = real + 100.0
    assert M.precision_recall(real, far, k=3) == (0.0, 0.0)
    # collapsed generator: every sample at the real mean -> high precision, low recall
    collapsed = 0.01 * torch.randn(300, 2, generator=g, dtype=DT)
    p, r = M.precision_recall(real, collapsed, k=3)
    assert p == 1.0 and r < 0.1


def test_mode_coverage_of_the_true_distribution_is_all_modes():
    for make, n_modes in ((M.ring_of_gaussians, 8), (M.grid_of_gaussians, 25)):
        x, centers, std = make(2500, seed=0)
        cov = M.mode_coverage(x, centers, std)
        assert cov.modes_covered == n_modes == cov.n_modes
        # P(|N(0, I_2)| <= 3) = 1 - exp(-4.5) = 0.9889; 2500 draws: +-4 se = +-0.0084
        assert abs(cov.high_quality - (1 - math.exp(-4.5))) < 0.0084
        assert cov.kl_to_uniform < 0.02
    x, centers, std = M.ring_of_gaussians(1000, seed=1)
    one_mode = centers[0] + std * torch.randn(1000, 2, dtype=DT)
    cov = M.mode_coverage(one_mode, centers, std)
    assert cov.modes_covered == 1 and cov.kl_to_uniform == pytest.approx(math.log(8), abs=1e-9)


def test_nearest_neighbours_flags_memorization():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(300, 4, generator=g, dtype=DT)
    heldout = torch.randn(100, 4, generator=g, dtype=DT)
    copies = train[:50] + 1e-3
    fresh = torch.randn(50, 4, generator=g, dtype=DT)
    mem = M.nearest_neighbours(copies, train, heldout)
    ok = M.nearest_neighbours(fresh, train, heldout)
    assert torch.equal(mem.indices[:, 0], torch.arange(50))
    assert mem.ratio < 0.01 and mem.fraction_closer == 1.0
    assert 0.5 < ok.ratio < 2.0 and ok.fraction_closer < 0.3


def test_classifier_is_trained_once_and_cached(tmp_path):
    from pyrogen.datasets import load_digits

    data = load_digits()
    x, y = data.x[:400], data.y[:400]
    clf = M.cached_classifier("digits", x, y, directory=str(tmp_path), num_epochs=8)
    files = list((tmp_path / "classifiers").iterdir())
    assert len(files) == 1 and files[0].name.startswith("digits-")
    again = M.cached_classifier("digits", x, y, directory=str(tmp_path), num_epochs=8)
    torch.testing.assert_close(again.probs(x[:10]), clf.probs(x[:10]))
    acc = float((clf.probs(data.x[1000:1400]).argmax(1) == data.y[1000:1400]).double().mean())
    assert acc > 0.8
    assert clf.features(x[:3]).shape == (3, 128)


def test_nearest_neighbour_picture(tmp_path):
    g = torch.Generator().manual_seed(0)
    train = torch.rand(30, 16, generator=g, dtype=DT)
    path = M.save_nearest_neighbour_grid(train[:3], train, (4, 4), tmp_path / "nn.png", k=2)
    assert (tmp_path / "nn.png").exists() and str(path).endswith("nn.png")


def test_bad_input():
    with pytest.raises(ValueError, match="feat1 must be finite"):
        M.frechet_distance(torch.tensor([[float("nan")]]), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="same width"):
        M.frechet_distance(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="k must be an int"):
        M.precision_recall(torch.zeros(3, 2), torch.zeros(3, 2), k=5)
    with pytest.raises(ValueError, match="std must be a float"):
        M.mode_coverage(torch.zeros(3, 2), torch.zeros(1, 2), std=0.0)


def test_label_agreement_accepts_own_labels_and_refuses_shuffled_ones():
    from pyrogen.datasets import load_digits

    d = load_digits(binarize="threshold", seed=0)
    x, y = d.x.double(), d.y.long()
    good = M.check_label_agreement(x[:1200], y[:1200], x[1200:], y[1200:])
    assert good > 0.8
    # the same labels in another order, as in the shared binarized MNIST npz
    y_bad = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert M.label_agreement(x[:1200], y_bad[:1200], x[1200:], y_bad[1200:]) < 0.3
    with pytest.raises(ValueError, match="labels do not belong to the images"):
        M.check_label_agreement(x[:1200], y_bad[:1200], x[1200:], y_bad[1200:])
