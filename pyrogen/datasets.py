"""Built-in data and readers, with the binarization recorded as part of the data's identity.

Book §20.14: comparing likelihoods is only meaningful on the same preprocessing. Every loader
returns a :class:`Dataset` whose ``info`` dict records the source, split and binarization scheme
(and its seed); pyrogen writes that dict next to every number it prints or saves.

* :func:`load_digits` — scikit-learn's shipped 8x8 digits (1797 x 64), scaled to [0, 1].
  Needs scikit-learn (``pip install scikit-learn``), which ships the file; nothing is downloaded.
* :func:`load_binarized_mnist` — the standard *fixed* binarization of MNIST (Salakhutdinov &
  Murray 2008; 50k train / 10k valid / 10k test), read from a ``.npz`` file or the classic
  ``binarized_mnist_{split}.amat`` text files. Nothing is downloaded: pass ``path`` or set the
  environment variable ``PYROGEN_DATA``. The fixed binarization was distributed without
  labels, and label arrays attached to it in MNIST's original order do not belong to its images
  (its images are in another order); :func:`match_binarized_labels` recovers each image's label
  by matching it to the grey MNIST image it was sampled from, and ``labels=`` (or
  ``PYROGEN_MNIST_LABELS``) reads such a file.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validation import check_choice, check_float, check_int

__all__ = [
    "Dataset",
    "load_digits",
    "load_binarized_mnist",
    "match_binarized_labels",
    "binarize",
    "BINARIZATIONS",
    "bouncing_balls",
    "polyphonic_chords",
    "load_image_patches",
    "covariance_mixture",
]

BINARIZATIONS = (None, "threshold", "stochastic")
MNIST_SPLITS = ("train", "valid", "test")
MNIST_SIZES = {"train": 50000, "valid": 10000, "test": 10000}


@dataclass
class Dataset:
    """A data matrix with labels and its identity.

    Attributes
    ----------
    x : torch.Tensor, shape ``(n, n_features)``
    y : torch.Tensor or None, shape ``(n,)``, int64 labels
    info : dict
        ``name``, ``split``, ``binarization`` (``None``, ``"threshold"``, ``"stochastic"``,
        ``"fixed"``), ``binarization_seed``, ``n``, ``n_features``, ``source``.
    image_shape : tuple, optional
        ``(height, width)`` for image data (for plotting).
    """

    x: torch.Tensor
    y: torch.Tensor | None
    info: dict = field(default_factory=dict)
    image_shape: tuple | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def __iter__(self):  # allows ``x, y = load_digits()``
        return iter((self.x, self.y))

    @property
    def identity(self) -> str:
        """One line naming the data and its preprocessing (printed with every result)."""
        i = self.info
        b = i.get("binarization")
        bin_txt = "real-valued" if b is None else f"binarization={b}"
        if b == "stochastic":
            bin_txt += f" (seed {i.get('binarization_seed')})"
        return f"{i.get('name')}[{i.get('split')}] {i.get('n')}x{i.get('n_features')} {bin_txt}"


def binarize(x: torch.Tensor, scheme: str, seed: int | None = None) -> torch.Tensor:
    """Binarize data in [0, 1].

    ``"threshold"``: ``x > 0.5``. ``"stochastic"``: ``Bernoulli(x)`` draws with a
    ``torch.Generator`` seeded by ``seed`` (required, so the draw is reproducible).
    """
    check_choice(scheme, "binarize", ("threshold", "stochastic"))
    if scheme == "threshold":
        return (x > 0.5).to(x.dtype)
    if seed is None:
        raise ValueError("seed must be an int for binarize='stochastic'. Got None instead.")
    gen = torch.Generator().manual_seed(check_int(seed, "seed", low=0))
    return torch.bernoulli(x, generator=gen).to(x.dtype)


def load_digits(
    binarize: str | None = None,
    seed: int | None = 0,
    dtype: torch.dtype | None = None,
) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images), scaled to [0, 1].

    Parameters
    ----------
    binarize : {None, "threshold", "stochastic"}
        ``None`` keeps grey levels (16 levels / 16); ``"threshold"`` is ``x > 0.5``;
        ``"stochastic"`` draws ``Bernoulli(x)`` with ``seed``.
    seed : int
        Seed of the stochastic binarization (recorded in ``info``).
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.

    Returns
    -------
    Dataset
        ``x`` of shape ``(1797, 64)``, labels ``y`` of shape ``(1797,)``.
    """
    check_choice(binarize, "binarize", BINARIZATIONS)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_digits needs scikit-learn, which ships the digits file: "
            "pip install scikit-learn"
        ) from e
    bunch = _sk_load_digits()
    dtype = dtype or torch.get_default_dtype()
    x = torch.as_tensor(bunch.data / 16.0, dtype=dtype)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    if binarize is not None:
        x = globals()["binarize"](x, binarize, seed=seed)
    info = {
        "name": "digits",
        "split": "all",
        "source": "sklearn.datasets.load_digits",
        "binarization": binarize,
        "binarization_seed": seed if binarize == "stochastic" else None,
        "n": x.shape[0],
        "n_features": x.shape[1],
    }
    return Dataset(x, y, info, image_shape=(8, 8))


