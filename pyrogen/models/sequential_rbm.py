r"""RBMs for sequences (book §20.7): the conditional RBM and the RNN-RBM as Pyro models.

Both models (book §20.7 [3]_) factor the probability of a binary sequence :math:`v_1, \dots, v_T`
(:math:`v_t \in \{0,1\}^{n_v}`) into per-step conditionals, each an RBM whose biases depend on
the past:

.. math::

    P(v_{1:T}) = \prod_{t=1}^T P(v_t \mid v_{<t}), \qquad
    P(v_t \mid v_{<t}) = \frac{e^{-F_t(v_t)}}{Z_t}, \qquad
    F_t(v) = -b_t^\top v - \sum_j \operatorname{softplus}(c_{t,j} + v^\top W_{:j}),

with shared weights :math:`W` and *dynamic* biases :math:`b_t, c_t`:

* :class:`ConditionalRBM` (Taylor, Hinton & Roweis 2007 [1]_): linear in the last
  ``n_delay`` frames, :math:`b_t = b + A^\top \tilde v_{t}`, :math:`c_t = c + B^\top
  \tilde v_{t}` with the history :math:`\tilde v_t = (v_{t-1}, \dots, v_{t-n_{delay}})`
  (frames before the start are zeros: the first frames are modelled with a zero-padded
  history, so :math:`P(v_{1:T})` is a proper distribution over whole sequences);
* :class:`RNNRBM` (Boulanger-Lewandowski, Bengio & Vincent 2012 [2]_): an RNN state
  :math:`u_t = \tanh(b_u + W_{vu}^\top v_t + W_{uu}^\top u_{t-1})` (learned :math:`u_0`) gives
  :math:`b_t = b + W_{uv}^\top u_{t-1}`, :math:`c_t = c + W_{uh}^\top u_{t-1}`.

Every step has **its own** :math:`\log Z_t`. Given an observed sequence the conditionals are
independent RBMs, so ``model(x)`` is one vectorized site: ``pyro.sample("x", RBM(W, b_t, c_t,
normalizer=CD(k)), obs=x)`` under a ``"data"`` plate (sequences, dim -2) and a ``"time"`` plate
(frames, dim -1), using :class:`pyrogen.distributions.RBM` with batched biases of shape
``(n, T, n_v)`` / ``(n, T, n_h)``. The guide is empty (hidden units are summed out). With the
:class:`~pyrogen.normalizers.CD` normalizer the gradient trick of :mod:`pyrogen.normalizers`
applies per time step (chains start at each :math:`v_t` and run under that step's biases), so
``Trace_ELBO`` gives CD-k for :math:`W, b, c` *and* backpropagates the per-step CD gradients of
:math:`b_t, c_t` into :math:`A, B` or into the RNN, as in [1]_ and [2]_.

``log_likelihood`` is exact when :math:`\min(n_v, n_h)` is at most ``exact_max_units``
(enumeration of the smaller layer, per step), otherwise an AIS estimate per step (base-rate
path of Salakhutdinov & Murray, one AIS run over all :math:`n \times T` conditionals at once)
with per-step standard errors added in quadrature.

Shapes. A 3-D ``x`` of shape ``(n, T, n_features)`` holds ``n`` sequences of ``T`` frames; a
2-D ``x`` of shape ``(T, n_features)`` is **one** sequence whose rows are frames. This is how
the models meet the ``(n, n_features)`` contract of the model protocol: on a 2-D ``x``,
``log_likelihood`` returns the per-frame conditionals :math:`\log P(v_t \mid v_{<t})`, shape
``(T,)`` (their sum is the log-probability of the sequence), ``transform`` one row per frame
and ``sample(n)`` one sequence of ``n`` frames.

References
----------
.. [1] G. W. Taylor, G. E. Hinton and S. T. Roweis, "Modeling human motion using binary latent
   variables", NIPS 2007.
.. [2] N. Boulanger-Lewandowski, Y. Bengio and P. Vincent, "Modeling temporal dependencies in
   high-dimensional sequences: application to polyphonic music generation and transcription",
   ICML 2012.
.. [3] I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016, §20.7.
"""

