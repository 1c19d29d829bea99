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
    conditioning of :math:`G`. Rows it cannot finish (a singular active block) are finished by
    FISTA, so every result carries its certificate.
    Cost per iteration: one ``(r, K) x (K, K)`` product on the ``r`` unfinished rows plus a
    batched ``(m, m)`` Cholesky, ``m`` the largest active set among them.

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
def _gather_block(G, mask):
    """Padded active blocks: ``order`` (n, m) with the active indices first, ``valid`` (n, m)
    and ``Gs`` (n, m, m) = ``G[A, A]`` with the identity on the padding."""
    n, K = mask.shape
    counts = mask.sum(-1)
    m = max(int(counts.max()), 1) if n else 1
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: each row's columns in order
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(rows.numel(), device=mask.device) - starts[rows]
    order = torch.zeros(n, m, dtype=torch.long, device=mask.device)
    order[rows, pos] = cols
    valid = torch.arange(m, device=mask.device) < counts.unsqueeze(-1)
    Gs = G[order.unsqueeze(-1), order.unsqueeze(-2)]
    vv = valid.unsqueeze(-1) & valid.unsqueeze(-2)
    eye = torch.eye(m, dtype=G.dtype, device=G.device).expand(n, m, m)
    return order, valid, torch.where(vv, Gs, eye)


def _line_search(h_a, delta, Gs, g_a, valid, alpha):
    """Exact minimization of the Lasso objective on the segment ``h_A + t delta``, t in [0, 1].

    ``f(t) = a t^2 + b t + alpha |h_A + t delta|_1`` (+ const) is convex and piecewise quadratic;
    it is minimized on every piece between consecutive sign-change points and the best piece is
    kept. Returns the new active values and whether the objective decreased.
    """
    zero = torch.zeros((), dtype=h_a.dtype, device=h_a.device)
    one = torch.ones((), dtype=h_a.dtype, device=h_a.device)
    Gd = torch.bmm(Gs, delta.unsqueeze(-1)).squeeze(-1)
    a2 = 0.5 * (delta * Gd).sum(-1, keepdim=True)
    b1 = (g_a * delta).sum(-1, keepdim=True)
    bp = torch.where(delta != 0, -h_a / torch.where(delta != 0, delta, one), -one)
    bp = torch.where(valid & (bp > 0) & (bp < 1), bp, one)
    knots = torch.cat([torch.zeros_like(bp[:, :1]), bp, torch.ones_like(bp[:, :1])], dim=1)
    knots = torch.sort(knots, dim=-1).values  # (r, m + 2)
    lo, hi = knots[:, :-1], knots[:, 1:]
    mid = 0.5 * (lo + hi)
    sgn = torch.sign(h_a.unsqueeze(1) + mid.unsqueeze(-1) * delta.unsqueeze(1))
    slope = torch.where(valid.unsqueeze(1), sgn * delta.unsqueeze(1), zero).sum(-1)
    t_star = -(b1 + alpha * slope) / (2.0 * a2).clamp(min=torch.finfo(h_a.dtype).tiny)
    ts = torch.minimum(torch.maximum(t_star, lo), hi)  # (r, m + 1)
    pts = h_a.unsqueeze(1) + ts.unsqueeze(-1) * delta.unsqueeze(1)
    l1 = torch.where(valid.unsqueeze(1), pts.abs(), zero).sum(-1)
    f = a2 * ts * ts + b1 * ts + alpha * l1
    f0 = alpha * torch.where(valid, h_a.abs(), zero).sum(-1)
    best = torch.argmin(f, dim=-1, keepdim=True)
    t_best = torch.gather(ts, 1, best)
    f_best = torch.gather(f, 1, best).squeeze(-1)
    moved = f_best < f0 - 1e-15 * f0.abs()
    t_best = torch.where(moved.unsqueeze(-1), t_best, torch.zeros_like(t_best))
    new_a = h_a + t_best * delta
    # coordinates whose sign-change point was chosen land exactly on zero
    hit = (bp == t_best) & (bp < 1)
    return torch.where(hit | ~valid, zero, new_a), moved


