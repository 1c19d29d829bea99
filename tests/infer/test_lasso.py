"""Tests of the batched Lasso solvers (pyrogen.infer.lasso) against scikit-learn and the KKT
conditions. Everything is deterministic (fixed seeds, float64)."""

import numpy as np
import pytest
import torch

from pyrogen.infer.lasso import (
    LASSO_METHODS,
    duality_gap,
    lasso_objective,
    soft_threshold,
    solve_lasso,
)

SparseCoder = pytest.importorskip("sklearn.decomposition").SparseCoder


@pytest.fixture(autouse=True)
def _one_thread():
    """Small problems: intra-op threads only add synchronization cost (shared CI machines)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _problem(n=40, d=20, k=30, seed=0, coherent=True):
    """Overcomplete (k > d) coherent dictionary with unit atoms, data from sparse codes."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, k, generator=g, dtype=torch.float64)
    if coherent:  # a shared direction makes G ill-conditioned, as learned dictionaries are
        w = w + 1.5 * torch.randn(d, 1, generator=g, dtype=torch.float64)
    w = w / w.norm(dim=0)
    h = torch.randn(n, k, generator=g, dtype=torch.float64)
    h = h * (torch.rand(n, k, generator=g, dtype=torch.float64) < 0.15)
    x = h @ w.T + 0.1 * torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, w


def _sklearn_codes(x, w, alpha):
    coder = SparseCoder(w.T.numpy(), transform_algorithm="lasso_cd", transform_alpha=alpha)
    return torch.as_tensor(coder.transform(x.numpy()))


@pytest.mark.parametrize("method", ["auto", "feature_sign", "fista", "admm"])
@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0])
def test_matches_sklearn_lasso_cd(method, alpha):
    x, w = _problem()
    res = solve_lasso(x, w, alpha, method=method, max_iter=20000)
    assert res.converged.all()
    sk = _sklearn_codes(x, w, alpha)
    sk_obj = lasso_objective(x, w, sk, alpha)
    # same objective, same tolerance (duality gap <= 1e-8 ||x||^2, sklearn's SparseCoder rule):
    # within 1e-6 relative (the issue asks for 1e-4)
    rel = (res.objective - sk_obj) / sk_obj
    assert rel.abs().max() < 1e-6, rel.abs().max()
    torch.testing.assert_close(res.objective, lasso_objective(x, w, res.codes, alpha))


def test_kkt_conditions_hold():
    x, w = _problem(seed=1)
    alpha = 0.2
    h = solve_lasso(x, w, alpha).codes
    grad = (x - h @ w.T) @ w  # minus the gradient of the smooth part
    nz = h != 0
    # active coordinates: W^T r = alpha sign(h); inactive: |W^T r| <= alpha
    torch.testing.assert_close(grad[nz], alpha * torch.sign(h[nz]), atol=1e-8, rtol=0)
    assert (grad[~nz].abs() <= alpha + 1e-8).all()


def test_gap_is_a_certificate():
    x, w = _problem(seed=2)
    alpha = 0.3
    exact = solve_lasso(x, w, alpha)
    rough = solve_lasso(x, w, alpha, method="fista", max_iter=3, tol=0.0)
    gap = duality_gap(x, w, rough.codes, alpha)
    torch.testing.assert_close(gap, rough.gap)
    subopt = lasso_objective(x, w, rough.codes, alpha) - exact.objective
    # the gap bounds the sub-optimality from above
    assert (subopt >= -1e-10).all()
    assert (gap >= subopt - 1e-10).all()
    assert (gap > 1e-6).any()
    assert (exact.gap <= 1e-8 * (x * x).sum(-1)).all()


def test_closed_forms():
    x, w = _problem(n=10, d=20, k=8, seed=3, coherent=False)
    # alpha >= max |W^T x| -> h = 0
    big = float((x @ w).abs().max()) * 1.01
    assert (solve_lasso(x, w, big).codes == 0).all()
    # alpha = 0 -> least squares (k < d, full column rank)
    ls = torch.linalg.lstsq(w, x.T).solution.T
    torch.testing.assert_close(solve_lasso(x, w, 0.0).codes, ls, atol=1e-7, rtol=1e-7)
    # orthonormal dictionary -> soft thresholding of W^T x
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(20, 8, generator=g, dtype=torch.float64))
    torch.testing.assert_close(
        solve_lasso(x, q, 0.4).codes, soft_threshold(x @ q, 0.4), atol=1e-10, rtol=0
    )