from __future__ import annotations

import math

import pyro
import pyro.optim
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_binary, check_choice, check_data, check_int
from ..distributions import RBM
from ..distributions.energy import enumerate_binary_states
from ..evaluation import LogLikelihood
from ..infer.ais import base_rate_visible_bias
from ..normalizers import AIS, CD, Exact
from .base import FitHistory, GenerativeModel, register_model

__all__ = ["ConditionalRBM", "RNNRBM"]

#: largest number of (state x conditional x unit) entries one enumeration chunk holds
_CHUNK_ENTRIES = 2**22


def check_sequences(x, n_features: int, dtype, device, name: str = "x"):
    """``(x3, one)``: ``x`` as a ``(n, T, n_features)`` binary tensor, and whether it was a
    single 2-D sequence ``(T, n_features)``. ``ValueError`` for a wrong rank, zero sequences or
    a sequence of length 0, wrong width, NaN, non-binary values; ``TypeError`` for a non-tensor
    or another floating dtype (no silent cast)."""
    if isinstance(x, torch.Tensor):
        if x.dim() not in (2, 3):
            raise ValueError(
                f"{name} must have shape (T, n_features) (one sequence) or (n, T, n_features) "
                f"(n sequences). Got shape {tuple(x.shape)} instead."
            )
        if x.dim() == 2 and x.shape[0] == 0:
            raise ValueError(
                f"{name} must hold a sequence of at least 1 frame (a 2-D {name} is one sequence "
                f"of frames). Got shape {tuple(x.shape)}: a sequence of length 0."
            )
        if x.dim() == 3 and x.shape[1] == 0:
            raise ValueError(
                f"{name} must hold sequences of at least 1 frame. Got shape {tuple(x.shape)}: "
                "sequences of length 0."
            )
        ndim = x.dim()
    else:
        ndim = 2
    x = check_data(x, name, n_features=n_features, dtype=dtype, device=device, ndim=ndim)
    check_binary(x, name)
    if x.dim() == 2:
        return x.unsqueeze(0), True
    return x, False


