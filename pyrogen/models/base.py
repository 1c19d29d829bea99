"""The model protocol shared by every pyrogen model.

Every model is a :class:`pyro.nn.PyroModule` subclass of :class:`GenerativeModel` and offers the
same verbs:

=====================  ==========================================================================
verb                   meaning
=====================  ==========================================================================
``model(x)``           plain Pyro model; usable in ``SVI``, ``MCMC``, ``Predictive``, ``poutine``
``guide(x)``           plain Pyro guide matching ``model``
``fit(x, ...)``        training loop (tqdm progress) returning a :class:`FitHistory`
``log_likelihood(x)``  :class:`~pyrogen.evaluation.LogLikelihood`, shape ``(n,)``, with its kind
``sample(n)``          draws ``x`` from the model, shape ``(n, n_features)``
``transform(x)``       posterior mean (or mode) of the latent representation
``save`` / ``load``    parameters + constructor config, atomic, ``weights_only=True`` safe
=====================  ==========================================================================

Subclasses write only what is theirs: ``__init__`` (calling ``super().__init__(**config)`` with
their constructor arguments so that ``save``/``load`` can rebuild them), ``model``, ``guide``,
``log_likelihood``, ``sample``, ``transform`` and, optionally, closed-form ``fit`` methods.
The shared :meth:`GenerativeModel.fit` runs Pyro SVI on ``model``/``guide``.

Pyro's global parameter store keys parameters by name, so two instances of one PyroModule class
would share (and overwrite) each other's parameters. Each pyrogen model therefore gets a unique
Pyro name (``"FactorAnalysis_3"``); ``pyro.settings.set(module_local_params=True)`` works too.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.infer
import torch
from pyro.nn import PyroModule
from tqdm.auto import tqdm

from .._io import atomic_torch_save
from .._validation import check_data, check_float, check_int

__all__ = [
    "GenerativeModel",
    "FitHistory",
    "MODELS",
    "register_model",
    "load",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1

#: name -> model class, filled by :func:`register_model`; used by ``load`` and the CLI.
MODELS: dict[str, type[GenerativeModel]] = {}

_instance_counter = itertools.count()


def register_model(name: str):
    """Class decorator: register a :class:`GenerativeModel` under ``name`` (CLI, ``load``)."""

    def deco(cls):
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {MODELS[name]}")
        MODELS[name] = cls
        cls.registry_name = name
        return cls

    return deco


@dataclass
class FitHistory:
    """What :meth:`GenerativeModel.fit` returns.

    Attributes
    ----------
    method : str
        The training method (``"svi"``, ``"em"``, ``"closed_form"``, ...).
    losses : list of float
        Per step (or per EM iteration) loss; for SVI the negative ELBO per example (nats).
    metrics : dict of str -> list
        The model's own diagnostics per step/epoch (e.g. ``"log_likelihood"``, ``"kl"``).
    seconds : float
        Wall-clock training time.
    converged : bool or None
        For iterative closed-form methods, whether the tolerance was reached.
    info : dict
        Anything else (number of steps, data identity, ...).
    """

    method: str
    losses: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    converged: bool | None = None
    info: dict = field(default_factory=dict)

    def log(self, **values):
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "final_loss": self.losses[-1] if self.losses else None,
            "num_steps": len(self.losses),
            "seconds": self.seconds,
            "converged": self.converged,
            "metrics": {k: v[-1] for k, v in self.metrics.items() if v},
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
        }


class GenerativeModel(PyroModule):
    """Base class of every pyrogen model (the model protocol).

    Parameters
    ----------
    **config
        The subclass's constructor arguments (JSON-like values only). They are stored as
        ``self.config`` and passed back to the constructor by :func:`load`.
    """

    registry_name: str = ""
    #: kind of ``log_likelihood`` (a key of :data:`pyrogen.evaluation.KINDS`)
    log_likelihood_kind: str = "exact"

    def __init__(self, **config):
        super().__init__(name=f"{type(self).__name__}_{next(_instance_counter)}")
        self.config = dict(config)
        #: identity of the data the model was last fitted on (binarization scheme and seed...)
        self.data_info: dict = {}

    # ------------------------------------------------------------------ protocol (abstract)
    def model(self, x: torch.Tensor, num_data: int | None = None):  # pragma: no cover
        raise NotImplementedError

    def guide(self, x: torch.Tensor, num_data: int | None = None):  # pragma: no cover
        raise NotImplementedError

    def log_likelihood(self, x):  # pragma: no cover
        raise NotImplementedError

    def sample(self, n: int):  # pragma: no cover
        raise NotImplementedError

    def transform(self, x):  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ shared helpers
    @property
    def dtype(self) -> torch.dtype:
        for p in itertools.chain(self.parameters(), self.buffers()):
            if p.dtype.is_floating_point:
                return p.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        for p in itertools.chain(self.parameters(), self.buffers()):
            return p.device
        return torch.device("cpu")

    @property
    def n_features(self) -> int:
        return int(self.config["n_features"])

    def _check_x(self, x, name: str = "x", min_rows: int = 1) -> torch.Tensor:
        """Validate data against this model (features, dtype, device, finiteness)."""
        return check_data(
            x,
            name,
            n_features=self.n_features,
            dtype=self.dtype,
            device=self.device,
            min_rows=min_rows,
        )

    def _data_plate(self, x: torch.Tensor, num_data: int | None = None):
        """The ``"data"`` plate over rows of ``x``; scaled to ``num_data`` for minibatches."""
        n = x.shape[0]
        size = n if num_data is None else num_data
        return pyro.plate("data", size, subsample=torch.arange(n, device=x.device))

    def _check_n(self, n) -> int:
        return check_int(n, "n", low=1)

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        x,
        *,
        method: str = "svi",
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss: pyro.infer.ELBO | None = None,
        seed: int | None = None,
        progress: bool = True,
        callback: Callable[[int, float], Any] | None = None,
        data_info: dict | None = None,
    ) -> FitHistory:
        """Fit by Pyro SVI on :meth:`model`/:meth:`guide` (subclasses add closed forms).

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
        method : str
            ``"svi"`` here; subclasses add e.g. ``"em"``.
        num_steps : int
            Optimizer steps (each on one minibatch when ``batch_size`` is set).
        lr : float
            Adam learning rate.
        batch_size : int, optional
            Minibatch size; the data plate is scaled to the full data set.
        loss : pyro.infer.ELBO, optional
            Defaults to ``Trace_ELBO()``.
        seed : int, optional
            Seeds Pyro, torch and numpy (``pyro.set_rng_seed``).
        progress : bool
            Show a tqdm progress bar.
        callback : callable ``(step, loss) -> None``, optional
        data_info : dict, optional
            Identity of the data (e.g. ``Dataset.info``: binarization scheme and seed); stored
            in ``self.data_info`` and saved with the model.
        """
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead."
            )
        x = self._check_x(x)
        return self._fit_svi(
            x,
            num_steps=num_steps,
            lr=lr,
            batch_size=batch_size,
            loss=loss,
            seed=seed,
            progress=progress,
            callback=callback,
            data_info=data_info,
        )

    def fit_methods(self) -> tuple[str, ...]:
        """The values ``fit(method=...)`` accepts."""
        return ("svi",)

    def _fit_svi(
        self,
        x: torch.Tensor,
        *,
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss: pyro.infer.ELBO | None = None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
        model=None,
        guide=None,
    ) -> FitHistory:
        """The shared SVI loop: ``pyro.infer.SVI`` with ``pyro.optim.Adam``.

        The loss recorded is the negative ELBO **per example** (nats), so that numbers from
        different batch sizes and data sizes compare.
        """
        num_steps = check_int(num_steps, "num_steps", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        n = x.shape[0]
        if batch_size is not None:
            batch_size = min(check_int(batch_size, "batch_size", low=1), n)
        if seed is not None:
            pyro.set_rng_seed(check_int(seed, "seed", low=0))
        if data_info is not None:
            self.data_info = dict(data_info)
        model = self.model if model is None else model
        guide = self.guide if guide is None else guide
        svi = pyro.infer.SVI(
            model, guide, pyro.optim.Adam({"lr": lr}), loss or pyro.infer.Trace_ELBO()
        )
        history = FitHistory(method="svi", info={"num_steps": num_steps, "lr": lr})

        def step_loss(step):
            if batch_size is None or batch_size >= n:
                return svi.step(x, num_data=None) / n
            idx = torch.randint(0, n, (batch_size,), device=x.device)
            return svi.step(x[idx], num_data=n) / n

        return self._run_steps(step_loss, history, num_steps=num_steps, lr=lr,
                               progress=progress, callback=callback)

    def _run_steps(self, step_loss, history: FitHistory, *, num_steps: int, lr: float,
                   progress: bool, callback=None) -> FitHistory:
        """Call ``step_loss(step)`` (one optimizer step, returning its loss) ``num_steps`` times.

        Appends each loss to ``history.losses``, refuses a non-finite loss with a
        ``FloatingPointError`` naming the step and ``lr``, shows a progress bar, calls
        ``callback(step, loss)`` and sets ``history.seconds``.
        """
        t0 = time.perf_counter()
        bar = tqdm(range(num_steps), disable=not progress, desc=f"{type(self).__name__} svi")
        for step in bar:
            value = step_loss(step)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"SVI loss became {value} at step {step}; lower lr (got {lr}) or check the "
                    "data scale."
                )
            history.losses.append(value)
            if progress and step % 25 == 0:
                bar.set_postfix(loss=f"{value:.4f}")
            if callback is not None:
                callback(step, value)
        history.seconds = time.perf_counter() - t0
        return history

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save parameters and constructor config to ``path`` atomically.

        The file is written to a temporary file in the same folder and renamed over ``path``
        (``os.replace``), so a crash never leaves a half-written file nor destroys the previous
        one. It loads with ``torch.load(path, weights_only=True)``.
        """
        payload = {
            "format": "pyrogen",
            "format_version": FORMAT_VERSION,
            "model": self.registry_name or type(self).__name__,
            "config": dict(self.config),
            "data_info": dict(self.data_info),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "dtype": str(self.dtype).replace("torch.", ""),
        }
        atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location="cpu") -> GenerativeModel:
        """Load a model saved by :meth:`save` (``weights_only=True``)."""
        model = load(path, map_location=map_location)
        if not isinstance(model, cls):
            raise TypeError(
                f"{os.fspath(path)!r} holds a {type(model).__name__}, not a {cls.__name__}."
            )
        return model

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())


def load(path: str | os.PathLike, map_location="cpu") -> GenerativeModel:
    """Load any pyrogen model saved with :meth:`GenerativeModel.save`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved model at {path!r}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "pyrogen":
        raise ValueError(f"{path!r} is not a pyrogen model file")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written by a newer pyrogen (format {payload['format_version']}); "
            f"this one reads format <= {FORMAT_VERSION}."
        )
    name = payload["model"]
    # make sure every model module is imported so that the registry is complete
    import pyrogen.models  # noqa: F401

    if name not in MODELS:
        raise ValueError(f"{path!r} holds unknown model {name!r}; known: {sorted(MODELS)}")
    model = MODELS[name](**payload["config"])
    dtype = getattr(torch, payload.get("dtype", "float32"))
    model = model.to(dtype)
    model.load_state_dict(payload["state_dict"])
    model.data_info = dict(payload.get("data_info", {}))
    return model