def _candidate_paths(path: str | os.PathLike | None, split: str) -> list[str]:
    if path is not None:
        p = os.fspath(path)
        if os.path.isdir(p):
            return [
                os.path.join(p, "binarized_mnist.npz"),
                os.path.join(p, f"binarized_mnist_{split}.amat"),
            ]
        return [p]
    env = os.environ.get("PYROGEN_DATA")
    if env:
        return _candidate_paths(env, split)
    return []


def _split_from_name(path: str) -> str | None:
    """The split a file name names (``binarized_mnist_test.amat`` -> ``"test"``), if exactly one
    of :data:`MNIST_SPLITS` appears in it as a word."""
    name = os.path.basename(path).lower()
    named = [s for s in MNIST_SPLITS if re.search(rf"(?<![a-z]){s}(?![a-z])", name)]
    return named[0] if len(named) == 1 else None


def load_binarized_mnist(
    path: str | os.PathLike | None = None,
    split: str | None = None,
    dtype: torch.dtype | None = None,
    limit: int | None = None,
    labels: str | os.PathLike | None = None,
    subset: str = "first",
) -> Dataset:
    """The fixed binarized MNIST (Salakhutdinov & Murray 2008), 784 binary pixels per image.

    Parameters
    ----------
    path : str or path-like, optional
        A ``.npz`` file with arrays ``{split}_x`` (uint8 0/1, ``(n, 784)``) and ``{split}_y``;
        a ``binarized_mnist_{split}.amat`` text file (one image per line, 784 values); or a
        folder holding either. Defaults to the environment variable ``PYROGEN_DATA``.
    split : {"train", "valid", "test"}, optional
        50000 / 10000 / 10000 images. Default: ``"train"``, except for an ``.amat`` file,
        whose split is the one its name names (``binarized_mnist_test.amat`` holds the test
        images, and is labelled so); an ``.amat`` file whose name names no split is labelled
        ``split`` if given, else ``"unknown"``.
    limit : int, optional
        Keep only ``limit`` images (a positive int), chosen by ``subset``.
    subset : {"first", "spaced"}
        Which ``limit`` images: ``"first"`` (default) the first ones in the file; ``"spaced"``
        ``limit`` evenly spaced ones (rows ``floor(i * n / limit)``). **The test split of the
        fixed binarization is ordered by digit class** (its first 980 images are zeros, the next
        1,135 ones, ...; train and valid are not ordered), so the first ``limit`` test images
        are not a representative sample: use ``subset="spaced"`` for a subset of the test split.
    labels : str or path-like, optional
        A ``.npz`` file with an array ``{split}_y`` of one label per image of the split, in the
        images' order (e.g. written by ``benchmarks/recover_mnist_labels.py`` with
        :func:`match_binarized_labels`); it replaces any labels in ``path``. Defaults to the
        environment variable ``PYROGEN_MNIST_LABELS``. ``info["labels"]`` records where the
        labels came from (``None``: no labels).

        Why: the fixed binarization was distributed without labels, and copies that attach
        MNIST's labels in MNIST's original order pair them with the wrong images (the
        binarized images are in another order; nearest-class-mean accuracy is then at chance,
        0.10, instead of about 0.82).

    Raises
    ------
    FileNotFoundError
        With where pyrogen looked and how to point it at the data. Nothing is downloaded.
    TypeError
        ``limit`` is not an int (``bool`` and ``float`` included).
    ValueError
        ``limit <= 0``; an unknown ``split``; ``split`` contradicting the split an ``.amat``
        file's name names; a file that is not binarized MNIST; a labels file without
        ``{split}_y``, with a different number of labels than images, or with labels outside
        0-9.
    """
    if split is not None:
        check_choice(split, "split", MNIST_SPLITS)
    if limit is not None:
        limit = check_int(limit, "limit", low=1)
    check_choice(subset, "subset", ("first", "spaced"))
    candidates = _candidate_paths(path, split or "train")
    found = next((c for c in candidates if os.path.isfile(c)), None)
    if found is None:
        looked = ", ".join(repr(c) for c in candidates) or "nowhere (no path given)"
        raise FileNotFoundError(
            f"binarized MNIST not found: looked at {looked} "
            f"(PYROGEN_DATA={os.environ.get('PYROGEN_DATA')!r}). Pass path=... (a "
            "binarized_mnist.npz or binarized_mnist_{train,valid,test}.amat, or their folder) "
            "or set PYROGEN_DATA; pyrogen does not download data."
        )
    y = None
    if found.endswith(".amat"):
        named = _split_from_name(found)
        if named is not None and split is not None and named != split:
            raise ValueError(
                f"split must match the file: {found!r} holds the {named!r} split by its name. "
                f"Got split={split!r} instead."
            )
        label = named or split or "unknown"
        arr = np.loadtxt(found, dtype=np.uint8, max_rows=limit if subset == "first" else None)
        arr = np.atleast_2d(arr)
        arr = arr[_subset_rows(arr.shape[0], limit, subset)]
    else:
        label = split = split or "train"
        with np.load(found) as z:
            key = f"{split}_x"
            if key not in z:
                raise ValueError(
                    f"{found!r} has no array {key!r}; expected arrays "
                    f"train_x/valid_x/test_x (and *_y). Got {sorted(z.files)} instead."
                )
            arr = z[key]
            rows = _subset_rows(arr.shape[0], limit, subset)
            arr = arr[rows]
            if f"{split}_y" in z:
                y = torch.as_tensor(z[f"{split}_y"][rows].astype(np.int64))
    if arr.ndim != 2 or arr.shape[1] != 784:
        raise ValueError(f"{found!r}: expected images of 784 pixels. Got shape {arr.shape}.")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{found!r}: expected binary pixels (0/1); this is not binarized MNIST.")
    dtype = dtype or torch.get_default_dtype()
    x = torch.as_tensor(arr.astype(np.float32)).to(dtype)
    labels_source = os.path.abspath(found) if y is not None else None
    if labels is None and os.environ.get("PYROGEN_MNIST_LABELS"):
        labels = os.environ["PYROGEN_MNIST_LABELS"]
    if labels is not None:
        y = _read_labels(labels, label, arr.shape[0], limit, subset)
        labels_source = os.path.abspath(os.fspath(labels))
    info = {
        "name": "binarized_mnist",
        "split": label,
        "source": os.path.abspath(found),
        "labels": labels_source,
        "binarization": "fixed",
        "binarization_seed": None,
        "n": x.shape[0],
        "n_features": 784,
    }
    if limit is not None:
        info["subset"] = subset
    return Dataset(x, y, info, image_shape=(28, 28))