class _SequentialRBM(GenerativeModel):
    """Shared Pyro program, fit loop, evaluation and sampling of the sequence RBMs.

    Subclasses define :meth:`dynamic_biases` (teacher-forced biases of every step of observed
    sequences) and the generation state (:meth:`_init_state`, :meth:`_state_biases`,
    :meth:`_next_state`).
    """

    def _init_rbm(self, n_features, n_hidden, init_scale):
        g = torch.Generator().manual_seed(self.config["seed"])
        self.weight = nn.Parameter(init_scale * torch.randn(n_features, n_hidden, generator=g))
        self.visible_bias = nn.Parameter(torch.zeros(n_features))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self.register_buffer("base_rate_logits", torch.zeros(n_features))
        self._normalizer = None
        return g

    # ------------------------------------------------------------------ hooks
    def dynamic_biases(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Biases :math:`(b_t, c_t)` of every step of the sequences ``x`` (shape ``(n, T,
        n_features)``): shapes ``(n, T, n_features)`` and ``(n, T, n_hidden)``."""
        raise NotImplementedError  # pragma: no cover

    def _init_state(self, n: int):
        raise NotImplementedError  # pragma: no cover

    def _state_biases(self, state):
        raise NotImplementedError  # pragma: no cover

    def _next_state(self, state, v):
        raise NotImplementedError  # pragma: no cover

    # ------------------------------------------------------------------ properties
    @property
    def n_hidden(self) -> int:
        return int(self.config["n_hidden"])

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (smaller layer enumerable)."""
        return min(self.n_features, self.n_hidden) <= self.config["exact_max_units"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    def _check_seq(self, x, name="x"):
        return check_sequences(x, self.n_features, self.dtype, self.device, name)

    # ------------------------------------------------------------------ distributions
    def step_distribution(self, x, normalizer=None) -> RBM:
        """The per-step conditionals of the sequences ``x`` as one batched
        :class:`~pyrogen.distributions.RBM` of batch shape ``(n, T)`` (a 2-D ``x``: ``(1,
        T)``), normalizer ``normalizer`` (default ``Exact()``)."""
        x3, _ = self._check_seq(x)
        b, c = self.dynamic_biases(x3)
        return RBM(self.weight, b, c, normalizer=normalizer or Exact(max_units=24))

    def normalizer(self) -> CD:
        """The CD-k normalizer of :meth:`model` (kept across calls). Its *value* of each
        :math:`\\log Z_t` is refreshed every ``refresh_every`` calls (exact when
        :math:`\\min(n_v, n_h) \\le 12`, else a short AIS run, which may warn of a low
        ESS) on whichever batch is being scored, and is stale in between: the SVI loss is a
        monitoring number only."""
        if self._normalizer is None:
            if min(self.n_features, self.n_hidden) <= 12:
                est = Exact(chunk_size=64)  # a batch of n x T conditionals per state chunk
            else:
                est = AIS(num_chains=16, num_betas=300, base=self.base_rate_logits)
            self._normalizer = CD(
                num_steps=self.config["k"], estimator=est,
                refresh_every=self.config["refresh_every"],
            )
        return self._normalizer

    # ------------------------------------------------------------------ the Pyro program
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None,
              n_frames: int | None = None):
        """``pyro.sample("x", RBM(W, b_t, c_t, normalizer=CD(k)), obs=x)`` under the
        ``"data"`` (dim -2) and ``"time"`` (dim -1) plates; ``x`` as in the module docstring
        (the biases are computed from the observed past: teacher forcing).

        With ``x=None`` the program *generates* ``num_data`` (default 1) sequences of
        ``n_frames`` frames in a ``pyro.markov`` loop over time: sites ``"x_0", "x_1", ...``,
        each drawn from its conditional RBM given the frames drawn before (exact draws when
        :math:`\\min(n_v, n_h) \\le 16`, else ``sample_steps`` Gibbs steps from the
        previous frame); returns the ``(num_data, n_frames, n_features)`` tensor.
        """
        if x is None:
            if n_frames is None:
                raise ValueError(
                    "x must be a tensor of observed sequences, or pass n_frames (an int >= 1) "
                    "to generate sequences. Got x=None and n_frames=None."
                )
            n_t = check_int(n_frames, "n_frames", low=1)
            n = 1 if num_data is None else check_int(num_data, "num_data", low=1)
            state = self._init_state(n)
            prev = torch.zeros(n, self.n_features, dtype=self.dtype, device=self.device)
            frames = []
            with pyro.plate("data", n, dim=-1):
                for t in pyro.markov(range(n_t)):
                    b, c = self._state_biases(state)
                    d = RBM(self.weight, b, c, mcmc_steps=self.config["sample_steps"],
                            mcmc_init=prev, validate_args=False)
                    v = pyro.sample(f"x_{t}", d)
                    frames.append(v)
                    state, prev = self._next_state(state, v), v
            return torch.stack(frames, 1)
        x3, _ = self._check_seq(x)
        n, t = x3.shape[:2]
        b, c = self.dynamic_biases(x3)
        d = RBM(self.weight, b, c, normalizer=self.normalizer(), validate_args=False)
        size = n if num_data is None else num_data
        with pyro.plate("data", size, subsample=torch.arange(n, device=x3.device), dim=-2):
            with pyro.plate("time", t, dim=-1):
                return pyro.sample("x", d, obs=x3)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None,
              n_frames: int | None = None):
        """Empty: no latent sample sites (the hidden units are summed out)."""

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("cd",)

    def fit(
        self,
        x,
        *,
        method: str = "cd",
        num_steps: int = 500,
        lr: float = 0.01,
        batch_size: int | None = None,
        tol: float | None = None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Train by ``pyro.infer.SVI`` (``Trace_ELBO``, Adam) on :meth:`model` with CD-k.

        Parameters
        ----------
        x : Tensor, shape ``(n, T, n_features)`` or ``(T, n_features)``
            Binary training sequences (a 2-D ``x`` is one sequence).
        method : {"cd"}
            CD-k per time step through the normalizer's gradient trick.
        num_steps : int
            SVI steps (each on a minibatch of whole sequences).
        lr : float
            Adam step size.
        batch_size : int, optional
            Sequences per step (default all).
        tol : float or None
            Convergence test of the shared training loop on the SVI loss. Default ``None``
            (run ``num_steps`` steps): the loss carries a stale :math:`\log Z_t` of whatever
            batch was scored at the last refresh, so it is a monitoring number, not a
            log-likelihood; judge the fit with :meth:`log_likelihood` on held-out sequences.
        seed : int, optional
            Seeds the training randomness (minibatches, Gibbs chains).
        progress, callback, data_info :
            As for :meth:`pyrogen.models.base.GenerativeModel.fit`.

        The value of :math:`\log Z_t` is also refreshed whenever the batch shape changes:
        choose a ``batch_size`` that divides the number of sequences (a smaller last batch costs
        two refreshes per pass over the data).

        Returns
        -------
        FitHistory
            ``losses``: SVI loss per *sequence* (per frame for a 2-D ``x``: divided by the
            number of rows of ``x``).
        """
        check_choice(method, "method", self.fit_methods())
        num_steps = check_int(num_steps, "num_steps", low=1)
        x3, one = self._check_seq(x)
        n = x3.shape[0]
        self._begin_fit(seed, data_info)
        with torch.no_grad():
            logits = base_rate_visible_bias(x3.reshape(-1, self.n_features))
            first = not bool(self.base_rate_logits.any())
            self.base_rate_logits.copy_(logits)
            if first and not bool(self.visible_bias.any()):
                self.visible_bias.copy_(logits)
        per = x3.shape[1] if one else n
        svi = pyro.infer.SVI(
            self.model, self.guide, pyro.optim.Adam({"lr": lr}), pyro.infer.Trace_ELBO()
        )
        history = FitHistory(method="cd", info={"num_steps": num_steps, "lr": lr,
                                                "learning_rule": "CD-k per time step"})

        def step(_, idx):
            if idx is None:
                return svi.step(x3, num_data=None) / per
            return svi.step(x3[idx], num_data=n) / per

        with pyro.validation_enabled(False):
            self._train(step, history, n=n, batch_size=batch_size, num_steps=num_steps, lr=lr,
                        tol=tol, progress=progress, callback=callback, device=x3.device)
        norm = self.normalizer()
        if norm._value is not None:
            history.info["loss_log_z_kind"] = norm._value.kind
        return history

    # ------------------------------------------------------------------ evaluation
    def log_likelihood(self, x, *, per_frame: bool = False, method: str | None = None,
                       num_chains: int | None = None, num_betas: int | None = None,
                       seed: int | None = None) -> LogLikelihood:
        r""":math:`\log P(v_{1:T})` per sequence, or :math:`\log P(v_t \mid v_{<t})` per frame.

        Parameters
        ----------
        x : Tensor, shape ``(n, T, n_features)`` or ``(T, n_features)``
        per_frame : bool
            Return the ``n * T`` per-frame conditionals (row-major: sequence, then frame)
            instead of the ``n`` sequence totals. A 2-D ``x`` always gives per-frame values.
        method : {"exact", "ais"}, optional
            How each :math:`\log Z_t` is computed; default exact when :attr:`exact`.
        num_chains, num_betas, seed :
            AIS settings (defaults ``ais_num_chains``, ``ais_num_betas`` of the constructor).

        Returns
        -------
        LogLikelihood
            ``kind="exact"``, or ``"ais_estimate"`` (each :math:`\hat Z_t` unbiased for
            :math:`Z_t`: a stochastic upper bound on the log-likelihood in expectation) with
            per-value standard errors (per-step errors added in quadrature for totals).
        """
        method = ("exact" if self.exact else "ais") if method is None else method
        check_choice(method, "method", ("exact", "ais"))
        x3, one = self._check_seq(x)
        n, t = x3.shape[:2]
        with torch.no_grad():
            d = self.step_distribution(x3)
            unnorm = d.unnormalized_log_prob(x3)
            info = {"n_sequences": n, "n_frames": t}
            if method == "exact":
                units = min(self.n_features, self.n_hidden)
                chunk = max(1, _CHUNK_ENTRIES // (n * t * max(self.n_features, self.n_hidden)))
                log_z = d.enumerate_log_z(chunk_size=min(chunk, 2**units))
                stderr = None
            else:
                ais = AIS(num_chains=num_chains or self.config["ais_num_chains"],
                          num_betas=num_betas or self.config["ais_num_betas"],
                          base=self.base_rate_logits, seed=seed)
                est = ais(d)
                log_z, stderr = est.log_z, est.stderr
                info.update(num_chains=ais.num_chains, num_betas=est.info["num_betas"],
                            min_ess=float(est.ess.min()))
            values = unnorm - log_z
        if one or per_frame:
            values = values.reshape(-1)
            se = None if stderr is None else stderr.reshape(-1)
        else:
            values = values.sum(-1)
            se = None if stderr is None else stderr.pow(2).sum(-1).sqrt()
        kind = "exact" if method == "exact" else "ais_estimate"
        return LogLikelihood(values=values, kind=kind, stderr=se, info=info)

    def predict_next(self, x, *, num_samples: int = 100, num_steps: int = 20) -> torch.Tensor:
        r""":math:`\mathbb E[v_t \mid v_{<t}]` for every frame of ``x`` (the prediction of
        frame :math:`t` from the observed frames before it).

        Exact when ``n_hidden <= 12`` (sum over the hidden states, weighted by their marginal
        :math:`P(h) \propto e^{c_t^\top h + \sum_i \operatorname{softplus}(b_{t,i} +
        W_{i:} h)}`, of :math:`\sigma(b_t + W h)`); otherwise a Monte Carlo estimate: the mean
        of :math:`\sigma(b_t + W h)` over ``num_samples`` block Gibbs chains run ``num_steps``
        steps from the previous frame (zeros at :math:`t = 1`). Shape as ``x``.
        """
        x3, one = self._check_seq(x)
        num_samples = check_int(num_samples, "num_samples", low=1)
        num_steps = check_int(num_steps, "num_steps", low=1)
        with torch.no_grad():
            b, c = self.dynamic_biases(x3)
            W = self.weight
            if self.n_hidden <= 12:
                hs = enumerate_binary_states(self.n_hidden, dtype=self.dtype, device=self.device)
                hs = hs.reshape(-1, 1, 1, self.n_hidden)
                n, t, nv = x3.shape
                size = max(1, _CHUNK_ENTRIES // (n * t * nv))
                chunks = [hs[i : i + size] for i in range(0, hs.shape[0], size)]
                # pass 1: log-weights of every hidden state (S, n, T); pass 2: weighted means
                logit = torch.cat([(h * c).sum(-1) + F.softplus(b + h @ W.T).sum(-1)
                                   for h in chunks])
                w = torch.softmax(logit, dim=0)
                out = torch.zeros_like(b)
                start = 0
                for h in chunks:
                    wk = w[start : start + h.shape[0]].unsqueeze(-1)
                    out += (wk * torch.sigmoid(b + h @ W.T)).sum(0)
                    start += h.shape[0]
            else:
                prev = torch.cat([torch.zeros_like(x3[:, :1]), x3[:, :-1]], 1)
                v = prev.expand(num_samples, *prev.shape).clone()
                for _ in range(num_steps):
                    h = torch.bernoulli(torch.sigmoid(c + v @ W))
                    p = torch.sigmoid(b + h @ W.T)
                    v = torch.bernoulli(p)
                out = p.mean(0)
        return out[0] if one else out

    # ------------------------------------------------------------------ sampling, transform
    def sample(self, n, *, n_frames: int | None = None, num_steps: int | None = None):
        """Generate sequences frame by frame, each frame from its conditional RBM.

        ``n_frames=None``: **one** sequence of ``n`` frames, shape ``(n, n_features)`` (the
        2-D convention). Otherwise ``n`` sequences of ``n_frames`` frames, shape ``(n,
        n_frames, n_features)``. Each frame is an exact draw (enumeration) when
        :math:`\\min(n_v, n_h) \\le 16`, otherwise ``num_steps`` (default ``sample_steps``)
        block Gibbs steps started from the previous frame: approximate.
        """
        n = self._check_n(n)
        if n_frames is None:
            n_seq, n_t = 1, n
        else:
            n_seq, n_t = n, check_int(n_frames, "n_frames", low=1)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        frames = []
        with torch.no_grad():
            state = self._init_state(n_seq)
            prev = torch.zeros(n_seq, self.n_features, dtype=self.dtype, device=self.device)
            for _ in range(n_t):
                b, c = self._state_biases(state)
                d = RBM(self.weight, b, c, mcmc_steps=steps, mcmc_init=prev)
                v = d.sample()
                frames.append(v)
                state = self._next_state(state, v)
                prev = v
        out = torch.stack(frames, 1)
        return out[0] if n_frames is None else out

    def transform(self, x) -> torch.Tensor:
        r""":math:`P(h_t = 1 \mid v_t, v_{<t}) = \sigma(c_t + v_t^\top W)` per frame, shape
        ``(n, T, n_hidden)`` (``(T, n_hidden)`` for a 2-D ``x``)."""
        x3, one = self._check_seq(x)
        with torch.no_grad():
            _, c = self.dynamic_biases(x3)
            out = torch.sigmoid(c + x3 @ self.weight)
        return out[0] if one else out


def _common_config(n_features, n_hidden, k, init_scale, exact_max_units, ais_num_chains,
                   ais_num_betas, sample_steps, refresh_every, seed):
    from .._validation import check_float

    return {
        "n_features": check_int(n_features, "n_features", low=1),
        "n_hidden": check_int(n_hidden, "n_hidden", low=1),
        "k": check_int(k, "k", low=1),
        "init_scale": check_float(init_scale, "init_scale", 0.0, None),
        "exact_max_units": check_int(exact_max_units, "exact_max_units", low=1, high=24),
        "ais_num_chains": check_int(ais_num_chains, "ais_num_chains", low=2),
        "ais_num_betas": check_int(ais_num_betas, "ais_num_betas", low=2),
        "sample_steps": check_int(sample_steps, "sample_steps", low=0),
        "refresh_every": check_int(refresh_every, "refresh_every", low=1),
        "seed": check_int(seed, "seed", low=0),
    }


@register_model("crbm")
class ConditionalRBM(_SequentialRBM):
    r"""Conditional RBM for binary time series (Taylor, Hinton & Roweis 2007; book §20.7).

    .. math::

        P(v_t \mid v_{<t}) \propto \sum_h e^{-E_t(v_t, h)}, \quad
        E_t(v, h) = -b_t^\top v - c_t^\top h - v^\top W h, \quad
        b_t = b + A^\top \tilde v_t, \quad c_t = c + B^\top \tilde v_t,

    with the history :math:`\tilde v_t = (v_{t-1}, \dots, v_{t-d}) \in \{0,1\}^{d n_v}`
    (:math:`d` = ``n_delay``; zeros before the first frame). ``autoregressive_weight``
    :math:`A` has shape ``(n_delay * n_features, n_features)``, ``past_hidden_weight``
    :math:`B` shape ``(n_delay * n_features, n_hidden)``; block :math:`i` of the history is
    frame :math:`t - 1 - i`.

    Parameters
    ----------
    n_features : int
        Visible units per frame :math:`n_v`.
    n_hidden : int
        Hidden units :math:`n_h`.
    n_delay : int
        Frames of history :math:`d` (at least 1).
    k : int
        Gibbs steps of CD-k.
    init_scale : float
        Standard deviation of the initial weights :math:`W, A, B`.
    exact_max_units : int
        ``log_likelihood`` is exact when :math:`\min(n_v, n_h)` is at most this (at most 24).
    ais_num_chains, ais_num_betas : int
        AIS settings of ``log_likelihood`` otherwise.
    sample_steps : int
        Gibbs steps per frame of :meth:`sample` when both layers exceed 16 units.
    refresh_every : int
        Refresh period of the (monitoring) value of :math:`\log Z_t` in the SVI loss.
    seed : int
        Seed of the initial weights.

    Notes
    -----
    Cost of one SVI step on :math:`n` sequences of :math:`T` frames:
    :math:`O(nT(d\,n_v(n_v + n_h) + k\,n_v n_h))`. Exact ``log_likelihood`` costs
    :math:`O(nT\,2^{\min(n_v,n_h)} n_v n_h)`.
    """

    def __init__(
        self,
        n_features: int,
        n_hidden: int = 32,
        *,
        n_delay: int = 2,
        k: int = 1,
        init_scale: float = 0.01,
        exact_max_units: int = 16,
        ais_num_chains: int = 100,
        ais_num_betas: int = 1000,
        sample_steps: int = 100,
        refresh_every: int = 100,
        seed: int = 0,
    ):
        cfg = _common_config(n_features, n_hidden, k, init_scale, exact_max_units,
                             ais_num_chains, ais_num_betas, sample_steps, refresh_every, seed)
        super().__init__(**cfg, n_delay=check_int(n_delay, "n_delay", low=1))
        g = self._init_rbm(cfg["n_features"], cfg["n_hidden"], cfg["init_scale"])
        nv, nh, d = cfg["n_features"], cfg["n_hidden"], self.config["n_delay"]
        s = cfg["init_scale"]
        self.autoregressive_weight = nn.Parameter(s * torch.randn(d * nv, nv, generator=g))
        self.past_hidden_weight = nn.Parameter(s * torch.randn(d * nv, nh, generator=g))

    @property
    def n_delay(self) -> int:
        return int(self.config["n_delay"])

    def history(self, x: torch.Tensor) -> torch.Tensor:
        r"""The histories :math:`\tilde v_t = (v_{t-1}, \dots, v_{t-d})` of every frame of
        ``x`` (shape ``(n, T, n_v)``), zero-padded: shape ``(n, T, d\,n_v)``."""
        n, t, nv = x.shape
        pad = torch.cat([x.new_zeros(n, self.n_delay, nv), x], 1)
        d = self.n_delay
        lags = [pad[:, d - i - 1 : d - i - 1 + t] for i in range(d)]
        return torch.cat(lags, -1)

    def dynamic_biases(self, x):
        h = self.history(x)
        b = self.visible_bias + h @ self.autoregressive_weight
        c = self.hidden_bias + h @ self.past_hidden_weight
        return b, c

    def _init_state(self, n):
        return torch.zeros(n, self.n_delay * self.n_features, dtype=self.dtype, device=self.device)

    def _state_biases(self, state):
        return (self.visible_bias + state @ self.autoregressive_weight,
                self.hidden_bias + state @ self.past_hidden_weight)

    def _next_state(self, state, v):
        return torch.cat([v, state[:, : -self.n_features]], -1) if self.n_delay > 1 else v.clone()


@register_model("rnn-rbm")
class RNNRBM(_SequentialRBM):
    r"""RNN-RBM (Boulanger-Lewandowski, Bengio & Vincent 2012; book §20.7).

    .. math::

        u_t = \tanh(b_u + W_{vu}^\top v_t + W_{uu}^\top u_{t-1}), \qquad
        b_t = b + W_{uv}^\top u_{t-1}, \qquad c_t = c + W_{uh}^\top u_{t-1},

    and :math:`P(v_t \mid v_{<t})` the RBM :math:`(W, b_t, c_t)`; :math:`u_0` is a learned
    parameter. Training (SVI with CD-k per time step) backpropagates the per-step CD gradients
    of :math:`b_t, c_t` through the RNN (backpropagation through time), as in the paper's
    Algorithm 1.

    Parameters
    ----------
    n_features, n_hidden : int
        Visible units per frame and RBM hidden units.
    n_recurrent : int
        RNN units :math:`n_u`.
    k, init_scale, exact_max_units, ais_num_chains, ais_num_betas : optional
        As for :class:`ConditionalRBM` (``init_scale`` for :math:`W` and the RNN-to-RBM
        weights; the RNN's own weights start at scale :math:`0.5/\sqrt{n_u}` and
        :math:`1/\sqrt{n_v}`).
    sample_steps, refresh_every, seed : int
        As for :class:`ConditionalRBM`.

    Notes
    -----
    Cost of one SVI step: :math:`O(nT(n_u(n_u + 2 n_v + n_h) + k\,n_v n_h))`, with a
    sequential loop over the :math:`T` steps of the RNN.
    """

    def __init__(
        self,
        n_features: int,
        n_hidden: int = 32,
        *,
        n_recurrent: int = 32,
        k: int = 1,
        init_scale: float = 0.01,
        exact_max_units: int = 16,
        ais_num_chains: int = 100,
        ais_num_betas: int = 1000,
        sample_steps: int = 100,
        refresh_every: int = 100,
        seed: int = 0,
    ):
        cfg = _common_config(n_features, n_hidden, k, init_scale, exact_max_units,
                             ais_num_chains, ais_num_betas, sample_steps, refresh_every, seed)
        super().__init__(**cfg, n_recurrent=check_int(n_recurrent, "n_recurrent", low=1))
        g = self._init_rbm(cfg["n_features"], cfg["n_hidden"], cfg["init_scale"])
        nv, nh, nu = cfg["n_features"], cfg["n_hidden"], self.config["n_recurrent"]
        s = cfg["init_scale"]
        self.recurrent_weight = nn.Parameter(torch.randn(nu, nu, generator=g) / math.sqrt(nu) * 0.5)
        self.input_weight = nn.Parameter(torch.randn(nv, nu, generator=g) / math.sqrt(nv))
        self.recurrent_bias = nn.Parameter(torch.zeros(nu))
        self.initial_state = nn.Parameter(torch.zeros(nu))
        self.state_visible_weight = nn.Parameter(s * torch.randn(nu, nv, generator=g))
        self.state_hidden_weight = nn.Parameter(s * torch.randn(nu, nh, generator=g))

    @property
    def n_recurrent(self) -> int:
        return int(self.config["n_recurrent"])

    def states(self, x: torch.Tensor) -> torch.Tensor:
        r"""The RNN states :math:`u_0, \dots, u_{T-1}` that set the biases of frames
        :math:`1..T` of ``x`` (shape ``(n, T, n_v)``): shape ``(n, T, n_u)``."""
        n, t, _ = x.shape
        u = self.initial_state.expand(n, self.n_recurrent)
        drive = x @ self.input_weight + self.recurrent_bias
        out = []
        for i in range(t):
            out.append(u)
            u = torch.tanh(drive[:, i] + u @ self.recurrent_weight)
        return torch.stack(out, 1)

    def dynamic_biases(self, x):
        u = self.states(x)
        return (self.visible_bias + u @ self.state_visible_weight,
                self.hidden_bias + u @ self.state_hidden_weight)

    def _init_state(self, n):
        return self.initial_state.expand(n, self.n_recurrent)

    def _state_biases(self, u):
        return (self.visible_bias + u @ self.state_visible_weight,
                self.hidden_bias + u @ self.state_hidden_weight)

    def _next_state(self, u, v):
        return torch.tanh(self.recurrent_bias + v @ self.input_weight + u @ self.recurrent_weight)
