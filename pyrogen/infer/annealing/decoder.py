r"""AIS from prior to posterior for decoder models: log p(x) per example, and BDMC.

For a Pyro model with continuous latent variables :math:`z` and observed data :math:`x`,
:math:`p(x, z) = p(z)\,p(x \mid z)` per example, Wu, Burda, Salakhutdinov & Grosse (2017) [1]
anneal from the prior to the posterior along

.. math::

    f_\beta(z) = p(z)\, p(x \mid z)^{\beta}, \qquad f_0 = p(z) \ (Z_0 = 1), \qquad
    f_1 = p(x, z) \ (Z_1 = p(x)),

one path per data row, vectorized over rows and chains, with HMC transitions
(:mod:`pyrogen.infer.annealing.hmc`). The AIS weight of a chain,
:math:`w = \prod_k p(x\mid z_{k-1})^{\beta_k - \beta_{k-1}}`, has :math:`\mathbb E[w] = Z_1/Z_0
= p(x)`: the mean of :math:`M` weights is an **unbiased estimate of p(x)** and its log a
stochastic **lower** bound on :math:`\log p(x)` (Jensen), like importance sampling with the
annealing chain as proposal. This is the opposite side from AIS for an energy-based model,
where AIS estimates the normalizer :math:`Z` and :math:`\log p(x) = -F(x) - \log\hat Z` is a
stochastic *upper* bound (:math:`\log\hat Z` is biased low and enters with a minus sign).

**Bidirectional Monte Carlo** (Grosse, Ghahramani & Adams 2015 [2]): on data *simulated from
the model*, :math:`(x, z) \sim p(x, z)`, the latent :math:`z` that generated :math:`x` is an
exact draw from the posterior :math:`p(z\mid x) = f_1/Z_1`. Reverse AIS started there (from
:math:`\beta=1` down to 0) has weights with :math:`\mathbb E[w_{rev}] = Z_0/Z_1 = 1/p(x)`, so
:math:`-\log \overline{w_{rev}}` is a stochastic **upper** bound on :math:`\log p(x)`. The
forward and reverse estimates bracket :math:`\log p(x)`; their gap bounds the error of either
on such data, and measures whether the annealing schedule is long enough.

The path is built by tracing the Pyro model (``poutine.trace`` / ``poutine.condition``): every
latent site must be continuous; constrained latents are annealed in the unconstrained space
:math:`u = T^{-1}(z)`, :math:`T` = ``biject_to(support)``, with the prior density
:math:`p(T(u))\,|\det J_T(u)|`. Every sample site must lie inside the vectorized plate over
examples (``plate_name``, the outermost plate of the model, not subsampled) so the densities
factor over rows; the chains are one more plate to the left.

Latent sites whose prior depends on the observed values themselves (rather than on other
arguments) are not supported: the base draws run the model forward and must be draws from
:math:`p(z)`.

References
----------
1. Y. Wu, Y. Burda, R. Salakhutdinov and R. Grosse. On the quantitative analysis of
   decoder-based generative models. *ICLR* 2017.
2. R. B. Grosse, Z. Ghahramani and R. P. Adams. Sandwiching the marginal likelihood using
   bidirectional Monte Carlo. arXiv:1511.02543, 2015.
3. R. M. Neal. Annealed importance sampling. *Statistics and Computing* 11:125-139, 2001.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import sum_rightmost
from pyro.poutine.util import site_is_subsample
from pyro.util import get_rng_state, set_rng_state
from torch.distributions import biject_to

from ..._random import ChainRNG
from ..._validation import check_int
from ...evaluation import LogLikelihood, log_mean_exp
from .hmc import HMC, MALA

__all__ = ["PriorPosteriorPath", "ais_log_likelihood", "bdmc", "BDMCResult"]

_CHAINS = "_pyrogen_chains"
_KERNELS = {"hmc": HMC, "mala": MALA}


def _seed_from(generator) -> int:
    """A seed for Pyro's global RNG drawn from ``generator`` (None: from the global RNG)."""
    if isinstance(generator, ChainRNG):
        return int(torch.randint(2**62, (1,), generator=generator.generator(7)).item())
    return int(torch.randint(2**62, (1,), generator=generator).item())


