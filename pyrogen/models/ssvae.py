r"""Semi-supervised variational autoencoders: M2 and M1+M2 of Kingma et al. (2014) [1].

Generative model M2 (a :class:`~pyrogen.models.vae.ConditionalVAE` whose label may be missing):

.. math::

    y \sim \operatorname{Cat}(1/C), \qquad z \sim \mathcal N(0, I_d), \qquad
    x \mid y, z \sim p_\theta(x \mid y, z),

guide :math:`q_\phi(y \mid x)\, q_\phi(z \mid x, y)` (the classifier :math:`q_\phi(y\mid x)` is
used only where :math:`y` is missing). For a labelled pair the bound is the conditional ELBO

.. math::

    \mathcal L(x, y) = \mathbb E_{q(z\mid x,y)}\big[\log p(x\mid y,z) + \log p(y) + \log p(z)
    - \log q(z \mid x, y)\big] \le \log p(x, y),

and for an unlabelled :math:`x` the label is summed out **exactly** by Pyro's
``TraceEnum_ELBO`` (parallel enumeration of the guide's ``"y_unlabelled"`` site):

.. math::

    \mathcal U(x) = \sum_{c=1}^C q_\phi(c \mid x)\, \mathcal L(x, c)
    + \mathcal H\big(q_\phi(\cdot \mid x)\big) \le \log p(x).

Training maximizes [1, eq. 9]

.. math::

    \mathcal J^\alpha = \sum_{(x,y)\ \text{labelled}} \big[\mathcal L(x,y)
    + \alpha \log q_\phi(y \mid x)\big] + \sum_{x\ \text{unlabelled}} \mathcal U(x),

the extra classification term (a ``pyro.factor`` named ``"classification"`` in
:meth:`SemiSupervisedVAE.training_model`) making the classifier learn from the labels as well
(without it, :math:`q_\phi(y\mid x)` enters only through :math:`\mathcal U`). Kingma et al. set
:math:`\alpha = 0.1 N` on the *mean* over labelled pairs, i.e. :math:`\alpha = 0.1 N / N_l` per
labelled pair on the sum above: the default of ``fit(classification_weight=None)``.

**Missing labels.** One label tensor ``y`` of shape ``(n,)`` holds ``-1`` where the label is
unknown (:data:`UNLABELLED`). Labelled and unlabelled rows mix in **one** data plate, hence in one
SVI step: the model observes ``"y"`` under a mask (known rows) and samples
``"y_unlabelled"`` under the complementary mask; the value used downstream is
``torch.where(known, y, y_unlabelled)``. Under enumeration that value has shape ``(C, n)``, so a
mixed batch costs :math:`C` encoder/decoder passes for every row (labelled rows included; their
:math:`C` copies are identical in distribution and weighted by :math:`q(c\mid x)`, which sums to
one: the estimate stays unbiased). All-labelled data take the plain observed path (no
enumeration); ``y=None`` enumerates ``"y"`` (the unsupervised M2, as
:class:`~pyrogen.models.vae.ConditionalVAE` without labels).

**Minibatches** (``fit``): each step takes ``batch_size`` unlabelled rows (one pass over them is
an epoch) and ``labelled_batch_size`` labelled rows drawn from a permutation of the labelled rows
that restarts when used up, so that 100 labels are seen at every step rather than once per epoch.
Each row's terms are scaled by its own subsampling factor (:math:`N_u/B_u` or :math:`N_l/B_l`,
a tensor ``poutine.scale`` on model and guide), so the step's loss is an unbiased estimate of
:math:`-\mathcal J^\alpha` over the whole data; ``history.losses`` records it per example
(:math:`-\mathcal J^\alpha / N`, nats; with :math:`\alpha > 0` it is not a bound).

**M1+M2** (:class:`M1M2`): M2 fitted on the encoder means :math:`\mu_\phi(x)` of an already
fitted :class:`~pyrogen.models.vae.VAE` (M1) with a Gaussian likelihood; Kingma et al. used
samples of :math:`q(z_1\mid x)`, we use their means (deterministic features).

References
----------
1. D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. *Semi-supervised learning with deep
   generative models*. NeurIPS 2014 (arXiv:1406.5298). Table 1: M1+M2 test error on MNIST with
   100 / 600 / 1000 / 3000 labels: 3.33 / 2.59 / 2.40 / 2.18 %; M2 alone: 11.97 / 4.94 / 3.60 /
   3.92 %.
2. Pyro's tutorial ``examples/vae/ss_vae_M2.py`` (the pattern of the enumerated label).
3. I. Goodfellow, Y. Bengio, A. Courville. *Deep Learning*, MIT Press 2016, §15.1-15.3, §20.10.3.
"""