def _subset_rows(n: int, limit: int | None, subset: str) -> np.ndarray:
    """Rows kept of ``n``: all; the first ``limit``; or ``limit`` evenly spaced ones."""
    if limit is None or limit >= n:
        return np.arange(n)
    if subset == "first":
        return np.arange(limit)
    return (np.arange(limit) * n) // limit


def _read_labels(labels, split: str, n: int, limit: int | None, subset: str) -> torch.Tensor:
    if not isinstance(labels, (str, os.PathLike)):
        raise TypeError(f"labels must be a path to a .npz file. Got {type(labels).__name__}.")
    p = os.fspath(labels)
    if not os.path.isfile(p):
        raise FileNotFoundError(
            f"labels: no file {p!r} (PYROGEN_MNIST_LABELS="
            f"{os.environ.get('PYROGEN_MNIST_LABELS')!r})."
        )
    key = f"{split}_y"
    with np.load(p) as z:
        if key not in z:
            raise ValueError(
                f"labels: {p!r} has no array {key!r} for the {split!r} split. "
                f"Got {sorted(z.files)} instead."
            )
        yy = z[key]
    if yy.ndim == 1 and limit is not None:
        yy = yy[_subset_rows(yy.shape[0], limit, subset)]
    if yy.ndim != 1 or yy.shape[0] != n:
        raise ValueError(
            f"labels: {p!r}[{key!r}] must hold one label per image ({n}). "
            f"Got shape {tuple(yy.shape)}."
        )
    if not np.issubdtype(yy.dtype, np.integer) or (yy.size and (yy.min() < 0 or yy.max() > 9)):
        raise ValueError(
            f"labels: {p!r}[{key!r}] must hold integer digit labels 0-9. "
            f"Got dtype {yy.dtype}, range [{yy.min()}, {yy.max()}]."
        )
    return torch.as_tensor(yy.astype(np.int64))