class _Site(NamedTuple):
    name: str
    shape: tuple  # per example, in the unconstrained space
    size: int
    transform: object


class PriorPosteriorPath:
    r"""The path :math:`f_\beta(z) = p(z)\,p(x\mid z)^\beta` of a Pyro model, one per data row.

    Parameters
    ----------
    model : callable
        A Pyro model whose latent sites are continuous and whose observed sites (``obs=...``)
        hold the data, all inside ``pyro.plate(plate_name, n)`` (vectorized, not subsampled,
        the outermost plate).
    x : torch.Tensor, shape ``(n, ...)``
        The data (first argument of ``model``); any further ``*args, **kwargs`` are passed on.
    plate_name : str
        Name of the plate over examples.

    Attributes
    ----------
    log_z0 : torch.Tensor, shape ``(n,)``
        Zeros (float64): the prior is normalized.
    event_shape : torch.Size
        ``(D,)``: all latent sites of one example, unconstrained and flattened.
    sites : list
        The latent sites (name, per-example unconstrained shape, size, transform), in trace
        order.

    Notes
    -----
    Particles have shape ``(num_chains, n, D)`` in the model's dtype. Cost of
    ``log_density``: one run of the model under ``poutine.condition`` on
    ``num_chains * n`` rows (for a VAE, one decoder pass); its gradient (HMC) doubles it.
    """

    def __init__(self, model: Callable, x: torch.Tensor, *args, plate_name: str = "data",
                 **kwargs):
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model. Got {type(model).__name__}.")
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] < 1:
            raise TypeError(
                "x must be a torch.Tensor of shape (n, ...) with n >= 1. Got "
                f"{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))} instead."
            )
        self.model = model
        self.x = x
        self.args = args
        self.kwargs = kwargs
        self.plate_name = plate_name
        self.n = x.shape[0]
        self._inspect()
        self.log_z0 = torch.zeros(self.n, dtype=torch.float64, device=x.device)
        self.batch_shape = torch.Size([self.n])
        self.event_shape = torch.Size([sum(s.size for s in self.sites)])

    # -- discovering the model's structure -----------------------------------------------------
    def _inspect(self):
        rng = get_rng_state()
        try:
            with torch.no_grad(), poutine.block():
                tr = poutine.trace(self.model).get_trace(self.x, *self.args, **self.kwargs)
        finally:
            set_rng_state(rng)
        depth = 0
        sites, observed = [], []
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            frames = [f for f in site["cond_indep_stack"] if f.vectorized]
            if frames:
                depth = max(depth, *(-f.dim for f in frames))
            data = [f for f in frames if f.name == self.plate_name]
            if not data:
                raise ValueError(
                    f"site {name!r} is outside the plate {self.plate_name!r}: the prior->"
                    "posterior path needs every sample site inside the vectorized plate over "
                    f"examples. Got plates {[f.name for f in site['cond_indep_stack']]} instead."
                )
            frame = data[0]
            if frame.full_size is not None and frame.full_size != frame.size:
                raise ValueError(
                    f"the plate {self.plate_name!r} is subsampled ({frame.size} of "
                    f"{frame.full_size}); pass the rows to evaluate as x instead."
                )
            if site["is_observed"]:
                observed.append(name)
                continue
            fn = site["fn"]
            if fn.support.is_discrete:
                raise ValueError(
                    f"latent site {name!r} is discrete (support {fn.support}); the prior->"
                    "posterior path anneals continuous latents with HMC/MALA. Enumerate or "
                    "marginalize discrete latents in the model, or use importance sampling."
                )
            sites.append((name, fn, site["value"], frame.dim))
        if not observed:
            raise ValueError(
                "model has no observed site (obs=...): there is no p(x | z) to anneal."
            )
        if not sites:
            raise ValueError(
                "model has no latent sample site: log p(x) is exact, nothing to anneal."
            )
        for name, _, _, dim in sites:
            if dim != -depth:
                raise ValueError(
                    f"the plate {self.plate_name!r} must be the outermost plate (dim "
                    f"{-depth}) of site {name!r}. Got dim {dim} instead."
                )
        self.max_plate_nesting = depth
        self.observed = observed
        self.sites = []
        for name, fn, value, _ in sites:
            t = biject_to(fn.support)
            u = t.inv(value)
            if u.shape[0] != self.n:
                raise ValueError(
                    f"latent site {name!r} must have the examples as its first dimension "
                    f"(size {self.n}). Got value shape {tuple(value.shape)} instead."
                )
            shape = tuple(u.shape[1:])
            self.sites.append(_Site(name, shape, math.prod(shape), t))

    # -- running the model ---------------------------------------------------------------------
    def _chains_plate(self, num_chains):
        return pyro.plate(_CHAINS, num_chains, dim=-(self.max_plate_nesting + 1))

    def _reduce(self, lp: torch.Tensor, num_chains: int) -> torch.Tensor:
        """Per-(chain, example) sum of a site's log-prob (right-aligned plate dims)."""
        nd = self.max_plate_nesting + 1
        if not torch.is_tensor(lp):
            lp = torch.as_tensor(lp)
        lp = lp.reshape((1,) * max(0, nd - lp.dim()) + tuple(lp.shape))
        if lp.dim() > nd:
            lp = sum_rightmost(lp, lp.dim() - nd)
        if nd > 2:
            lp = lp.sum(dim=tuple(range(2, nd)))
        return lp.expand(num_chains, self.n)

    def _unpack(self, z: torch.Tensor):
        m = z.shape[0]
        out, start = {}, 0
        for s in self.sites:
            out[s.name] = z[..., start : start + s.size].reshape(m, self.n, *s.shape)
            start += s.size
        return out

    def _pack(self, values: dict, num_chains: int) -> torch.Tensor:
        parts = []
        for s in self.sites:
            u = s.transform.inv(values[s.name])
            u = u.expand(num_chains, self.n, *s.shape)
            parts.append(u.reshape(num_chains, self.n, s.size))
        return torch.cat(parts, dim=-1)

    def log_prior_and_likelihood(self, z: torch.Tensor):
        r""":math:`\log p(T(u)) + \log|\det J_T(u)|` and :math:`\log p(x\mid T(u))` per chain
        and example, each of shape ``(num_chains, n)`` (differentiable in ``z``)."""
        if z.dim() != 3 or tuple(z.shape[1:]) != (self.n, self.event_shape[0]):
            raise ValueError(
                f"z must have shape (num_chains, {self.n}, {self.event_shape[0]}). Got shape "
                f"{tuple(z.shape)} instead."
            )
        m = z.shape[0]
        us = self._unpack(z)
        values, log_jac = {}, 0.0
        for s in self.sites:
            u = us[s.name]
            v = s.transform(u)
            values[s.name] = v
            ladj = s.transform.log_abs_det_jacobian(u, v)
            log_jac = log_jac + self._reduce(ladj, m)
        cond = poutine.condition(self.model, data=values)
        with poutine.block(), self._chains_plate(m):
            tr = poutine.trace(cond).get_trace(self.x, *self.args, **self.kwargs)
        tr.compute_log_prob()
        latent = {s.name for s in self.sites}
        log_prior, log_lik = log_jac, 0.0
        for name in latent:
            log_prior = log_prior + self._reduce(tr.nodes[name]["log_prob"], m)
        for name in self.observed:
            log_lik = log_lik + self._reduce(tr.nodes[name]["log_prob"], m)
        return log_prior, log_lik

    # -- the path protocol ---------------------------------------------------------------------
    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the prior (the model run forward), ``(num_chains, n, D)``.

        Pyro's global RNG is seeded from ``generator`` for the draw and restored after."""
        num_chains = check_int(num_chains, "num_chains", low=1)
        rng = get_rng_state()
        try:
            if generator is not None:
                pyro.set_rng_seed(_seed_from(generator) % (2**32))
            with torch.no_grad(), poutine.block(), self._chains_plate(num_chains):
                tr = poutine.trace(self.model).get_trace(self.x, *self.args, **self.kwargs)
        finally:
            if generator is not None:
                set_rng_state(rng)
        return self._pack({s.name: tr.nodes[s.name]["value"] for s in self.sites}, num_chains)

    def log_density(self, z: torch.Tensor, beta: float) -> torch.Tensor:
        r""":math:`\log p(z) + \beta \log p(x\mid z)`, shape ``(num_chains, n)``."""
        log_prior, log_lik = self.log_prior_and_likelihood(z)
        return log_prior + beta * log_lik

    def log_density_fn(self, z: torch.Tensor):
        r""":math:`\beta \mapsto \log f_\beta(z)`, one model run for every :math:`\beta`."""
        with torch.no_grad():
            log_prior, log_lik = self.log_prior_and_likelihood(z)
        return lambda beta: log_prior + beta * log_lik

    def default_kernel(self) -> HMC:
        """HMC with 10 leapfrog steps, step size adapted toward acceptance 0.65."""
        return HMC(self)

    def simulate(self, generator=None):
        r"""Draw :math:`(x, z) \sim p(x, z)` with the shapes of this path's data.

        Returns ``(x_sim, z)``: simulated data (the observed site's value, shape of ``x``)
        and the latents that generated it, packed unconstrained, shape ``(1, n, D)`` — an
        exact draw from the posterior given ``x_sim`` (what BDMC's reverse run starts from).
        Only one observed site is supported (it must be the model's first argument).
        """
        if len(self.observed) != 1:
            raise ValueError(
                "simulate needs exactly one observed site (the data x). Got "
                f"{self.observed} instead."
            )
        rng = get_rng_state()
        try:
            if generator is not None:
                pyro.set_rng_seed(_seed_from(generator) % (2**32))
            with torch.no_grad(), poutine.block():
                tr = poutine.trace(poutine.uncondition(self.model)).get_trace(
                    self.x, *self.args, **self.kwargs
                )
        finally:
            if generator is not None:
                set_rng_state(rng)
        x_sim = tr.nodes[self.observed[0]]["value"].detach()
        if x_sim.shape != self.x.shape:
            raise ValueError(
                f"the simulated data has shape {tuple(x_sim.shape)}, not that of x "
                f"{tuple(self.x.shape)}; simulate needs x to be the observed site's value."
            )
        z = self._pack({s.name: tr.nodes[s.name]["value"].unsqueeze(0) for s in self.sites}, 1)
        return x_sim, z

    def with_data(self, x: torch.Tensor) -> PriorPosteriorPath:
        """The same model's path for other data rows."""
        return PriorPosteriorPath(self.model, x, *self.args, plate_name=self.plate_name,
                                  **self.kwargs)

    def __repr__(self) -> str:
        return (
            f"PriorPosteriorPath(n={self.n}, latent_dim={self.event_shape[0]}, "
            f"sites={[s.name for s in self.sites]})"
        )


