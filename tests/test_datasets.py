import os

import numpy as np
import pytest
import torch

from pyrogen import datasets

# recovered labels for the real binarized MNIST (benchmarks/recover_mnist_labels.py), if given
_MNIST_LABELS = os.environ.get("PYROGEN_MNIST_LABELS")


@pytest.fixture(autouse=True)
def _no_labels_env(monkeypatch):
    """The fake data files here must not pick up a real labels file from the environment."""
    monkeypatch.delenv("PYROGEN_MNIST_LABELS", raising=False)


def test_load_digits_real_valued():
    ds = datasets.load_digits()
    assert ds.x.shape == (1797, 64) and ds.y.shape == (1797,)
    assert ds.x.dtype == torch.get_default_dtype()
    assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
    assert ds.info["binarization"] is None
    assert "real-valued" in ds.identity
    x, y = ds  # unpacks like (x, y)
    assert x is ds.x


def test_load_digits_threshold_and_stochastic_are_recorded():
    t = datasets.load_digits(binarize="threshold")
    assert set(torch.unique(t.x).tolist()) == {0.0, 1.0}
    assert t.info["binarization"] == "threshold" and t.info["binarization_seed"] is None
    s1 = datasets.load_digits(binarize="stochastic", seed=3)
    s2 = datasets.load_digits(binarize="stochastic", seed=3)
    s3 = datasets.load_digits(binarize="stochastic", seed=4)
    assert torch.equal(s1.x, s2.x) and not torch.equal(s1.x, s3.x)
    assert s1.info["binarization_seed"] == 3
    assert "seed 3" in s1.identity


def test_load_digits_bad_scheme():
    with pytest.raises(ValueError, match="binarize must be one of"):
        datasets.load_digits(binarize="otsu")


def test_binarize_stochastic_needs_seed():
    with pytest.raises(ValueError, match="seed must be an int"):
        datasets.binarize(torch.rand(2, 2), "stochastic", seed=None)


def test_missing_mnist_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("PYROGEN_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="no path given.*PYROGEN_DATA"):
        datasets.load_binarized_mnist()
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        datasets.load_binarized_mnist(missing)


def _fake_npz(path, n=5):
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "valid", "test"):
        arrays[f"{split}_x"] = (rng.random((n, 784)) < 0.2).astype(np.uint8)
        arrays[f"{split}_y"] = rng.integers(0, 10, n).astype(np.uint8)
    np.savez(path, **arrays)
    return arrays


def test_reads_npz_layout_and_env_var(tmp_path, monkeypatch):
    arrays = _fake_npz(tmp_path / "binarized_mnist.npz")
    monkeypatch.setenv("PYROGEN_DATA", str(tmp_path))
    ds = datasets.load_binarized_mnist(split="valid")
    assert ds.x.shape == (5, 784)
    np.testing.assert_array_equal(ds.x.numpy(), arrays["valid_x"])
    np.testing.assert_array_equal(ds.y.numpy(), arrays["valid_y"])
    assert ds.info["binarization"] == "fixed" and ds.info["split"] == "valid"
    assert datasets.load_binarized_mnist(split="test", limit=2).x.shape == (2, 784)


def test_reads_amat(tmp_path):
    rng = np.random.default_rng(1)
    arr = (rng.random((3, 784)) < 0.3).astype(int)
    np.savetxt(tmp_path / "binarized_mnist_test.amat", arr, fmt="%d")
    ds = datasets.load_binarized_mnist(tmp_path, split="test")
    np.testing.assert_array_equal(ds.x.numpy(), arr)
    assert ds.y is None


def test_amat_split_comes_from_the_file_name(tmp_path):
    rng = np.random.default_rng(2)
    arr = (rng.random((2, 784)) < 0.3).astype(int)
    np.savetxt(tmp_path / "binarized_mnist_test.amat", arr, fmt="%d")
    ds = datasets.load_binarized_mnist(tmp_path / "binarized_mnist_test.amat")
    assert ds.info["split"] == "test" and ds.identity.startswith("binarized_mnist[test]")
    with pytest.raises(ValueError, match=r"split must match the file: .* holds the 'test' "
                                         r"split by its name. Got split='train' instead"):
        datasets.load_binarized_mnist(tmp_path / "binarized_mnist_test.amat", split="train")
    # a name naming no split: the caller's split, else "unknown" (never a guessed "train")
    np.savetxt(tmp_path / "digits.amat", arr, fmt="%d")
    assert datasets.load_binarized_mnist(tmp_path / "digits.amat").info["split"] == "unknown"
    ds = datasets.load_binarized_mnist(tmp_path / "digits.amat", split="valid")
    assert ds.info["split"] == "valid"


@pytest.mark.parametrize("limit", [2.0, True, "3", np.float64(2.0)])
def test_limit_must_be_an_int(tmp_path, limit):
    _fake_npz(tmp_path / "binarized_mnist.npz")
    with pytest.raises(TypeError, match="limit must be an int in the range"):
        datasets.load_binarized_mnist(tmp_path, limit=limit)


