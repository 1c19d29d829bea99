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

import contextlib
import functools
import inspect
import itertools
import math
import os
import pickle
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import pyro
import pyro.infer
import torch
from pyro.nn import PyroModule
from tqdm.auto import tqdm

from .. import distributed as _dist
from .._history import FitHistory
from .._io import atomic_torch_save
from .._validation import check_data, check_float, check_int
from ..exceptions import ConvergenceWarning

# FitHistory (from pyrogen._history) is importable from here; documented in pyrogen.models
__all__ = [
    "GenerativeModel",
    "MODELS",
    "register_model",
    "load",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1

#: default stopping rule of the training loop (:meth:`GenerativeModel._train`): relative
#: improvement ``tol`` of the mean loss per window of at least ``window`` steps (whole epochs),
#: stop after ``patience`` windows in a row without it
DEFAULT_TOL = 1e-4
DEFAULT_WINDOW = 50
DEFAULT_PATIENCE = 2

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside pyrogen."""
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _PACKAGE_DIR + os.sep
    ):
        frame, level = frame.f_back, level + 1
    return level

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


# FitHistory lives in pyrogen._history (below the models: pyrogen.numpyro returns it too)


#: per-thread state of the constructor being run (see ``GenerativeModel.__init_subclass__``)
_construction = threading.local()


def _seeded_construction(init):
    """Wrap a model's ``__init__``: when its config holds a ``seed``, the constructor draws
    its initial parameters from torch's CPU generator seeded with it, and the global random
    state is restored afterwards (neither used nor advanced). Nested ``super().__init__``
    calls run inside the outermost one."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if getattr(_construction, "active", False):
            return init(self, *args, **kwargs)
        _construction.active, _construction.seeded = True, False
        state = torch.get_rng_state()
        try:
            return init(self, *args, **kwargs)
        finally:
            if _construction.seeded:
                torch.set_rng_state(state)
            _construction.active = _construction.seeded = False

    __init__._pyrogen_seeded = True
    return __init__


class GenerativeModel(PyroModule):
    """Base class of every pyrogen model (the model protocol).

    Parameters
    ----------
    **config
        The subclass's constructor arguments (JSON-like values only). They are stored as
        ``self.config`` and passed back to the constructor by :func:`load`.

    Notes
    -----
    **Seeds and reproducibility** (sklearn's ``random_state`` split where the randomness is):

    * the **constructor**'s ``seed`` (every model whose initial parameters are random has one;
      default ``0``) fixes the initial parameters. The constructor draws them from torch's
      CPU generator seeded with ``seed`` *after* ``super().__init__(..., seed=seed)``, and
      restores the global random state afterwards: building a model neither depends on nor
      advances the user's random stream. ``seed=None`` draws them from (and advances) the
      global random state instead, as plain PyTorch/Pyro modules do
      (``pyro.set_rng_seed(s)`` before construction then reproduces them).
    * ``fit(seed=...)`` seeds the **training** randomness (minibatch permutations, Monte Carlo
      draws, random restarts) with ``pyro.set_rng_seed`` before anything random in ``fit``;
      ``fit`` continues from the current parameters (it does not re-initialise them).

    So ``Model(..., seed=a).fit(x, seed=b)`` gives the same parameters every time (on the same
    hardware and torch version); the generic test ``tests/models/test_generic.py`` checks it for
    every registered model.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_pyrogen_seeded", False):
            cls.__init__ = _seeded_construction(init)

    registry_name: str = ""
    #: kind of ``log_likelihood`` (a key of :data:`pyrogen.evaluation.KINDS`)
    log_likelihood_kind: str = "exact"

    def __init__(self, **config):
        super().__init__(name=f"{type(self).__name__}_{next(_instance_counter)}")
        self.config = dict(config)
        seed = config.get("seed")
        if seed is not None and getattr(_construction, "active", False):
            # the rest of the subclass's constructor draws from this stream (restored after)
            torch.default_generator.manual_seed(check_int(seed, "seed", low=0))
            _construction.seeded = True
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

    def _check_fit_x(self, x, name: str = "x"):
        """Training data: a validated tensor, or a :class:`~pyrogen.distributed.RowSource`
        (memory-mapped array, ``Dataset``, ``DataLoader``) whose batches are validated by
        :meth:`_check_x` as they are read."""
        src = _dist.as_row_source(x, lambda rows: self._check_x(rows, name), name)
        return self._check_x(x, name) if src is None else src

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
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback: Callable[[int, float], Any] | None = None,
        data_info: dict | None = None,
    ) -> FitHistory:
        """Fit by Pyro SVI on :meth:`model`/:meth:`guide` (subclasses add closed forms).

        Parameters
        ----------
        x : Tensor, array, numpy.memmap, Dataset or DataLoader, shape ``(n, n_features)``
            A memory-mapped array or a ``Dataset`` streams: rows are read and validated one
            batch at a time (:class:`~pyrogen.distributed.RowSource`; a ``DataLoader`` gives
            its dataset and, when ``batch_size`` is unset, its batch size).
        method : str
            ``"svi"`` here; subclasses add e.g. ``"em"``.
        num_steps : int
            Maximum optimizer steps (each on one minibatch when ``batch_size`` is set).
        lr : float
            Adam learning rate.
        batch_size : int, optional
            Minibatch size; minibatches are drawn without replacement from a fresh permutation
            every pass over the data, and the data plate is scaled to the full data set.
            Under ``torchrun`` the global batch of all processes (a multiple of the world
            size; see :mod:`pyrogen.distributed`).
        loss : pyro.infer.ELBO, optional
            Defaults to ``Trace_ELBO()``.
        tol : float or None
            Convergence test of the training loop (see :meth:`_train`): stop when the windowed
            mean loss has not improved by more than ``tol`` (relative) for ``patience``
            windows; a ``ConvergenceWarning`` if ``num_steps`` ran out first. ``None``: run
            exactly ``num_steps`` steps, no test, no warning (``converged`` is ``None``).
        seed : int, optional
            Seeds the training randomness: Pyro, torch and numpy (``pyro.set_rng_seed``).
            The initial parameters come from the constructor (its own ``seed``, if any).
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
        x = self._check_fit_x(x)
        return self._fit_svi(
            x,
            num_steps=num_steps,
            lr=lr,
            batch_size=batch_size,
            loss=loss,
            tol=tol,
            seed=seed,
            progress=progress,
            callback=callback,
            data_info=data_info,
        )

    def fit_methods(self) -> tuple[str, ...]:
        """The values ``fit(method=...)`` accepts."""
        return ("svi",)

    def _begin_fit(self, seed: int | None = None, data_info: dict | None = None) -> None:
        """What every ``fit`` does first: seed the training randomness, record the data."""
        if seed is not None:
            pyro.set_rng_seed(check_int(seed, "seed", low=0))
        if data_info is not None:
            self.data_info = dict(data_info)

    def _fit_svi(
        self,
        x: torch.Tensor,
        *,
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss: pyro.infer.ELBO | None = None,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
        model=None,
        guide=None,
        tol_name: str = "tol",
    ) -> FitHistory:
        """``pyro.infer.SVI`` with ``pyro.optim.Adam`` over :meth:`_train`.

        The loss recorded is the negative ELBO **per example** (nats), so that numbers from
        different batch sizes and data sizes compare.
        """
        num_steps = check_int(num_steps, "num_steps", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        self._begin_fit(seed, data_info)
        if isinstance(x, _dist.RowSource) and batch_size is None:
            batch_size = x.batch_size
        n = x.shape[0]
        streamed = isinstance(x, _dist.RowSource)
        model = self.model if model is None else model
        guide = self.guide if guide is None else guide
        svi = pyro.infer.SVI(
            model, guide, pyro.optim.Adam({"lr": lr}), loss or pyro.infer.Trace_ELBO()
        )
        history = FitHistory(method="svi", info={"num_steps": num_steps, "lr": lr})

        def step(_, idx):
            if idx is None:
                return svi.step(x[torch.arange(n)] if streamed else x, num_data=None) / n
            return svi.step(x[idx], num_data=n) / n

        return self._train(step, history, n=n, batch_size=batch_size, num_steps=num_steps,
                           lr=lr, tol=tol, progress=progress, callback=callback,
                           device=self.device if streamed else x.device, tol_name=tol_name)

    def _train(
        self,
        step: Callable[[int, torch.Tensor | None], float],
        history: FitHistory,
        *,
        n: int = 1,
        batch_size: int | None = None,
        num_steps: int | None = None,
        num_epochs: int | None = None,
        lr: float | None = None,
        tol: float | None = DEFAULT_TOL,
        window: int = DEFAULT_WINDOW,
        patience: int = DEFAULT_PATIENCE,
        floor: float = 1.0,
        max_seconds: float | None = None,
        progress: bool = True,
        callback: Callable[[int, float], Any] | None = None,
        on_epoch: Callable[[int], dict | None] | None = None,
        device: torch.device | None = None,
        desc: str | None = None,
        limit_name: str | None = None,
        tol_name: str | None = "tol",
    ) -> FitHistory:
        r"""The one training loop of every iterative ``fit``.

        Calls ``step(i, idx)`` -- one optimizer (or EM, or sweep) step ``i`` on the rows
        ``idx`` of the data, returning the loss per example -- for ``num_steps`` steps or
        ``num_epochs`` passes over the data, and owns everything around it:

        * **minibatches**: with ``batch_size < n``, each pass over the ``n`` rows ("epoch") is
          a fresh ``torch.randperm(n)`` cut into batches of ``batch_size`` (the last one may be
          smaller): every row once per epoch, drawn without replacement. ``idx`` is a
          ``LongTensor`` of row indices, or ``None`` for the full data (``batch_size`` unset
          or ``>= n``; an epoch is then one step). The permutations use torch's global random
          state, seeded by ``fit(seed=...)`` (:meth:`_begin_fit`).
        * **non-finite loss**: ``FloatingPointError`` naming the step, the epoch and ``lr``.
        * **convergence** (when ``tol`` is not ``None``): the losses are averaged over windows
          of whole epochs of at least ``window`` steps; with :math:`\bar\ell_k` the mean over
          window :math:`k` and :math:`b` the best earlier window mean, window :math:`k`
          improves when :math:`\bar\ell_k < b - \mathrm{tol}\cdot\max(|b|, f)` (relative,
          with a floor :math:`f` = ``floor``, 1 nat by default, for losses near 0; monotone
          EM-like methods pass ``window=1, patience=1`` and their own ``tol`` and ``floor``).
          After ``patience`` windows in a row without
          improvement the loop stops and ``history.converged`` is ``True``. If the steps run
          out first (or were fewer than ``patience + 1`` windows, too few to judge),
          ``history.converged`` is ``False`` and a :class:`~pyrogen.ConvergenceWarning` says
          so. Window means of minibatch losses average out most of their noise; a run that
          only drifts by less than ``tol`` per window counts as converged.
        * **progress** (tqdm over steps), ``callback(i, loss)`` after every step,
          ``on_epoch(epoch)`` after every epoch (may return values for the progress bar),
          ``max_seconds`` (stop after the first epoch that ends past it; ``converged`` is then
          ``False`` and the warning names the time budget), and ``history``: ``losses`` per
          step, ``seconds``, ``converged``, ``info["num_steps_run"]``, ``info["num_epochs_run"]``
          and the stopping rule (``tol``, ``window``, ``patience``).
        * **several processes** (a ``torch.distributed`` process group of size > 1, e.g.
          ``torchrun``): data-parallel steps, see :mod:`pyrogen.distributed`. Each epoch's
          global batches come from a permutation shared by the ranks and each rank's ``idx``
          is its disjoint part (never ``None``); the gradients are combined before every
          optimizer step and the loss is the same combined value on every rank, so that all
          ranks stop together. Progress and warnings on rank 0 only. A step that makes no
          optimizer step (closed forms, EM) cannot run data-parallel: ``RuntimeError``.

        ``limit_name`` / ``tol_name``: the ``fit`` arguments the warning tells the user to
        change (default ``num_steps`` or ``num_epochs``, and ``tol``; ``tol_name=None`` when
        the method has no untested mode).
        """
        if (num_steps is None) == (num_epochs is None):
            raise ValueError("_train needs exactly one of num_steps and num_epochs.")
        n = check_int(n, "n", low=1)
        full = batch_size is None or batch_size >= n
        bs = n if full else check_int(batch_size, "batch_size", low=1)
        per_epoch = 1 if full else math.ceil(n / bs)
        rank, world = _dist.world()
        if world > 1:  # data-parallel (pyrogen.distributed): check the split before anything
            _dist.epoch_batches(n, None if full else bs, world_size=world)
            if not full and per_epoch > 1 and n - (per_epoch - 1) * bs < world:
                per_epoch -= 1  # the last, too small batch is merged into the one before
        total = num_steps if num_steps is not None else num_epochs * per_epoch
        if tol is not None:
            tol = check_float(tol, "tol", 0.0, None, "cc")
            window = check_int(window, "window", low=1)
            patience = check_int(patience, "patience", low=1)
            floor = check_float(floor, "floor", 0.0, None, "cc")
        window_epochs = math.ceil(window / per_epoch)
        history.info.update(tol=tol)
        if tol is not None:
            history.info.update(window=window_epochs * per_epoch, patience=patience)
        name = desc or f"{type(self).__name__} {history.method}"
        if world > 1:
            history.info.update(world_size=world)
        t0 = time.perf_counter()
        progress = progress and rank == 0
        bar = tqdm(total=total, disable=not progress, desc=name)
        means: list[float] = []
        best, bad, converged, timed_out = math.inf, 0, False, False
        i = epoch = 0
        stack = contextlib.ExitStack()
        try:
            dp = stack.enter_context(_dist.data_parallel(self)) if world > 1 else None
            while i < total and not converged and not timed_out:
                if dp is not None:
                    batches = _dist.epoch_batches(n, None if full else bs, world_size=world,
                                                  generator=dp.generator, device=device)
                perm = None if full or dp is not None else torch.randperm(n, device=device)
                start_i = i
                for b in range(per_epoch):
                    if i >= total:
                        break
                    if dp is None:
                        idx = None if full else perm[b * bs : (b + 1) * bs]
                        value = float(step(i, idx))
                    else:
                        idx = _dist.shard(batches[b], rank, world)
                        dp.sync.weight = idx.numel() / batches[b].numel()
                        value = _dist.reduce_weighted(float(step(i, idx)), dp.sync.weight)
                        if dp.sync.num_syncs == 0:
                            raise RuntimeError(
                                f"{name}: this fit method made no optimizer step, so it cannot "
                                f"run data-parallel over {world} processes (its parameters "
                                "would differ between them); run it in one process."
                            )
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"{name}: the loss became {value} at step {i} (epoch {epoch}); "
                            f"lower lr (got {lr}) or check the data scale."
                        )
                    history.losses.append(value)
                    if callback is not None:
                        callback(i, value)
                    i += 1
                    bar.update(1)
                    if progress and (i % 25 == 0 or i == total):
                        bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if i - start_i < per_epoch:  # a partial epoch at the end of num_steps
                    break
                epoch += 1
                if on_epoch is not None:
                    shown = on_epoch(epoch - 1)
                    if progress and shown:
                        bar.set_postfix(shown, refresh=False)
                if tol is not None and epoch % window_epochs == 0:
                    mean = sum(history.losses[-window_epochs * per_epoch :]) / (
                        window_epochs * per_epoch
                    )
                    means.append(mean)
                    if not math.isfinite(best) or mean < best - tol * max(abs(best), floor):
                        best, bad = mean, 0
                    else:
                        bad += 1
                    converged = bad >= patience
                if max_seconds is not None:
                    late = time.perf_counter() - t0 > max_seconds
                    if dp is not None:  # every rank stops at the same epoch: any rank late
                        late = _dist.reduce_weighted(float(late), 1.0) > 0
                    if late:
                        timed_out = not converged
        finally:
            bar.close()
            stack.close()
        history.seconds = time.perf_counter() - t0
        history.info.update(num_steps_run=i, num_epochs_run=epoch)
        if tol is None:
            return history
        history.converged = converged
        history.metrics["window_mean_loss"] = means
        if not converged and rank == 0:  # warnings from rank 0 only
            if timed_out:
                why = f"max_seconds={max_seconds} ran out after {i} steps"
            elif len(means) <= patience:
                why = (
                    f"it ran {i} steps, too few to judge: the test needs {patience + 1} windows "
                    f"of {window_epochs * per_epoch} steps"
                )
            else:
                w = window_epochs * per_epoch
                why = (
                    f"it ran out of steps after {i}, while the mean loss per window of {w} "
                    f"step{'s' if w > 1 else ''} still improved (last means "
                    f"{', '.join(f'{m:.4g}' for m in means[-3:])})"
                )
            budget = limit_name or ("num_epochs" if num_epochs is not None else "num_steps")
            advice = f"raise {budget}" + ("" if lr is None else " or lr")
            if tol_name:
                advice += f", or pass {tol_name}=None to run a fixed number of steps untested"
            warnings.warn(
                f"{name}: fit stopped before converging ({why}; tol={tol}); {advice}.",
                ConvergenceWarning,
                stacklevel=_user_stacklevel(),
            )
        return history

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Save parameters and constructor config to ``path`` atomically.

        The file is written to a temporary file in the same folder and renamed over ``path``
        (``os.replace``), so a crash never leaves a half-written file nor destroys the previous
        one. It loads with ``torch.load(path, weights_only=True)``. Under ``torchrun`` only
        rank 0 writes, and every rank returns once the file is there (a barrier): call it on
        every rank.
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
        if _dist.is_main_process():
            atomic_torch_save(payload, path)
        _dist.barrier()

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
    """Load any pyrogen model saved with :meth:`GenerativeModel.save`.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    ValueError
        ``path`` is not a torch file (``torch.save`` writes a zip archive), or a torch file
        ``torch.load(weights_only=True)`` cannot read (truncated, or holding arbitrary
        objects), or a torch file that is not a pyrogen model (no ``"format": "pyrogen"``
        payload with a model name, config and state dict); the message names the path.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no saved model at {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a pyrogen model file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path!r} is not a pyrogen model file: it is not a torch file (torch.save writes "
            f"a zip archive; this file of {os.path.getsize(path)} bytes is not one)."
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            KeyError, ValueError) as e:
        raise ValueError(
            f"{path!r} is not a pyrogen model file: torch.load(weights_only=True) cannot read "
            f"it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); it may be "
            "truncated or hold objects other than tensors."
        ) from e
    keys = ("model", "config", "state_dict")
    if (
        not isinstance(payload, dict)
        or payload.get("format") != "pyrogen"
        or not all(k in payload for k in keys)
    ):
        what = (
            f"a dict with keys {sorted(map(str, payload))[:8]}"
            if isinstance(payload, dict)
            else f"a {type(payload).__name__}"
        )
        raise ValueError(
            f"{path!r} is a torch file but not a pyrogen model file: it holds {what}, not the "
            f"payload GenerativeModel.save writes ('format': 'pyrogen' with {', '.join(keys)})."
        )
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
