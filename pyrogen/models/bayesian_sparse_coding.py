r"""Bayesian sparse coding (book §13.4 with a prior on the dictionary) as a Pyro model function.

:class:`pyrogen.models.SparseCoding` puts a Laplace prior on the code :math:`h` and
point-estimates the dictionary :math:`W` (unit-norm columns). The Bayesian version integrates over
:math:`W`, the noise and the offset as well:

.. math::

    W_{dk} \sim \mathcal N(0, s_W^2), \qquad
    \sigma^2 \sim \mathrm{InverseGamma}(1, 0.1), \qquad
    b_d \sim \mathcal N(0, s_b^2),

    h_{jk} \sim \operatorname{Laplace}(0, 2/\lambda), \qquad
    x_j \mid h_j \sim \mathcal N(W h_j + b, (\sigma^2 + \epsilon) I).

Choice of priors (documented, not learnt):

* **Dictionary.** Independent Normal entries with :math:`s_W = D^{-1/2}`, so that
  :math:`E\lVert W_{:,k}\rVert^2 = 1`: the unit-norm constraint of the point-estimated model
  becomes a soft prior scale. A hard constraint (columns on the sphere) would make the posterior
  live on a product of spheres, which NUTS cannot sample in Euclidean coordinates; the scale
  ambiguity :math:`W \to cW, h \to h/c` that the constraint removes in MAP estimation is removed
  here by the two proper priors.
* **Noise.** One variance :math:`\sigma^2` (the point-estimated model's :math:`1/\beta`), with the
  inverse-gamma prior that :class:`pyrogen.models.BayesianPPCA` uses by default (its density
  vanishes at 0). ``noise_floor`` :math:`\epsilon` keeps the density bounded.
* **Code.** The Laplace prior of :class:`~pyrogen.models.SparseCoding`, rate :math:`\lambda/2`.

The posterior of :math:`(W, h)` is symmetric under signed permutations of the atoms
(:math:`W_{:,k} \to s_k W_{:,\pi(k)}` with :math:`h` permuted alike), so different chains land
in different labellings; align draws with :func:`pyrogen.numpyro.signed_permutation_align`
before computing r-hat of ``W``.

This is a Pyro **model function** (not a :class:`~pyrogen.models.base.GenerativeModel` class):
sample it with ``pyro.infer.MCMC(NUTS(bayesian_sparse_coding_model), ...)`` or with its NumPyro
twin :func:`pyrogen.numpyro.bayesian_sparse_coding` (same sites and priors), which is much
faster (the codes :math:`h` are ``n K`` latent dimensions).

Sample sites: ``W`` ``(D, K)`` (plate ``"features"``), ``loc`` ``(D,)`` (plate
``"features"``, only with ``fit_bias``), ``noise`` ``()``, ``h`` ``(n, K)`` and ``x`` ``(n, D)``
(plate ``"data"``).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from .._validation import check_choice, check_float, check_int

__all__ = ["bayesian_sparse_coding_model"]

_NOISE_PRIORS = {"inverse_gamma": (1.0, 0.1), "lognormal": (math.log(0.1), 1.5),
                 "half_cauchy": (1.0,)}


def bayesian_sparse_coding_model(x: torch.Tensor | None = None, *, n_components: int,
                                 n_features: int | None = None, num_data: int | None = None,
                                 lam: float = 1.0, w_scale: float | None = None,
                                 noise_prior: str = "inverse_gamma", noise_params=None,
                                 fit_bias: bool = True, loc_scale: float = 10.0,
                                 noise_floor: float = 1e-6):
    r"""Pyro model of Bayesian sparse coding (see the module docstring for the math).

    Parameters
    ----------
    x : Tensor, shape ``(n, D)``, optional
        Observed data; ``None`` draws ``num_data`` rows of ``n_features`` from the prior.
    n_components : int
        Number of atoms :math:`K` (overcomplete ``K > D`` allowed).
    n_features, num_data : int, optional
        Needed only when ``x`` is ``None``.
    lam : float
        :math:`\lambda > 0`, as in :class:`pyrogen.models.SparseCoding`.
    w_scale : float, optional
        :math:`s_W` (default :math:`D^{-1/2}`).
    noise_prior : {"inverse_gamma", "lognormal", "half_cauchy"}
        Prior of the noise variance :math:`\sigma^2` (defaults as in
        :class:`pyrogen.models.BayesianFactorAnalysis`).
    noise_params : tuple of float, optional
    fit_bias : bool
        Sample the offset ``loc`` (otherwise :math:`b = 0`).
    loc_scale : float
        :math:`s_b`.
    noise_floor : float
        :math:`\epsilon`.

    Returns
    -------
    Tensor
        The value of the ``x`` site.

    Cost :math:`O(n D K)` per log-density evaluation.
    """
    if x is not None:
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(
                "x must be a 2-d tensor (n, n_features). Got "
                f"{type(x).__name__} with shape {tuple(getattr(x, 'shape', ()))} instead."
            )
        n, D = x.shape
        dtype = x.dtype
    else:
        if num_data is None or n_features is None:
            raise ValueError(
                "num_data and n_features must be ints when x is None. Got "
                f"num_data={num_data!r}, n_features={n_features!r} instead."
            )
        n = check_int(num_data, "num_data", low=1)
        D = check_int(n_features, "n_features", low=1)
        dtype = torch.get_default_dtype()
    K = check_int(n_components, "n_components", low=1)
    lam = check_float(lam, "lam", 0.0, None, "oo")
    s_w = 1.0 / math.sqrt(D) if w_scale is None else check_float(w_scale, "w_scale", 0.0,
                                                                   None, "oo")
    check_choice(noise_prior, "noise_prior", tuple(_NOISE_PRIORS))
    p = _NOISE_PRIORS[noise_prior] if noise_params is None else tuple(noise_params)
    if len(p) != len(_NOISE_PRIORS[noise_prior]):
        raise ValueError(
            f"noise_params must be a tuple of {len(_NOISE_PRIORS[noise_prior])} float(s) for "
            f"noise_prior={noise_prior!r}. Got {noise_params!r} instead."
        )

    def t(v):
        return torch.as_tensor(v, dtype=dtype)

    if noise_prior == "inverse_gamma":
        noise_d = dist.InverseGamma(t(p[0]), t(p[1]))
    elif noise_prior == "lognormal":
        noise_d = dist.LogNormal(t(p[0]), t(p[1]))
    else:
        noise_d = dist.HalfCauchy(t(p[0]))
    zero = t(0.0)
    with pyro.plate("features", D, dim=-1):
        W = pyro.sample("W", dist.Normal(zero, t(s_w)).expand([D, K]).to_event(1))
        loc = pyro.sample("loc", dist.Normal(zero, t(loc_scale))) if fit_bias else zero
    noise = pyro.sample("noise", noise_d)
    with pyro.plate("data", n, dim=-1):
        h = pyro.sample("h", dist.Laplace(zero, t(2.0 / lam)).expand([K]).to_event(1))
        mean = h @ W.transpose(-1, -2) + loc
        sd = (noise + noise_floor).sqrt()
        return pyro.sample("x", dist.Normal(mean, sd.expand(mean.shape)).to_event(1), obs=x)
