"""Book §13.5, the manifold view of PCA: writes ``docs/_static/pca_manifold.png``.

Two views of one fit on 2-D data near a line:

* reconstruction error: PCA's line minimizes the mean squared distance between x and its
  orthogonal projection r(x) (the residuals drawn);
* probability: PPCA's maximum-likelihood Gaussian N(b, W W^T + sigma^2 I) is a "pancake" flat
  along the same line, and its posterior-mean reconstruction W E[h | x] + b is the projection
  shrunk toward b by sigma^2 / (||W||^2 + sigma^2).

They agree: span(W) is PCA's principal direction (angle printed) and sigma^2_ML is the mean
squared reconstruction error per discarded dimension, (sum_{j>K} lambda_j) / (d - K).

    python docs/figures/pca_manifold.py
"""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pyrogen.models import PPCA  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = 80
    t = torch.randn(n, generator=g, dtype=torch.float64) * 2.0
    direction = torch.tensor([math.cos(0.5), math.sin(0.5)], dtype=torch.float64)
    x = t[:, None] * direction + 0.45 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = x + torch.tensor([1.0, 0.5], dtype=torch.float64)

    # reconstruction-error view: PCA by SVD of the centred data
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    u = vt[0]
    recon = mean + ((x - mean) @ u)[:, None] * u
    mse = float(((x - recon) ** 2).sum(1).mean())
    lam = s**2 / n

    # probabilistic view: PPCA maximum likelihood (closed form)
    m = PPCA(2, 1).double()
    m.fit(x, method="closed_form", progress=False)
    w = m.weight.detach()[:, 0]
    b = m.bias.detach()
    s2 = m.sigma2
    angle = math.degrees(math.acos(min(1.0, abs(float(w @ u)) / float(w.norm()))))
    post = b + ((x - b) @ w / (w @ w + s2))[:, None] * w  # W E[h|x] + b

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    ax = axes[0]
    line = mean + torch.linspace(-6, 6, 2, dtype=torch.float64)[:, None] * u
    ax.plot(line[:, 0], line[:, 1], "C0-", lw=2, label="PCA line (min. squared error)")
    for a, r in zip(x, recon):
        ax.plot([a[0], r[0]], [a[1], r[1]], color="0.6", lw=0.6)
    ax.plot(x[:, 0], x[:, 1], "k.", ms=4, label="data x")
    ax.plot(recon[:, 0], recon[:, 1], "C0o", ms=2.5, label="reconstruction r(x)")
    ax.set_title(f"reconstruction view: mean ||x - r(x)||² = {mse:.4f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_aspect("equal")

    ax = axes[1]
    gx, gy = np.meshgrid(np.linspace(-6, 8, 200), np.linspace(-5, 6, 200))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], 1))
    logp = m.log_likelihood(grid).values.reshape(gx.shape).numpy()
    ax.contour(gx, gy, logp, levels=np.linspace(logp.max() - 8, logp.max(), 7), cmap="Oranges")
    wline = b + torch.linspace(-6, 6, 2, dtype=torch.float64)[:, None] * (w / w.norm())
    ax.plot(wline[:, 0], wline[:, 1], "C1-", lw=2, label="PPCA span(W) (max. likelihood)")
    ax.plot(x[:, 0], x[:, 1], "k.", ms=4)
    ax.plot(post[:, 0], post[:, 1], "C1o", ms=2.5, label="W E[h|x] + b")
    ax.set_title(f"probabilistic view: sigma²_ML = {s2:.4f}; angle to PCA = {angle:.1e}°",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_aspect("equal")
    ax.set_xlim(-6, 8)
    ax.set_ylim(-5, 6)
    fig.suptitle("§13.5: PCA's reconstruction error and PPCA's likelihood find one manifold "
                 f"(sigma²_ML = lambda_2 = {float(lam[1]):.4f} = MSE / (d - K))", fontsize=9)
    fig.tight_layout()
    out = os.path.join(HERE, "..", "_static", "pca_manifold.png")
    fig.savefig(out, dpi=80)
    print(f"PCA MSE {mse:.6f}, lambda_2 {float(lam[1]):.6f}, PPCA sigma2 {s2:.6f}, "
          f"angle {angle:.2e} deg; wrote {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