def test_line_search_is_exact_on_the_segment():
    # the sorted-kink line search against a fine grid of the convex piecewise quadratic
    # f(t) = 1/2 t^2 d^T G d + t g^T d + alpha |h + t d|_1 (plus the kinks themselves)
    from pyrogen.infer.lasso import _line_search

    g = torch.Generator().manual_seed(7)
    r, m, alpha = 200, 6, 0.4
    a = torch.randn(r, m, m, generator=g, dtype=torch.float64)
    gs = a @ a.transpose(1, 2) + 0.05 * torch.eye(m, dtype=torch.float64)
    valid = torch.rand(r, m, generator=g) < 0.85
    eye = torch.eye(m, dtype=torch.float64).expand(r, m, m)
    gs = torch.where(valid.unsqueeze(-1) & valid.unsqueeze(-2), gs, eye)
    h = torch.randn(r, m, generator=g, dtype=torch.float64)
    h = torch.where(valid & (torch.rand(r, m, generator=g) < 0.7), h, 0.0)
    d = torch.where(valid, torch.randn(r, m, generator=g, dtype=torch.float64) - h, 0.0)
    grad = torch.where(valid, torch.randn(r, m, generator=g, dtype=torch.float64), 0.0)
    new, moved = _line_search(h, d, gs, grad, valid, alpha)

    def f(v):
        dv = v - h
        quad = 0.5 * (dv * (gs @ dv.unsqueeze(-1)).squeeze(-1)).sum(-1)
        return quad + (grad * dv).sum(-1) + alpha * v.abs().sum(-1)

    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    kinks = torch.where(d != 0, -h / torch.where(d != 0, d, 1.0), 0.0).clamp(0, 1)
    ts = torch.cat([t.expand(r, -1), kinks], 1)  # (r, T)
    pts = h.unsqueeze(1) + ts.unsqueeze(-1) * d.unsqueeze(1)
    best = torch.stack([f(pts[:, i]) for i in range(ts.shape[1])], 1).min(1).values
    assert (f(new) <= best + 1e-12).all()  # never worse than any grid point or kink
    assert (moved == (f(new) < f(h))).all()  # moved exactly when the objective decreased
    assert (new[~valid] == 0).all()


def test_many_rows_with_varied_active_sets():
    # rows with 1..25 nonzeros exercise the size buckets and the slot compaction; all certified
    x, w = _problem(n=600, d=60, k=80, seed=9)
    x = x * torch.linspace(0.02, 1.5, 600, dtype=torch.float64).unsqueeze(-1)
    r = solve_lasso(x, w, 0.05, chunk_size=250)
    nnz = (r.codes != 0).sum(1)
    assert int(nnz.max()) >= 20 and int(nnz.min()) <= 5
    assert r.converged.all()
    # independent certificate from the dense formula (scikit-learn's coordinate descent does
    # not reach its own 1e-8 gap on some of these rows within its default max_iter)
    gap = duality_gap(x, w, r.codes, 0.05)
    assert (gap <= 1e-8 * (x * x).sum(-1) + 1e-14).all()


def test_bias_chunks_and_init():
    x, w = _problem(seed=4)
    b = torch.linspace(-1, 1, x.shape[1], dtype=torch.float64)
    a = solve_lasso(x + b, w, 0.2, bias=b)
    c = solve_lasso(x, w, 0.2, chunk_size=7)
    torch.testing.assert_close(a.codes, c.codes, atol=1e-8, rtol=0)
    warm = solve_lasso(x, w, 0.2, method="fista", init=a.codes, max_iter=10)
    assert warm.converged.all() and warm.n_iter <= 10


def test_float32():
    x, w = _problem(seed=5)
    r = solve_lasso(x.float(), w.float(), 0.3, tol=1e-5)
    r64 = solve_lasso(x, w, 0.3)
    assert r.codes.dtype == torch.float32
    assert ((r.objective.double() - r64.objective) / r64.objective).abs().max() < 1e-4


def test_bad_input():
    x, w = _problem(n=5)
    with pytest.raises(ValueError, match="alpha must be a float in the range"):
        solve_lasso(x, w, -0.1)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        solve_lasso(bad, w, 0.1)
    with pytest.raises(ValueError, match="weight must have shape"):
        solve_lasso(x, w[:-1], 0.1)
    with pytest.raises(TypeError, match="weight must have x's dtype"):
        solve_lasso(x, w.float(), 0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        solve_lasso(x, w, 0.1, method="lars")
    with pytest.raises(ValueError, match="init must be a tensor of shape"):
        solve_lasso(x, w, 0.1, init=torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="bias must be a tensor of shape"):
        solve_lasso(x, w, 0.1, bias=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="tol must be a float"):
        solve_lasso(x, w, 0.1, tol=-1.0)
    assert set(LASSO_METHODS) == {"auto", "feature_sign", "fista", "admm"}


@pytest.mark.slow
@pytest.mark.mnist
def test_mnist_dictionary_matches_sklearn(mnist_path):
    """256 unit atoms = MNIST training digits (coherent, ill-conditioned G), 300 test images."""
    z = np.load(mnist_path)
    g = torch.Generator().manual_seed(0)
    train = torch.as_tensor(z["train_x"][:5000], dtype=torch.float64)
    w = train[torch.randperm(5000, generator=g)[:256]].T
    w = w / w.norm(dim=0)
    x = torch.as_tensor(z["test_x"][:300], dtype=torch.float64)
    res = solve_lasso(x, w, 1.0)
    sk = lasso_objective(x, w, _sklearn_codes(x, w, 1.0), 1.0)
    assert res.converged.all()
    assert ((res.objective - sk) / sk).abs().max() < 1e-6
