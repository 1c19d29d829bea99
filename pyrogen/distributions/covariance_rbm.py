r"""Undirected models of conditional covariance (book §20.5.2) as Pyro distributions.

Three energy-based distributions (book §20.5.2 [1]_) over a real visible vector
:math:`x \in \mathbb R^D` whose hidden units modulate the *covariance* of :math:`x`, not only
its mean:

=========================  =====================================================================
distribution               energy (book equation)
=========================  =====================================================================
``MeanCovarianceRBM``      :math:`E = E_m(x, h^{(m)}) + \tfrac12\sum_j h^{(c)}_j (r^{(j)\top}
                           x)^2 - \sum_j b^{(c)}_j h^{(c)}_j` (eqs. 20.43-20.45), binary
                           :math:`h^{(m)}, h^{(c)}`
``MeanProductStudentT``    :math:`E = E_m(x, h^{(m)}) + \sum_j \big[h^{(c)}_j (1 +
                           \tfrac12 (r^{(j)\top} x)^2) + (1-\gamma_j)\log h^{(c)}_j\big]`
                           (eq. 20.49), :math:`h^{(c)}_j > 0`
``SpikeSlabRBM``           :math:`E = -\sum_i x^\top W_{:,i} s_i h_i + \tfrac12 x^\top(\Lambda +
                           \sum_i \Phi_i h_i) x + \tfrac12\sum_i \alpha_i s_i^2 - \sum_i
                           \alpha_i\mu_i s_i h_i - \sum_i b_i h_i + \sum_i \alpha_i \mu_i^2 h_i`
                           (eqs. 20.50-20.51), binary spikes :math:`h`, real slabs :math:`s`
=========================  =====================================================================

with the Gaussian-RBM part :math:`E_m(x, h^{(m)}) = \tfrac12 x^\top x - a^\top x -
\sum_j x^\top W_{:,j} h^{(m)}_j - \sum_j b^{(m)}_j h^{(m)}_j` (eq. 20.44, plus a visible bias
:math:`a`, zero by default: the book assumes zero-mean data). All hidden units are summed or
integrated out analytically in the free energy :math:`F(x)`, so ``log_prob`` is
:math:`-F(x) - \log Z` with the normalizer passed at construction; every conditional of the
joint is tractable:

* **mcRBM**: :math:`P(h^{(m)}_j = 1 \mid x) = \sigma(b^{(m)}_j + x^\top W_{:,j})`,
  :math:`P(h^{(c)}_j = 1 \mid x) = \sigma(b^{(c)}_j - \tfrac12 (r^{(j)\top}x)^2)`, and
  :math:`p(x \mid h) = \mathcal N(C(a + W h^{(m)}), C)`, :math:`C^{-1} = I + \sum_j h^{(c)}_j
  r^{(j)} r^{(j)\top}` (eq. 20.47), a full-covariance Gaussian: its draw needs a Cholesky
  factor per chain, which is why Ranzato & Hinton (2010) [2]_ sample :math:`x` by Hamiltonian
  Monte Carlo on :math:`F` instead (the models use the engine's HMC kernel for this).
* **mPoT**: :math:`h^{(c)}_j \mid x \sim \operatorname{Gamma}(\gamma_j,\, 1 + \tfrac12
  (r^{(j)\top}x)^2)` (shape, rate), the same Bernoulli mean units, and the same Gaussian
  :math:`x \mid h` with :math:`C^{-1} = I + \sum_j h^{(c)}_j r^{(j)} r^{(j)\top}` [3]_.
* **ssRBM**: :math:`P(h_i = 1 \mid x) = \sigma(a_i(x))`, :math:`s_i \mid x, h \sim
  \mathcal N(h_i(\mu_i + x^\top W_{:,i}/\alpha_i), \alpha_i^{-1})` and :math:`x \mid s, h \sim
  \mathcal N(C(a + \sum_i W_{:,i} s_i h_i), C)` with the *diagonal* :math:`C^{-1} = \Lambda +
  \sum_i \Phi_i h_i`: block Gibbs without any matrix inversion [4]_.

Annealing paths (for AIS through :mod:`pyrogen.infer.annealing`): every interaction term of
the energy is scaled by :math:`\beta` while a tractable Gaussian (and Gamma) part is kept, so
:math:`\beta = 0` is a product of independent Gaussians, Bernoullis and Gammas with known
:math:`Z_0`, every intermediate distribution is normalizable when the target is, and exact
block Gibbs moves exist at every :math:`\beta`. The paths are differentiable in :math:`x`, so
the engine's :class:`~pyrogen.infer.annealing.HMC` kernel applies as well.

Parameters are unbatched (``param_batch_shape == ()``); ``expand`` (e.g. by a ``pyro.plate``)
works as for every energy-based distribution.

References
----------
.. [1] I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016, §20.5.2.
.. [2] M. Ranzato and G. E. Hinton, "Modeling pixel means and covariances using factorized
   third-order Boltzmann machines", CVPR 2010.
.. [3] M. Ranzato, V. Mnih and G. E. Hinton, "Generating more realistic images using gated
   MRF's", NIPS 2010.
.. [4] A. Courville, J. Bergstra and Y. Bengio, "A spike and slab restricted Boltzmann
   machine", AISTATS 2011.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints

from .._random import bernoulli as _bernoulli_draw
from .._random import normal_ as _normal_
from .._random import uniform_ as _uniform_
from .boltzmann import _as_tensor, _check_value_dtype
from .energy import EXACT_SAMPLE_MAX_UNITS, EnergyBasedDistribution, enumerate_binary_states
from .log_normalizer import Normalizer

__all__ = [
    "MeanCovarianceRBM",
    "MeanProductStudentT",
    "SpikeSlabRBM",
    "MeanCovarianceRBMPath",
    "MeanProductStudentTPath",
    "SpikeSlabRBMPath",
]

#: largest number of visible units for which :meth:`quadrature_log_z` grids the space
QUADRATURE_MAX_DIM = 2


def _check_shape(t, name, shape, what):
    if tuple(t.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} ({what}). Got shape {tuple(t.shape)} instead."
        )


def _check_matrix(t, name, what):
    if t.dim() != 2:
        raise ValueError(
            f"{name} must be a matrix of shape {what} (batched parameters are not supported). "
            f"Got shape {tuple(t.shape)} instead."
        )


def _mean_cov_parameters(mean_weight, mean_bias, cov_weight):
    """The mean and covariance parameters shared by the mcRBM and the mPoT, checked:
    ``mean_weight`` ``(n_visible, n_mean)``, ``mean_bias`` ``(n_mean,)``, ``cov_weight``
    ``(n_visible, n_cov)``; returns them as tensors of ``mean_weight``'s dtype and device."""
    W = _as_tensor(mean_weight, "mean_weight")
    _check_matrix(W, "mean_weight", "(n_visible, n_mean)")
    R = _as_tensor(cov_weight, "cov_weight", W)
    _check_matrix(R, "cov_weight", "(n_visible, n_cov)")
    d, j = W.shape
    if R.shape[0] != d:
        raise ValueError(
            f"cov_weight must have shape ({d}, n_cov) (n_visible = mean_weight.shape[0]). "
            f"Got shape {tuple(R.shape)} instead."
        )
    bm = _as_tensor(mean_bias, "mean_bias", W)
    _check_shape(bm, "mean_bias", (j,), "n_mean = mean_weight.shape[1]")
    return W, bm, R


