r"""Sample-based evaluation of generators (book §20.14): scores that are *not* likelihoods.

Every function here compares a set of samples with data; none estimates :math:`\log p(x)`,
and none should be reported as one. For a model's likelihood use its ``log_likelihood`` (for a
GAN with an observation model: decoder AIS).

* :func:`train_classifier` / :func:`cached_classifier` — a small classifier trained by pyrogen
  on the data set's own labels (plain torch; trained once and cached under
  :func:`cache_dir` with the atomic writer; never a download). Its softmax gives
  :func:`classifier_score` (an Inception-Score analogue [1]) and :func:`class_histogram`; its
  penultimate layer is the feature space of :func:`frechet_distance` [2] and
  :func:`precision_recall` [3].
* :func:`nearest_neighbours` — memorization check: each sample's distance to its nearest
  training example, against the same statistic for held-out data (a model that copies its
  training set has samples much closer than held-out data are) [5];
  :func:`save_nearest_neighbour_grid` draws each sample beside its nearest training images.
* :func:`ring_of_gaussians`, :func:`grid_of_gaussians`, :func:`mode_coverage` — the standard
  mode-collapse test on synthetic data with known modes [4].

References
----------
1. T. Salimans et al. *Improved techniques for training GANs*. NeurIPS 2016.
2. M. Heusel et al. *GANs trained by a two time-scale update rule converge to a local Nash
   equilibrium*. NeurIPS 2017 (FID).
3. T. Kynkäänniemi et al. *Improved precision and recall metric for assessing generative
   models*. NeurIPS 2019.
4. L. Metz et al. *Unrolled generative adversarial networks*. ICLR 2017; A. Srivastava et al.
   *VEEGAN*. NeurIPS 2017; Z. Lin et al. *PacGAN*. NeurIPS 2018.
5. L. Theis, A. van den Oord, M. Bethge. *A note on the evaluation of generative models*.
   ICLR 2016; I. Goodfellow et al. *Deep Learning*, §20.14.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ._io import atomic_torch_save
from ._validation import check_float, check_int

__all__ = [
    "SampleClassifier",
    "train_classifier",
    "cached_classifier",
    "cache_dir",
    "label_agreement",
    "check_label_agreement",
    "classifier_score",
    "class_histogram",
    "frechet_distance",
    "frechet_distance_from_moments",
    "precision_recall",
    "NearestNeighbours",
    "nearest_neighbours",
    "save_nearest_neighbour_grid",
    "ring_of_gaussians",
    "grid_of_gaussians",
    "ModeCoverage",
    "mode_coverage",
]


def _as_tensor(x, name):
    if isinstance(x, np.ndarray):
        x = torch.as_tensor(x)
    if not torch.is_tensor(x):
        raise TypeError(f"{name} must be a tensor or array. Got {type(x).__name__} instead.")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d). Got {tuple(x.shape)} instead.")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite. Got NaN or infinite values instead.")
    return x.double()


# ------------------------------------------------------------------------------ classifier
class SampleClassifier(nn.Module):
    """MLP ``n_features -> hidden -> hidden -> n_classes`` (ReLU). :meth:`features` is the
    last hidden layer (the feature space of FD and precision/recall); :meth:`probs` the softmax.
    """

    def __init__(self, n_features: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.config = {"n_features": n_features, "n_classes": n_classes, "hidden": hidden}
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        return self.body(x).double()

    @torch.no_grad()
    def probs(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        return torch.softmax(self(x), -1).double()


def train_classifier(x, y, *, n_classes: int | None = None, hidden: int = 128,
                     num_epochs: int = 30, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0) -> SampleClassifier:
    """Train a :class:`SampleClassifier` on ``(x, y)`` by Adam on the cross-entropy (float32,
    a private ``torch.Generator``: the global random state is untouched). Cost:
    ``num_epochs`` passes over the data."""
    x = _as_tensor(x, "x").float()
    y = torch.as_tensor(y).long()
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},). Got {tuple(y.shape)} instead.")
    n_classes = int(y.max()) + 1 if n_classes is None else check_int(n_classes, "n_classes", 2)
    num_epochs = check_int(num_epochs, "num_epochs", low=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", low=0))
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        clf = SampleClassifier(x.shape[1], n_classes, hidden)
    finally:
        torch.set_rng_state(state)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    n = x.shape[0]
    for _ in range(num_epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(clf(x[idx]), y[idx]).backward()
            opt.step()
    clf.eval()
    return clf


def label_agreement(x_train, y_train, x_test, y_test) -> float:
    """Test accuracy of the nearest-class-mean classifier (class means of ``x_train``): whether
    labels belong to their images before a classifier is trained on them. About 0.8 on
    binarized MNIST and 0.9 on the digits with their own labels; chance (0.1 for 10 classes)
    when labels and images are paired in different orders."""
    xtr, xte = _as_tensor(x_train, "x_train"), _as_tensor(x_test, "x_test")
    ytr, yte = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if ytr.shape != (xtr.shape[0],) or yte.shape != (xte.shape[0],):
        raise ValueError(f"y_train and y_test must have shapes ({xtr.shape[0]},) and "
                         f"({xte.shape[0]},). Got {tuple(ytr.shape)}, {tuple(yte.shape)}.")
    classes = torch.unique(ytr)
    means = torch.stack([xtr[ytr == c].mean(0) for c in classes])
    pred = classes[torch.cdist(xte, means).argmin(1)]
    return float((pred == yte).double().mean())


def check_label_agreement(x_train, y_train, x_test, y_test, minimum: float = 0.5) -> float:
    """:func:`label_agreement`, or ``ValueError`` when it is below ``minimum`` (labels that do
    not belong to their images: a classifier trained on them scores nothing)."""
    acc = label_agreement(x_train, y_train, x_test, y_test)
    if acc < minimum:
        raise ValueError(
            f"the labels do not belong to the images: nearest-class-mean test accuracy "
            f"{acc:.3f} < {minimum} (chance is 1 / number of classes). For the fixed binarized "
            "MNIST pass labels recovered by benchmarks/recover_mnist_labels.py "
            "(load_binarized_mnist(labels=...) or PYROGEN_MNIST_LABELS).")
    return acc


def cache_dir() -> str:
    """pyrogen's user cache folder: ``$PYROGEN_CACHE``, else ``$XDG_CACHE_HOME/pyrogen``, else
    ``~/.cache/pyrogen``."""
    if os.environ.get("PYROGEN_CACHE"):
        return os.environ["PYROGEN_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyrogen")


def cached_classifier(name: str, x, y, *, directory: str | None = None,
                      **train_kwargs) -> SampleClassifier:
    """The classifier of data set ``name`` trained on ``(x, y)``, from the cache or trained
    once and cached (atomic write). The cache key hashes the data, the labels and the
    training settings, so different data never share a classifier."""
    x = _as_tensor(x, "x").float()
    y = torch.as_tensor(y).long()
    h = hashlib.sha256()
    h.update(x.numpy().tobytes())
    h.update(y.numpy().tobytes())
    h.update(repr(sorted(train_kwargs.items())).encode())
    path = os.path.join(directory or cache_dir(), "classifiers",
                        f"{name}-{h.hexdigest()[:16]}.pt")
    if os.path.exists(path):
        payload = torch.load(path, weights_only=True)
        clf = SampleClassifier(**payload["config"])
        clf.load_state_dict(payload["state_dict"])
        clf.eval()
        return clf
    clf = train_classifier(x, y, **train_kwargs)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_torch_save({"config": clf.config, "state_dict": clf.state_dict()}, path)
    return clf


def classifier_score(probs, num_splits: int = 10) -> tuple[float, float]:
    r"""Inception-Score analogue [1] :math:`\exp\big(\mathbb E_x \mathrm{KL}(p(y\mid x)\,\Vert\,
    p(y))\big)` from class probabilities of shape ``(n, C)``, :math:`p(y)` their mean.

    Between 1 (every sample gets the marginal) and :math:`C` (confident and balanced). For a
    perfect classifier on real data (one-hot :math:`p(y\mid x)`) it equals
    :math:`\exp H(p(y))`, the data's own score. Returns ``(mean, std)`` over ``num_splits``
    disjoint splits (as [1]; the spread is not a standard error of the full-set value).
    Not a likelihood; blind to memorization and to within-class diversity.
    """
    p = _as_tensor(probs, "probs")
    num_splits = check_int(num_splits, "num_splits", low=1, high=p.shape[0])
    scores = []
    for part in torch.tensor_split(p, num_splits):
        marg = part.mean(0, keepdim=True)
        kl = (part * (torch.log(part.clamp_min(1e-300)) - torch.log(marg.clamp_min(1e-300))))
        scores.append(math.exp(float(kl.sum(1).mean())))
    s = torch.tensor(scores, dtype=torch.float64)
    return float(s.mean()), float(s.std()) if num_splits > 1 else 0.0


def class_histogram(probs_or_labels, n_classes: int | None = None) -> torch.Tensor:
    """Fraction of samples per class (argmax of probabilities, or integer labels), ``(C,)``."""
    t = torch.as_tensor(probs_or_labels)
    labels = t.argmax(-1) if t.dim() == 2 else t.long()
    c = int(t.shape[1]) if t.dim() == 2 else (n_classes or int(labels.max()) + 1)
    return torch.bincount(labels, minlength=c).double() / labels.numel()


# ------------------------------------------------------------------------ Fréchet distance
def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance_from_moments(mu1, cov1, mu2, cov2) -> float:
    r""":math:`\lVert\mu_1-\mu_2\rVert^2 + \operatorname{tr}\big(\Sigma_1+\Sigma_2 -
    2(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}\big)`, the squared 2-Wasserstein distance
    between two Gaussians (float64, symmetric eigendecompositions: no complex square roots)."""
    mu1, mu2 = torch.as_tensor(mu1).double(), torch.as_tensor(mu2).double()
    c1, c2 = torch.as_tensor(cov1).double(), torch.as_tensor(cov2).double()
    s1 = _sqrtm_psd(c1)
    cross = _sqrtm_psd(s1 @ c2 @ s1)
    fd = float(((mu1 - mu2) ** 2).sum() + torch.trace(c1) + torch.trace(c2)
               - 2 * torch.trace(cross))
    return max(fd, 0.0)


def frechet_distance(feat1, feat2) -> float:
    r"""Fréchet distance [2] between two feature sets ``(n, d)`` and ``(m, d)`` (e.g.
    :meth:`SampleClassifier.features` of samples and of held-out data): the Gaussian formula
    of :func:`frechet_distance_from_moments` on their means and covariances. Zero for a set
    with itself. Biased upward for small ``n`` (compare at equal sample sizes)."""
    a, b = _as_tensor(feat1, "feat1"), _as_tensor(feat2, "feat2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feat1 and feat2 must have the same width. Got {a.shape[1]} and "
                         f"{b.shape[1]} instead.")
    return frechet_distance_from_moments(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1),
                                         b.mean(0), torch.cov(b.T).reshape(b.shape[1], -1))


# ------------------------------------------------------------------------ precision/recall
def _kth_radius(x, k):
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # k+1: the point itself is at distance 0


def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
    r"""Improved precision and recall [3].

    The real manifold is the union of balls around each real feature vector with radius its
    distance to its ``k``-th nearest real neighbour; likewise for the generated set.
    Precision = fraction of generated points inside the real manifold (quality); recall =
    fraction of real points inside the generated manifold (coverage). Cost :math:`O(n^2 d)`.
    """
    r, f = _as_tensor(real_features, "real_features"), _as_tensor(fake_features,
                                                                  "fake_features")
    k = check_int(k, "k", low=1, high=min(r.shape[0], f.shape[0]) - 1)
    rr, rf = _kth_radius(r, k), _kth_radius(f, k)
    d = torch.cdist(f, r)  # (n_fake, n_real)
    precision = float((d <= rr[None, :]).any(1).double().mean())
    recall = float((d.T <= rf[None, :]).any(1).double().mean())
    return precision, recall


# ------------------------------------------------------------------------ nearest neighbours
@dataclass(frozen=True)
class NearestNeighbours:
    """Result of :func:`nearest_neighbours`.

    Attributes
    ----------
    indices : Tensor ``(n_samples, k)``
        Nearest training rows of each sample.
    distances : Tensor ``(n_samples, k)``
        Their Euclidean distances.
    heldout_distances : Tensor ``(n_heldout,)`` or None
        Distance of each held-out row to its nearest training row.
    ratio : float or None
        median sample distance / median held-out distance: about 1 for a model that
        generalizes like held-out data, much below 1 for one that copies training examples.
    fraction_closer : float or None
        Fraction of samples closer to the training set than the 5th percentile of held-out
        distances (5% expected without memorization).
    """

    indices: torch.Tensor
    distances: torch.Tensor
    heldout_distances: torch.Tensor | None
    ratio: float | None
    fraction_closer: float | None


def nearest_neighbours(samples, train, heldout=None, k: int = 1) -> NearestNeighbours:
    """Nearest training examples of each sample, and the memorization statistic against
    held-out data (see :class:`NearestNeighbours`). Euclidean distance in the given space
    (pixels, or classifier features). Cost :math:`O(n_s n_t d)`."""
    s, t = _as_tensor(samples, "samples"), _as_tensor(train, "train")
    k = check_int(k, "k", low=1, high=t.shape[0])
    d = torch.cdist(s, t)
    dist_k, idx = d.topk(k, dim=1, largest=False)
    hd = ratio = frac = None
    if heldout is not None:
        h = _as_tensor(heldout, "heldout")
        hd = torch.cdist(h, t).min(1).values
        ratio = float(dist_k[:, 0].median() / hd.median().clamp_min(1e-300))
        frac = float((dist_k[:, 0] < torch.quantile(hd, 0.05)).double().mean())
    return NearestNeighbours(idx, dist_k, hd, ratio, frac)


def save_nearest_neighbour_grid(samples, train, image_shape, path, k: int = 5,
                                title: str | None = None) -> str:
    """PNG: one row per sample, the sample then its ``k`` nearest training images."""
    from .plotting import save_image_grid

    nn_ = nearest_neighbours(samples, train, k=k)
    s, t = _as_tensor(samples, "samples"), _as_tensor(train, "train")
    rows = [torch.cat([s[i : i + 1], t[nn_.indices[i]]]) for i in range(s.shape[0])]
    return save_image_grid(torch.cat(rows), tuple(image_shape), path, ncols=k + 1,
                           title=title or f"sample | {k} nearest training images")


# ------------------------------------------------------------------------------ mode coverage
def ring_of_gaussians(n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.02,
                      seed: int = 0):
    """``n`` draws from an equal mixture of ``n_modes`` isotropic Gaussians on a circle.
    Returns ``(x, centers, std)`` (float64)."""
    n, n_modes = check_int(n, "n", low=1), check_int(n_modes, "n_modes", low=1)
    angles = torch.arange(n_modes, dtype=torch.float64) * 2 * math.pi / n_modes
    centers = radius * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return _mixture(n, centers, std, seed)


def grid_of_gaussians(n: int, side: int = 5, spacing: float = 2.0, std: float = 0.05,
                      seed: int = 0):
    """``n`` draws from an equal mixture of ``side**2`` Gaussians on a centred grid."""
    side = check_int(side, "side", low=1)
    c = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    centers = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1).reshape(-1, 2)
    return _mixture(check_int(n, "n", low=1), centers, std, seed)


def _mixture(n, centers, std, seed):
    std = check_float(std, "std", 0.0, None, "oo")
    g = torch.Generator().manual_seed(check_int(seed, "seed", low=0))
    comp = torch.randint(0, centers.shape[0], (n,), generator=g)
    x = centers[comp] + std * torch.randn(n, centers.shape[1], generator=g, dtype=torch.float64)
    return x, centers, std


@dataclass(frozen=True)
class ModeCoverage:
    """Result of :func:`mode_coverage`: ``modes_covered`` (int), ``n_modes``,
    ``high_quality`` (fraction of samples within ``threshold`` std of a mode), ``counts``
    (high-quality samples per mode), ``kl_to_uniform`` (KL of the high-quality mode
    histogram from the uniform one, nats; 0 when balanced)."""

    modes_covered: int
    n_modes: int
    high_quality: float
    counts: torch.Tensor
    kl_to_uniform: float


def mode_coverage(samples, centers, std: float, threshold: float = 3.0,
                  min_count: int | None = None) -> ModeCoverage:
    r"""Mode-collapse test on a mixture with known modes [4].

    A sample is *high quality* when within ``threshold`` standard deviations of its nearest
    centre; a mode is *covered* when at least ``min_count`` high-quality samples fall on it
    (default: 20% of the count expected under balance, :math:`\lceil 0.2\, n/K\rceil`,
    at least 1; PacGAN [4] uses 20 of 2500 for 25 modes).
    """
    s, c = _as_tensor(samples, "samples"), _as_tensor(centers, "centers")
    std = check_float(std, "std", 0.0, None, "oo")
    d = torch.cdist(s, c)
    dmin, which = d.min(1)
    hq = dmin <= threshold * std
    counts = torch.bincount(which[hq], minlength=c.shape[0])
    n_hq = int(hq.sum())
    if min_count is None:
        min_count = max(1, math.ceil(0.2 * s.shape[0] / c.shape[0]))
    covered = int((counts >= check_int(min_count, "min_count", low=1)).sum())
    if n_hq:
        p = counts.double() / n_hq
        kl = float((p[p > 0] * torch.log(p[p > 0] * c.shape[0])).sum())
    else:
        kl = math.inf
    return ModeCoverage(covered, c.shape[0], n_hq / s.shape[0], counts, kl)