def match_binarized_labels(
    binary: np.ndarray,
    grey: np.ndarray,
    grey_labels: np.ndarray,
    batch_size: int = 2000,
) -> dict:
    r"""Label binarized images by the grey image each was most likely sampled from.

    The fixed binarization of MNIST samples each pixel from a Bernoulli whose probability is the
    grey level: :math:`x_{ni} \sim \mathrm{Bernoulli}(g_{mi})` for the grey image :math:`m` that
    binarized image :math:`n` came from. Each binarized image is assigned the grey image with the
    largest log-likelihood

    .. math:: \ell_{nm} = \sum_i x_{ni} \log g_{mi} + (1 - x_{ni}) \log(1 - g_{mi}),

    grey levels clipped to :math:`[10^{-3}, 1 - 10^{-3}]` (one matrix product per batch), and
    that image's label. The margin between the best and the second-best grey image says how sure
    the match is; two candidates with the same label make the label sure whatever the margin.

    Parameters
    ----------
    binary : ndarray, shape ``(n, d)``, values 0/1
    grey : ndarray, shape ``(m, d)``
        Grey images in ``[0, 1]`` (float) or ``0..255`` (uint8).
    grey_labels : ndarray, shape ``(m,)``, integer
    batch_size : int
        Binarized images scored per matrix product.

    Returns
    -------
    dict
        ``labels`` ``(n,)`` int64; ``index`` ``(n,)``, the matched grey row; ``log_lik`` and
        ``margin`` ``(n,)``, the best log-likelihood and its lead over the second best (nats);
        ``second_label`` ``(n,)``, the second-best grey image's label.
    """
    binary = np.asarray(binary)
    grey = np.asarray(grey)
    grey_labels = np.asarray(grey_labels)
    if binary.ndim != 2 or not np.isin(binary, (0, 1)).all():
        raise ValueError(
            f"binary must be a 2-D array of 0/1 pixels. Got shape {binary.shape}, values "
            f"{np.unique(binary)[:5]}."
        )
    if grey.ndim != 2 or grey.shape[1] != binary.shape[1] or grey.shape[0] < 2:
        raise ValueError(
            f"grey must be a 2-D array of at least 2 images with {binary.shape[1]} pixels "
            f"(as binary). Got shape {grey.shape}."
        )
    if grey_labels.shape != (grey.shape[0],):
        raise ValueError(
            f"grey_labels must hold one label per grey image, shape ({grey.shape[0]},). "
            f"Got shape {grey_labels.shape}."
        )
    batch_size = check_int(batch_size, "batch_size", low=1)
    g = grey.astype(np.float64)
    if grey.dtype == np.uint8 or g.max() > 1.0:
        g = g / 255.0
    if g.min() < 0 or g.max() > 1:
        raise ValueError(f"grey must hold levels in [0, 1] or 0..255. Got [{g.min()}, {g.max()}].")
    g = torch.as_tensor(np.clip(g, 1e-3, 1 - 1e-3), dtype=torch.float32)
    log_odds = (torch.log(g) - torch.log1p(-g)).T.contiguous()
    const = torch.log1p(-g).sum(1)
    idx, best, second = [], [], []
    b = torch.as_tensor(binary, dtype=torch.float32)
    for s in range(0, b.shape[0], batch_size):
        top = torch.topk(b[s : s + batch_size] @ log_odds + const, 2, dim=1)
        idx.append(top.indices)
        best.append(top.values[:, 0])
        second.append(top.values[:, 1])
    ii = torch.cat(idx).numpy()
    lab = grey_labels.astype(np.int64)
    return {
        "labels": lab[ii[:, 0]],
        "index": ii[:, 0],
        "log_lik": torch.cat(best).double().numpy(),
        "margin": (torch.cat(best) - torch.cat(second)).double().numpy(),
        "second_label": lab[ii[:, 1]],
    }