def _check_positive(t, name, what="positive"):
    td = t.detach()
    if not bool(torch.isfinite(td).all()) or not bool((td > 0).all()):
        raise ValueError(
            f"{name} must be {what} and finite. Got min {float(td.min()):.4g} instead."
        )


def _check_finite(t, name):
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{name} must be finite. Got a tensor with NaN or inf values instead.")


def _gaussian_draw(precision, linear, generator=None):
    r"""Draw :math:`x \sim \mathcal N(P^{-1} m, P^{-1})` for full precisions ``(..., D, D)``
    and linear terms ``(..., D)``, by one Cholesky factor :math:`P = L L^\top` each:
    :math:`x = L^{-\top}(L^{-1} m + z)`."""
    L = torch.linalg.cholesky(precision)
    y = torch.linalg.solve_triangular(L, linear.unsqueeze(-1), upper=False)
    z = _normal_(torch.empty_like(y), generator)
    return torch.linalg.solve_triangular(L.mT, y + z, upper=True).squeeze(-1)


def _gaussian_log_integral(precision, linear):
    r""":math:`\log\int e^{-\frac12 x^\top P x + m^\top x} dx = \tfrac12 m^\top P^{-1} m +
    \tfrac D2 \log 2\pi - \tfrac12\log|P|`; ``+inf`` where :math:`P` is not positive definite."""
    L, info = torch.linalg.cholesky_ex(precision)
    ok = info == 0
    eye = torch.eye(precision.shape[-1], dtype=precision.dtype, device=precision.device)
    L = torch.where(ok[..., None, None], L, eye)
    y = torch.linalg.solve_triangular(L, linear.unsqueeze(-1), upper=False).squeeze(-1)
    d = precision.shape[-1]
    out = (
        0.5 * (y**2).sum(-1)
        + 0.5 * d * math.log(2 * math.pi)
        - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    )
    return torch.where(ok, out, torch.full_like(out, math.inf))


#: Marsaglia-Tsang proposals drawn per Gamma variate in one round (acceptance >= 0.95 each,
#: so a second round is needed with probability < 0.05**8 per variate).
_GAMMA_PROPOSALS = 8


def _gamma_draw(shape, rate, generator=None):
    r"""Gamma(shape, rate) draws from ``generator`` (``None``, a ``torch.Generator`` or a
    :class:`~pyrogen._random.ChainRNG`; chains first), so seeded runs are reproducible.

    Marsaglia & Tsang (2000): with :math:`a = \max(\alpha, \alpha + 1)` for
    :math:`\alpha < 1`, :math:`d = a - 1/3`, :math:`c = 1/\sqrt{9d}`, propose
    :math:`v = (1 + cz)^3`, :math:`z \sim N(0, 1)`, accept when :math:`v > 0` and
    :math:`\log u < z^2/2 + d - dv + d\log v`; the draw is :math:`dv`, times
    :math:`u'^{1/\alpha}` when :math:`\alpha < 1`, divided by the rate. Each round draws a
    fixed number of proposals per variate (:data:`_GAMMA_PROPOSALS`), so the random numbers a
    chain consumes do not depend on the other chains except in the rare event of a second
    round (probability below :math:`0.05^8` per variate).
    """
    alpha = shape.expand(rate.shape)
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha)
    d = (a - 1.0 / 3.0).unsqueeze(-1)
    c = torch.rsqrt(9 * d)
    out = torch.empty_like(a)
    done = torch.zeros(a.shape, dtype=torch.bool, device=a.device)
    while not bool(done.all()):
        z = _normal_(torch.empty(*a.shape, _GAMMA_PROPOSALS, dtype=a.dtype, device=a.device),
                     generator)
        u = _uniform_(torch.empty_like(z), generator)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (
            torch.log(u) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-30))
        )
        first = ok.to(torch.int8).argmax(-1, keepdim=True)
        cand = (d * v).gather(-1, first).squeeze(-1)
        new = ok.any(-1) & ~done
        out = torch.where(new, cand, out)
        done = done | new
    u2 = _uniform_(torch.empty_like(a), generator)
    out = torch.where(boost, out * u2 ** (1 / alpha), out)
    return out / rate