# --------------------------------------------------------------------------------------------
# The reversed path (BDMC's reverse run is forward AIS on it: one loop)
# --------------------------------------------------------------------------------------------
class _ReversedPath:
    r""":math:`f'_t = f_{1-t}` started from given exact draws of :math:`f_1/Z_1`.

    Forward AIS on it is reverse AIS on ``path``: its weights
    :math:`\prod_k f_{\beta_{k-1}}(z_{k-1})/f_{\beta_k}(z_{k-1})` have mean :math:`Z_0/Z_1`.
    ``log_z0`` is set to 0, so the AIS "log Z" it returns estimates :math:`\log(Z_0/Z_1)`.
    """

    def __init__(self, path: PriorPosteriorPath, z: torch.Tensor):
        self.path = path
        self.z = z
        self.log_z0 = torch.zeros_like(path.log_z0)

    def init(self, num_chains, generator=None):
        return self.z.expand(num_chains, *self.z.shape[1:]).clone()

    def log_density(self, z, t):
        return self.path.log_density(z, 1.0 - t)

    def log_density_fn(self, z):
        fn = self.path.log_density_fn(z)
        return lambda t: fn(1.0 - t)


# --------------------------------------------------------------------------------------------
# Public estimators
# --------------------------------------------------------------------------------------------
#: Default number of inverse temperatures of :func:`ais_log_likelihood` and :func:`bdmc`
#: (sigmoid schedule). See ``docs/models/ais.rst`` for the measurements behind it.
DEFAULT_DECODER_NUM_BETAS = 1000


