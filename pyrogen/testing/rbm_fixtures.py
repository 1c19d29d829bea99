r"""Binary RBMs whose :math:`\log Z` is known exactly: yardsticks of the AIS tests and benchmarks.

* :func:`rbm_log_z_exact` -- :math:`\log Z` of a binary RBM by enumerating the smaller layer, in
  float64, split in two halves so that :math:`2^{22}` states cost :math:`2 \cdot 2^{11}` matrix
  rows and a chunked broadcast (e.g. 784 x 20: about 10 s on one core).
* :func:`patch_rbm_mask`, :func:`patch_rbm_log_z_exact`, :func:`train_patch_rbm`,
  :func:`random_patch_rbm` -- *patch RBMs*: full-size RBMs (784 visible, ~500 hidden units)
  in which every hidden unit is connected to the pixels of one patch of the image only, the
  patches partitioning the image. The model factorizes over patches,
  :math:`Z = \prod_p Z_p \cdot \prod_{i \notin \text{patches}} (1 + e^{b_i})`, and each
  :math:`Z_p` is a small RBM's partition function (16-49 visible, 4-20 hidden units), exactly
  enumerable. AIS does not know about the structure: it sees a 784-500 RBM whose log-weight
  variance is the sum of the patches' -- the hard case at full size, with an exact answer.

The RBM convention is the book's: :math:`E(v,h) = -b^\top v - c^\top h - v^\top W h` with
``weight`` of shape ``(n_visible, n_hidden)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "rbm_log_z_exact",
    "PatchRBM",
    "patch_rbm_mask",
    "patch_rbm_log_z_exact",
    "train_patch_rbm",
    "random_patch_rbm",
]


def _states(k: int) -> torch.Tensor:
    """All ``2**k`` binary vectors of length ``k`` (float64, shape ``(2**k, k)``)."""
    return ((torch.arange(2**k)[:, None] >> torch.arange(k)) & 1).double()


def rbm_log_z_exact(weight, visible_bias, hidden_bias, *, max_units: int = 26) -> float:
    r"""Exact :math:`\log Z` of a binary RBM (float64), enumerating the smaller layer.

    With :math:`h` the enumerated layer (the smaller one),
    :math:`\log Z = \operatorname{logsumexp}_h [c^\top h + \sum_i \operatorname{softplus}(b_i +
    (W h)_i)]`. The :math:`2^k` states are split into two halves :math:`h = (h_1, h_2)`:
    :math:`W h = W_1 h_1 + W_2 h_2` is two small products, and the sum over all pairs is taken in
    chunks (memory ~64 MB). Cost: :math:`2^k \cdot n` softplus evaluations for :math:`n`
    summed-out units.

    Parameters
    ----------
    weight : torch.Tensor, shape ``(n_visible, n_hidden)``
    visible_bias : torch.Tensor, shape ``(n_visible,)``
    hidden_bias : torch.Tensor, shape ``(n_hidden,)``
    max_units : int
        Refuse to enumerate more than ``2**max_units`` states.

    Returns
    -------
    float
        The exact :math:`\log Z` (up to float64 rounding).
    """
    W = weight.detach().double().cpu()
    b = visible_bias.detach().double().cpu()
    c = hidden_bias.detach().double().cpu()
    if W.dim() != 2 or b.shape != (W.shape[0],) or c.shape != (W.shape[1],):
        raise ValueError(
            "weight, visible_bias, hidden_bias must have shapes (V, H), (V,), (H,). Got "
            f"{tuple(W.shape)}, {tuple(b.shape)}, {tuple(c.shape)} instead."
        )
    if W.shape[1] > W.shape[0]:  # enumerate the visible layer instead: swap the roles
        W, b, c = W.T, c, b
    n, k = W.shape
    if k > max_units:
        raise ValueError(f"enumerating 2**{k} states is past max_units={max_units}.")
    k1 = k // 2
    s1, s2 = _states(k1), _states(k - k1)
    a1 = s1 @ W[:, :k1].T + b  # (2^k1, n)
    a2 = s2 @ W[:, k1:].T  # (2^k2, n)
    c1, c2 = s1 @ c[:k1], s2 @ c[k1:]
    chunk = max(1, (8 * 2**20) // max(1, a2.shape[0] * n))
    parts = []
    for i in range(0, a1.shape[0], chunk):
        t = F.softplus(a1[i : i + chunk, None, :] + a2[None]).sum(-1)
        t = t + c1[i : i + chunk, None] + c2[None]
        parts.append(torch.logsumexp(t.reshape(-1), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


# --------------------------------------------------------------------------------------------
# patch RBMs
# --------------------------------------------------------------------------------------------
@dataclass
class PatchRBM:
    """A patch RBM: parameters, its patch structure and its exact log Z.

    Attributes
    ----------
    weight, visible_bias, hidden_bias : torch.Tensor
        Shapes ``(V, H)``, ``(V,)``, ``(H,)``; ``weight`` is zero outside ``mask``.
    mask : torch.Tensor, shape ``(V, H)``
        1 where a hidden unit is connected to a pixel of its patch.
    patches : list of (visible indices, hidden indices)
    log_z : float
        Exact :math:`\\log Z` (float64 enumeration patch by patch).
    info : dict
        How it was made (patch shape, hidden units per patch, training).
    """

    weight: torch.Tensor
    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    mask: torch.Tensor
    patches: list
    log_z: float
    info: dict = field(default_factory=dict)

    @property
    def n_visible(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.weight.shape[1])


def patch_rbm_mask(image_shape=(28, 28), patch_shape=(4, 4), hidden_per_patch: int = 10):
    """Connectivity of a patch RBM: ``(mask, patches)``.

    The image (row-major pixels) is cut into non-overlapping ``patch_shape`` tiles (the image
    sides must be multiples of the patch sides); each tile gets ``hidden_per_patch`` hidden
    units connected to its pixels only. ``mask`` has shape ``(V, H)`` with ``H =
    n_patches * hidden_per_patch``; ``patches`` lists ``(visible_idx, hidden_idx)`` per tile.
    """
    rows, cols = image_shape
    pr, pc = patch_shape
    if rows % pr or cols % pc:
        raise ValueError(
            f"patch_shape must divide image_shape. Got {tuple(patch_shape)} for "
            f"{tuple(image_shape)} instead."
        )
    if hidden_per_patch < 1:
        raise ValueError(f"hidden_per_patch must be >= 1. Got {hidden_per_patch} instead.")
    idx = torch.arange(rows * cols).reshape(rows, cols)
    patches = []
    for r in range(0, rows, pr):
        for c in range(0, cols, pc):
            vis = idx[r : r + pr, c : c + pc].reshape(-1)
            j = len(patches) * hidden_per_patch
            patches.append((vis, torch.arange(j, j + hidden_per_patch)))
    mask = torch.zeros(rows * cols, len(patches) * hidden_per_patch)
    for vis, hid in patches:
        mask[vis[:, None], hid[None, :]] = 1.0
    return mask, patches


def patch_rbm_log_z_exact(weight, visible_bias, hidden_bias, patches) -> float:
    r"""Exact :math:`\log Z` of a patch RBM: the sum of the patches' enumerated log
    normalizers, plus :math:`\operatorname{softplus}(b_i)` for pixels in no patch and
    :math:`\operatorname{softplus}(c_j)` for hidden units in none. Assumes ``weight`` is zero
    between different patches (it is not checked beyond the listed blocks)."""
    b = visible_bias.detach().double()
    c = hidden_bias.detach().double()
    seen_v = torch.zeros(b.shape[0], dtype=torch.bool)
    seen_h = torch.zeros(c.shape[0], dtype=torch.bool)
    total = 0.0
    for vis, hid in patches:
        total += rbm_log_z_exact(weight[vis[:, None], hid[None, :]], b[vis], c[hid])
        seen_v[vis] = True
        seen_h[hid] = True
    total += float(F.softplus(b[~seen_v]).sum() + F.softplus(c[~seen_h]).sum())
    return total


def train_patch_rbm(
    x,
    *,
    image_shape=(28, 28),
    patch_shape=(4, 4),
    hidden_per_patch: int = 10,
    epochs: float = 1.0,
    lr: float = 0.05,
    persistent: bool = False,
    batch_size: int = 100,
    seed: int = 0,
) -> PatchRBM:
    """Train a patch RBM on binary images ``x`` (shape ``(n, V)``) by CD-1 or PCD-1.

    Plain-torch SGD on the per-example mean gradient with the weight gradient masked to the
    patch blocks, i.e. every patch RBM is trained on its own patches of the images (all at
    once). Visible biases start at the base-rate log-odds. ``epochs`` may be fractional.
    Returns a :class:`PatchRBM` (float32 parameters) with its exact log Z.
    """
    from ..infer.ais import base_rate_visible_bias

    x = torch.as_tensor(x, dtype=torch.float32)
    mask, patches = patch_rbm_mask(image_shape, patch_shape, hidden_per_patch)
    n, nv = x.shape
    if nv != mask.shape[0]:
        raise ValueError(f"x must have {mask.shape[0]} columns. Got {nv} instead.")
    g = torch.Generator().manual_seed(seed)
    W = 0.01 * torch.randn(nv, mask.shape[1], generator=g) * mask
    b = base_rate_visible_bias(x, 1e-2).clone()
    c = torch.zeros(mask.shape[1])
    chains = x[:batch_size].clone()

    def bern(p):
        return (torch.rand(p.shape, generator=g) < p).float()

    steps = int(round(epochs * n / batch_size))
    perm, pos = torch.randperm(n, generator=g), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=g), 0
        v0 = x[perm[pos : pos + batch_size]]
        pos += batch_size
        ph0 = torch.sigmoid(v0 @ W + c)
        vk = chains if persistent else v0
        vk = bern(torch.sigmoid(bern(torch.sigmoid(vk @ W + c)) @ W.T + b))
        if persistent:
            chains = vk
        phk = torch.sigmoid(vk @ W + c)
        W += lr * (v0.T @ ph0 - vk.T @ phk) / batch_size * mask
        b += lr * (v0.mean(0) - vk.mean(0))
        c += lr * (ph0.mean(0) - phk.mean(0))
    log_z = patch_rbm_log_z_exact(W, b, c, patches)
    info = dict(
        image_shape=tuple(image_shape), patch_shape=tuple(patch_shape),
        hidden_per_patch=hidden_per_patch, epochs=epochs, lr=lr,
        rule="PCD-1" if persistent else "CD-1", seed=seed, n_train=n,
    )
    return PatchRBM(W, b, c, mask, patches, log_z, info)


def random_patch_rbm(
    *,
    image_shape=(8, 8),
    patch_shape=(4, 4),
    hidden_per_patch: int = 4,
    scale: float = 1.0,
    seed: int = 0,
    dtype=torch.float64,
) -> PatchRBM:
    """A patch RBM with Gaussian random weights (std ``scale / sqrt(patch pixels)``) and
    biases, for tests that must not need MNIST. Exact log Z included."""
    mask, patches = patch_rbm_mask(image_shape, patch_shape, hidden_per_patch)
    g = torch.Generator().manual_seed(seed)
    nv, nh = mask.shape
    per = patch_shape[0] * patch_shape[1]
    W = (scale / math.sqrt(per)) * torch.randn(nv, nh, generator=g, dtype=dtype) * mask.to(dtype)
    b = 0.5 * torch.randn(nv, generator=g, dtype=dtype) - 0.5
    c = 0.5 * torch.randn(nh, generator=g, dtype=dtype)
    log_z = patch_rbm_log_z_exact(W, b, c, patches)
    info = dict(image_shape=tuple(image_shape), patch_shape=tuple(patch_shape),
                hidden_per_patch=hidden_per_patch, scale=scale, seed=seed)
    return PatchRBM(W, b, c, mask, patches, log_z, info)
