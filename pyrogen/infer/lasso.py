r"""Batched Lasso solvers on tensors: the encoder of sparse coding (book §13.4).

For every row :math:`x_i` of a data matrix and one dictionary :math:`W` (``(n_features,
n_components)``, one atom per column) this module solves

.. math::

    h_i^\star = \arg\min_h \; P_i(h), \qquad
    P_i(h) = \tfrac12 \lVert x_i - b - W h \rVert_2^2 + \alpha \lVert h \rVert_1 ,

all rows at once, in the Gram form :math:`P_i(h) = \tfrac12 h^\top G h - q_i^\top h +
\tfrac12\lVert x_i - b\rVert^2 + \alpha\lVert h\rVert_1` with :math:`G = W^\top W` and
:math:`q_i = W^\top (x_i - b)`.  This is exactly the objective of scikit-learn's
``SparseCoder(transform_algorithm="lasso_cd", transform_alpha=alpha)`` (which calls
``Lasso(alpha=alpha / n_features)`` on the ``n_features`` "samples" of one image, whose objective
:math:`\frac{1}{2 n_\text{features}}\lVert x - Wh\rVert^2 + \frac{\alpha}{n_\text{features}}
\lVert h\rVert_1` is :math:`P/n_\text{features}`).

Stopping criterion: the **duality gap** (the certificate scikit-learn's coordinate descent uses).
With the residual :math:`r = x - b - Wh`, the dual point :math:`\theta = s\,r`,
:math:`s = \min(1, \alpha / \lVert W^\top r\rVert_\infty)` is feasible for the dual
:math:`D(\theta) = \tfrac12\lVert x-b\rVert^2 - \tfrac12\lVert x - b - \theta\rVert^2`,
:math:`\lVert W^\top\theta\rVert_\infty \le \alpha`, and

.. math::

    \operatorname{gap}_i = P_i(h) - D_i(\theta)
      = \tfrac12 (1 + s^2) \lVert r\rVert^2 + \alpha\lVert h\rVert_1 - s\, r^\top (x_i - b)
      \;\ge\; P_i(h) - P_i(h^\star) \;\ge\; 0 .

A row has converged when :math:`\operatorname{gap}_i \le \mathrm{tol}\cdot\lVert x_i -
b\rVert^2` -- scikit-learn's rule (``SparseCoder`` hard-codes ``tol=1e-8``), so the same
``tol`` means the same guarantee.

Methods
-------
``"fista"``
    FISTA [1]_ with step :math:`1/L`, :math:`L = \lambda_\max(G)`, and the gradient-based
    adaptive restart of [2]_; one ``(n, K) x (K, K)`` product per iteration. Linear convergence
    once restarted, but slow when :math:`G` is ill-conditioned (learned dictionaries are).
``"admm"``
    ADMM [3]_ on :math:`h = z` with the inverse :math:`(G + \rho I)^{-1}` computed once (cached
    Cholesky); also one product per iteration, robust to ill-conditioning, slow at high accuracy.
``"feature_sign"`` (default, ``"auto"``)
    Feature-sign search [4]_, the active-set method written for sparse coding, batched over rows:
    while the signs of the active coefficients are optimal, the worst violators of
    :math:`|g_j| \le \alpha` (:math:`g = Gh - q`) join the active set :math:`A` with sign
    :math:`\theta_j = -\operatorname{sign}(g_j)`; the sign-constrained quadratic
    :math:`h_A = G_{AA}^{-1}(q_A - \alpha\theta_A)` is solved by a batched Cholesky on padded
    active blocks, followed (only where a sign would flip) by an exact line search of the convex
    piecewise-quadratic objective on the segment. The objective decreases at every step and the
    method terminates at the exact solution (up to rounding) in about
    :math:`\lVert h^\star\rVert_0 / \text{add\_per\_step}` + a few iterations, whatever the
    conditioning of :math:`G`; a row stops as soon as its duality gap meets the tolerance. Rows
    it cannot finish (a singular active block) are finished by FISTA, so every result carries
    its certificate.
    The codes are sparse, so the implementation never touches a dense ``(K, K)`` product per
    row: active sets are kept as index/value slots, the gradient :math:`Gh - q` is a
    sparse-times-dense product (:math:`O(|A| K)` per row), the line search sorts the
    sign-change points (:math:`O(|A|\log|A|)`), only rows whose active set is optimal compute
    the full gradient, and rows are bucketed by active-set size so that the batched Cholesky
    factorizations of the padded blocks stay small.

References
----------
.. [1] A. Beck, M. Teboulle. A fast iterative shrinkage-thresholding algorithm for linear inverse
   problems. SIAM J. Imaging Sciences 2(1), 2009.
.. [2] B. O'Donoghue, E. Candès. Adaptive restart for accelerated gradient schemes. Foundations
   of Computational Mathematics 15, 2015.
.. [3] S. Boyd, N. Parikh, E. Chu, B. Peleato, J. Eckstein. Distributed optimization and
   statistical learning via the alternating direction method of multipliers. 2011.
.. [4] H. Lee, A. Battle, R. Raina, A. Y. Ng. Efficient sparse coding algorithms. NIPS 2007.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch

from .._validation import check_choice, check_float, check_int

__all__ = [
    "LassoResult",
    "solve_lasso",
    "lasso_objective",
    "duality_gap",
    "soft_threshold",
    "LASSO_METHODS",
]

LASSO_METHODS = ("auto", "feature_sign", "fista", "admm")


class LassoResult(NamedTuple):
    """What :func:`solve_lasso` returns: codes, per-row objective, duality gap, convergence."""

    codes: torch.Tensor
    objective: torch.Tensor
    gap: torch.Tensor
    converged: torch.Tensor
    n_iter: int


for _name, _doc in {
    "codes": "The solutions :math:`h_i`, shape ``(n, n_components)``.",
    "objective": ":math:`P_i(h_i) = \\tfrac12\\lVert x_i - b - W h_i\\rVert^2 + "
    "\\alpha\\lVert h_i\\rVert_1`, shape ``(n,)``.",
    "gap": "Duality gap per row, shape ``(n,)``: an upper bound on "
    ":math:`P_i(h_i) - \\min P_i`.",
    "converged": "``gap <= tol * ||x_i - b||^2`` per row (bool, shape ``(n,)``).",
    "n_iter": "Iterations (active-set steps plus FISTA/ADMM iterations) of the slowest chunk.",
}.items():
    getattr(LassoResult, _name).__doc__ = _doc


@contextlib.contextmanager
def _one_thread(device: torch.device):
    """Run small batched LAPACK calls on one CPU thread.

    Batched factorizations of many tiny matrices gain nothing from intra-op threads and, on a
    busy machine, lose milliseconds per call to thread synchronization (measured: 33 ms with 2
    threads vs 16 us with 1 for 60 3x3 Cholesky factorizations on a shared 2-core VM).
    """
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def soft_threshold(u: torch.Tensor, t) -> torch.Tensor:
    """:math:`\\operatorname{sign}(u)\\max(|u| - t, 0)`, the proximal map of :math:`t|\\cdot|_1`."""
    return torch.sign(u) * torch.clamp(u.abs() - t, min=0.0)


def _check_problem(x, weight, alpha, bias):
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(
            "x must be a tensor of shape (n, n_features). Got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__} instead."
        )
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(
            "weight must be a tensor of shape (n_features, n_components). Got "
            f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}"
            " instead."
        )
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (n_features={x.shape[1]}, n_components). Got "
            f"{tuple(weight.shape)} instead."
        )
    if weight.dtype != x.dtype:
        raise TypeError(f"weight must have x's dtype {x.dtype}. Got {weight.dtype} instead.")
    if not torch.isfinite(x).all():
        raise ValueError("x must be finite. Got NaN or infinite values instead.")
    if not torch.isfinite(weight).all():
        raise ValueError("weight must be finite. Got NaN or infinite values instead.")
    alpha = check_float(alpha, "alpha", 0.0, None, "cc")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (x.shape[1],):
            raise ValueError(
                f"bias must be a tensor of shape ({x.shape[1]},). Got "
                f"{tuple(bias.shape) if isinstance(bias, torch.Tensor) else bias!r} instead."
            )
        x = x - bias
    return x, alpha


def _gram_stats(h, Gh, q, xx, alpha):
    """Objective and duality gap in Gram form (no ``n_features``-sized work)."""
    hGh = (h * Gh).sum(-1)
    qh = (q * h).sum(-1)
    l1 = h.abs().sum(-1)
    r2 = (xx + hGh - 2.0 * qh).clamp(min=0.0)
    obj = 0.5 * r2 + alpha * l1
    dual_norm = (q - Gh).abs().amax(-1)
    if alpha > 0:
        s = torch.clamp(alpha / dual_norm.clamp(min=torch.finfo(h.dtype).tiny), max=1.0)
    else:
        s = torch.ones_like(dual_norm)
    gap = 0.5 * (1.0 + s * s) * r2 + alpha * l1 - s * (xx - qh)
    return obj, gap


def lasso_objective(x, weight, codes, alpha, bias=None) -> torch.Tensor:
    """Per-row objective :math:`\\tfrac12\\lVert x_i - b - W h_i\\rVert^2 + \\alpha\\lVert h_i
    \\rVert_1`, shape ``(n,)``."""
    x, alpha = _check_problem(x, weight, alpha, bias)
    r = x - codes @ weight.T
    return 0.5 * (r * r).sum(-1) + alpha * codes.abs().sum(-1)


def duality_gap(x, weight, codes, alpha, bias=None) -> torch.Tensor:
    """Per-row duality gap of ``codes`` (see the module docstring), shape ``(n,)``."""
    x, alpha = _check_problem(x, weight, alpha, bias)
    G = weight.T @ weight
    q = x @ weight
    xx = (x * x).sum(-1)
    return _gram_stats(codes, codes @ G, q, xx, alpha)[1]


# ---------------------------------------------------------------------------------------------
# first-order solvers on a chunk (Gram form)
# ---------------------------------------------------------------------------------------------
def _fista(h, G, q, xx, alpha, L, thresh, max_iter, check_every=10):
    """FISTA with gradient restart; rows are dropped from the work set once converged."""
    n = h.shape[0]
    h = h.clone()
    done = torch.zeros(n, dtype=torch.bool, device=h.device)
    gap = torch.full((n,), float("inf"), dtype=h.dtype, device=h.device)
    idx = torch.arange(n, device=h.device)
    hk, yk = h, h.clone()
    qk, thk = q, thresh
    t = torch.ones(n, 1, dtype=h.dtype, device=h.device)
    it = 0
    step = 1.0 / L
    while it < max_iter and idx.numel() > 0:
        for _ in range(min(check_every, max_iter - it)):
            grad = yk @ G - qk
            h_new = soft_threshold(yk - step * grad, alpha * step)
            # gradient-based restart (O'Donoghue & Candes): momentum points uphill -> reset
            restart = ((yk - h_new) * (h_new - hk)).sum(-1, keepdim=True) > 0
            t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * t * t))
            mom = torch.where(restart, torch.zeros_like(t), (t - 1.0) / t_new)
            yk = h_new + mom * (h_new - hk)
            t = torch.where(restart, torch.ones_like(t), t_new)
            hk = h_new
            it += 1
        _, g = _gram_stats(hk, hk @ G, qk, xx[idx], alpha)
        gap[idx] = g
        h[idx] = hk
        ok = g <= thk
        done[idx[ok]] = True
        if bool(ok.any()):
            keep = ~ok
            idx, hk, yk, qk, thk, t = idx[keep], hk[keep], yk[keep], qk[keep], thk[keep], t[keep]
    return h, gap, it


def _admm(h, G, q, xx, alpha, rho, thresh, max_iter, check_every=10):
    """ADMM with the cached inverse of ``G + rho I``; returns the sparse iterate ``z``."""
    K = G.shape[0]
    eye = torch.eye(K, dtype=G.dtype, device=G.device)
    chol = torch.linalg.cholesky(G + rho * eye)
    Minv = torch.cholesky_inverse(chol)
    n = h.shape[0]
    z = h.clone()
    u = torch.zeros_like(h)
    gap = torch.full((n,), float("inf"), dtype=h.dtype, device=h.device)
    out = h.clone()
    idx = torch.arange(n, device=h.device)
    qk, thk = q, thresh
    it = 0
    while it < max_iter and idx.numel() > 0:
        for _ in range(min(check_every, max_iter - it)):
            hh = (qk + rho * (z - u)) @ Minv
            z = soft_threshold(hh + u, alpha / rho)
            u = u + hh - z
            it += 1
        _, g = _gram_stats(z, z @ G, qk, xx[idx], alpha)
        gap[idx] = g
        out[idx] = z
        ok = g <= thk
        if bool(ok.any()):
            keep = ~ok
            idx, z, u, qk, thk = idx[keep], z[keep], u[keep], qk[keep], thk[keep]
    return out, gap, it


# ---------------------------------------------------------------------------------------------
# feature-sign search (an active-set method), batched over rows
# ---------------------------------------------------------------------------------------------
def _sparse_rows_times(order, val, valid, G):
    """``H @ G`` for rows ``H`` stored as slots: ``H[i, order[i, s]] = val[i, s]`` where
    ``valid[i, s]``.

    Cost :math:`O(\\mathrm{nnz}(H)\\, K)` instead of :math:`O(r K^2)` for the dense product.
    """
    rows, slots = valid.nonzero(as_tuple=True)
    h = torch.sparse_coo_tensor(
        torch.stack([rows, order[rows, slots]]), val[rows, slots], (order.shape[0], G.shape[0]),
        check_invariants=False,
    )
    return torch.sparse.mm(h, G)


def _dense_rows(order, val, K):
    """The dense ``(r, K)`` rows of the slot representation (see :func:`_sparse_rows_times`)."""
    return torch.zeros(order.shape[0], K, dtype=val.dtype, device=val.device).scatter_add_(
        1, order, val
    )


def _compact(valid, *tensors):
    """Move every row's valid slots to the front (stable) and trim to the largest count."""
    perm = torch.argsort((~valid).to(torch.int8), dim=-1, stable=True)
    m = max(int(valid.sum(-1).max()) if valid.shape[0] else 0, 1)
    perm = perm[:, :m]
    return [torch.gather(valid, 1, perm)] + [torch.gather(t, 1, perm) for t in tensors]