@pytest.mark.parametrize("limit", [0, -3])
def test_limit_must_be_positive(tmp_path, limit):
    """Before: limit=-3 silently returned 7 of 10 rows (negative slicing), limit=0 none."""
    _fake_npz(tmp_path / "binarized_mnist.npz")
    np.savetxt(tmp_path / "binarized_mnist_valid.amat", np.zeros((4, 784)), fmt="%d")
    for path in (tmp_path, tmp_path / "binarized_mnist_valid.amat"):
        with pytest.raises(ValueError, match=rf"limit must be an int in the range \[1, .*Got "
                                             rf"{limit} instead"):
            datasets.load_binarized_mnist(path, limit=limit)
    assert datasets.load_binarized_mnist(tmp_path, limit=np.int64(3)).x.shape == (3, 784)


def test_rejects_non_binary_file(tmp_path):
    np.savez(tmp_path / "b.npz", train_x=np.full((2, 784), 3, dtype=np.uint8))
    with pytest.raises(ValueError, match="binary"):
        datasets.load_binarized_mnist(tmp_path / "b.npz")


def test_bad_split():
    with pytest.raises(ValueError, match="split must be one of"):
        datasets.load_binarized_mnist(split="dev")


@pytest.mark.mnist
def test_shared_fixed_binarized_mnist(mnist_path):
    ds = datasets.load_binarized_mnist(mnist_path, split="train")
    assert ds.x.shape == (50000, 784)
    assert abs(float(ds.x.mean()) - 0.13056) < 1e-4
    assert datasets.load_binarized_mnist(mnist_path, split="test").x.shape == (10000, 784)


# -- natural-image patches and the covariance mixture (issue 18, book §20.5.2) ---------------
def test_image_patches_are_deterministic_whitened_and_split():
    tr = datasets.load_image_patches(4, 3000, seed=0, dtype=torch.float64)
    again = datasets.load_image_patches(4, 3000, seed=0, dtype=torch.float64)
    assert torch.equal(tr.x, again.x) and tr.x.shape == (3000, 16)
    assert tr.image_shape == (4, 4) and tr.info["whiten"] == "zca"
    # ZCA with training statistics and almost no regularization: covariance close to identity
    x = datasets.load_image_patches(4, 3000, seed=0, eps=1e-6, dtype=torch.float64).x
    cov = torch.cov(x.T)
    off = cov - torch.diag(cov.diagonal())
    assert off.abs().mean() < 0.05 and 0.85 < float(cov.diagonal().mean()) < 1.15
    te = datasets.load_image_patches(4, 100, split="test", seed=0, dtype=torch.float64)
    assert te.info["split"] == "test" and not torch.equal(te.x[:5], tr.x[:5])
    raw = datasets.load_image_patches(4, 10, whiten=None, dequantize=False)
    assert raw.info["whitening_log_det"] == 0.0


def test_image_patches_bad_arguments():
    with pytest.raises(ValueError, match="size must be an int in the range"):
        datasets.load_image_patches(1)
    with pytest.raises(ValueError, match="whiten must be one of"):
        datasets.load_image_patches(whiten="pca-ish")
    with pytest.raises(ValueError, match="eps"):
        datasets.load_image_patches(eps=0.0)
    with pytest.raises(TypeError, match="dequantize"):
        datasets.load_image_patches(dequantize=1)


def test_covariance_mixture_has_the_stated_covariances():
    ds = datasets.covariance_mixture(20000, n_features=3, n_components=2, scale_along=1.0,
                                     scale_across=0.3, seed=0, dtype=torch.float64)
    u = torch.tensor(ds.info["directions"], dtype=torch.float64)
    for k in range(2):
        xk = ds.x[ds.y == k]
        cov = xk.T @ xk / xk.shape[0]
        want = 0.09 * torch.eye(3, dtype=torch.float64) + 0.91 * u[:, k : k + 1] @ u[:, k : k + 1].T
        assert (cov - want).abs().max() < 0.04
    with pytest.raises(ValueError, match="n_components"):
        datasets.covariance_mixture(10, n_features=2, n_components=3)


def test_labels_file_replaces_the_npz_labels(tmp_path, monkeypatch):
    arrays = _fake_npz(tmp_path / "binarized_mnist.npz")
    fixed = {f"{s}_y": (arrays[f"{s}_y"] + 1) % 10 for s in ("train", "valid", "test")}
    np.savez(tmp_path / "labels.npz", **fixed)
    ds = datasets.load_binarized_mnist(tmp_path, split="valid", labels=tmp_path / "labels.npz")
    np.testing.assert_array_equal(ds.y.numpy(), fixed["valid_y"])
    assert ds.info["labels"] == str(tmp_path / "labels.npz")
    assert datasets.load_binarized_mnist(tmp_path, split="valid").info["labels"] == str(
        tmp_path / "binarized_mnist.npz"
    )
    monkeypatch.setenv("PYROGEN_MNIST_LABELS", str(tmp_path / "labels.npz"))
    ds = datasets.load_binarized_mnist(tmp_path, split="test", limit=2)
    np.testing.assert_array_equal(ds.y.numpy(), fixed["test_y"][:2])


