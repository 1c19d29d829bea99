r"""Hamiltonian Monte Carlo and MALA transition kernels for continuous states, batched chains.

Both kernels move a batch of chains with states :math:`x \in \mathbb R^D` (particles of shape
``(num_chains, *batch_shape, D)``) so that the intermediate density :math:`f_\beta` of an
annealing path is left invariant. With potential :math:`U_\beta(x) = -\log f_\beta(x)`, a fresh
momentum :math:`p \sim \mathcal N(0, I_D)` and step size :math:`\epsilon`, one transition makes
:math:`L` leapfrog steps

.. math::

    p \leftarrow p + \tfrac{\epsilon}{2}\nabla\log f_\beta(x), \quad
    x \leftarrow x + \epsilon\, p, \quad
    p \leftarrow p + \tfrac{\epsilon}{2}\nabla\log f_\beta(x)

(Neal 2011 [1]) and accepts the end point :math:`(x', p')` per chain with probability

.. math::

    \alpha = \min\Big(1, \exp\big(\log f_\beta(x') - \tfrac12\lVert p'\rVert^2
    - \log f_\beta(x) + \tfrac12\lVert p\rVert^2\big)\Big).

The leapfrog map is volume-preserving and reversible under :math:`p\to-p`, so the kernel
satisfies detailed balance with respect to :math:`f_\beta` (it is its own time reversal, which
reverse AIS and BDMC need). MALA (Roberts & Tweedie 1996 [2]) is exactly the case
:math:`L = 1`: the proposal :math:`x' = x + \tfrac{\epsilon^2}{2}\nabla\log f_\beta(x) +
\epsilon\,\xi` with the Metropolis-Hastings correction written in momentum form.

Gradients of :math:`\log f_\beta` come from autograd on ``path.log_density`` unless the path
offers ``log_density_and_grad(x, beta) -> (log_f, grad)`` (closed forms, e.g. linear-Gaussian
models). States stay in the path's dtype (float32 for neural decoders); the Hamiltonians and
the acceptance test are formed in float64.

**Step-size adaptation.** ``step_size`` has shape ``batch_shape`` (one per data row or model
in the batch, shared by its chains). After each transition the step size moves toward a
target mean acceptance probability :math:`\delta` (0.65 for HMC [3] [4], 0.574 for MALA
[5]) by the multiplicative rule

.. math::

    \log\epsilon_{k+1} = \log\epsilon_k + \kappa\,(\bar\alpha_k - \delta),

with :math:`\bar\alpha_k` the acceptance probability averaged over the chains of that batch
element at temperature :math:`k` and :math:`\kappa` = ``adapt_rate``. Each transition is still
an exact :math:`f_{\beta_k}`-invariant kernel (its step size is fixed before it runs), so every
chain stays correctly targeted. **What adaptation costs AIS.** The identity
:math:`\mathbb E[w] = Z_1/Z_0` holds for any sequence of invariant kernels chosen *independently
of the particles*; a kernel whose parameters are computed from the particles' own past is not
covered (under the importance-weighted path measure the past is correlated with the current
state; a counterexample with three temperatures is easy). Adapting from the *mean* acceptance of
:math:`M` chains makes each chain's influence on its own kernels :math:`O(1/M)`, so the bias
vanishes as :math:`M` grows (Beskos, Jasra, Kantas & Thiery 2016 [6] for adaptive SMC); this
is what Wu et al. [4] do. For an *exactly* unbiased estimate, choose the step sizes in a pilot
run and rerun with them fixed (``adapt=False``, ``step_size`` a tensor of shape
``batch_shape``), so that no kernel depends on the particles it moves.

References
----------
1. R. M. Neal. MCMC using Hamiltonian dynamics. *Handbook of Markov Chain Monte Carlo*,
   ch. 5, 2011.
2. G. O. Roberts and R. L. Tweedie. Exponential convergence of Langevin distributions and
   their discrete approximations. *Bernoulli* 2(4):341-363, 1996.
3. A. Beskos, N. Pillai, G. Roberts, J. M. Sanz-Serna and A. Stuart. Optimal tuning of the
   hybrid Monte Carlo algorithm. *Bernoulli* 19(5A):1501-1534, 2013.
4. Y. Wu, Y. Burda, R. Salakhutdinov and R. Grosse. On the quantitative analysis of
   decoder-based generative models. *ICLR* 2017.
5. G. O. Roberts and J. S. Rosenthal. Optimal scaling of discrete approximations to
   Langevin diffusions. *J. R. Statist. Soc. B* 60(1):255-268, 1998.
6. A. Beskos, A. Jasra, N. Kantas and A. Thiery. On the convergence of adaptive sequential
   Monte Carlo methods. *Annals of Applied Probability* 26(2):1111-1146, 2016.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..._random import normal_, uniform_
from ..._validation import check_float, check_int

__all__ = ["HMC", "MALA", "HMCKernelState", "HMCKernelInfo"]


def _field_docs(cls, **docs):
    for name, doc in docs.items():
        getattr(cls, name).__doc__ = doc


class HMCKernelState(NamedTuple):
    """State of :class:`HMC` / :class:`MALA` over a batch of chains."""

    position: torch.Tensor
    log_density: torch.Tensor
    grad: torch.Tensor
    beta: float
    step_size: torch.Tensor


_field_docs(
    HMCKernelState,
    position="Chain states, shape ``(num_chains, *batch_shape, D)`` (the path's dtype).",
    log_density=r":math:`\log f_\beta(x)` at ``position`` and ``beta``, float64, shape "
    "``(num_chains, *batch_shape)``.",
    grad=r":math:`\nabla_x \log f_\beta(x)`, shape of ``position``.",
    beta="Inverse temperature at which ``log_density`` and ``grad`` were evaluated (float; "
    "NaN before the first transition).",
    step_size="Leapfrog step size of the next transition, float64, shape ``batch_shape``.",
)


class HMCKernelInfo(NamedTuple):
    """What one :meth:`HMC.step` did."""

    acceptance_rate: torch.Tensor
    accepted: torch.Tensor
    divergent: torch.Tensor
    step_size: torch.Tensor
    mean_acceptance: torch.Tensor


_field_docs(
    HMCKernelInfo,
    acceptance_rate=r"Metropolis acceptance probability :math:`\alpha` per chain (the "
    "expected acceptance of this step, a lower-variance measure than ``accepted``), float64, "
    "shape ``(num_chains, *batch_shape)``.",
    accepted="Whether each chain moved (bool, shape ``(num_chains, *batch_shape)``).",
    divergent="Proposals whose log-density or gradient was not finite (rejected), bool.",
    step_size="The step size this transition used, shape ``batch_shape``.",
    mean_acceptance=r":math:`\bar\alpha`, the acceptance probability averaged over chains, "
    "shape ``batch_shape`` (what adaptation reacts to).",
)


class HMC:
    r"""Hamiltonian Monte Carlo kernel leaving :math:`f_\beta` invariant, for annealing.

    Parameters
    ----------
    path
        The annealing path: ``log_density(x, beta)`` of shape ``(num_chains, *batch_shape)``
        for ``x`` of shape ``(num_chains, *batch_shape, D)``, differentiable in ``x`` (or a
        ``log_density_and_grad(x, beta)`` method). Its ``log_z0`` gives ``batch_shape``.
    step_size : float or torch.Tensor
        Initial leapfrog step size :math:`\epsilon`: a float for all batch elements, or a
        positive tensor broadcastable to ``batch_shape``.
    num_leapfrog : int
        Leapfrog steps :math:`L` per transition (cost: :math:`L` gradient evaluations).
    target_accept : float in (0, 1)
        :math:`\delta`, the mean acceptance probability adaptation aims for.
    adapt : bool
        Adapt the step size between transitions (see the module notes on what this does to
        the unbiasedness of AIS).
    adapt_rate : float
        :math:`\kappa` of the rule :math:`\log\epsilon \mathrel{+}= \kappa(\bar\alpha-\delta)`.
    min_step_size, max_step_size : float
        Clamp of the adapted step size.

    Notes
    -----
    Cost per transition: :math:`L` evaluations of :math:`\log f_\beta` and its gradient on all
    chains (one more when the temperature changed since the last one, to refresh the gradient
    at the new :math:`\beta`). Chains are independent given the step size: each has its own
    accept/reject.
    """

    default_target_accept = 0.65

    def __init__(
        self,
        path,
        step_size: float = 0.1,
        num_leapfrog: int = 10,
        *,
        target_accept: float | None = None,
        adapt: bool = True,
        adapt_rate: float = 0.5,
        min_step_size: float = 1e-6,
        max_step_size: float = 10.0,
    ):
        if not callable(getattr(path, "log_density", None)):
            raise TypeError(
                "path must have a log_density(x, beta) method (an annealing path). Got "
                f"{type(path).__name__} instead."
            )
        self.path = path
        if isinstance(step_size, torch.Tensor) and step_size.numel() > 1:
            if not (torch.isfinite(step_size).all() and (step_size > 0).all()):
                raise ValueError("step_size must be positive and finite. Got a tensor with "
                                 f"min {step_size.min().item()!r} instead.")
            self.step_size = step_size.detach().double()
        else:
            self.step_size = check_float(step_size, "step_size", 0.0, None, "oo")
        self.num_leapfrog = check_int(num_leapfrog, "num_leapfrog", low=1)
        if target_accept is None:
            target_accept = self.default_target_accept
        self.target_accept = check_float(target_accept, "target_accept", 0.0, 1.0, "oo")
        if not isinstance(adapt, bool):
            raise TypeError(f"adapt must be a bool. Got {type(adapt).__name__} instead.")
        self.adapt = adapt
        self.adapt_rate = check_float(adapt_rate, "adapt_rate", 0.0, None, "co")
        self.min_step_size = check_float(min_step_size, "min_step_size", 0.0, None, "oo")
        self.max_step_size = check_float(max_step_size, "max_step_size", 0.0, None, "oo")
        if self.min_step_size > self.max_step_size:
            raise ValueError(
                "min_step_size must not exceed max_step_size. Got "
                f"{self.min_step_size!r} > {self.max_step_size!r} instead."
            )
        if isinstance(self.step_size, float) and not (
            self.min_step_size <= self.step_size <= self.max_step_size
        ):
            raise ValueError(
                f"step_size must be in [{self.min_step_size!r}, {self.max_step_size!r}] "
                f"(min_step_size, max_step_size). Got {self.step_size!r} instead."
            )

    # -- log density and gradient -------------------------------------------------------------
    def _value_and_grad(self, x: torch.Tensor, beta: float):
        fused = getattr(self.path, "log_density_and_grad", None)
        if fused is not None:
            lp, g = fused(x, beta)
            return lp.detach().double(), g.detach()
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp = self.path.log_density(xg, beta)
            if not lp.requires_grad:  # a density constant in x (e.g. beta-only terms)
                return lp.detach().double(), torch.zeros_like(x)
            (g,) = torch.autograd.grad(lp.sum(), xg)
        return lp.detach().double(), g.detach()

    def _batch_shape(self, x: torch.Tensor) -> torch.Size:
        return x.shape[1:-1]

    # -- protocol -----------------------------------------------------------------------------
    def init(self, x: torch.Tensor, step_size=None) -> HMCKernelState:
        r"""Start chains at ``x`` (shape ``(num_chains, *batch_shape, D)``).

        ``step_size`` (float or tensor broadcastable to ``batch_shape``) overrides the
        constructor's initial value. The log-density is evaluated lazily at the first
        transition's temperature.
        """
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() < 2:
            raise TypeError(
                "x must be a floating-point tensor of shape (num_chains, *batch_shape, D). Got "
                f"{getattr(x, 'dtype', type(x).__name__)} of shape "
                f"{tuple(getattr(x, 'shape', ()))} instead."
            )
        batch = self._batch_shape(x)
        eps = self.step_size if step_size is None else step_size
        eps = torch.as_tensor(eps, dtype=torch.float64, device=x.device)
        eps = eps.expand(batch).clone()
        nan = torch.full(x.shape[:-1], math.nan, dtype=torch.float64, device=x.device)
        return HMCKernelState(x.detach(), nan, torch.zeros_like(x), math.nan, eps)

    def step(
        self, generator, state: HMCKernelState, beta: float
    ) -> tuple[HMCKernelState, HMCKernelInfo]:
        r"""One HMC transition at inverse temperature ``beta``, then adapt the step size.

        Raises
        ------
        FloatingPointError
            If :math:`\log f_\beta` or its gradient is NaN/inf at the *current* states (a
            broken density, not a divergent proposal; divergent proposals are rejected).
        """
        x = state.position
        if state.beta == beta:
            lp, g = state.log_density, state.grad
        else:
            lp, g = self._value_and_grad(x, beta)
        bad = ~torch.isfinite(lp) | ~torch.isfinite(g).all(-1)
        if bad.any():
            raise FloatingPointError(
                f"log f_beta or its gradient is not finite at {int(bad.sum())} current chain "
                f"state(s) at beta={beta!r}; the annealing run cannot continue."
            )
        eps64 = state.step_size
        eps = eps64.to(x.dtype).unsqueeze(-1)  # broadcast over (chains, ..., D)
        p0 = normal_(torch.empty_like(x), generator)
        p = p0 + 0.5 * eps * g
        xn = x
        lpn, gn = lp, g
        for i in range(self.num_leapfrog):
            xn = xn + eps * p
            lpn, gn = self._value_and_grad(xn, beta)
            if i < self.num_leapfrog - 1:
                p = p + eps * gn
        p = p + 0.5 * eps * gn
        kin0 = 0.5 * (p0.double() ** 2).sum(-1)
        kin1 = 0.5 * (p.double() ** 2).sum(-1)
        log_ratio = (lpn - kin1) - (lp - kin0)
        divergent = ~torch.isfinite(log_ratio) | ~torch.isfinite(gn).all(-1)
        log_ratio = torch.where(divergent, torch.full_like(log_ratio, -math.inf), log_ratio)
        accept_prob = torch.exp(log_ratio.clamp(max=0.0))
        u = uniform_(torch.empty_like(log_ratio), generator)
        accepted = u < accept_prob
        mask = accepted.unsqueeze(-1)
        x_new = torch.where(mask, xn, x)
        lp_new = torch.where(accepted, lpn, lp)
        g_new = torch.where(mask, gn, g)
        mean_acc = accept_prob.mean(0)
        new_eps = eps64
        if self.adapt:
            log_eps = torch.log(eps64) + self.adapt_rate * (mean_acc - self.target_accept)
            new_eps = torch.exp(log_eps)
            new_eps = new_eps.clamp(self.min_step_size, self.max_step_size)
        new = HMCKernelState(x_new, lp_new, g_new, beta, new_eps)
        info = HMCKernelInfo(accept_prob, accepted, divergent, eps64, mean_acc)
        return new, info

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(step_size={self.step_size}, num_leapfrog={self.num_leapfrog}, "
            f"target_accept={self.target_accept}, adapt={self.adapt})"
        )


class MALA(HMC):
    r"""Metropolis-adjusted Langevin kernel: :class:`HMC` with one leapfrog step.

    The proposal :math:`x' = x + \tfrac{\epsilon^2}{2}\nabla\log f_\beta(x) + \epsilon\xi`,
    :math:`\xi\sim\mathcal N(0, I)`, corrected by Metropolis-Hastings; written as one leapfrog
    step the correction is the Hamiltonian difference, so this class only changes the defaults
    (``num_leapfrog=1``, target acceptance 0.574 [5] of :mod:`pyrogen.infer.annealing.hmc`).
    Cost per transition: one gradient evaluation.
    """

    default_target_accept = 0.574

    def __init__(self, path, step_size: float = 0.1, *, target_accept: float | None = None,
                 adapt: bool = True, adapt_rate: float = 0.5, min_step_size: float = 1e-6,
                 max_step_size: float = 10.0):
        super().__init__(
            path, step_size, 1, target_accept=target_accept, adapt=adapt, adapt_rate=adapt_rate,
            min_step_size=min_step_size, max_step_size=max_step_size,
        )

    def __repr__(self) -> str:
        return (
            f"MALA(step_size={self.step_size}, target_accept={self.target_accept}, "
            f"adapt={self.adapt})"
        )