def _betas(betas):
    from .schedules import check_betas, schedule

    if betas is None:
        betas = DEFAULT_DECODER_NUM_BETAS
    if isinstance(betas, int) and not isinstance(betas, bool):
        return schedule(check_int(betas, "betas", low=2), "sigmoid").tolist()
    return check_betas(betas)


def _make_kernel(kernel, path, step_size, num_leapfrog, target_accept, adapt):
    if isinstance(kernel, str):
        if kernel not in _KERNELS:
            raise ValueError(
                f"kernel must be one of {tuple(_KERNELS)} or a Kernel. Got {kernel!r} instead."
            )
        if kernel == "hmc":
            return HMC(path, step_size, num_leapfrog, target_accept=target_accept, adapt=adapt)
        return MALA(path, step_size, target_accept=target_accept, adapt=adapt)
    if callable(kernel):
        return kernel(path)
    raise TypeError(
        "kernel must be 'hmc', 'mala' or a callable path -> Kernel. Got "
        f"{type(kernel).__name__} instead."
    )


def _run(path, betas, num_chains, kernel, seed):
    from .loop import ais

    with torch.no_grad():  # the increments need no graph; the kernel enables grad for its own
        return ais(path, betas, num_chains, kernel=kernel, seed=seed, warn=False)


def _seeds(seed, num_batches):
    from ..._random import derived_seed

    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    seed = check_int(seed, "seed", low=0)
    return [derived_seed(seed, 14, i) for i in range(num_batches)], seed