def _feature_sign(G, q, xx, alpha, thresh, max_iter, add_per_step=4, kkt_rtol=None):
    """Feature-sign search (Lee et al. 2007) batched over rows, ``add_per_step`` atoms at once.

    Each iteration, for every unfinished row: if the active set ``A`` is optimal for its signs
    (``|g_j + alpha sign(h_j)|`` small on ``A``), the zero coordinates violating
    ``|g_j| <= alpha`` the most join ``A`` with sign ``-sign(g_j)``; then the sign-constrained
    quadratic ``h_A = G_AA^{-1}(q_A - alpha theta_A)`` is solved (batched Cholesky on padded
    blocks) and a discrete line search over the sign-change points of the segment keeps the
    objective decreasing; coordinates that reach zero leave ``A``.
    """
    n, K = q.shape
    if kkt_rtol is None:  # 1e-10 in float64; rounding-limited in lower precision
        kkt_rtol = max(1e-10, 100.0 * torch.finfo(q.dtype).eps)
    zero = torch.zeros((), dtype=q.dtype, device=q.device)
    h_out = torch.zeros_like(q)
    gap_out = torch.full((n,), float("inf"), dtype=q.dtype, device=q.device)
    idx = torch.arange(n, device=q.device)
    h = torch.zeros_like(q)
    theta = torch.zeros_like(q)
    it = 0
    scale = q.abs().amax(-1, keepdim=True).clamp(min=alpha, max=None) + alpha
    k_row = torch.full((n,), add_per_step, dtype=torch.long, device=q.device)
    while idx.numel() > 0 and it < max_iter:
        it += 1
        qk = q[idx]
        g = h @ G - qk  # gradient of the smooth part
        active = theta != 0
        # optimality on the active set
        kkt_a = torch.where(active, (g + alpha * theta).abs(), zero).amax(-1)
        viol = torch.where(active, zero, g.abs() - alpha)  # > 0 : zero coordinate violates
        add_rows = kkt_a <= kkt_rtol * scale[:, 0]
        has_viol = (viol > 0).any(-1)
        # finished rows: active set optimal and no violator -> certify with the gap
        fin = add_rows & ~has_viol
        if bool(fin.any()):
            obj, gap = _gram_stats(h[fin], g[fin] + qk[fin], qk[fin], xx[idx[fin]], alpha)
            h_out[idx[fin]] = h[fin]
            gap_out[idx[fin]] = gap
            keep = ~fin
            idx, h, theta, g, viol, add_rows, qk = (
                idx[keep], h[keep], theta[keep], g[keep], viol[keep], add_rows[keep], qk[keep]
            )
            scale, k_row = scale[keep], k_row[keep]
            if idx.numel() == 0:
                break
        # add the worst violators (rows whose active set is optimal)
        k = min(add_per_step, K)
        top_v, top_j = torch.topk(viol, k, dim=-1)
        rank = torch.arange(k, device=q.device)
        sel = (top_v > 0) & add_rows.unsqueeze(-1) & (rank < k_row.unsqueeze(-1))
        new_theta = -torch.sign(torch.gather(g, 1, top_j))
        cur = torch.gather(theta, 1, top_j)
        theta = theta.scatter(1, top_j, torch.where(sel, new_theta, cur))
        # sign-constrained quadratic on the active set
        mask = theta != 0
        order, valid, Gs = _gather_block(G, mask)
        rhs = torch.gather(qk - alpha * theta, 1, order)
        rhs = torch.where(valid, rhs, zero)
        with _one_thread(Gs.device):
            chol, info = torch.linalg.cholesky_ex(Gs)
            sol = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
        sol = torch.where(valid, sol, zero)
        ok = (info == 0) & torch.isfinite(sol).all(-1)
        h_a = torch.where(valid, torch.gather(h, 1, order), zero)
        theta_a = torch.gather(theta, 1, order)
        # sign-consistent solution: no sign change on the segment, so the full step is the
        # exact minimizer along it; only the other rows need the line search
        consistent = ok & (~valid | (torch.sign(sol) == theta_a)).all(-1)
        new_a = torch.where(valid, sol, zero)
        moved = consistent.clone()
        ls = ok & ~consistent
        if bool(ls.any()):
            new_ls, moved_ls = _line_search(
                h_a[ls], sol[ls] - h_a[ls], Gs[ls], torch.gather(g[ls], 1, order[ls]), valid[ls],
                alpha,
            )
            new_a[ls] = new_ls
            moved[ls] = moved_ls
        new_a = torch.where(ok.unsqueeze(-1), new_a, h_a)
        # a row that could not descend adds a single atom next time (classic feature-sign);
        # if even that fails it is handed to FISTA
        stuck = ~moved & (k_row == 1)
        k_row = torch.where(moved, torch.full_like(k_row, add_per_step), torch.ones_like(k_row))
        h = torch.zeros_like(h).scatter_add(1, order, new_a)  # padding adds zeros
        theta = torch.sign(h)
        # rows that cannot descend or whose Cholesky failed (singular block): leave to FISTA
        bad = stuck | ~ok
        if bool(bad.any()):
            h_out[idx[bad]] = h[bad]
            keep = ~bad
            idx, h, theta, scale, k_row = idx[keep], h[keep], theta[keep], scale[keep], k_row[keep]
    if idx.numel() > 0:
        h_out[idx] = h
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
    is then :math:`O(nK^2)`, independent of ``n_features``.
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
    obj, gaps = _gram_stats(codes, codes @ G, q_all, xx_all, alpha)
    return LassoResult(codes, obj, gaps, gaps <= tol * xx_all, n_iter)
