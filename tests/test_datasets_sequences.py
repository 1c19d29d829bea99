"""Sequence data of pyrogen.datasets (book §20.7): bouncing balls and chord sequences."""

import numpy as np
import pytest
import torch

from pyrogen import datasets


def test_bouncing_balls_shape_binary_deterministic():
    x = datasets.bouncing_balls(3, 7, size=8, n_balls=2, seed=1)
    assert x.shape == (3, 7, 64) and x.dtype == torch.get_default_dtype()
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert torch.equal(x, datasets.bouncing_balls(3, 7, size=8, n_balls=2, seed=1))
    assert not torch.equal(x, datasets.bouncing_balls(3, 7, size=8, n_balls=2, seed=2))
    # every frame shows a ball; consecutive frames overlap (the balls move by one pixel)
    assert bool((x.sum(-1) > 0).all())
    overlap = (x[:, 1:] * x[:, :-1]).sum(-1)
    assert float((overlap > 0).double().mean()) > 0.8


def test_bouncing_balls_stays_in_the_box():
    x = datasets.bouncing_balls(5, 60, size=6, radius=1.0, speed=2.0, seed=0)
    # a ball of radius 1 is always fully inside: 4 pixels on when its centre is anywhere
    assert bool((x.sum(-1) >= 1).all())


def test_polyphonic_chords_structure():
    x = datasets.polyphonic_chords(200, 10, noise=0.0, seed=0)
    assert x.shape == (200, 10, 12)
    chords = {tuple(np.nonzero(f)[0]) for f in x.reshape(-1, 12).numpy()}
    want = {tuple(sorted(c)) for c in datasets.POLYPHONIC_CHORDS}
    assert chords <= want and len(chords) == 4
    # transitions I -> Am never... (row 1 -> column 3 has probability 0: F never goes to Am)
    idx = {tuple(sorted(c)): k for k, c in enumerate(datasets.POLYPHONIC_CHORDS)}
    z = np.array([[idx[tuple(np.nonzero(f)[0])] for f in seq] for seq in x.numpy()])
    pairs = set(zip(z[:, :-1].ravel().tolist(), z[:, 1:].ravel().tolist()))
    assert (1, 3) not in pairs and (2, 1) not in pairs and (0, 1) in pairs
    noisy = datasets.polyphonic_chords(200, 10, noise=0.1, seed=0)
    assert 0.05 < float((noisy != x).double().mean()) < 0.15


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_sequences": 0, "n_frames": 3}, "n_sequences"),
        ({"n_sequences": 2, "n_frames": 0}, "n_frames"),
        ({"n_sequences": 2, "n_frames": 3, "size": 2}, "size"),
        ({"n_sequences": 2, "n_frames": 3, "radius": 9.0}, "radius"),
        ({"n_sequences": 2, "n_frames": 3, "n_balls": 0}, "n_balls"),
    ],
)
def test_bouncing_balls_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        datasets.bouncing_balls(**kwargs)


def test_polyphonic_bad_arguments():
    with pytest.raises(ValueError, match="n_frames"):
        datasets.polyphonic_chords(2, 0)
    with pytest.raises(ValueError, match="noise"):
        datasets.polyphonic_chords(2, 3, noise=0.5)
    with pytest.raises(TypeError, match="n_sequences"):
        datasets.polyphonic_chords(2.5, 3)


def test_shifted_digit_pairs_are_translations():
    x, y, which = datasets.shifted_digit_pairs(50, seed=3)
    assert x.shape == y.shape == (50, 64) and which.shape == (50,)
    for i in range(50):
        a, b = datasets.DIGIT_SHIFTS[int(which[i])]
        img = x[i].reshape(8, 8)
        want = torch.roll(img, (a, b), (0, 1))
        if a > 0:
            want[:a] = 0
        if a < 0:
            want[a:] = 0
        if b > 0:
            want[:, :b] = 0
        if b < 0:
            want[:, b:] = 0
        assert torch.equal(y[i].reshape(8, 8), want)
    x2, y2, w2 = datasets.shifted_digit_pairs(50, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(which, w2)
    with pytest.raises(ValueError, match="shifts"):
        datasets.shifted_digit_pairs(5, shifts=[(9, 0)])
    with pytest.raises(TypeError, match="shifts"):
        datasets.shifted_digit_pairs(5, shifts=["ab"])