def ais_log_likelihood(
    model: Callable,
    x: torch.Tensor,
    *args,
    num_chains: int = 16,
    betas=None,
    kernel="hmc",
    step_size: float = 0.1,
    num_leapfrog: int = 10,
    target_accept: float | None = None,
    adapt: bool = True,
    batch_size: int | None = None,
    seed: int | None = None,
    plate_name: str = "data",
    **kwargs,
) -> LogLikelihood:
    r"""Per-example :math:`\log p(x)` of a Pyro model with continuous latents, by AIS with HMC.

    Anneals from the prior to the posterior of each example along
    :math:`f_\beta(z) = p(z)\,p(x\mid z)^\beta` (Wu et al. 2017 [1]; see
    :mod:`pyrogen.infer.annealing.decoder`), ``num_chains`` chains per example, and returns

    .. math::

        \log\hat p(x) = \log\frac1M\sum_{m=1}^M w_m, \qquad \mathbb E[w_m] = p(x).

    **Which side it bounds.** :math:`\hat p(x)` is unbiased for :math:`p(x)`, so its log is a
    stochastic **lower** bound on :math:`\log p(x)` (kind ``"ais_marginal"``), like an
    importance-sampling estimate, and usually a much tighter one: the annealing chain is a
    better proposal than an encoder. For energy-based models AIS estimates the normalizer
    :math:`Z` instead, and :math:`-F(x) - \log\hat Z` is a stochastic *upper* bound (kind
    ``"ais_estimate"``). Check the estimate with :func:`bdmc` on simulated data.

    Parameters
    ----------
    model : callable
        A Pyro model ``model(x, *args, **kwargs)`` (e.g. ``VAE.model``) whose latents are
        continuous and whose sites all lie in the plate ``plate_name`` over the rows of ``x``.
    x : torch.Tensor, shape ``(n, ...)``
        The examples.
    num_chains : int
        AIS chains :math:`M` per example.
    betas : int or 1-D tensor, optional
        Number of temperatures (sigmoid schedule, dense at both ends) or the schedule itself;
        default :data:`DEFAULT_DECODER_NUM_BETAS`.
    kernel : {"hmc", "mala"} or callable
        Transition kernel: HMC (``num_leapfrog`` steps) or MALA, or ``path -> Kernel``.
    step_size, num_leapfrog, target_accept, adapt
        Of the kernel (:class:`~pyrogen.infer.annealing.hmc.HMC`): initial step size (adapted
        per example toward ``target_accept`` when ``adapt``).
    batch_size : int, optional
        Examples annealed together (memory :math:`\propto` ``num_chains * batch_size``);
        default all.
    seed : int, optional
        Seed of the run (each batch of examples gets its own chain-block random numbers);
        default drawn from the global torch RNG.
    plate_name : str
        Name of the plate over examples in ``model``.

    Returns
    -------
    LogLikelihood
        ``values`` shape ``(n,)`` (float64), kind ``"ais_marginal"``, per-example delta-method
        ``stderr``; ``info`` holds ``num_chains``, ``num_betas``, ``kernel``, ``min_ess``,
        ``seconds``, ``seed`` and per-example ``ess`` (a tensor).

    Notes
    -----
    Cost: ``(num_betas - 1) * (num_leapfrog + 1)`` gradient evaluations of
    :math:`\log p(z) + \beta\log p(x\mid z)` plus two forward evaluations per temperature, on
    ``num_chains * batch_size`` rows (a VAE: one decoder pass each, backward included). With
    step-size adaptation the estimate is unbiased for :math:`p(x)` only up to an
    :math:`O(1/M)` effect of the adaptation (see :mod:`pyrogen.infer.annealing.hmc`); pass
    ``adapt=False`` with a fixed ``step_size`` for the exact property.

    References
    ----------
    1. Y. Wu, Y. Burda, R. Salakhutdinov and R. Grosse. On the quantitative analysis of
       decoder-based generative models. *ICLR* 2017.
    """
    num_chains = check_int(num_chains, "num_chains", low=1)
    beta_list = _betas(betas)
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[0] < 1:
        raise TypeError(
            "x must be a torch.Tensor of shape (n, ...) with n >= 1. Got "
            f"{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))} instead."
        )
    n = x.shape[0]
    batch_size = n if batch_size is None else check_int(batch_size, "batch_size", low=1)
    starts = list(range(0, n, batch_size))
    seeds, seed = _seeds(seed, len(starts))
    t0 = time.perf_counter()
    values, stderrs, esses = [], [], []
    name = kernel if isinstance(kernel, str) else getattr(kernel, "__name__", "custom")
    for start, s in zip(starts, seeds):
        path = PriorPosteriorPath(model, x[start : start + batch_size], *args,
                                  plate_name=plate_name, **kwargs)
        kern = _make_kernel(kernel, path, step_size, num_leapfrog, target_accept, adapt)
        res = _run(path, beta_list, num_chains, kern, s)
        stats = log_mean_exp(res.log_weights.double(), dim=0)
        values.append(stats.value)
        stderrs.append(stats.stderr)
        esses.append(stats.ess)
    ess = torch.cat(esses)
    return LogLikelihood(
        values=torch.cat(values),
        kind="ais_marginal",
        stderr=torch.cat(stderrs),
        info={
            "num_chains": num_chains,
            "num_betas": len(beta_list),
            "kernel": name,
            "min_ess": float(ess.min()),
            "ess": ess,
            "seconds": time.perf_counter() - t0,
            "seed": seed,
        },
    )