from __future__ import annotations

import math
import time

import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.nn import pyro_method

from .._validation import check_float, check_int, check_labels
from ..evaluation import LogLikelihood
from .base import DEFAULT_TOL, FitHistory, register_model
from .vae import VAE, ConditionalVAE

__all__ = ["SemiSupervisedVAE", "M1M2", "UNLABELLED"]

#: the label value that marks a missing label
UNLABELLED = -1


@register_model("ssvae")
class SemiSupervisedVAE(ConditionalVAE):
    r"""Kingma et al.'s M2 [1]: a conditional VAE whose label is observed where known and
    summed out by ``TraceEnum_ELBO`` where not, with a classifier :math:`q_\phi(y\mid x)`.

    Parameters
    ----------
    n_features : int
    n_classes : int
        :math:`C \ge 2`.
    **kwargs
        As :class:`~pyrogen.models.vae.VAE` (``latent_dims``, ``hidden_dims``,
        ``likelihood``, ...); the classifier has the encoder's hidden sizes.

    Notes
    -----
    Cost of one training step on :math:`B` rows with missing labels: :math:`C` encoder and
    decoder passes per row (parallel enumeration) plus one classifier pass.

    ``log_likelihood(x)`` is inherited: an importance-sampled estimate of :math:`\log p(x)` with
    the :math:`C` classes summed exactly (kind ``"is_estimate"``, cost :math:`C` times the
    VAE's). :meth:`elbo` is the training bound :math:`\mathcal U(x)` (or :math:`\mathcal L(x,
    y)` for labelled rows), kind ``"elbo"``, a lower bound.
    """

    # ------------------------------------------------------------------ labels
    def _check_y(self, y, n) -> torch.Tensor:
        return check_labels(y, n, self.n_classes, unlabelled=UNLABELLED)

    def _check_full_y(self, y, n) -> torch.Tensor:
        return check_labels(y, n, self.n_classes)

    # ------------------------------------------------------------------ Pyro model / guide
    @staticmethod
    def _label(y, logits, observe: bool):
        """The label site(s): the model's (``observe=True``, uniform prior ``logits``) or the
        guide's (classifier ``logits``; labelled rows need no guide site)."""
        if y is None:
            return pyro.sample("y", dist.Categorical(logits=logits))
        known = y != UNLABELLED
        if bool(known.all()):
            return pyro.sample("y", dist.Categorical(logits=logits), obs=y) if observe else y
        y_lat = pyro.sample("y_unlabelled", dist.Categorical(logits=logits).mask(~known))
        if observe:
            pyro.sample("y", dist.Categorical(logits=logits).mask(known), obs=y.clamp(min=0))
        return torch.where(known, y.clamp(min=0), y_lat)

    def _model(self, x, y, num_data, classification_weight):
        self._register("model")
        n = x.shape[0]
        with self._data_plate(x, num_data):
            yy = self._label(y, x.new_zeros(n, self.n_classes), observe=True)
            y1h = self._one_hot(yy)
            top = self.latent_dims[-1]
            with self._kl_scale():
                z = pyro.sample(
                    "z2" if len(self.latent_dims) == 2 else "z",
                    dist.Normal(x.new_zeros(n, top), x.new_ones(n, top)).to_event(1),
                )
                if len(self.latent_dims) == 2:
                    loc, scale = self.prior_z1(z)
                    z = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            pyro.sample("x", self._likelihood_dist(z, y1h), obs=x)
            if y is not None and classification_weight != 0.0:
                pyro.module(self._pname + ".classifier", self.classifier)
                logq = dist.Categorical(logits=self.classifier(x)).log_prob(y.clamp(min=0))
                with poutine.mask(mask=y != UNLABELLED):
                    pyro.factor("classification", classification_weight * logq)

    @pyro_method
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None):
        r"""Pyro model :math:`p(y)\,p(z)\,p_\theta(x\mid y,z)`, all sites in the ``"data"``
        plate.

        ``y``: ``None`` (latent ``"y"``), or labels with ``-1`` where unknown (``"y"`` observed
        under the known-rows mask, ``"y_unlabelled"`` latent under the other rows' mask).
        """
        self._model(x, y, num_data, 0.0)

    @pyro_method
    def training_model(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        num_data: int | None = None,
        classification_weight: float = 0.0,
    ):
        r""":meth:`model` plus the classification term
        :math:`\alpha \sum_{\text{labelled}} \log q_\phi(y\mid x)` (``pyro.factor``
        ``"classification"`` in the data plate, masked to the labelled rows). With
        ``config_enumerate(guide)`` and ``TraceEnum_ELBO`` its loss is
        :math:`-\mathcal J^\alpha`."""
        self._model(x, y, num_data, float(classification_weight))

    @pyro_method
    def guide(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        num_data: int | None = None,
        classification_weight: float = 0.0,
    ):
        r"""Pyro guide :math:`q_\phi(y\mid x)` (missing labels only), :math:`q_\phi(z\mid x,y)`.

        Enumerate its label site with ``pyro.infer.config_enumerate`` and ``TraceEnum_ELBO``.
        ``classification_weight`` is ignored (accepted so that the guide pairs with
        :meth:`training_model` as well as with :meth:`model`)."""
        self._register("guide")
        all_known = y is not None and bool((y != UNLABELLED).all())
        with self._data_plate(x, num_data):
            yy = self._label(y, None if all_known else self.classifier(x), observe=False)
            loc, scale = self._encode(x, self._one_hot(yy))
            self._sample_posterior(loc, scale)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        x,
        y=None,
        *,
        method: str = "svi",
        num_epochs: int = 10,
        batch_size: int = 100,
        labelled_batch_size: int | None = None,
        classification_weight: float | None = None,
        lr: float = 1e-3,
        num_particles: int = 1,
        max_seconds: float | None = None,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Maximize :math:`\mathcal J^\alpha` by SVI (``TraceEnum_ELBO``, Adam).

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
            Binary for ``likelihood="bernoulli"``.
        y : Tensor of int, shape ``(n,)``, optional
            Labels in ``[0, n_classes)``, ``-1`` where missing; ``None``: no labels at all
            (unsupervised M2).
        num_epochs : int
            Passes over the unlabelled rows (over the labelled ones if none is unlabelled).
        batch_size : int
            Unlabelled rows per step (:math:`B_u`).
        labelled_batch_size : int, optional
            Labelled rows per step (:math:`B_l`, drawn cyclically); default
            ``min(n_labelled, batch_size)``.
        classification_weight : float, optional
            :math:`\alpha` per labelled pair; default :math:`0.1 N / N_l` (Kingma et al.).
        lr, num_particles, max_seconds, tol, seed, progress, data_info
            As in :meth:`pyrogen.models.vae.VAE.fit`.
        callback : callable ``(epoch, metrics) -> None``, optional

        Returns
        -------
        FitHistory
            ``losses``: :math:`-\mathcal J^\alpha / N` per step (nats per example; a bound on
            :math:`-\log p` only when :math:`\alpha = 0`). ``metrics`` per epoch:
            ``train_loss``, ``labelled_accuracy`` (classifier on the labelled training rows),
            ``seconds``. ``info``: ``classification_weight``, ``n_labelled``,
            ``labelled_batch_size``.
        """
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead."
            )
        x = self._check_data_for_fit(x)
        n = x.shape[0]
        y = None if y is None else self._check_y(y, n).to(x.device)
        num_epochs = check_int(num_epochs, "num_epochs", low=1)
        batch_size = check_int(batch_size, "batch_size", low=1)
        num_particles = check_int(num_particles, "num_particles", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        if max_seconds is not None:
            max_seconds = check_float(max_seconds, "max_seconds", 0.0, None, "oc")
        known = torch.zeros(n, dtype=torch.bool, device=x.device) if y is None else y >= 0
        lab = known.nonzero().squeeze(-1)
        unl = (~known).nonzero().squeeze(-1)
        n_l, n_u = lab.numel(), unl.numel()
        if n_l:
            labelled_batch_size = (
                min(n_l, batch_size) if labelled_batch_size is None
                else min(n_l, check_int(labelled_batch_size, "labelled_batch_size", low=1))
            )
            alpha = (
                0.1 * n / n_l if classification_weight is None
                else check_float(classification_weight, "classification_weight", 0.0, None,
                                 "cc")
            )
        else:
            labelled_batch_size, alpha = 0, 0.0
        self._begin_fit(seed, data_info)
        elbo = pyro.infer.TraceEnum_ELBO(
            num_particles=num_particles, vectorize_particles=num_particles > 1,
            max_plate_nesting=1,
        )
        guide = pyro.infer.config_enumerate(self.guide, "parallel")
        svi = pyro.infer.SVI(self.training_model, guide, pyro.optim.Adam({"lr": lr}), elbo)
        history = FitHistory(
            method="svi",
            info={"loss": "TraceEnum_ELBO + classification term", "lr": lr,
                  "batch_size": batch_size, "labelled_batch_size": labelled_batch_size,
                  "classification_weight": alpha, "n_labelled": n_l,
                  "num_particles": num_particles},
        )
        main, n_main = (unl, n_u) if n_u else (lab, n_l)
        b_main = min(batch_size, n_main)
        lab_state = {"perm": lab[torch.randperm(n_l, device=x.device)] if n_l else lab, "pos": 0}

        def next_labelled():
            out, need = [], labelled_batch_size
            while need:
                perm, pos = lab_state["perm"], lab_state["pos"]
                take = perm[pos : pos + need]
                out.append(take)
                need -= take.numel()
                lab_state["pos"] = pos + take.numel()
                if lab_state["pos"] >= n_l:
                    lab_state["perm"] = lab[torch.randperm(n_l, device=x.device)]
                    lab_state["pos"] = 0
            return torch.cat(out)

        def step(_, idx):
            rows = main if idx is None else main[idx]
            weights = [torch.full((rows.numel(),), n_main / rows.numel(), dtype=x.dtype,
                                  device=x.device)]
            if n_u and n_l:
                lrows = next_labelled()
                weights.append(torch.full((lrows.numel(),), n_l / lrows.numel(),
                                          dtype=x.dtype, device=x.device))
                rows = torch.cat([rows, lrows])
            w = torch.cat(weights)
            yb = None if y is None else y[rows]
            scaled = poutine.scale(svi.step, scale=w)
            return scaled(x[rows], yb, None, alpha) / n

        t0 = time.perf_counter()
        per_epoch = math.ceil(n_main / b_main)

        def on_epoch(epoch):
            mon = {"train_loss": sum(history.losses[-per_epoch:]) / per_epoch,
                   "seconds": time.perf_counter() - t0}
            if n_l:
                with torch.no_grad():
                    mon["labelled_accuracy"] = float(
                        (self.classifier(x[lab]).argmax(-1) == y[lab]).double().mean()
                    )
            history.log(**mon)
            if callback is not None:
                callback(epoch, mon)
            return {k: f"{v:.3f}" for k, v in mon.items() if k != "seconds"}

        self._train(step, history, n=n_main, batch_size=b_main, num_epochs=num_epochs, lr=lr,
                    tol=tol, max_seconds=max_seconds, progress=progress, on_epoch=on_epoch,
                    device=x.device)
        history.info["num_epochs"] = len(history.metrics.get("train_loss", []))
        history.info["num_steps"] = len(history.losses)
        return history

    # ------------------------------------------------------------------ classifier
    @torch.no_grad()
    def predict_proba(self, x) -> torch.Tensor:
        r"""Classifier probabilities :math:`q_\phi(y\mid x)`, shape ``(n, n_classes)``."""
        x = self._check_x(x)
        return torch.softmax(self.classifier(x), -1)

    @torch.no_grad()
    def predict(self, x) -> torch.Tensor:
        r"""Most probable label :math:`\arg\max_y q_\phi(y\mid x)`, shape ``(n,)``, int64."""
        return self.predict_proba(x).argmax(-1)

    def _fill(self, x, y):
        guess = self.classifier(x).argmax(-1)
        if y is None:
            return guess
        y = self._check_y(y, x.shape[0])
        return torch.where(y >= 0, y, guess)

    # ------------------------------------------------------------------ evaluation
    def elbo(self, x, y=None, num_particles: int = 100, batch_size: int = 100) -> LogLikelihood:
        r"""Per-example training bound (kind ``"elbo"``, a lower bound on :math:`\log p(x)`
        for unlabelled rows and on :math:`\log p(x, y)` for labelled ones).

        Unlabelled rows (``y`` is ``None`` or ``-1``): :math:`\mathcal U(x) = \sum_c q(c\mid x)
        \mathcal L(x, c) + \mathcal H(q)`, the sum over :math:`c` exact and each
        :math:`\mathcal L(x, c)` a mean of ``num_particles`` log-weights; the standard error
        combines the per-class ones, :math:`\sqrt{\sum_c q_c^2 \mathrm{se}_c^2}`. Cost:
        :math:`C` times the labelled bound.
        """
        x = self._check_x(x)
        n = x.shape[0]
        y = torch.full((n,), UNLABELLED, dtype=torch.long, device=x.device) if y is None \
            else self._check_y(y, n)
        values = torch.empty(n, dtype=torch.float64, device=x.device)
        stderr = torch.empty(n, dtype=torch.float64, device=x.device)
        known = y >= 0
        if bool(known.any()):
            part = self._elbo(x[known], y[known], num_particles, batch_size)
            values[known], stderr[known] = part.values, part.stderr
        if bool((~known).any()):
            xu = x[~known]
            with torch.no_grad():
                logq = torch.log_softmax(self.classifier(xu), -1).double()  # (m, C)
            q = logq.exp()
            vals, ses = [], []
            for c in range(self.n_classes):
                yc = torch.full((xu.shape[0],), c, dtype=torch.long, device=x.device)
                part = self._elbo(xu, yc, num_particles, batch_size)
                vals.append(part.values)
                ses.append(part.stderr)
            lv, se = torch.stack(vals, -1), torch.stack(ses, -1)
            values[~known] = (q * (lv - logq)).sum(-1)
            stderr[~known] = torch.sqrt((q**2 * se**2).sum(-1))
        return LogLikelihood(values, "elbo", stderr,
                             info={"num_particles": num_particles,
                                   "classes_summed": self.n_classes})

    # ------------------------------------------------------------------ encoding / sampling
    @torch.no_grad()
    def transform(self, x, y=None) -> torch.Tensor:
        r"""Encoder mean of :math:`q(z\mid x, y)`, shape ``(n, d_1)``; missing labels (``None``
        or ``-1``) are filled with the classifier's guess."""
        x = self._check_x(x)
        return self._encode(x, self._one_hot(self._fill(x, y)))[0]

    @torch.no_grad()
    def reconstruct(self, x, y=None) -> torch.Tensor:
        """Decoder mean at the encoder mean, given (or guessed) labels."""
        x = self._check_x(x)
        y = self._fill(x, y)
        return self.decode(self._encode(x, self._one_hot(y))[0], y)

    @torch.no_grad()
    def sample(self, n: int, y=None, mean: bool = False) -> torch.Tensor:
        """Draw ``n`` examples with labels ``y`` (shape ``(n,)``) or uniform random labels."""
        n = self._check_n(n)
        if y is None:
            y = torch.randint(0, self.n_classes, (n,), device=self.device)
        y = self._check_full_y(y, n)
        return self._sample(n, self._one_hot(y), mean)

    def log_likelihood(self, x, y=None, num_particles: int = 1000, batch_size: int = 100,
                       chunk: int = 100) -> LogLikelihood:
        r"""IS estimate of :math:`\log p(x, y)` with ``y`` (all known), or of :math:`\log p(x)`
        with the classes summed exactly when ``y`` is ``None`` (see
        :meth:`pyrogen.models.vae.ConditionalVAE.log_likelihood`)."""
        if y is not None:
            y = self._check_full_y(y, x.shape[0] if hasattr(x, "shape") else -1)
        return super().log_likelihood(x, y, num_particles=num_particles,
                                      batch_size=batch_size, chunk=chunk)