# ------------------------------------------------------------------------------------------------
# Sequence data (book §20.7): bouncing balls and a polyphonic-style chord sequence set
# ------------------------------------------------------------------------------------------------
def bouncing_balls(
    n_sequences: int,
    n_frames: int,
    *,
    size: int = 10,
    n_balls: int = 1,
    radius: float = 1.5,
    speed: float = 1.0,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Binary videos of balls bouncing in a box (after Sutskever, Hinton & Taylor 2008 [1]_).

    Each ball has a centre :math:`p \in [r, s - r]^2` (``s`` = ``size``, ``r`` = ``radius``) and
    a velocity of norm ``speed`` in a uniformly random direction; at every frame
    :math:`p \leftarrow p + v` and a ball that leaves the box is reflected off the wall
    (elastic, :math:`v_k \leftarrow -v_k`). Balls pass through one another (no ball-ball
    collisions, unlike [1]_). Pixel :math:`(i, j)` (centre :math:`(i + \tfrac12, j +
    \tfrac12)`) is 1 when it lies within ``radius`` of some ball's centre.

    Parameters
    ----------
    n_sequences, n_frames : int
        Number of videos and frames per video (both at least 1).
    size : int
        Frames are ``size x size`` pixels (at least 3).
    n_balls : int
        Balls per video (at least 1).
    radius : float
        Ball radius in pixels, in ``(0, size / 2)``.
    speed : float
        Pixels moved per frame, in ``(0, size / 2]``.
    seed : int
        Seed of the initial positions and directions (the videos are a deterministic function
        of the arguments).
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.

    Returns
    -------
    torch.Tensor, shape ``(n_sequences, n_frames, size * size)``
        0/1 frames, row-major (reshape a frame to ``(size, size)`` to view it).

    References
    ----------
    .. [1] I. Sutskever, G. E. Hinton and G. W. Taylor, "The recurrent temporal restricted
       Boltzmann machine", NIPS 2008.
    """
    n_sequences = check_int(n_sequences, "n_sequences", low=1)
    n_frames = check_int(n_frames, "n_frames", low=1)
    size = check_int(size, "size", low=3)
    n_balls = check_int(n_balls, "n_balls", low=1)
    radius = check_float(radius, "radius", 0.0, size / 2, "oo")
    speed = check_float(speed, "speed", 0.0, size / 2, "oc")
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    lo, hi = radius, size - radius
    pos = rng.uniform(lo, hi, size=(n_sequences, n_balls, 2))
    angle = rng.uniform(0.0, 2 * np.pi, size=(n_sequences, n_balls))
    vel = speed * np.stack([np.cos(angle), np.sin(angle)], -1)
    centres = np.arange(size) + 0.5
    gy, gx = np.meshgrid(centres, centres, indexing="ij")
    grid = np.stack([gy.ravel(), gx.ravel()], -1)  # (size*size, 2)
    out = np.zeros((n_sequences, n_frames, size * size), dtype=np.float64)
    for t in range(n_frames):
        d2 = ((pos[:, :, None, :] - grid[None, None]) ** 2).sum(-1)  # (n, balls, pixels)
        out[:, t] = (d2 <= radius**2).any(1)
        pos = pos + vel
        for _ in range(2):  # reflect (twice covers a step that overshoots both walls)
            low, high = pos < lo, pos > hi
            pos = np.where(low, 2 * lo - pos, np.where(high, 2 * hi - pos, pos))
            vel = np.where(low | high, -vel, vel)
    return torch.as_tensor(out, dtype=dtype or torch.get_default_dtype())


#: the chords of :func:`polyphonic_chords` on a 12-note (one octave) keyboard: C, F, G and A
#: minor triads (I, IV, V, vi of C major)
POLYPHONIC_CHORDS = ((0, 4, 7), (5, 9, 0), (7, 11, 2), (9, 0, 4))

#: the chord transition matrix of :func:`polyphonic_chords` (row: current chord): I->IV->V->I
#: cadences with a deceptive V->vi, each chord held with probability 0.5
POLYPHONIC_TRANSITIONS = (
    (0.5, 0.3, 0.1, 0.1),
    (0.1, 0.5, 0.4, 0.0),
    (0.3, 0.0, 0.5, 0.2),
    (0.1, 0.3, 0.1, 0.5),
)


def polyphonic_chords(
    n_sequences: int,
    n_frames: int,
    *,
    noise: float = 0.02,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Polyphonic-style binary piano rolls with known structure: a Markov chain over chords.

    A hidden chord sequence :math:`z_1, \dots, z_T` follows the Markov chain
    :data:`POLYPHONIC_TRANSITIONS` over the four triads :data:`POLYPHONIC_CHORDS` (C, F, G, Am
    on a 12-note octave), started uniformly; frame :math:`t` has the three notes of
    :math:`z_t` on, and every note is then flipped independently with probability ``noise``.
    The exact log-probability of a sequence is therefore available by the forward algorithm
    over the 4 chords (a reference for sequence models; the per-frame entropy of the notes
    alone is far higher than that of the chain).

    Parameters
    ----------
    n_sequences, n_frames : int
        At least 1.
    noise : float
        Flip probability of each note, in ``[0, 0.5)``.
    seed : int
        Seed (the data are a deterministic function of the arguments).
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.

    Returns
    -------
    torch.Tensor, shape ``(n_sequences, n_frames, 12)``
        0/1 piano rolls.
    """
    n_sequences = check_int(n_sequences, "n_sequences", low=1)
    n_frames = check_int(n_frames, "n_frames", low=1)
    noise = check_float(noise, "noise", 0.0, 0.5, "co")
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)
    trans = np.asarray(POLYPHONIC_TRANSITIONS)
    chords = np.zeros((len(POLYPHONIC_CHORDS), 12))
    for k, notes in enumerate(POLYPHONIC_CHORDS):
        chords[k, list(notes)] = 1.0
    z = rng.integers(0, len(POLYPHONIC_CHORDS), size=n_sequences)
    out = np.zeros((n_sequences, n_frames, 12))
    for t in range(n_frames):
        out[:, t] = chords[z]
        u = rng.random((n_sequences, 1))
        z = (u > np.cumsum(trans[z], axis=1)).sum(1)
    flips = rng.random(out.shape) < noise
    out = np.where(flips, 1.0 - out, out)
    return torch.as_tensor(out, dtype=dtype or torch.get_default_dtype())