class BDMCResult(NamedTuple):
    """Result of :func:`bdmc`: both sides of :math:`\\log p(x)` on simulated data."""

    lower: LogLikelihood
    upper: LogLikelihood
    data: torch.Tensor
    latents: torch.Tensor

    @property
    def gap(self) -> torch.Tensor:
        """Per-example ``upper - lower`` (nats): bounds the error of either estimate, in
        expectation, on these simulated examples."""
        return self.upper.values - self.lower.values

    def __str__(self) -> str:
        return (
            f"BDMC on {len(self.lower)} simulated examples: lower {self.lower.mean():.3f}, "
            f"upper {self.upper.mean():.3f}, gap {float(self.gap.mean()):.3f} nats/example"
        )


def bdmc(
    model: Callable,
    x: torch.Tensor,
    *args,
    num_chains: int = 16,
    betas=None,
    kernel="hmc",
    step_size: float = 0.1,
    num_leapfrog: int = 10,
    target_accept: float | None = None,
    adapt: bool = True,
    batch_size: int | None = None,
    seed: int | None = None,
    plate_name: str = "data",
    **kwargs,
) -> BDMCResult:
    r"""Bidirectional Monte Carlo: sandwich :math:`\log p(x)` on data simulated from the model.

    Grosse, Ghahramani & Adams (2015) [1], as used for decoder models by Wu et al. (2017)
    [2]. For each row of ``x`` (used only for its shape and the model's other arguments) one
    pair :math:`(\tilde x, \tilde z) \sim p(x, z)` is simulated. Then

    * forward AIS (prior :math:`\to` posterior, :func:`ais_log_likelihood`) on :math:`\tilde
      x` gives :math:`\log\hat p(\tilde x)`, a stochastic **lower** bound;
    * reverse AIS (posterior :math:`\to` prior) started at :math:`\tilde z`, an *exact*
      posterior draw, has weights with :math:`\mathbb E[w_{rev}] = 1/p(\tilde x)`, so
      :math:`-\log\frac1M\sum_m w_{rev,m}` is a stochastic **upper** bound.

    The true :math:`\log p(\tilde x)` lies between them in expectation; the gap bounds the
    error of the forward estimate on data like these, and shrinks as the schedule grows.
    Arguments are those of :func:`ais_log_likelihood` (the same kernel settings and schedule
    serve both directions; the reverse run visits the temperatures in reverse order).

    Returns
    -------
    BDMCResult
        ``lower`` (kind ``"ais_marginal"``), ``upper`` (kind ``"reverse_ais_upper"``), the
        simulated ``data`` (shape of ``x``) and ``latents`` (unconstrained, packed, shape
        ``(1, n, D)``), and ``gap``.

    References
    ----------
    1. R. B. Grosse, Z. Ghahramani and R. P. Adams. Sandwiching the marginal likelihood
       using bidirectional Monte Carlo. arXiv:1511.02543, 2015.
    2. Y. Wu, Y. Burda, R. Salakhutdinov and R. Grosse. On the quantitative analysis of
       decoder-based generative models. *ICLR* 2017.
    """
    num_chains = check_int(num_chains, "num_chains", low=1)
    beta_list = _betas(betas)
    n = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() >= 1 else 0
    if n < 1:
        raise TypeError(
            "x must be a torch.Tensor of shape (n, ...) with n >= 1 (its shape sets the "
            f"simulated data). Got {type(x).__name__} instead."
        )
    batch_size = n if batch_size is None else check_int(batch_size, "batch_size", low=1)
    starts = list(range(0, n, batch_size))
    seeds, seed = _seeds(seed, len(starts))
    rev_betas = [1.0 - b for b in reversed(beta_list)]
    t0 = time.perf_counter()
    lo, lo_se, up, up_se, xs, zs, ess_lo, ess_up = [], [], [], [], [], [], [], []
    for start, s in zip(starts, seeds):
        template = PriorPosteriorPath(model, x[start : start + batch_size], *args,
                                      plate_name=plate_name, **kwargs)
        g = torch.Generator().manual_seed(s)
        x_sim, z = template.simulate(g)
        path = template.with_data(x_sim)
        kern = _make_kernel(kernel, path, step_size, num_leapfrog, target_accept, adapt)
        fwd = log_mean_exp(_run(path, beta_list, num_chains, kern, s).log_weights.double(), 0)
        rpath = _ReversedPath(path, z)
        rkern = _make_kernel(kernel, rpath, step_size, num_leapfrog, target_accept, adapt)
        rev = log_mean_exp(_run(rpath, rev_betas, num_chains, rkern, s + 1).log_weights.double(),
                           0)
        lo.append(fwd.value)
        lo_se.append(fwd.stderr)
        ess_lo.append(fwd.ess)
        up.append(-rev.value)
        up_se.append(rev.stderr)
        ess_up.append(rev.ess)
        xs.append(x_sim)
        zs.append(z)
    info = {"num_chains": num_chains, "num_betas": len(beta_list), "seed": seed,
            "seconds": time.perf_counter() - t0, "simulated": True}
    lower = LogLikelihood(torch.cat(lo), "ais_marginal", torch.cat(lo_se),
                          info={**info, "ess": torch.cat(ess_lo)})
    upper = LogLikelihood(torch.cat(up), "reverse_ais_upper", torch.cat(up_se),
                          info={**info, "ess": torch.cat(ess_up)})
    return BDMCResult(lower, upper, torch.cat(xs), torch.cat(zs, dim=1))
