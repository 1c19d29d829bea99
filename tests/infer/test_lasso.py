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
