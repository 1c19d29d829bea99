r"""Sigmoid belief networks, the fully visible SBN and the Helmholtz machine (book §20.10.1).

A sigmoid belief network (SBN) [1]_ is a directed graphical model over binary units arranged in
layers :math:`s^{(L)} \to \dots \to s^{(1)} \to x`. Each unit is a Bernoulli variable whose
probability is the logistic sigmoid of a weighted sum of the units of the layer above (book
eq. 20.70):

.. math::

    p(s_i = 1) = \sigma\Bigl(\sum_j W_{ji} s_j + b_i\Bigr),

with the top layer a factorial Bernoulli :math:`p(s^{(L)}_i = 1) = \sigma(b^{(L)}_i)`. Sampling is
ancestral, top-down. The log-likelihood :math:`\log p(x) = \log \sum_h p(x, h)` needs a sum over
all :math:`2^{H}` hidden configurations: pyrogen enumerates it exactly when :math:`H` is small
(``max_enumerate`` bits) and otherwise estimates it by importance sampling with the recognition
network as proposal (a stochastic lower bound, kind ``"is_estimate"``, with standard errors) via
:func:`pyrogen.infer.importance.importance_log_likelihood`.

The guide is a recognition network [2]_:

* :class:`SigmoidBeliefNet`: *mean-field* amortized guide, every hidden layer factorial given
  ``x`` only, :math:`q(h^{(l)}_i = 1 \mid x) = \sigma(x^\top R_l + c_l)_i`;
* :class:`HelmholtzMachine`: the layer-wise *bottom-up* recognition network of Hinton et al.
  [2]_ (trained by wake-sleep, reweighted wake-sleep [4]_ or score-function VI [3]_),
  :math:`q(h^{(l)} \mid h^{(l-1)})` factorial with :math:`h^{(0)} = x`, sampled bottom-up
  (the two coincide for one hidden layer).

Both are plain Pyro programs: ``model``/``guide`` go into ``SVI`` with ``Trace_ELBO`` or
``TraceGraph_ELBO`` (score-function gradients; add baselines with
:func:`pyrogen.infer.score_function.with_baseline`), :class:`pyrogen.infer.wake_sleep.WakeSleep`,
:class:`pyrogen.infer.rws.ReweightedWakeSleep` and Pyro's own
:class:`pyro.infer.ReweightedWakeSleep` (the guide accepts its ``observations`` keyword).
``relaxed_guide`` is the Concrete / Gumbel-softmax straight-through alternative.

:class:`FVSBN` is the fully visible special case (a logistic autoregressive network, book
§20.10.7): :math:`p(x_i = 1 \mid x_{<i}) = \sigma(b_i + \sum_{j<i} W_{ji} x_j)`, exact
log-likelihood.

References
----------
.. [1] R. M. Neal, "Connectionist learning of belief networks", Artificial Intelligence 56, 1992.
.. [2] G. E. Hinton, P. Dayan, B. J. Frey, R. M. Neal, "The wake-sleep algorithm for
   unsupervised neural networks", Science 268, 1995.
.. [3] A. Mnih, K. Gregor, "Neural variational inference and learning in belief networks",
   ICML 2014.
.. [4] J. Bornschein, Y. Bengio, "Reweighted wake-sleep", ICLR 2015.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.infer
import torch
from torch import nn

from .._validation import check_choice, check_float, check_int
from ..evaluation import LogLikelihood
from ..infer.importance import importance_log_likelihood
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["SigmoidBeliefNet", "HelmholtzMachine", "FVSBN", "FIT_METHODS"]

#: training methods of :meth:`SigmoidBeliefNet.fit`
FIT_METHODS = ("wake_sleep", "rws", "nvil", "reinforce", "concrete", "svi")


def _check_layer_sizes(layer_sizes) -> list[int]:
    if (
        not isinstance(layer_sizes, (list, tuple))
        or len(layer_sizes) < 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in layer_sizes)
    ):
        raise ValueError(
            "layer_sizes must be a list of at least two positive ints (visible first, then "
            f"hidden layers bottom-up, e.g. [784, 200, 200]). Got {layer_sizes!r} instead."
        )
    return [int(s) for s in layer_sizes]


def _all_configs(h: int, dtype, device) -> torch.Tensor:
    """All :math:`2^h` binary vectors of length ``h``, shape ``(2^h, h)``."""
    idx = torch.arange(2**h, device=device)
    bits = (idx.unsqueeze(-1) >> torch.arange(h - 1, -1, -1, device=device)) & 1
    return bits.to(dtype)


def _bern_logp(logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim of ``log Bernoulli(value; sigmoid(logits))`` (broadcasting)."""
    logits, value = torch.broadcast_tensors(logits, value)
    return -nn.functional.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