class M1M2:
    r"""M1+M2 [1]: :class:`SemiSupervisedVAE` (M2) on the codes of a fitted
    :class:`~pyrogen.models.vae.VAE` (M1).

    The codes are the encoder means :math:`\mu_\phi(x)` of M1 (``m1.transform``); M2 models them
    with a Gaussian likelihood (``likelihood="gaussian"``) and classifies them.

    Parameters
    ----------
    m1 : VAE
        A fitted VAE (its weights are not changed).
    n_classes : int
    **m2_kwargs
        Constructor arguments of the M2 :class:`SemiSupervisedVAE` (``latent_dims``,
        ``hidden_dims``, ``seed``, ...); ``likelihood`` is ``"gaussian"``.

    Attributes
    ----------
    m1 : VAE
    m2 : SemiSupervisedVAE
        Over ``m1.latent_dims[0]`` features. Save the two with their own ``save``.
    """

    def __init__(self, m1: VAE, n_classes: int = 10, **m2_kwargs):
        if not isinstance(m1, VAE):
            raise TypeError(f"m1 must be a fitted pyrogen VAE. Got {type(m1).__name__} instead.")
        m2_kwargs.setdefault("likelihood", "gaussian")
        self.m1 = m1
        self.m2 = SemiSupervisedVAE(m1.latent_dims[0], n_classes, **m2_kwargs).to(m1.dtype)

    def codes(self, x) -> torch.Tensor:
        """M1's codes :math:`\\mu_\\phi(x)`, shape ``(n, d)``."""
        return self.m1.transform(x)

    def fit(self, x, y=None, **kwargs) -> FitHistory:
        """Fit M2 on M1's codes of ``x`` (labels as in :meth:`SemiSupervisedVAE.fit`)."""
        return self.m2.fit(self.codes(x), y, **kwargs)

    def predict_proba(self, x) -> torch.Tensor:
        """M2's classifier on M1's codes, shape ``(n, n_classes)``."""
        return self.m2.predict_proba(self.codes(x))

    def predict(self, x) -> torch.Tensor:
        """Most probable label, shape ``(n,)``."""
        return self.m2.predict(self.codes(x))

    def transform(self, x, y=None) -> torch.Tensor:
        """M2's encoder mean on M1's codes (labels missing: the classifier's guess)."""
        return self.m2.transform(self.codes(x), y)