#: the split of the two scikit-learn sample images: columns [0, 480) train, [480, 640) test
_PATCH_SPLIT_COLUMN = 480
_WHITENINGS = (None, "zca", "pca")


@functools.lru_cache(maxsize=1)
def _grey_sample_images(loader):
    """The two sample images as grey levels in [0, 1] (decoded once per process)."""
    return [img.astype(np.float64).mean(-1) / 255.0 for img in loader().images]


def _sample_image_patches(images, size, n, split, rng, dequantize):
    """``n`` grey-level patches (alternating between the images) from ``split``'s columns."""
    h, w = images[0].shape
    lo, hi = (0, _PATCH_SPLIT_COLUMN) if split == "train" else (_PATCH_SPLIT_COLUMN, w)
    which = np.arange(n) % len(images)
    r = rng.integers(0, h - size + 1, size=n)
    c = rng.integers(lo, hi - size + 1, size=n)
    off = np.arange(size)
    rows = (r[:, None] + off)[:, :, None]
    cols = (c[:, None] + off)[:, None, :]
    stack = np.stack(images)
    out = stack[which[:, None, None], rows, cols].reshape(n, size * size)
    if dequantize:
        out += rng.random(out.shape) / 255.0
    return out


def load_image_patches(
    size: int = 8,
    n: int = 10000,
    *,
    split: str = "train",
    whiten: str | None = "zca",
    eps: float = 1e-2,
    dequantize: bool = True,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> Dataset:
    r"""Natural-image patches from the two images scikit-learn ships, whitened.

    The images (``sklearn.datasets.load_sample_images``: ``china.jpg`` and ``flower.jpg``,
    427 x 640; nothing is downloaded) are converted to grey levels in :math:`[0, 1]`; patches
    of ``size`` x ``size`` pixels are cut at uniformly random positions, alternating between
    the two images. Columns 0-479 of each image give the ``"train"`` split and columns 480-639
    the ``"test"`` split, so the splits share no pixel. With ``dequantize`` each 8-bit grey
    level gets uniform noise of one quantization step (:math:`U[0, 1/255)`), so that a
    density on :math:`\mathbb R^D` is compared on continuous data.

    Whitening (as Ranzato & Hinton 2010 and Courville et al. 2011 do before training), with the
    mean :math:`m` and the eigen-decomposition :math:`U\operatorname{diag}(\lambda)U^\top` of
    the covariance of 20000 *training* patches (always the training split, also for
    ``split="test"``), :math:`\epsilon` = ``eps`` times the mean eigenvalue:

    * ``"zca"``: :math:`x \mapsto U\operatorname{diag}((\lambda+\epsilon)^{-1/2})U^\top(x-m)`
      (whitened patches that still look like patches: the filters are pictures);
    * ``"pca"``: :math:`x \mapsto \operatorname{diag}((\lambda+\epsilon)^{-1/2})U^\top(x-m)`;
    * ``None``: the grey levels minus :math:`m`.

    ``info["whitening_log_det"]`` is :math:`\log|\det|` of the linear map, so a log-density
    of whitened patches converts to grey-level space by adding it.

    Parameters
    ----------
    size : int
        Patch side in pixels (2 to 32); ``n_features = size ** 2``.
    n : int
        Number of patches.
    split : {"train", "test"}
    whiten : {"zca", "pca", None}
    eps : float
        Regularization of the whitening, relative to the mean eigenvalue (positive).
    dequantize : bool
        Add :math:`U[0, 1/255)` noise to the grey levels.
    seed : int
        Seed of the patch positions and the noise (the whitening statistics use their own
        fixed seed derived from it).
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.

    Returns
    -------
    Dataset
        ``x`` of shape ``(n, size ** 2)``, ``y = None``, ``image_shape = (size, size)``.
    """
    size = check_int(size, "size", low=2, high=32)
    n = check_int(n, "n", low=1)
    check_choice(split, "split", ("train", "test"))
    check_choice(whiten, "whiten", _WHITENINGS)
    eps = check_float(eps, "eps", 0.0, None, "oo")
    if not isinstance(dequantize, bool):
        raise TypeError(f"dequantize must be a bool. Got {type(dequantize).__name__} instead.")
    seed = check_int(seed, "seed", low=0)
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_image_patches needs scikit-learn, which ships the two sample images: "
            "pip install scikit-learn"
        ) from e
    images = _grey_sample_images(load_sample_images)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    x = _sample_image_patches(images, size, n, split, rng, dequantize)
    stats = _sample_image_patches(
        images, size, 20000, "train", np.random.default_rng([seed, 2]), dequantize
    )
    mean = stats.mean(0)
    lam, U = np.linalg.eigh(np.cov(stats, rowvar=False))
    lam = np.clip(lam, 0.0, None)
    scale = 1.0 / np.sqrt(lam + eps * lam.mean())
    if whiten == "zca":
        M = (U * scale) @ U.T
    elif whiten == "pca":
        M = (U * scale).T
    else:
        M = np.eye(size * size)
    x = (x - mean) @ M.T
    dtype = dtype or torch.get_default_dtype()
    info = {
        "name": "sample_image_patches",
        "split": split,
        "source": "sklearn.datasets.load_sample_images (china.jpg, flower.jpg)",
        "binarization": None,
        "binarization_seed": None,
        "n": n,
        "n_features": size * size,
        "size": size,
        "whiten": whiten,
        "eps": eps,
        "dequantize": dequantize,
        "seed": seed,
        "whitening_log_det": float(np.linalg.slogdet(M)[1]),
    }
    return Dataset(torch.as_tensor(x, dtype=dtype), None, info, image_shape=(size, size))