class _CovarianceEBM(EnergyBasedDistribution):
    """Shared parts of the three conditional-covariance models (real visible vector)."""

    support = constraints.independent(constraints.real, 1)
    _enum_units: int | None = None

    def _finish_init(self, n_visible, normalizer, mcmc_steps, mcmc_init, validate_args,
                     kernel):
        if kernel is not None and not callable(kernel):
            raise TypeError(
                "kernel must be a callable kernel(x, num_steps) -> x or None. Got "
                f"{type(kernel).__name__} instead."
            )
        self.kernel = kernel
        super().__init__(
            torch.Size(),
            (n_visible,),
            normalizer=normalizer,
            mcmc_steps=mcmc_steps,
            mcmc_init=mcmc_init,
            validate_args=validate_args,
        )

    @property
    def n_visible(self) -> int:
        return int(self.event_shape[0])

    @property
    def dtype(self):
        return self.visible_bias.dtype

    @property
    def device(self):
        return self.visible_bias.device

    @property
    def enumeration_units(self):
        return self._enum_units

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`-F(x) - \\log Z`; ``value`` must have this distribution's dtype."""
        _check_value_dtype(self, value)
        return super().log_prob(value)

    def unnormalized_log_prob(self, value):
        return -self.free_energy(value)

    def transition(self, x, num_steps: int = 1, generator=None):
        """``num_steps`` MCMC moves leaving the distribution invariant: the ``kernel`` given at
        construction (e.g. HMC from :mod:`pyrogen.infer.annealing`, which the models inject),
        else exact block Gibbs over the hidden and visible units (the path at
        :math:`\\beta = 1`)."""
        with torch.no_grad():
            x = x.to(self.dtype)
            if self.kernel is not None:
                return self.kernel(x, num_steps)
            path = self.annealing_path()
            for _ in range(num_steps):
                x = path.sample_given_latent(path.sample_latent(x, 1.0, generator), 1.0,
                                             generator)
            return x

    def base_distribution(self, data=None):
        r"""The visible marginal of the :math:`\beta = 0` end of :meth:`annealing_path`."""
        path = self.annealing_path()
        scale = path.base_scale.expand(self.n_visible)
        return dist.Normal(torch.zeros_like(scale), scale).to_event(1)

    def quadrature_log_z(self, bound: float = 8.0, num_points: int = 801) -> torch.Tensor:
        r""":math:`\log Z = \log\int e^{-F(x)}dx` by the trapezoidal rule on the grid
        :math:`[-\text{bound}, \text{bound}]^D` (``num_points`` per axis), for :math:`D \le 2`.

        A *quadrature* value (not exact): accurate when the density is negligible outside the
        box and smooth on the grid scale; the tests compare it with the exact enumeration and
        with AIS on tiny models.
        """
        d = self.n_visible
        if d > QUADRATURE_MAX_DIM:
            raise ValueError(
                f"quadrature_log_z grids at most {QUADRATURE_MAX_DIM} visible units. Got "
                f"n_visible={d} instead; use Exact() (when available) or AIS."
            )
        t = torch.linspace(-bound, bound, num_points, dtype=self.dtype, device=self.device)
        w = torch.full_like(t, float(t[1] - t[0]))
        w[0] = w[-1] = 0.5 * float(t[1] - t[0])
        with torch.no_grad():
            if d == 1:
                lp = self.unnormalized_log_prob(t.unsqueeze(-1))
                return torch.logsumexp(lp + torch.log(w), 0)
            g1, g2 = torch.meshgrid(t, t, indexing="ij")
            pts = torch.stack([g1.reshape(-1), g2.reshape(-1)], -1)
            lw = (torch.log(w)[:, None] + torch.log(w)[None, :]).reshape(-1)
            return torch.logsumexp(self.unnormalized_log_prob(pts) + lw, 0)

    # -- exact enumeration over binary hidden states (mcRBM, ssRBM) ---------------------------
    def _state_quadratic(self, states):  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_log_weights(self, states):
        """log of the integral of the joint over :math:`x` (and slabs) for each binary
        hidden state, shape ``(S,)``."""
        prec, lin, const = self._state_quadratic(states)
        return const + _gaussian_log_integral(prec, lin)

    def _chunk(self, chunk_size):
        d = self.n_visible
        return max(1, min(chunk_size, 2**22 // (d * d)))

    def enumerate_log_z(self, chunk_size: int = 2**14):
        n = self._enum_units
        total, chunk = 2**n, self._chunk(chunk_size)
        parts = []
        for start in range(0, total, chunk):
            s = enumerate_binary_states(n, start, min(total, start + chunk), dtype=self.dtype,
                                        device=self.device)
            lw = self._state_log_weights(s)
            if bool(torch.isinf(lw).any()):
                raise ValueError(
                    f"{type(self).__name__} is not normalizable: the precision of x given a "
                    "hidden state is not positive definite (Z = inf). Check the parameters "
                    "(book §20.5.2: some ssRBM settings have no normalizable density)."
                )
            parts.append(torch.logsumexp(lw, 0))
        return torch.logsumexp(torch.stack(parts), 0)

    def _sample_exact(self, sample_shape):
        n = self._enum_units
        if n is None or n > EXACT_SAMPLE_MAX_UNITS:
            return None
        states = enumerate_binary_states(n, dtype=self.dtype, device=self.device)
        lw = self._state_log_weights(states)
        if bool(torch.isinf(lw).any()):
            raise ValueError(f"{type(self).__name__} is not normalizable (Z = inf).")
        shape = torch.Size(sample_shape) + self.batch_shape
        idx = torch.distributions.Categorical(logits=lw).sample(shape)
        prec, lin, _ = self._state_quadratic(states[idx.reshape(-1)])
        x = _gaussian_draw(prec, lin)
        return x.reshape(*shape, self.n_visible)


# ============================================================================================
# mean and covariance RBM
# ============================================================================================
class MeanCovarianceRBM(_CovarianceEBM):
    r"""Mean and covariance RBM (mcRBM; Ranzato & Hinton 2010; book eqs. 20.43-20.47).

    .. math::

        E(x, h^{(m)}, h^{(c)}) = \tfrac12 x^\top x - a^\top x - x^\top W h^{(m)}
            - b^{(m)\top} h^{(m)} + \tfrac12\sum_j h^{(c)}_j (r^{(j)\top} x)^2
            - b^{(c)\top} h^{(c)},

    binary :math:`h^{(m)} \in \{0,1\}^{J}`, :math:`h^{(c)} \in \{0,1\}^{K}`. Summing them out,

    .. math::

        F(x) = \tfrac12 x^\top x - a^\top x - \sum_j \operatorname{softplus}(b^{(m)}_j +
            x^\top W_{:,j}) - \sum_k \operatorname{softplus}\big(b^{(c)}_k -
            \tfrac12 (r^{(k)\top}x)^2\big).

    Always normalizable (the covariance terms are bounded). Given the hidden units, :math:`x`
    is Gaussian with precision :math:`I + R\operatorname{diag}(h^{(c)})R^\top`, so
    :math:`\log Z = \operatorname{logsumexp}_h[b^{(m)\top}h^{(m)} + b^{(c)\top}h^{(c)} +
    \tfrac12 m^\top P^{-1}m - \tfrac12\log|P|] + \tfrac D2\log 2\pi` with :math:`m = a + W
    h^{(m)}`, which :class:`~pyrogen.normalizers.Exact` enumerates over the :math:`2^{J+K}`
    hidden states (exact value and gradient; tiny models only).

    Parameters
    ----------
    mean_weight : torch.Tensor, shape ``(D, J)``
        :math:`W`, the Gaussian-RBM weights of the mean units.
    mean_bias : torch.Tensor, shape ``(J,)``
        :math:`b^{(m)}`.
    cov_weight : torch.Tensor, shape ``(D, K)``
        Columns :math:`r^{(k)}`, the covariance filters.
    cov_bias : torch.Tensor, shape ``(K,)``
        :math:`b^{(c)}`.
    visible_bias : torch.Tensor, shape ``(D,)``, optional
        :math:`a` (default zeros).
    normalizer : Normalizer, optional
        Default ``Exact()`` (at most 20 hidden units in all).
    kernel : callable, optional
        ``kernel(x, num_steps) -> x`` used by :meth:`transition` (default: exact block Gibbs
        with a Cholesky factor per chain; the models pass the engine's HMC on :math:`F`).
    mcmc_steps : int
        MCMC transitions of :meth:`sample` when it is not exact (exact when
        :math:`J + K \le 16`).
    mcmc_init : torch.Tensor, optional
        Initial state of those chains.
    validate_args : bool, optional
        Keyword-only.

    Notes
    -----
    Cost per example: :math:`O(D(J+K))` for :math:`F`; a Gibbs step adds a :math:`D\times D`
    Cholesky factor per chain, :math:`O(D^3)`.
    """

    arg_constraints = {
        "mean_weight": constraints.real,
        "mean_bias": constraints.real,
        "cov_weight": constraints.real,
        "cov_bias": constraints.real,
        "visible_bias": constraints.real,
    }

    def __init__(self, mean_weight, mean_bias, cov_weight, cov_bias, visible_bias=None, *,
                 normalizer: Normalizer | None = None, kernel=None, mcmc_steps: int = 1000,
                 mcmc_init=None, validate_args=None):
        W, bm, R = _mean_cov_parameters(mean_weight, mean_bias, cov_weight)
        d = W.shape[0]
        bc = _as_tensor(cov_bias, "cov_bias", W)
        _check_shape(bc, "cov_bias", (R.shape[1],), "n_cov = cov_weight.shape[1]")
        a = torch.zeros(d, dtype=W.dtype, device=W.device) if visible_bias is None else (
            _as_tensor(visible_bias, "visible_bias", W))
        _check_shape(a, "visible_bias", (d,), "n_visible")
        self.mean_weight, self.mean_bias, self.cov_weight, self.cov_bias = W, bm, R, bc
        self.visible_bias = a
        self._enum_units = W.shape[1] + R.shape[1]
        self._finish_init(d, normalizer, mcmc_steps, mcmc_init, validate_args, kernel)

    def energy(self, x, h_mean, h_cov):
        r"""Joint energy :math:`E(x, h^{(m)}, h^{(c)})` (eqs. 20.43-20.45)."""
        q = x @ self.cov_weight
        return (
            0.5 * (x**2).sum(-1)
            - (x * self.visible_bias).sum(-1)
            - ((x @ self.mean_weight) * h_mean).sum(-1)
            - (h_mean * self.mean_bias).sum(-1)
            + 0.5 * (h_cov * q**2).sum(-1)
            - (h_cov * self.cov_bias).sum(-1)
        )

    def free_energy(self, x):
        r""":math:`F(x)` with both hidden layers summed out, shape ``x.shape[:-1]``."""
        x = x.to(self.dtype)
        q = x @ self.cov_weight
        return (
            0.5 * (x**2).sum(-1)
            - (x * self.visible_bias).sum(-1)
            - F.softplus(self.mean_bias + x @ self.mean_weight).sum(-1)
            - F.softplus(self.cov_bias - 0.5 * q**2).sum(-1)
        )

    def hidden_given_visible(self, x):
        r""":math:`P(h^{(m)}, h^{(c)} \mid x)`: independent Bernoullis, event shape
        ``(J + K,)`` (mean units first)."""
        x = x.to(self.dtype)
        q = x @ self.cov_weight
        logits = torch.cat(
            [self.mean_bias + x @ self.mean_weight, self.cov_bias - 0.5 * q**2], -1
        )
        return dist.Bernoulli(logits=logits).to_event(1)

    def visible_precision(self, h_cov):
        r""":math:`C^{-1} = I + \sum_k h^{(c)}_k r^{(k)} r^{(k)\top}`, shape ``(..., D, D)``."""
        R = self.cov_weight
        eye = torch.eye(self.n_visible, dtype=self.dtype, device=self.device)
        return eye + (R * h_cov.unsqueeze(-2)) @ R.T

    def _state_quadratic(self, states):
        j = self.mean_weight.shape[1]
        hm, hc = states[..., :j], states[..., j:]
        prec = self.visible_precision(hc)
        lin = self.visible_bias + hm @ self.mean_weight.T
        const = hm @ self.mean_bias + hc @ self.cov_bias
        return prec, lin, const

    def annealing_path(self, base=None, data=None):
        r""":class:`MeanCovarianceRBMPath` (every interaction scaled by :math:`\beta`;
        ``base`` and ``data`` are not used)."""
        return MeanCovarianceRBMPath(self.mean_weight.detach(), self.mean_bias.detach(),
                                     self.cov_weight.detach(), self.cov_bias.detach(),
                                     self.visible_bias.detach())


class MeanCovarianceRBMPath:
    r"""AIS path of the mcRBM (``AnnealingPath`` protocol).

    :math:`E_\beta = \tfrac12 x^\top x + \beta E'(x, h)` where :math:`E'` is every other term
    of the mcRBM energy, so

    .. math::

        \log f_\beta(x) = -\tfrac12 x^\top x + \beta a^\top x + \sum_j\operatorname{softplus}
        (\beta(b^{(m)}_j + x^\top W_{:,j})) + \sum_k \operatorname{softplus}(\beta(b^{(c)}_k -
        \tfrac12 (r^{(k)\top}x)^2)),

    :math:`\log Z_0 = \tfrac D2\log 2\pi + (J+K)\log 2`. Moves: exact block Gibbs
    (``sample_latent`` / ``sample_given_latent``: Bernoulli hidden units, then the Gaussian
    :math:`x` with precision :math:`I + \beta R\operatorname{diag}(h^{(c)})R^\top`), or the
    engine's HMC on ``log_density`` (differentiable in :math:`x`).
    """

    def __init__(self, mean_weight, mean_bias, cov_weight, cov_bias, visible_bias):
        self.W, self.bm, self.R, self.bc, self.a = (mean_weight, mean_bias, cov_weight, cov_bias,
                                                    visible_bias)
        d, j = mean_weight.shape
        k = cov_weight.shape[1]
        self.base_scale = torch.ones((), dtype=mean_weight.dtype)
        self.log_z0 = torch.tensor(0.5 * d * math.log(2 * math.pi) + (j + k) * math.log(2.0),
                                   dtype=mean_weight.dtype)

    def init(self, num_chains, generator=None):
        d = self.W.shape[0]
        return _normal_(torch.empty(num_chains, d, dtype=self.W.dtype), generator)

    def log_density(self, x, beta):
        beta = float(beta)
        q = x @ self.R
        return (
            -0.5 * (x**2).sum(-1)
            + beta * (x * self.a).sum(-1)
            + F.softplus(beta * (self.bm + x @ self.W)).sum(-1)
            + F.softplus(beta * (self.bc - 0.5 * q**2)).sum(-1)
        )

    def sample_latent(self, x, beta, generator=None):
        beta = float(beta)
        q = x @ self.R
        logits = beta * torch.cat([self.bm + x @ self.W, self.bc - 0.5 * q**2], -1)
        return _bernoulli_draw(torch.sigmoid(logits), generator)

    def sample_given_latent(self, h, beta, generator=None):
        beta = float(beta)
        j = self.W.shape[1]
        hm, hc = h[..., :j], h[..., j:]
        eye = torch.eye(self.W.shape[0], dtype=self.W.dtype)
        prec = eye + beta * (self.R * hc.unsqueeze(-2)) @ self.R.T
        lin = beta * (self.a + hm @ self.W.T)
        return _gaussian_draw(prec, lin, generator)


# ============================================================================================
# mean-product of Student's t
# ============================================================================================
class MeanProductStudentT(_CovarianceEBM):
    r"""Mean-product of Student's t-distributions (mPoT; Ranzato, Mnih & Hinton 2010; book
    eq. 20.49).

    .. math::

        E(x, h^{(m)}, h^{(c)}) = E_m(x, h^{(m)}) + \sum_j \Big[h^{(c)}_j\big(1 +
            \tfrac12 (r^{(j)\top}x)^2\big) + (1-\gamma_j)\log h^{(c)}_j\Big],

    binary mean units, positive covariance units :math:`h^{(c)}_j > 0`, :math:`\gamma_j > 0`.
    Integrating :math:`h^{(c)}_j` out (a Gamma integral,
    :math:`\int_0^\infty h^{\gamma-1}e^{-h u}dh = \Gamma(\gamma)u^{-\gamma}`),

    .. math::

        F(x) = \tfrac12 x^\top x - a^\top x - \sum_j\operatorname{softplus}(b^{(m)}_j +
            x^\top W_{:,j}) + \sum_k\Big[\gamma_k\log\big(1 + \tfrac12(r^{(k)\top}x)^2\big)
            - \log\Gamma(\gamma_k)\Big]:

    each covariance unit contributes a Student-t-like factor along :math:`r^{(k)}`. Always
    normalizable (the Gaussian term dominates). Conditionals:
    :math:`h^{(c)}_k \mid x \sim \operatorname{Gamma}(\gamma_k, 1 + \tfrac12(r^{(k)\top}x)^2)`,
    Bernoulli mean units as in an RBM, and :math:`x \mid h` Gaussian with precision
    :math:`I + R\operatorname{diag}(h^{(c)})R^\top`: block Gibbs (:meth:`transition`). There is
    no exact :math:`\log Z` (the covariance units are continuous): use
    :class:`~pyrogen.normalizers.AIS`, or :meth:`quadrature_log_z` for :math:`D \le 2`.

    Parameters
    ----------
    mean_weight : torch.Tensor, shape ``(D, J)``
    mean_bias : torch.Tensor, shape ``(J,)``
    cov_weight : torch.Tensor, shape ``(D, K)``
        Columns :math:`r^{(k)}`.
    gamma : torch.Tensor, shape ``(K,)``
        Positive shapes :math:`\gamma_k`.
    visible_bias : torch.Tensor, shape ``(D,)``, optional
    normalizer : Normalizer
        Required in practice: ``AIS(...)``, ``PCD(...)`` or ``CD(...)`` (``Exact()`` raises).

    Notes
    -----
    ``kernel``, ``mcmc_steps``, ``mcmc_init`` and ``validate_args`` are those of
    :class:`MeanCovarianceRBM`; sampling is always MCMC.
    """

    arg_constraints = {
        "mean_weight": constraints.real,
        "mean_bias": constraints.real,
        "cov_weight": constraints.real,
        "gamma": constraints.positive,
        "visible_bias": constraints.real,
    }

    def __init__(self, mean_weight, mean_bias, cov_weight, gamma, visible_bias=None, *,
                 normalizer: Normalizer | None = None, kernel=None, mcmc_steps: int = 1000,
                 mcmc_init=None, validate_args=None):
        W, bm, R = _mean_cov_parameters(mean_weight, mean_bias, cov_weight)
        d = W.shape[0]
        g = _as_tensor(gamma, "gamma", W)
        _check_shape(g, "gamma", (R.shape[1],), "n_cov = cov_weight.shape[1]")
        _check_positive(g, "gamma", "positive (Gamma shapes)")
        a = torch.zeros(d, dtype=W.dtype, device=W.device) if visible_bias is None else (
            _as_tensor(visible_bias, "visible_bias", W))
        _check_shape(a, "visible_bias", (d,), "n_visible")
        self.mean_weight, self.mean_bias, self.cov_weight, self.gamma = W, bm, R, g
        self.visible_bias = a
        self._finish_init(d, normalizer, mcmc_steps, mcmc_init, validate_args, kernel)

    def energy(self, x, h_mean, h_cov):
        r"""Joint energy (eq. 20.49); ``h_cov`` positive."""
        q = x @ self.cov_weight
        return (
            0.5 * (x**2).sum(-1)
            - (x * self.visible_bias).sum(-1)
            - ((x @ self.mean_weight) * h_mean).sum(-1)
            - (h_mean * self.mean_bias).sum(-1)
            + (h_cov * (1 + 0.5 * q**2) + (1 - self.gamma) * torch.log(h_cov)).sum(-1)
        )

    def free_energy(self, x):
        r""":math:`F(x)`, mean units summed and covariance units integrated out."""
        x = x.to(self.dtype)
        q = x @ self.cov_weight
        return (
            0.5 * (x**2).sum(-1)
            - (x * self.visible_bias).sum(-1)
            - F.softplus(self.mean_bias + x @ self.mean_weight).sum(-1)
            + (self.gamma * torch.log1p(0.5 * q**2) - torch.lgamma(self.gamma)).sum(-1)
        )

    def hidden_given_visible(self, x):
        r"""``(P(h^{(m)} | x), p(h^{(c)} | x))``: Bernoulli and Gamma(shape, rate) factors."""
        x = x.to(self.dtype)
        q = x @ self.cov_weight
        hm = dist.Bernoulli(logits=self.mean_bias + x @ self.mean_weight).to_event(1)
        rate = 1 + 0.5 * q**2
        hc = dist.Gamma(self.gamma.expand(rate.shape), rate).to_event(1)
        return hm, hc

    def annealing_path(self, base=None, data=None):
        r""":class:`MeanProductStudentTPath` (``base`` and ``data`` are not used)."""
        return MeanProductStudentTPath(self.mean_weight.detach(), self.mean_bias.detach(),
                                       self.cov_weight.detach(), self.gamma.detach(),
                                       self.visible_bias.detach())


class MeanProductStudentTPath:
    r"""AIS path of the mPoT (``AnnealingPath`` protocol).

    :math:`E_\beta = \tfrac12 x^\top x + \sum_k[h^{(c)}_k + (1-\gamma_k)\log h^{(c)}_k] +
    \beta E'(x, h)` with :math:`E'` the remaining (interaction and bias) terms:

    .. math::

        \log f_\beta(x) = -\tfrac12 x^\top x + \beta a^\top x + \sum_j\operatorname{softplus}
        (\beta(b^{(m)}_j + x^\top W_{:,j})) - \sum_k\big[\gamma_k\log(1 + \tfrac\beta2
        (r^{(k)\top}x)^2) - \log\Gamma(\gamma_k)\big],

    :math:`\log Z_0 = \tfrac D2\log 2\pi + J\log 2 + \sum_k\log\Gamma(\gamma_k)`. Moves: block
    Gibbs (Bernoulli and Gamma hidden units, Gaussian :math:`x` with precision
    :math:`I + \beta R\operatorname{diag}(h^{(c)})R^\top`) or HMC. The Gamma draws come from the
    run's generator (Marsaglia-Tsang from its normals and uniforms), so seeded runs repeat.
    """

    def __init__(self, mean_weight, mean_bias, cov_weight, gamma, visible_bias):
        self.W, self.bm, self.R, self.gamma, self.a = (mean_weight, mean_bias, cov_weight, gamma,
                                                       visible_bias)
        d, j = mean_weight.shape
        self.base_scale = torch.ones((), dtype=mean_weight.dtype)
        self.log_z0 = (0.5 * d * math.log(2 * math.pi) + j * math.log(2.0)
                       + torch.lgamma(gamma).sum())

    def init(self, num_chains, generator=None):
        d = self.W.shape[0]
        return _normal_(torch.empty(num_chains, d, dtype=self.W.dtype), generator)

    def log_density(self, x, beta):
        beta = float(beta)
        q = x @ self.R
        return (
            -0.5 * (x**2).sum(-1)
            + beta * (x * self.a).sum(-1)
            + F.softplus(beta * (self.bm + x @ self.W)).sum(-1)
            - (self.gamma * torch.log1p(0.5 * beta * q**2) - torch.lgamma(self.gamma)).sum(-1)
        )

    def sample_latent(self, x, beta, generator=None):
        beta = float(beta)
        q = x @ self.R
        hm = _bernoulli_draw(torch.sigmoid(beta * (self.bm + x @ self.W)), generator)
        hc = _gamma_draw(self.gamma, 1 + 0.5 * beta * q**2, generator)
        return torch.cat([hm, hc], -1)

    def sample_given_latent(self, h, beta, generator=None):
        beta = float(beta)
        j = self.W.shape[1]
        hm, hc = h[..., :j], h[..., j:]
        eye = torch.eye(self.W.shape[0], dtype=self.W.dtype)
        prec = eye + beta * (self.R * hc.unsqueeze(-2)) @ self.R.T
        lin = beta * (self.a + hm @ self.W.T)
        return _gaussian_draw(prec, lin, generator)


# ============================================================================================
# spike and slab RBM
# ============================================================================================
class SpikeSlabRBM(_CovarianceEBM):
    r"""Spike and slab RBM (ssRBM; Courville, Bergstra & Bengio 2011; book eqs. 20.50-20.53).

    .. math::

        E(x, s, h) = -\sum_i x^\top W_{:,i} s_i h_i + \tfrac12 x^\top\Big(\Lambda + \sum_i
            \Phi_i h_i\Big)x + \tfrac12\sum_i\alpha_i s_i^2 - \sum_i\alpha_i\mu_i s_i h_i
            - \sum_i b_i h_i + \sum_i\alpha_i\mu_i^2 h_i - a^\top x,

    binary spikes :math:`h_i`, real slabs :math:`s_i`, diagonal :math:`\Lambda =
    \operatorname{diag}(\lambda) \succ 0`, :math:`\Phi_i = \operatorname{diag}(\Phi_{:,i})
    \succeq 0`, :math:`\alpha_i > 0` (the last term as printed in the book, eq. 20.51;
    Courville et al. write :math:`\tfrac12\alpha_i\mu_i^2 h_i`, the same family with
    :math:`b_i` shifted by :math:`\tfrac12\alpha_i\mu_i^2`). Integrating the slabs and summing
    the spikes out, with :math:`w_i = x^\top W_{:,i}`,

    .. math::

        F(x) = \tfrac12 x^\top\Lambda x - a^\top x - \sum_i\Big[\operatorname{softplus}(u_i(x))
            + \tfrac12\log\frac{2\pi}{\alpha_i}\Big], \quad
        u_i(x) = b_i - \tfrac12\alpha_i\mu_i^2 + \mu_i w_i + \frac{w_i^2}{2\alpha_i}
            - \tfrac12\sum_d\Phi_{di}x_d^2.

    Given the spikes, :math:`x` is Gaussian with precision :math:`P_h = \Lambda + \sum_i h_i
    (\Phi_i - \alpha_i^{-1}W_{:,i}W_{:,i}^\top)` and mean :math:`P_h^{-1}(a + \sum_i h_i\mu_i
    W_{:,i})` (eq. 20.53): the density is normalizable exactly when every :math:`P_h` is
    positive definite (book §20.5.2). With ``validate_args`` the necessary conditions
    "each single-spike and the all-spikes precision is positive definite" are checked
    (ValueError otherwise); :class:`~pyrogen.normalizers.Exact` (enumeration of the
    :math:`2^N` spike states, exact value and gradient) checks every state.

    Parameters
    ----------
    weight : torch.Tensor, shape ``(D, N)``
        :math:`W`, the slab filters.
    spike_bias : torch.Tensor, shape ``(N,)``
        :math:`b`.
    slab_precision : torch.Tensor, shape ``(N,)``
        :math:`\alpha > 0`.
    slab_mean : torch.Tensor, shape ``(N,)``
        :math:`\mu`.
    visible_precision : torch.Tensor, shape ``(D,)``
        Diagonal of :math:`\Lambda` (positive).
    phi : torch.Tensor, shape ``(D, N)``
        Column :math:`i` is the diagonal of :math:`\Phi_i` (non-negative).
    visible_bias : torch.Tensor, shape ``(D,)``, optional
        :math:`a` (default zeros; the book's energy has none).

    Notes
    -----
    ``normalizer``, ``kernel``, ``mcmc_steps``, ``mcmc_init`` and ``validate_args`` are those of
    :class:`MeanCovarianceRBM`; sampling is exact when :math:`N \le 16`, block Gibbs
    :math:`h \mid x`, :math:`s \mid x, h`, :math:`x \mid s, h` (diagonal Gaussian)
    otherwise.
    """

    arg_constraints = {
        "weight": constraints.real,
        "spike_bias": constraints.real,
        "slab_precision": constraints.positive,
        "slab_mean": constraints.real,
        "visible_precision": constraints.positive,
        "phi": constraints.greater_than_eq(0.0),
        "visible_bias": constraints.real,
    }

    def __init__(self, weight, spike_bias, slab_precision, slab_mean, visible_precision, phi,
                 visible_bias=None, *, normalizer: Normalizer | None = None, kernel=None,
                 mcmc_steps: int = 1000, mcmc_init=None, validate_args=None):
        W = _as_tensor(weight, "weight")
        _check_matrix(W, "weight", "(n_visible, n_hidden)")
        d, n = W.shape
        b = _as_tensor(spike_bias, "spike_bias", W)
        _check_shape(b, "spike_bias", (n,), "n_hidden = weight.shape[1]")
        alpha = _as_tensor(slab_precision, "slab_precision", W)
        _check_shape(alpha, "slab_precision", (n,), "n_hidden = weight.shape[1]")
        _check_positive(alpha, "slab_precision", "positive (precisions alpha_i)")
        mu = _as_tensor(slab_mean, "slab_mean", W)
        _check_shape(mu, "slab_mean", (n,), "n_hidden = weight.shape[1]")
        lam = _as_tensor(visible_precision, "visible_precision", W)
        _check_shape(lam, "visible_precision", (d,), "n_visible = weight.shape[0]")
        _check_positive(lam, "visible_precision", "positive (the diagonal of Lambda)")
        phi = _as_tensor(phi, "phi", W)
        _check_shape(phi, "phi", (d, n), "(n_visible, n_hidden), like weight")
        if not bool((phi.detach() >= 0).all()):
            raise ValueError(
                "phi must be non-negative (the diagonals of Phi_i). Got min "
                f"{float(phi.detach().min()):.4g} instead."
            )
        a = torch.zeros(d, dtype=W.dtype, device=W.device) if visible_bias is None else (
            _as_tensor(visible_bias, "visible_bias", W))
        _check_shape(a, "visible_bias", (d,), "n_visible")
        self.weight, self.spike_bias, self.slab_precision, self.slab_mean = W, b, alpha, mu
        self.visible_precision, self.phi, self.visible_bias = lam, phi, a
        self._enum_units = n
        self._finish_init(d, normalizer, mcmc_steps, mcmc_init, validate_args, kernel)
        if self._validate_args:
            self._check_normalizable()

    def _check_normalizable(self):
        """The necessary conditions: :math:`P_h \\succ 0` for each single spike and all."""
        n = self._enum_units
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        states = torch.cat([eye, torch.ones(1, n, dtype=self.dtype, device=self.device)])
        prec, _, _ = self._state_quadratic(states)
        _, info = torch.linalg.cholesky_ex(prec.detach())
        if bool((info != 0).any()):
            bad = int(torch.nonzero(info)[0, 0])
            which = f"spike {bad} alone" if bad < n else "all spikes on"
            raise ValueError(
                "the ssRBM parameters must give a positive definite precision of x for every "
                "spike state (Lambda + sum_i h_i (Phi_i - W_i W_i^T / alpha_i), book eq. 20.53). "
                f"Got a precision that is not positive definite with {which} instead: increase "
                "visible_precision or phi, or shrink weight."
            )

    def energy(self, x, s, h):
        r"""Joint energy :math:`E(x, s, h)` (eqs. 20.50-20.51)."""
        alpha, mu = self.slab_precision, self.slab_mean
        w = x @ self.weight
        quad = (x**2 * self.visible_precision).sum(-1) + (h * ((x**2) @ self.phi)).sum(-1)
        return (
            -(w * s * h).sum(-1)
            + 0.5 * quad
            + 0.5 * (alpha * s**2).sum(-1)
            - (alpha * mu * s * h).sum(-1)
            - (self.spike_bias * h).sum(-1)
            + (alpha * mu**2 * h).sum(-1)
            - (x * self.visible_bias).sum(-1)
        )

    def spike_logits(self, x):
        r""":math:`u_i(x)`, the logit of :math:`P(h_i = 1 \mid x)`, shape ``(..., N)``."""
        x = x.to(self.dtype)
        alpha, mu = self.slab_precision, self.slab_mean
        w = x @ self.weight
        return (self.spike_bias - 0.5 * alpha * mu**2 + mu * w + w**2 / (2 * alpha)
                - 0.5 * (x**2) @ self.phi)

    def free_energy(self, x):
        r""":math:`F(x)`, slabs integrated and spikes summed out, shape ``x.shape[:-1]``."""
        x = x.to(self.dtype)
        return (
            0.5 * (x**2 * self.visible_precision).sum(-1)
            - (x * self.visible_bias).sum(-1)
            - F.softplus(self.spike_logits(x)).sum(-1)
            - 0.5 * torch.log(2 * math.pi / self.slab_precision).sum()
        )

    def hidden_given_visible(self, x):
        r""":math:`P(h \mid x) = \prod_i\operatorname{Bernoulli}(\sigma(u_i(x)))`."""
        return dist.Bernoulli(logits=self.spike_logits(x)).to_event(1)

    def slab_given(self, x, h):
        r""":math:`p(s \mid x, h) = \prod_i \mathcal N(h_i(\mu_i + w_i/\alpha_i),
        \alpha_i^{-1})`."""
        x = x.to(self.dtype)
        alpha = self.slab_precision
        loc = h * (self.slab_mean + (x @ self.weight) / alpha)
        return dist.Normal(loc, alpha.rsqrt().expand(loc.shape)).to_event(1)

    def visible_given(self, s, h):
        r""":math:`p(x \mid s, h) = \mathcal N(C(a + \sum_i W_{:,i}s_ih_i), C)`, diagonal
        :math:`C^{-1} = \Lambda + \sum_i\Phi_i h_i`."""
        prec = self.visible_precision + h @ self.phi.T
        mean = (self.visible_bias + (s * h) @ self.weight.T) / prec
        return dist.Normal(mean, prec.rsqrt()).to_event(1)

    def _state_quadratic(self, states):
        W, alpha = self.weight, self.slab_precision
        h = states
        m_phi = torch.diag_embed(self.visible_precision + h @ self.phi.T)
        prec = m_phi - (W * (h / alpha).unsqueeze(-2)) @ W.T
        lin = self.visible_bias + (h * self.slab_mean) @ W.T
        const = (h @ (self.spike_bias - alpha * self.slab_mean**2)
                 + 0.5 * torch.log(2 * math.pi / alpha).sum())
        # the slab integral of the h_i = 1 term also contributes (alpha mu)^2 / (2 alpha)
        const = const + h @ (0.5 * alpha * self.slab_mean**2)
        return prec, lin, const

    def annealing_path(self, base=None, data=None):
        r""":class:`SpikeSlabRBMPath` (``base`` and ``data`` are not used)."""
        return SpikeSlabRBMPath(self.weight.detach(), self.spike_bias.detach(),
                                self.slab_precision.detach(), self.slab_mean.detach(),
                                self.visible_precision.detach(), self.phi.detach(),
                                self.visible_bias.detach())


class SpikeSlabRBMPath:
    r"""AIS path of the ssRBM (``AnnealingPath`` protocol).

    :math:`E_\beta = \tfrac12 x^\top\Lambda x + \tfrac12\sum_i\alpha_i s_i^2 + \beta E'(x,s,h)`
    with :math:`E'` every other term, so with :math:`w_i = x^\top W_{:,i}`

    .. math::

        \log f_\beta(x) = -\tfrac12 x^\top\Lambda x + \beta a^\top x + \sum_i\Big[
        \operatorname{softplus}\Big(\beta(b_i - \alpha_i\mu_i^2 - \tfrac12 x^\top\Phi_i x)
        + \beta^2\frac{(\alpha_i\mu_i + w_i)^2}{2\alpha_i}\Big) + \tfrac12\log
        \frac{2\pi}{\alpha_i}\Big],

    :math:`\log Z_0 = \sum_d\tfrac12\log\frac{2\pi}{\lambda_d} + \sum_i\tfrac12\log
    \frac{2\pi}{\alpha_i} + N\log 2`. Each :math:`f_\beta` is normalizable when the target is
    (its precision given :math:`h` is :math:`(1-\beta)\Lambda + \beta(\Lambda + \sum_i h_i
    (\Phi_i - \beta W_{:,i}W_{:,i}^\top/\alpha_i))`). Moves: block Gibbs
    :math:`h \mid x`, then slabs and :math:`x` (diagonal Gaussian), or HMC. The latent state
    is ``cat([h, s], -1)``.
    """

    def __init__(self, weight, spike_bias, slab_precision, slab_mean, visible_precision, phi,
                 visible_bias):
        self.W, self.b, self.alpha, self.mu = weight, spike_bias, slab_precision, slab_mean
        self.lam, self.phi, self.a = visible_precision, phi, visible_bias
        n = weight.shape[1]
        self.base_scale = visible_precision.rsqrt()
        self._slab_const = 0.5 * torch.log(2 * math.pi / slab_precision).sum()
        self.log_z0 = (0.5 * torch.log(2 * math.pi / visible_precision).sum() + self._slab_const
                       + n * math.log(2.0))

    def init(self, num_chains, generator=None):
        d = self.W.shape[0]
        z = _normal_(torch.empty(num_chains, d, dtype=self.W.dtype), generator)
        return z * self.base_scale

    def _logits(self, x, beta):
        w = x @ self.W
        return (beta * (self.b - self.alpha * self.mu**2 - 0.5 * (x**2) @ self.phi)
                + beta**2 * (self.alpha * self.mu + w) ** 2 / (2 * self.alpha))

    def log_density(self, x, beta):
        beta = float(beta)
        return (
            -0.5 * (x**2 * self.lam).sum(-1)
            + beta * (x * self.a).sum(-1)
            + F.softplus(self._logits(x, beta)).sum(-1)
            + self._slab_const
        )

    def sample_latent(self, x, beta, generator=None):
        beta = float(beta)
        h = _bernoulli_draw(torch.sigmoid(self._logits(x, beta)), generator)
        loc = beta * h * (self.mu + (x @ self.W) / self.alpha)
        s = loc + _normal_(torch.empty_like(loc), generator) * self.alpha.rsqrt()
        return torch.cat([h, s], -1)

    def sample_given_latent(self, z, beta, generator=None):
        beta = float(beta)
        n = self.W.shape[1]
        h, s = z[..., :n], z[..., n:]
        prec = self.lam + beta * h @ self.phi.T
        mean = beta * (self.a + (s * h) @ self.W.T) / prec
        return mean + _normal_(torch.empty_like(mean), generator) * prec.rsqrt()