def _block_gram(Gflat, K, order, valid):
    """Active blocks ``G[A_i, A_i]`` of shape ``(r, m, m)``, the identity on padding slots."""
    r, m = order.shape
    Gs = torch.take(Gflat, (order * K).unsqueeze(-1) + order.unsqueeze(-2))
    vv = valid.unsqueeze(-1) & valid.unsqueeze(-2)
    eye = torch.eye(m, dtype=Gflat.dtype, device=Gflat.device).expand(r, m, m)
    return torch.where(vv, Gs, eye)


def _buckets(counts, max_rows, min_rows):
    """Group rows by active-set size so that the padded blocks stay small.

    Returns ``perm`` (rows sorted by count) and ``[(start, stop, m)]`` slices of it whose
    padded size ``m`` is at most a third (and at least 3) above the slice's smallest count,
    unless the slice would hold fewer than ``min_rows`` rows; slices hold at most about
    ``max_rows`` rows.
    """
    perm = torch.argsort(counts)
    values, sizes = torch.unique_consecutive(counts.index_select(0, perm), return_counts=True)
    out = []
    start = stop = 0
    c0 = last = None
    for c, k in zip(values.tolist(), sizes.tolist()):
        if c0 is not None and stop - start >= min_rows and (
            c > c0 + max(3, c0 // 3) or stop - start + k > max_rows
        ):
            out.append((start, stop, max(last, 1)))
            start, c0 = stop, None
        if c0 is None:
            c0 = c
        stop += k
        last = c
    out.append((start, stop, max(last, 1)))
    return perm, out


def _line_search(h_a, delta, Gs, g_a, valid, alpha):
    """Exact minimization of the Lasso objective on the segment ``h_A + t delta``, t in [0, 1].

    Along the segment the objective is (up to a constant)
    :math:`f(t) = a t^2 + b t + \\alpha\\lVert h_A + t\\delta\\rVert_1`, convex and piecewise
    quadratic with kinks at the sign-change points :math:`t_j = -h_j/\\delta_j \\in (0, 1)`.
    Crossing :math:`t_j` raises the slope of the :math:`\\ell_1` part by
    :math:`2|\\delta_j|`, so after sorting the kinks the derivative on every piece is a
    cumulative sum, and the minimizer lies on the first piece whose right-end derivative is
    :math:`\\ge 0`: :math:`O(m \\log m)` per row. Returns the new active values (coordinates
    stopped exactly at their kink are set to zero) and whether the row moved (``t > 0``, a
    strict decrease of the objective).
    """
    dt = h_a.dtype
    zero = torch.zeros((), dtype=dt, device=h_a.device)
    inf = torch.full((), float("inf"), dtype=dt, device=h_a.device)
    a2 = (delta * torch.bmm(Gs, delta.unsqueeze(-1)).squeeze(-1)).sum(-1, keepdim=True)  # 2a
    b1 = (g_a * delta).sum(-1, keepdim=True)
    nz = h_a != 0
    moving = delta != 0
    kink = -h_a / torch.where(moving, delta, torch.ones_like(delta))
    cross = valid & nz & moving & (kink > 0) & (kink < 1)
    kink = torch.where(cross, kink, inf)
    ad = delta.abs()
    # slope of the l1 part just right of t = 0: sign(h_j) delta_j, or |delta_j| where h_j = 0
    s0 = torch.where(valid, torch.where(nz, torch.sign(h_a) * delta, ad), zero).sum(
        -1, keepdim=True
    )
    ks, perm = torch.sort(kink, dim=-1)
    w = torch.where(torch.isfinite(ks), 2.0 * torch.gather(ad, 1, perm), zero)
    slope = s0 + torch.cat([torch.zeros_like(s0), torch.cumsum(w, -1)], -1)  # (r, m + 1)
    one = torch.ones_like(s0)
    ks = torch.minimum(ks, one)
    lo = torch.cat([torch.zeros_like(s0), ks], -1)
    hi = torch.cat([ks, one], -1)
    c = b1 + alpha * slope  # f'(t) = a2 t + c on each piece
    up = (a2 * hi + c) >= 0
    first = torch.argmax(up.to(torch.int8), dim=-1, keepdim=True)
    first = torch.where(up.any(-1, keepdim=True), first, torch.full_like(first, hi.shape[1] - 1))
    t = torch.gather(-c, 1, first) / a2.clamp(min=torch.finfo(dt).tiny)
    t = torch.minimum(torch.maximum(t, torch.gather(lo, 1, first)), torch.gather(hi, 1, first))
    moved = t.squeeze(-1) > 0
    new_a = torch.where(cross & (kink == t) | ~valid, zero, h_a + t * delta)
    return torch.where(moved.unsqueeze(-1), new_a, h_a), moved


def _feature_sign(G, q, xx, alpha, thresh, max_iter, add_per_step=3, max_rows=1024,
                  min_rows=64):
    """Feature-sign search (Lee et al. 2007) batched over rows, ``add_per_step`` atoms at once.

    Every row keeps its active set ``A`` as slots (``order``: atom indices, ``val``: values,
    ``valid``), so no step costs :math:`O(K^2)` per row. Each iteration:

    1. rows whose active set is optimal for its signs get the full gradient
       :math:`g = G h - q` (a sparse-times-dense product, :math:`O(|A| K)`) and its duality
       gap; a row with no violator of :math:`|g_j| \\le \\alpha`, or whose gap already meets
       the tolerance, is finished, otherwise its worst violators (at most ``add_per_step``)
       join ``A`` with sign :math:`-\\operatorname{sign}(g_j)`;
    2. every row solves the sign-constrained quadratic
       :math:`h_A = G_{AA}^{-1}(q_A - \\alpha\\theta_A)` (batched Cholesky, rows bucketed by
       :math:`|A|` to keep the padding small); a sign-consistent solution is taken whole (the
       active set is then optimal), otherwise the exact line search of :func:`_line_search`
       keeps the objective decreasing and coordinates reaching zero leave ``A``.

    A row that cannot descend adds one atom at a time (classic feature-sign); if even that
    fails, or its block is singular, it is returned with an infinite gap for FISTA to finish.
    """
    n, K = q.shape
    dev, dt = q.device, q.dtype
    Gflat = G.reshape(-1)
    zero = torch.zeros((), dtype=dt, device=dev)
    big = torch.finfo(dt).max
    tiny = torch.finfo(dt).tiny
    h_out = torch.zeros_like(q)
    gap_out = torch.full((n,), float("inf"), dtype=dt, device=dev)
    idx = torch.arange(n, device=dev)
    order = torch.zeros(n, 1, dtype=torch.long, device=dev)
    val = torch.zeros(n, 1, dtype=dt, device=dev)
    valid = torch.zeros(n, 1, dtype=torch.bool, device=dev)
    optimal = torch.ones(n, dtype=torch.bool, device=dev)
    k_row = torch.full((n,), add_per_step, dtype=torch.long, device=dev)
    kk = min(add_per_step, K)
    rank = torch.arange(kk, device=dev)
    it = 0
    while idx.numel() > 0 and it < max_iter:
        it += 1
        r = idx.numel()
        # 1. optimal rows: full gradient, finish or pick violators
        add_sel = torch.zeros(r, kk, dtype=torch.bool, device=dev)
        add_j = torch.zeros(r, kk, dtype=torch.long, device=dev)
        add_s = torch.zeros(r, kk, dtype=dt, device=dev)
        fin = torch.zeros(r, dtype=torch.bool, device=dev)
        o_rows = optimal.nonzero().squeeze(-1)
        if o_rows.numel():
            oo, vo, va = (t.index_select(0, o_rows) for t in (order, val, valid))
            qo = q.index_select(0, idx.index_select(0, o_rows))
            Gh = _sparse_rows_times(oo, vo, va, G)
            g = Gh - qo
            absg = g.abs()
            dual_norm = absg.amax(-1)
            absg.scatter_add_(1, oo, va.to(dt) * (-big))  # active coordinates never "violate"
            top_v, top_j = torch.topk(absg, kk, dim=-1)
            add_sel[o_rows] = (top_v > alpha) & (rank < k_row.index_select(0, o_rows)[:, None])
            add_j[o_rows] = top_j
            add_s[o_rows] = -torch.sign(torch.gather(g, 1, top_j))
            # duality gap in slot form (the certificate; see the module docstring)
            o_idx = idx.index_select(0, o_rows)
            hGh = (vo * torch.gather(Gh, 1, oo)).sum(-1)
            qh = (vo * torch.gather(qo, 1, oo)).sum(-1)
            xo = xx.index_select(0, o_idx)
            r2 = (xo + hGh - 2.0 * qh).clamp(min=0.0)
            if alpha > 0:
                s = torch.clamp(alpha / dual_norm.clamp(min=tiny), max=1.0)
            else:
                s = torch.ones_like(dual_norm)
            gap = 0.5 * (1.0 + s * s) * r2 + alpha * vo.abs().sum(-1) - s * (xo - qh)
            # finished: no violator left, or already certified to the tolerance (alpha > 0: for
            # alpha = 0 the scaled residual is not dual feasible, so only the KKT test counts)
            done = top_v[:, 0] <= alpha
            if alpha > 0:
                done = done | (gap <= thresh.index_select(0, o_idx))
            if bool(done.any()):
                d_rows = o_rows[done]
                gap_out[o_idx[done]] = gap[done]
                h_out[o_idx[done]] = _dense_rows(oo[done], vo[done], K)
                fin[d_rows] = True
        if bool(fin.any()):
            keep = ~fin
            idx, order, val, valid, optimal, k_row, add_sel, add_j, add_s = (
                t[keep] for t in (idx, order, val, valid, optimal, k_row, add_sel, add_j, add_s)
            )
            if idx.numel() == 0:
                break
            r = idx.numel()
        # 2. grow the active sets: new slots start at zero with sign -sign(g_j)
        valid, order, val, theta = _compact(
            torch.cat([valid, add_sel], 1),
            torch.cat([order, add_j], 1),
            torch.cat([val, torch.zeros_like(add_s)], 1),
            torch.cat([torch.sign(val), add_s], 1),
        )
        # 3. sign-constrained quadratic on every active set, bucketed by size
        perm, buckets = _buckets(valid.sum(-1), max_rows, min_rows)
        new_val = val.clone()
        moved = torch.zeros(r, dtype=torch.bool, device=dev)
        consistent = torch.zeros(r, dtype=torch.bool, device=dev)
        ok_all = torch.ones(r, dtype=torch.bool, device=dev)
        for s0, s1, m in buckets:
            rows = perm[s0:s1]
            o_b, va_b, h_b, th_b = (t[:, :m].index_select(0, rows)
                                    for t in (order, valid, val, theta))
            Gs = _block_gram(Gflat, K, o_b, va_b)
            q_b = torch.where(va_b, torch.gather(q.index_select(0, idx[rows]), 1, o_b), zero)
            with _one_thread(dev):
                chol, info = torch.linalg.cholesky_ex(Gs)
                sol = torch.cholesky_solve((q_b - alpha * th_b).unsqueeze(-1), chol).squeeze(-1)
            sol = torch.where(va_b, sol, zero)
            ok = (info == 0) & torch.isfinite(sol).all(-1)
            # a sign-consistent solution is the exact minimizer along the segment
            cons = ok & (~va_b | (torch.sign(sol) == th_b)).all(-1)
            new_b = torch.where(cons.unsqueeze(-1), sol, h_b)
            mv = cons.clone()
            ls = ok & ~cons
            if bool(ls.any()):
                h_l, Gs_l = h_b[ls], Gs[ls]
                g_l = torch.bmm(Gs_l, h_l.unsqueeze(-1)).squeeze(-1) - q_b[ls]
                new_b[ls], mv[ls] = _line_search(h_l, sol[ls] - h_l, Gs_l, g_l, va_b[ls], alpha)
            new_val[rows, :m] = new_b
            moved[rows], consistent[rows], ok_all[rows] = mv, cons, ok
        val = new_val
        valid = valid & (val != 0)
        # a row that did not move keeps its (optimal) active set and adds one atom next time;
        # if it already added only one, it is stuck (rounding): FISTA finishes it
        stuck = ~moved & (k_row == 1)
        optimal = consistent | ~moved
        k_row = torch.where(moved, torch.full_like(k_row, add_per_step), torch.ones_like(k_row))
        bad = stuck | ~ok_all
        if bool(bad.any()):
            h_out[idx[bad]] = _dense_rows(order[bad], val[bad], K)
            keep = ~bad
            idx, order, val, valid, optimal, k_row = (
                t[keep] for t in (idx, order, val, valid, optimal, k_row)
            )
    if idx.numel() > 0:
        h_out[idx] = _dense_rows(order, val, K)
    return h_out, gap_out, it


# ---------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------
def solve_lasso(
    x: torch.Tensor,
    weight: torch.Tensor,
    alpha: float,
    *,
    bias: torch.Tensor | None = None,
    method: str = "auto",
    tol: float = 1e-8,
    max_iter: int = 1000,
    init: torch.Tensor | None = None,
    chunk_size: int = 4096,
    rho: float | None = None,
) -> LassoResult:
    """Solve :math:`\\min_h \\tfrac12\\lVert x_i - b - W h\\rVert^2 + \\alpha\\lVert h\\rVert_1`
    for every row of ``x`` at once.

    Parameters
    ----------
    x : Tensor, shape ``(n, n_features)``
    weight : Tensor, shape ``(n_features, n_components)``
        The dictionary :math:`W`, one atom per column (scikit-learn's ``components_.T``).
    alpha : float
        :math:`\\alpha \\ge 0`, the weight of the :math:`\\ell_1` term (scikit-learn's
        ``transform_alpha``).
    bias : Tensor, shape ``(n_features,)``, optional
        :math:`b`, subtracted from ``x``.
    method : {"auto", "feature_sign", "fista", "admm"}
        See the module docstring. ``"auto"`` is ``"feature_sign"`` (with FISTA finishing any row
        it could not).
    tol : float
        A row is converged when its duality gap is ``<= tol * ||x_i - b||^2`` (scikit-learn's
        criterion; ``SparseCoder`` uses ``1e-8``).
    max_iter : int
        Maximum iterations per chunk (of each phase for ``"auto"``).
    init : Tensor, shape ``(n, n_components)``, optional
        Warm start for ``"fista"``/``"admm"`` (``"feature_sign"`` starts from zero: it grows the
        active set).
    chunk_size : int
        Rows solved together (bounds the memory of the batched active-set solves).
    rho : float, optional
        ADMM penalty; default :math:`\\sqrt{\\lambda_\\min^+ \\lambda_\\max}` of :math:`G`
        clipped below at ``1e-3 * lambda_max``.

    Returns
    -------
    LassoResult
        ``codes``, per-row ``objective``, duality ``gap``, ``converged`` and ``n_iter``.

    Notes
    -----
    Cost: forming :math:`G` is :math:`O(DK^2)` and :math:`q` is :math:`O(nDK)`; each iteration
    is then :math:`O(nK^2)` for FISTA/ADMM and :math:`O(n(|A| K + |A|^3))` for feature-sign
    (:math:`|A|` the active-set size), independent of ``n_features``.
    """
    x, alpha = _check_problem(x, weight, alpha, bias)
    method = check_choice(method, "method", LASSO_METHODS)
    tol = check_float(tol, "tol", 0.0, None, "cc")
    max_iter = check_int(max_iter, "max_iter", low=1)
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    n, K = x.shape[0], weight.shape[1]
    if init is not None and (not isinstance(init, torch.Tensor) or init.shape != (n, K)):
        raise ValueError(
            f"init must be a tensor of shape ({n}, {K}). Got "
            f"{tuple(init.shape) if isinstance(init, torch.Tensor) else type(init).__name__} "
            "instead."
        )
    G = weight.T @ weight
    q_all = x @ weight
    xx_all = (x * x).sum(-1)
    ev = L = None
    if method in ("fista", "admm"):
        with _one_thread(G.device):
            ev = torch.linalg.eigvalsh(G)
        L = max(float(ev[-1]), torch.finfo(x.dtype).tiny)
    if method == "admm" and rho is None:
        pos = ev[ev > 1e-10 * L]
        rho = max(math.sqrt(float(pos[0]) * L) if pos.numel() else L, 1e-3 * L)
    codes = torch.zeros(n, K, dtype=x.dtype, device=x.device)
    gaps = torch.zeros(n, dtype=x.dtype, device=x.device)
    n_iter = 0
    for start in range(0, n, chunk_size):
        sl = slice(start, min(start + chunk_size, n))
        q, xx = q_all[sl], xx_all[sl]
        thresh = tol * xx
        h0 = torch.zeros_like(q) if init is None else init[sl].to(q.dtype)
        if method in ("auto", "feature_sign"):
            h, gap, it = _feature_sign(G, q, xx, alpha, thresh, max_iter=max_iter)
            bad = ~(gap <= thresh)  # rows the active-set phase handed over (gap = inf)
            if bool(bad.any()):
                if L is None:
                    with _one_thread(G.device):
                        L = float(torch.linalg.eigvalsh(G)[-1])
                    L = max(L, torch.finfo(x.dtype).tiny)
                hb, gb, it2 = _fista(h[bad], G, q[bad], xx[bad], alpha, L, thresh[bad], max_iter)
                h[bad], gap[bad] = hb, gb
                it += it2
        elif method == "fista":
            h, gap, it = _fista(h0, G, q, xx, alpha, L, thresh, max_iter)
        else:
            h, gap, it = _admm(h0, G, q, xx, alpha, rho, thresh, max_iter)
        codes[sl], gaps[sl] = h, gap
        n_iter = max(n_iter, it)
    # independent final certificate; sparse codes make ``codes @ G`` cheap as a sparse product
    if codes.layout == torch.strided and codes.device.type == "cpu" and n > 0 and (
        int((codes != 0).sum()) < 0.25 * codes.numel()
    ):
        Gh_all = torch.sparse.mm(codes.to_sparse(), G)
    else:
        Gh_all = codes @ G
    obj, gaps = _gram_stats(codes, Gh_all, q_all, xx_all, alpha)
    return LassoResult(codes, obj, gaps, gaps <= tol * xx_all, n_iter)