def covariance_mixture(
    n: int,
    *,
    n_features: int = 2,
    n_components: int = 2,
    scale_along: float = 1.0,
    scale_across: float = 0.3,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> Dataset:
    r"""Synthetic data with known conditional covariance: a zero-mean Gaussian scale mixture.

    Component :math:`k` (chosen uniformly, returned as the label ``y``) is
    :math:`\mathcal N(0, C_k)` with :math:`C_k = \sigma_\perp^2 I + (\sigma_\parallel^2 -
    \sigma_\perp^2)\,u_k u_k^\top`: standard deviation :math:`\sigma_\parallel` =
    ``scale_along`` along the direction :math:`u_k` and :math:`\sigma_\perp` = ``scale_across``
    across it. The directions are the first ``n_components`` columns of a random orthogonal
    matrix. Every component has mean zero, so only a model of the *covariance* (not of the
    mean) captures the structure; the defaults keep every variance at most 1, the scale of
    whitened data that the mcRBM and mPoT energies (:math:`\tfrac12 x^\top x`) assume. The
    exact log-density is :math:`\log \frac1K\sum_k \mathcal N(x; 0, C_k)`.

    Parameters
    ----------
    n : int
        Number of rows.
    n_features : int
        Dimension :math:`D` (at least 1).
    n_components : int
        :math:`K`, at most ``n_features``.
    scale_along, scale_across : float
        :math:`\sigma_\parallel`, :math:`\sigma_\perp` (positive).
    seed : int
        Seed of the directions and the draws.
    dtype : torch.dtype, optional

    Returns
    -------
    Dataset
        ``x`` of shape ``(n, n_features)``, component labels ``y``; ``info["directions"]`` is
        the ``(n_features, n_components)`` matrix of the :math:`u_k` (as nested lists).
    """
    n = check_int(n, "n", low=1)
    n_features = check_int(n_features, "n_features", low=1)
    n_components = check_int(n_components, "n_components", low=1, high=n_features)
    scale_along = check_float(scale_along, "scale_along", 0.0, None, "oo")
    scale_across = check_float(scale_across, "scale_across", 0.0, None, "oo")
    seed = check_int(seed, "seed", low=0)
    dtype = dtype or torch.get_default_dtype()
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n_features, n_features, generator=g, dtype=torch.float64))
    u = q[:, :n_components]
    y = torch.randint(0, n_components, (n,), generator=g)
    z = torch.randn(n, n_features, generator=g, dtype=torch.float64)
    along = (z @ u).gather(1, y[:, None])  # the standard normal coordinate along u_y
    x = scale_across * z + (scale_along - scale_across) * along * u.T[y]
    info = {
        "name": "covariance_mixture",
        "split": "all",
        "source": "pyrogen.datasets.covariance_mixture",
        "binarization": None,
        "binarization_seed": None,
        "n": n,
        "n_features": n_features,
        "n_components": n_components,
        "scale_along": scale_along,
        "scale_across": scale_across,
        "seed": seed,
        "directions": u.tolist(),
    }
    return Dataset(x.to(dtype), y, info)


