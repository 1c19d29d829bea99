"""Small matplotlib helpers (Agg backend, no screen needed) for report PNGs."""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from ._io import atomic_write

__all__ = ["save_image_grid", "save_line_plot", "save_figure"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 80) -> str:
    """Write a matplotlib figure as a PNG atomically (through :mod:`pyrogen._io`)."""
    path = os.fspath(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    return path


def save_image_grid(
    images,
    image_shape: tuple[int, int],
    path: str | os.PathLike,
    title: str | None = None,
    ncols: int | None = None,
    symmetric: bool = False,
) -> str:
    """Write a grid of images (rows of ``images`` reshaped to ``image_shape``) as a PNG.

    ``symmetric=True`` centres the colour map on zero (for weights/components).
    """
    plt = _plt()
    arr = images.detach().cpu().double().numpy() if isinstance(images, torch.Tensor) else images
    arr = np.asarray(arr, dtype=float)
    n = arr.shape[0]
    ncols = ncols or min(n, 10)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.9, nrows * 0.9 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = arr[i].reshape(image_shape)
            if symmetric:
                m = np.abs(img).max() or 1.0
                ax.imshow(img, cmap="RdBu_r", vmin=-m, vmax=m)
            else:
                ax.imshow(img, cmap="gray_r", vmin=min(0.0, img.min()), vmax=max(1.0, img.max()))
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    path = os.fspath(path)
    plt.close(fig)
    return path


def save_line_plot(series: dict, path: str | os.PathLike, title: str = "", xlabel: str = "step",
                   ylabel: str = "") -> str:
    """Write one or more curves ``{label: values}`` as a PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    for label, ys in series.items():
        ax.plot(np.asarray(ys, dtype=float), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    path = os.fspath(path)
    plt.close(fig)
    return path


def save_scatter_plot(clouds: dict, path: str | os.PathLike, title: str = "") -> str:
    """Write 2-D point clouds ``{label: (n, 2) array}`` as one scatter plot (PNG, atomic); the
    first cloud is drawn grey underneath (the data), the others on top."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 4))
    for i, (label, pts) in enumerate(clouds.items()):
        arr = pts.detach().cpu().double().numpy() if isinstance(pts, torch.Tensor) else pts
        arr = np.asarray(arr, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"clouds[{label!r}] must have shape (n, 2). Got {arr.shape} instead.")
        kw = dict(s=4, c="0.6", alpha=0.5) if i == 0 else dict(s=4, alpha=0.6)
        ax.scatter(arr[:, 0], arr[:, 1], label=label, **kw)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=3, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)
    path = os.fspath(path)
    plt.close(fig)
    return path


def save_histogram(values, path: str | os.PathLike, title: str = "", xlabel: str = "",
                   bins: int = 40) -> str:
    """Write a histogram of ``values`` (1-D) as a PNG (atomic), with its mean marked."""
    plt = _plt()
    arr = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else values
    arr = np.asarray(arr, dtype=float).reshape(-1)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"values must be a non-empty array of finite numbers. Got {arr.size} "
                         f"value(s), {int((~np.isfinite(arr)).sum())} non-finite.")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(arr, bins=bins, color="0.5")
    ax.axvline(arr.mean(), color="C3", label=f"mean {arr.mean():.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("examples")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    path = os.fspath(path)
    plt.close(fig)
    return path