def test_labels_file_bad_input(tmp_path):
    _fake_npz(tmp_path / "binarized_mnist.npz")
    np.savez(tmp_path / "short.npz", valid_y=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"labels: .*one label per image \(5\)"):
        datasets.load_binarized_mnist(tmp_path, split="valid", labels=tmp_path / "short.npz")
    with pytest.raises(ValueError, match="has no array 'test_y'"):
        datasets.load_binarized_mnist(tmp_path, split="test", labels=tmp_path / "short.npz")
    np.savez(tmp_path / "range.npz", valid_y=np.full(5, 12))
    with pytest.raises(ValueError, match="digit labels 0-9"):
        datasets.load_binarized_mnist(tmp_path, split="valid", labels=tmp_path / "range.npz")
    with pytest.raises(FileNotFoundError, match="labels: no file"):
        datasets.load_binarized_mnist(tmp_path, split="valid", labels=tmp_path / "none.npz")
    with pytest.raises(TypeError, match="labels must be a path"):
        datasets.load_binarized_mnist(tmp_path, split="valid", labels=3)


def test_match_binarized_labels_recovers_a_shuffled_binarization():
    rng = np.random.default_rng(0)
    grey = (rng.random((200, 64)) ** 3 * 255).astype(np.uint8)
    grey_labels = rng.integers(0, 10, 200)
    perm = rng.permutation(200)[:150]
    binary = (rng.random((150, 64)) < grey[perm] / 255.0).astype(np.uint8)
    out = datasets.match_binarized_labels(binary, grey, grey_labels, batch_size=64)
    np.testing.assert_array_equal(out["index"], perm)
    np.testing.assert_array_equal(out["labels"], grey_labels[perm])
    assert (out["margin"] > 0).all() and out["log_lik"].shape == (150,)
    with pytest.raises(ValueError, match="binary must be a 2-D array of 0/1"):
        datasets.match_binarized_labels(grey, grey, grey_labels)
    with pytest.raises(ValueError, match="grey_labels must hold one label per grey image"):
        datasets.match_binarized_labels(binary, grey, grey_labels[:5])
    with pytest.raises(ValueError, match="grey must be a 2-D array"):
        datasets.match_binarized_labels(binary, grey[:, :10], grey_labels)


@pytest.mark.skipif(
    not _MNIST_LABELS or not os.environ.get("PYROGEN_DATA"),
    reason="needs the binarized MNIST (PYROGEN_DATA) and recovered labels (PYROGEN_MNIST_LABELS)",
)
def test_recovered_mnist_labels_belong_to_the_images():
    tr = datasets.load_binarized_mnist(split="train", labels=_MNIST_LABELS)
    te = datasets.load_binarized_mnist(split="test", labels=_MNIST_LABELS)
    means = torch.stack([tr.x[tr.y == k].mean(0) for k in range(10)])
    acc = (torch.cdist(te.x, means).argmin(1) == te.y).double().mean().item()
    assert acc > 0.75, acc


def test_spaced_subset_takes_evenly_spaced_rows(tmp_path):
    arrays = _fake_npz(tmp_path / "binarized_mnist.npz", n=10)
    np.savez(tmp_path / "labels.npz", test_y=np.arange(10) % 10)
    ds = datasets.load_binarized_mnist(
        tmp_path, split="test", limit=4, subset="spaced", labels=tmp_path / "labels.npz"
    )
    rows = [0, 2, 5, 7]
    np.testing.assert_array_equal(ds.x.numpy(), arrays["test_x"][rows])
    np.testing.assert_array_equal(ds.y.numpy(), rows)
    assert ds.info["subset"] == "spaced"
    first = datasets.load_binarized_mnist(tmp_path, split="test", limit=4)
    np.testing.assert_array_equal(first.x.numpy(), arrays["test_x"][:4])
    np.testing.assert_array_equal(first.y.numpy(), arrays["test_y"][:4])
    np.savetxt(tmp_path / "binarized_mnist_test.amat", arrays["test_x"], fmt="%d")
    amat = datasets.load_binarized_mnist(
        tmp_path / "binarized_mnist_test.amat", limit=4, subset="spaced"
    )
    np.testing.assert_array_equal(amat.x.numpy(), arrays["test_x"][rows])
    with pytest.raises(ValueError, match="subset must be one of"):
        datasets.load_binarized_mnist(tmp_path, split="test", limit=4, subset="random")