#: the default shifts of :func:`shifted_digit_pairs`: (rows, columns) one pixel down, up,
#: right, left
DIGIT_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def shifted_digit_pairs(
    n: int,
    *,
    shifts=DIGIT_SHIFTS,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Pairs (digit, shifted digit) for gated Boltzmann machines (book §20.8).

    Draws ``n`` of scikit-learn's 8x8 digits (threshold-binarized, :func:`load_digits`)
    uniformly with replacement and, for each, one shift :math:`(d_r, d_c)` of ``shifts``
    uniformly; the second image is the first translated by :math:`d_r` rows and :math:`d_c`
    columns, with zeros shifted in (no wrap-around).

    Parameters
    ----------
    n : int
        Number of pairs (at least 1).
    shifts : sequence of (int, int)
        Candidate translations, each component in ``[-7, 7]``.
    seed : int
        Seed of the choices (the pairs are a deterministic function of the arguments).
    dtype : torch.dtype, optional
        Defaults to ``torch.get_default_dtype()``.

    Returns
    -------
    x, y : torch.Tensor, shape ``(n, 64)``
        The digits and their shifted copies (0/1, row-major 8x8).
    shift : torch.Tensor, shape ``(n,)``, int64
        Index into ``shifts`` of each pair's translation.
    """
    n = check_int(n, "n", low=1)
    seed = check_int(seed, "seed", low=0)
    try:
        shifts = [(int(a), int(b)) for a, b in shifts]
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"shifts must be a sequence of (rows, columns) integer pairs. Got {shifts!r} instead."
        ) from e
    if not shifts or any(abs(a) > 7 or abs(b) > 7 for a, b in shifts):
        raise ValueError(
            f"shifts must be a non-empty sequence of pairs with components in [-7, 7]. Got "
            f"{shifts!r} instead."
        )
    images = load_digits(binarize="threshold", dtype=torch.float64).x.numpy().reshape(-1, 8, 8)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, images.shape[0], size=n)
    which = rng.integers(0, len(shifts), size=n)
    x = images[idx]
    y = np.zeros_like(x)
    for i, (a, b) in enumerate(shifts):
        sel = which == i
        src = x[sel][:, max(0, -a) : 8 - max(0, a), max(0, -b) : 8 - max(0, b)]
        y[np.flatnonzero(sel)[:, None, None], np.arange(max(0, a), 8 - max(0, -a))[:, None],
          np.arange(max(0, b), 8 - max(0, -b))[None, :]] = src
    dtype = dtype or torch.get_default_dtype()
    return (
        torch.as_tensor(x.reshape(n, 64), dtype=dtype),
        torch.as_tensor(y.reshape(n, 64), dtype=dtype),
        torch.as_tensor(which, dtype=torch.int64),
    )