@register_model("sbn")
class SigmoidBeliefNet(GenerativeModel):
    r"""Sigmoid belief network with a mean-field recognition guide (book eq. 20.70).

    Parameters
    ----------
    layer_sizes : list of int
        ``[n_visible, h_1, ..., h_L]``, visible layer first, hidden layers bottom-up
        (``[784, 200, 200]`` is the "SBN 200-200" of Mnih & Gregor 2014).
    max_enumerate : int
        Largest total number of hidden units :math:`H` for which :meth:`log_likelihood` sums
        the :math:`2^H` configurations exactly (kind ``"exact"``); above it, importance
        sampling (kind ``"is_estimate"``).
    num_is_particles : int
        Default :math:`K` of the importance-sampled log-likelihood.
    seed : int or None
        Seeds the initial weights (PyTorch's default ``nn.Linear`` initialisation, drawn from a
        generator seeded with it; the global random state is left as it was); ``None`` draws
        them from torch's global random state. See :class:`~pyrogen.models.base.GenerativeModel`.

    Notes
    -----
    Parameters: ``gen[l]`` is an ``nn.Linear(h_{l+1}, h_l)`` whose ``weight`` is :math:`W^\top`
    (so ``weight[i, j]`` is :math:`W_{ji}`, from upper unit :math:`j` to lower unit :math:`i`)
    and whose bias is :math:`b`; ``top_bias`` is the prior logit of the top layer; ``rec[l]``
    are the recognition layers. Pyro sites: ``"h{L}"`` ... ``"h1"`` (latent), ``"x"``
    (observed), each a vector event inside the ``"data"`` plate.

    Cost per example of one model or guide pass: :math:`O(\sum_l h_l h_{l+1})`. Exact
    log-likelihood: :math:`O(2^H \sum_l h_l h_{l+1})` per example.
    """

    def __init__(self, layer_sizes, max_enumerate: int = 16, num_is_particles: int = 1000,
                 seed: int | None = 0):
        sizes = _check_layer_sizes(layer_sizes)
        max_enumerate = check_int(max_enumerate, "max_enumerate", low=0, high=24)
        num_is_particles = check_int(num_is_particles, "num_is_particles", low=1)
        super().__init__(
            layer_sizes=sizes,
            max_enumerate=max_enumerate,
            num_is_particles=num_is_particles,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        self.layer_sizes = sizes
        self.n_hidden_layers = len(sizes) - 1
        # generative: gen[l] maps layer l+1 -> logits of layer l (l = 0 is the visible layer)
        self.gen = nn.ModuleList(
            [nn.Linear(sizes[l + 1], sizes[l]) for l in range(self.n_hidden_layers)]
        )
        self.top_bias = nn.Parameter(torch.zeros(sizes[-1]))
        self.rec = nn.ModuleList(self._make_recognition(sizes))
        #: training devices that are not part of the model (e.g. the NVIL baseline network)
        self.training_state: dict = {}
        with torch.no_grad():
            for lin in list(self.gen) + list(self.rec):
                lin.weight.mul_(0.3)
                lin.bias.zero_()

    def _make_recognition(self, sizes):
        # mean-field: every hidden layer reads x directly
        return [nn.Linear(sizes[0], sizes[l + 1]) for l in range(len(sizes) - 1)]

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        """Number of visible units (``layer_sizes[0]``)."""
        return self.layer_sizes[0]

    @property
    def n_hidden(self) -> int:
        """Total number of hidden units :math:`H`."""
        return sum(self.layer_sizes[1:])

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` enumerates (``H <= max_enumerate``)."""
        return self.n_hidden <= self.config["max_enumerate"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "is_estimate"

    # ------------------------------------------------------------------ building blocks
    def generative_logits(self, l: int, upper: torch.Tensor | None) -> torch.Tensor:
        """Logits of layer ``l`` (0 = visible) given the layer above (``None`` for the top)."""
        if l == self.n_hidden_layers:
            return self.top_bias if upper is None else self.top_bias.expand(
                *upper.shape[:-1], self.layer_sizes[-1]
            )
        return self.gen[l](upper)

    def recognition_logits(self, l: int, x: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        """Logits of :math:`q(h^{(l)} \\mid \\cdot)`, ``l >= 1``; ``lower`` is layer ``l-1``."""
        return self.rec[l - 1](x)

    def log_joint(self, x: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor:
        r""":math:`\log p(x, h)` for hidden layers ``hs = [h1, ..., hL]`` (broadcasting)."""
        layers = [x, *hs]
        lp = _bern_logp(self.top_bias, layers[-1])
        for l in range(self.n_hidden_layers):
            lp = lp + _bern_logp(self.gen[l](layers[l + 1]), layers[l])
        return lp

    # ------------------------------------------------------------------ Pyro programs
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None, observations=None):
        """Top-down ancestral model; ``x`` observed at site ``"x"``."""
        L = self.n_hidden_layers
        with self._data_plate(x, num_data):
            upper = None
            for l in range(L, 0, -1):
                logits = self.generative_logits(l, upper)
                if upper is None:
                    logits = logits.expand(x.shape[0], -1)
                upper = pyro.sample(f"h{l}", dist.Bernoulli(logits=logits).to_event(1))
            return pyro.sample("x", dist.Bernoulli(logits=self.gen[0](upper)).to_event(1), obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None, observations=None):
        """Recognition network :math:`q(h \\mid x)`, bottom-up.

        ``observations`` (``{"x": tensor}``) replaces ``x`` when given: the sleep phase of
        :class:`pyro.infer.ReweightedWakeSleep` passes the dreamed data this way.
        """
        if observations is not None and "x" in observations:
            x = observations["x"]
        return self._guide(x, num_data, None)

    @pyro.nn.pyro_method
    def relaxed_guide(
        self, x: torch.Tensor, num_data: int | None = None, observations=None,
        temperature: float = 0.5,
    ):
        r"""The guide with Concrete / Gumbel-softmax straight-through samples [5]_.

        Each hidden unit is drawn from ``RelaxedBernoulliStraightThrough(temperature, logits)``:
        the forward value is a hard 0/1 sample, the backward pass uses the gradient of the
        relaxed (Concrete) sample, so ``Trace_ELBO`` treats the sites as reparametrized. The
        resulting ELBO gradient is *biased* (the bias vanishes only as the temperature goes to
        0, where the variance blows up); use ``functools.partial(m.relaxed_guide,
        temperature=t)`` as the guide.

        .. [5] E. Jang, S. Gu, B. Poole, "Categorical reparameterization with Gumbel-softmax";
           C. J. Maddison, A. Mnih, Y. W. Teh, "The Concrete distribution", ICLR 2017.
        """
        if observations is not None and "x" in observations:
            x = observations["x"]
        t = torch.as_tensor(temperature, dtype=x.dtype, device=x.device)
        return self._guide(x, num_data, t)

    def _guide(self, x, num_data, temperature):
        with self._data_plate(x, num_data):
            lower = x
            hs = []
            for l in range(1, self.n_hidden_layers + 1):
                logits = self.recognition_logits(l, x, lower)
                if temperature is None:
                    d = dist.Bernoulli(logits=logits)
                else:
                    d = dist.RelaxedBernoulliStraightThrough(temperature, logits=logits)
                lower = pyro.sample(f"h{l}", d.to_event(1))
                hs.append(lower)
        return hs

    # ------------------------------------------------------------------ protocol verbs
    def log_likelihood(self, x, num_particles: int | None = None, batch_size: int = 100,
                       chunk: int = 100) -> LogLikelihood:
        r"""Per-example :math:`\log p(x)`: exact by enumeration when :math:`H \le`
        ``max_enumerate``, else importance-sampled with the guide as proposal.

        The importance-sampled value (kind ``"is_estimate"``) is the log of an unbiased estimate
        of :math:`p(x)`, hence a stochastic *lower* bound in expectation; its standard error is
        the delta-method one of
        :func:`~pyrogen.infer.importance.importance_log_likelihood`.
        """
        x = self._check_x(x)
        if self.exact and num_particles is None:
            with torch.no_grad():
                values = self.exact_log_likelihood(x)
            return LogLikelihood(values=values, kind="exact",
                                 info={"estimator": f"enumeration of 2^{self.n_hidden}"})
        k = self.config["num_is_particles"] if num_particles is None else num_particles
        return importance_log_likelihood(
            self.model, self.guide, x, num_particles=k, batch_size=batch_size, chunk=chunk,
            max_plate_nesting=1,
        )

    def _hidden_split(self, configs: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(configs, self.layer_sizes[1:], dim=-1))

    def exact_log_likelihood(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        r""":math:`\log p(x) = \operatorname{logsumexp}_h \log p(x, h)` by enumerating all
        :math:`2^H` hidden configurations (chunked; differentiable). Shape ``(n,)``."""
        if self.n_hidden > 24:
            raise ValueError(
                f"exact enumeration needs at most 24 hidden units; this model has "
                f"{self.n_hidden}. Use log_likelihood (importance sampling) instead."
            )
        return torch.logsumexp(self.exact_log_joint_table(x, chunk), dim=-1)

    def exact_log_joint_table(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        r"""Table :math:`\log p(x_n, h_c)` over all configurations, shape ``(n, 2^H)``.

        Column ``c`` is the configuration :meth:`hidden_configs` ``[c]``."""
        configs = self.hidden_configs(x.dtype, x.device)
        out = []
        for start in range(0, configs.shape[0], chunk):
            hs = [h.unsqueeze(1) for h in self._hidden_split(configs[start : start + chunk])]
            out.append(self.log_joint(x.unsqueeze(0), hs).T)
        return torch.cat(out, dim=-1)

    def hidden_configs(self, dtype=None, device=None) -> torch.Tensor:
        """All hidden configurations, shape ``(2^H, H)``, layers ``h1, ..., hL`` concatenated."""
        return _all_configs(self.n_hidden, dtype or self.dtype, device or self.device)

    def exact_posterior(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`p(h \mid x_n)` over :meth:`hidden_configs`, shape ``(n, 2^H)``."""
        return torch.softmax(self.exact_log_joint_table(x), dim=-1)

    def recognition_log_prob(self, x: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor:
        r""":math:`\log q(h \mid x)` for hidden layers ``hs = [h1, ..., hL]`` (broadcasting)."""
        lower = x
        lq = 0.0
        for l, h in enumerate(hs, start=1):
            lq = lq + _bern_logp(self.recognition_logits(l, x, lower), h)
            lower = h
        return lq

    def exact_elbo(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact per-example ELBO :math:`\sum_h q(h \mid x)[\log p(x, h) - \log q(h \mid x)]`
        by enumeration, shape ``(n,)``; differentiable in both parameter sets (used by the
        tests as the exact expectation of every gradient estimator)."""
        configs = self.hidden_configs(x.dtype, x.device)
        hs = [h.unsqueeze(1) for h in self._hidden_split(configs)]
        xx = x.unsqueeze(0)
        lq = self.recognition_log_prob(xx, hs)  # (2^H, n)
        lp = self.log_joint(xx, hs)
        return (lq.exp() * (lp - lq)).sum(0)

    def sample(self, n: int, return_hidden: bool = False):
        """Ancestral samples, top-down; ``return_hidden=True`` also returns ``[h1, ..., hL]``."""
        n = self._check_n(n)
        with torch.no_grad():
            upper = torch.bernoulli(
                torch.sigmoid(self.top_bias).expand(n, self.layer_sizes[-1])
            )
            hs = [upper]
            for l in range(self.n_hidden_layers - 1, -1, -1):
                upper = torch.bernoulli(torch.sigmoid(self.gen[l](upper)))
                hs.append(upper)
        x = hs.pop()
        return (x, hs[::-1]) if return_hidden else x

    def transform(self, x) -> torch.Tensor:
        r"""Recognition probabilities :math:`q(h^{(1)}_i = 1 \mid x)`, shape ``(n, h_1)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return torch.sigmoid(self.recognition_logits(1, x, x))

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return FIT_METHODS

    def fit(
        self,
        x,
        *,
        method: str = "wake_sleep",
        num_steps: int = 1000,
        lr: float = 1e-3,
        batch_size: int | None = None,
        num_particles: int = 5,
        temperature: float = 0.5,
        variance_normalization: bool = False,
        loss=None,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        """Train by Pyro ``SVI`` with one of :data:`FIT_METHODS`.

        ``"wake_sleep"``: :class:`~pyrogen.infer.wake_sleep.WakeSleep`; ``"rws"``:
        per-example :class:`~pyrogen.infer.rws.ReweightedWakeSleep` with ``num_particles``;
        ``"nvil"``: NVIL (Mnih & Gregor 2014), i.e. an input-dependent neural baseline plus a
        decaying average (:func:`~pyrogen.infer.score_function.with_baseline`), trained by
        ``TraceGraph_ELBO``; with ``variance_normalization=True`` the learning signal is also
        divided by a running estimate of its standard deviation
        (:class:`~pyrogen.infer.score_function.NVIL_ELBO`). Not the default: with Adam (which
        already divides each coordinate by its running RMS) it trained and tested the same as
        without it on binarized MNIST (``benchmarks/README.md``), and without it the estimator
        is exactly ``TraceGraph_ELBO``'s, unbiased, with no scale state; it is the paper's
        remedy for plain SGD. Each fit gets its own ``NVIL_ELBO`` (decaying averages) and a
        fresh baseline network; ``"reinforce"``:
        ``TraceGraph_ELBO`` without baseline; ``"concrete"``: ``Trace_ELBO`` with
        :meth:`relaxed_guide` at ``temperature``; ``"svi"``: ``loss`` (default
        ``TraceGraph_ELBO``) on :meth:`guide`. Losses are per example (nats): for wake-sleep the
        wake loss :math:`-\\log p(x, h)`, for RWS the negative IWAE bound, otherwise the
        negative ELBO. ``num_steps`` is the maximum number of steps: the shared training loop
        (:meth:`~pyrogen.models.base.GenerativeModel._train`, minibatches without replacement)
        stops earlier when the windowed mean loss stops improving by ``tol`` (relative) and
        warns (``ConvergenceWarning``) when the steps run out first; ``tol=None`` runs exactly
        ``num_steps``. ``seed`` seeds the training (the initial weights come from the
        constructor's ``seed``).
        """
        import functools

        from ..infer.rws import ReweightedWakeSleep
        from ..infer.score_function import NVIL_ELBO, NeuralBaseline, with_baseline
        from ..infer.wake_sleep import WakeSleep

        check_choice(method, "method", FIT_METHODS)
        x = self._check_x(x)
        num_particles = check_int(num_particles, "num_particles", low=1)
        temperature = check_float(temperature, "temperature", 0.0, None, "oo")
        if seed is not None:  # before building the NVIL baseline network (its init is random)
            pyro.set_rng_seed(check_int(seed, "seed", low=0))
        guide = self.guide
        extra = {}
        if method == "wake_sleep":
            loss = WakeSleep()
        elif method == "rws":
            loss = ReweightedWakeSleep(num_particles=num_particles)
        elif method == "nvil":
            baseline = NeuralBaseline(
                self.n_features, [f"h{l}" for l in range(1, self.n_hidden_layers + 1)]
            ).to(self.dtype)
            # kept out of the state dict: the baseline is a training device, not the model
            self.training_state["nvil_baseline"] = baseline
            # a fresh baseline per fit, registered under this model's unique name (a stale one
            # left in the param store by an earlier fit would shadow the new module)
            name = f"{self._pyro_name}_nvil_baseline"
            store = pyro.get_param_store()
            for key in [k for k in store.keys() if k.startswith(name + "$$$")]:
                del store[key]
            guide = with_baseline(self.guide, "nvil", module=baseline, name=name)
            # NVIL_ELBO keeps the decaying averages on the loss object (Pyro's TraceGraph_ELBO
            # keys them by site name in the global param store, shared by every model)
            loss = NVIL_ELBO(variance_normalization=variance_normalization)
            extra["variance_normalization"] = bool(variance_normalization)
        elif method == "reinforce":
            loss = pyro.infer.TraceGraph_ELBO()
        elif method == "concrete":
            guide = functools.partial(self.relaxed_guide, temperature=temperature)
            loss = pyro.infer.Trace_ELBO()
            extra["temperature"] = temperature
        else:
            loss = loss or pyro.infer.TraceGraph_ELBO()
        hist = self._fit_svi(
            x, num_steps=num_steps, lr=lr, batch_size=batch_size, loss=loss, tol=tol, seed=seed,
            progress=progress, callback=callback, data_info=data_info, guide=guide,
        )
        hist.method = method
        hist.info.update(extra)
        if method == "wake_sleep":
            hist.metrics["wake_loss"] = [v for v in loss.history["wake"]]
            hist.metrics["sleep_loss"] = [v for v in loss.history["sleep"]]
        return hist


@register_model("helmholtz")
class HelmholtzMachine(SigmoidBeliefNet):
    r"""Helmholtz machine (Hinton et al. 1995): a sigmoid belief net with a layer-wise bottom-up
    recognition network.

    .. math::

        q(h \mid x) = \prod_{l=1}^L q(h^{(l)} \mid h^{(l-1)}), \qquad
        q(h^{(l)}_i = 1 \mid h^{(l-1)}) = \sigma\bigl(R_l^\top h^{(l-1)} + c_l\bigr)_i,
        \quad h^{(0)} = x.

    Same parameters and verbs as :class:`SigmoidBeliefNet` (trained by default with
    wake-sleep); for a single hidden layer the two guides are the same family.
    """

    def _make_recognition(self, sizes):
        return [nn.Linear(sizes[l], sizes[l + 1]) for l in range(len(sizes) - 1)]

    def recognition_logits(self, l, x, lower):
        return self.rec[l - 1](lower)


@register_model("fvsbn")
class FVSBN(GenerativeModel):
    r"""Fully visible sigmoid belief network (logistic autoregressive network, book §20.10.7).

    .. math::

        \log p(x) = \sum_{i=1}^D \log \operatorname{Bernoulli}\Bigl(x_i;\;
        \sigma\bigl(b_i + \textstyle\sum_{j<i} W_{ji} x_j\bigr)\Bigr)

    exact (kind ``"exact"``), in pixel order. ``weight`` is a :math:`D \times D` matrix used
    through a strictly lower-triangular mask (``weight[i, j]`` is :math:`W_{ji}`, :math:`j < i`).
    No latent variables: ``guide`` is empty and maximum likelihood is SVI with ``Trace_ELBO``
    (the "ELBO" is then the exact log-likelihood). Cost :math:`O(D^2)` per example.

    Parameters
    ----------
    n_features : int
        :math:`D`.
    """

    def __init__(self, n_features: int):
        n_features = check_int(n_features, "n_features", low=1)
        super().__init__(n_features=n_features)
        self.weight = nn.Parameter(torch.zeros(n_features, n_features))
        self.bias = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("mask", torch.tril(torch.ones(n_features, n_features), -1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        r"""Conditional logits :math:`b_i + \sum_{j<i} W_{ji} x_j`, shape ``(n, D)``."""
        return x @ (self.weight * self.mask).T + self.bias

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        with self._data_plate(x, num_data):
            pyro.sample("x", dist.Bernoulli(logits=self.logits(x)).to_event(1), obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        """Empty: there are no latent variables."""

    def log_likelihood(self, x) -> LogLikelihood:
        """Exact per-example :math:`\\log p(x)`."""
        x = self._check_x(x)
        with torch.no_grad():
            return LogLikelihood(values=_bern_logp(self.logits(x), x), kind="exact")

    def sample(self, n: int) -> torch.Tensor:
        """Ancestral sampling, one pixel at a time (:math:`D` passes)."""
        n = self._check_n(n)
        x = torch.zeros(n, self.n_features, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            for i in range(self.n_features):
                x[:, i] = torch.bernoulli(torch.sigmoid(self.logits(x)[:, i]))
        return x

    def transform(self, x) -> torch.Tensor:
        r"""Conditionals :math:`p(x_i = 1 \mid x_{<i})`, shape ``(n, D)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return torch.sigmoid(self.logits(x))

    def fit(self, x, *, method: str = "svi", num_steps: int = 500, lr: float = 0.05,
            **kwargs) -> FitHistory:
        """Maximum likelihood by SVI (``Trace_ELBO`` = exact log-likelihood here)."""
        return super().fit(x, method=method, num_steps=num_steps, lr=lr, **kwargs)

