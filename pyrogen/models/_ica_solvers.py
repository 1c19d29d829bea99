r"""The two optimizers behind :meth:`pyrogen.models.ICA.fit`.

* :func:`fastica_symmetric` — FastICA's symmetric fixed-point iteration with the
  :math:`\log\cosh` contrast on whitened data (Hyvärinen 1999; Hyvärinen, Karhunen & Oja 2001,
  §8.4).
* :func:`lbfgs_minimize` — full-batch L-BFGS (strong Wolfe) on a scalar loss with a convergence
  test confirmed by a fresh quasi-Newton memory.

Plus the orthogonal helpers they start from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .base import FitHistory

__all__ = ["fastica_symmetric", "lbfgs_minimize", "symmetric_decorrelation", "seeded_orthogonal"]


def symmetric_decorrelation(w: torch.Tensor) -> torch.Tensor:
    r""":math:`(W W^\top)^{-1/2} W`, the orthogonal matrix closest to ``W``."""
    evals, evecs = torch.linalg.eigh(w @ w.T)
    inv_sqrt = evals.clamp_min(torch.finfo(w.dtype).tiny).rsqrt()
    return (evecs * inv_sqrt) @ evecs.T @ w


def seeded_orthogonal(k: int, seed: int | None, dtype) -> torch.Tensor:
    """A random ``(k, k)`` orthogonal matrix (Haar, via QR with sign fix) from ``seed``
    (``None``: 0), drawn in float64 and cast to ``dtype``; independent of the global RNG."""
    g = torch.Generator()
    g.manual_seed(0 if seed is None else seed)
    q, r = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(dtype).contiguous()


def fastica_symmetric(
    z: torch.Tensor, u: torch.Tensor, *, num_steps: int, tol: float
) -> tuple[torch.Tensor, int, bool]:
    r"""FastICA's symmetric fixed point on whitened data ``z`` from the unmixing ``u``.

    .. math::

        U \leftarrow \mathbb E[g(Uz) z^\top] - \operatorname{diag}\mathbb E[g'(Uz)]\,U,
        \qquad U \leftarrow (UU^\top)^{-1/2} U,

    with :math:`g = \tanh` (the contrast :math:`\sum_i \mathbb E\log\cosh(u_i^\top z)`, an
    approximation of negentropy, *not* a likelihood) until :math:`\max_i 1 - |\langle
    u_i^{new}, u_i\rangle| \le` ``tol`` (at least ten machine epsilons). Cost :math:`O(nK^2)`
    per iteration.

    Parameters
    ----------
    z : Tensor, shape ``(n, K)``
        Whitened data.
    u : Tensor, shape ``(K, K)``
        Starting unmixing (decorrelated first).
    num_steps : int
        Maximum number of iterations.
    tol : float

    Returns
    -------
    (Tensor, int, bool)
        The orthogonal unmixing, the iterations run, and whether the tolerance was reached.
    """
    n = z.shape[0]
    with torch.no_grad():
        u = symmetric_decorrelation(u)
        it = 0
        while it < num_steps:
            it += 1
            gs = torch.tanh(z @ u.T)
            u_new = gs.T @ z / n - (1.0 - gs * gs).mean(0).unsqueeze(-1) * u
            u_new = symmetric_decorrelation(u_new)
            change = float((1.0 - (u_new * u).sum(-1).abs()).abs().max())
            u = u_new
            if change <= max(tol, 10 * torch.finfo(z.dtype).eps):
                return u, it, True
    return u, it, False


def lbfgs_minimize(
    params: list[torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
    *,
    num_steps: int,
    lr: float,
    tol: float,
    callback=None,
    what: str = "loss",
    hint: str = "",
) -> FitHistory:
    """Minimize ``loss_fn()`` over ``params`` by full-batch L-BFGS with a strong-Wolfe search.

    Each outer step runs at most 10 L-BFGS iterations. Converged when the loss changes by at
    most ``tol * max(1, |loss|)`` twice in a row, the second time after clearing the
    quasi-Newton memory (a stalled line search looks like convergence).

    Parameters
    ----------
    params : list of Tensor
        Leaf tensors with ``requires_grad``.
    loss_fn : callable
        Returns the scalar loss (recomputed at every evaluation).
    num_steps, lr, tol
        Outer steps, step scale, relative tolerance.
    callback : callable, optional
        ``callback(step, loss)`` after each outer step.
    what : str
        Name of the loss in the error message.
    hint : str
        Appended to the error message when the loss becomes non-finite.

    Returns
    -------
    FitHistory
        ``method="lbfgs"``; ``losses`` after each outer step, then the final loss.

    Raises
    ------
    FloatingPointError
        If the loss becomes non-finite.
    """
    opt = torch.optim.LBFGS(
        params,
        lr=lr,
        max_iter=10,
        tolerance_change=tol,
        tolerance_grad=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    hist = FitHistory(method="lbfgs", info={"num_steps": num_steps})

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    prev = None
    restarted = False
    hist.converged = False
    for step in range(num_steps):
        value = float(opt.step(closure).detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the {what} became {value} at L-BFGS step {step}" + (f"; {hint}" if hint else ".")
            )
        hist.losses.append(value)
        if callback is not None:
            callback(step, value)
        if prev is not None and abs(prev - value) <= tol * max(1.0, abs(value)):
            if restarted:
                hist.converged = True
                break
            opt.state.clear()
            restarted = True
        else:
            restarted = False
        prev = value
    with torch.no_grad():
        hist.losses.append(float(loss_fn()))
    return hist
