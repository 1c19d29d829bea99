"""The ``pyrogen`` command line: thin over the library.

``pyrogen tour [--out DIR] [--seed N] [--quick] [--only STEP ...]``
    Fit every model family on built-in data, print one line per model (log-likelihood labelled
    exact / estimate / bound, with its standard error, and timing) and write a report folder.

``pyrogen fit MODEL --data DATA [-p NAME=VALUE ...] [--method M] [--steps N] [--out PATH]``
    Fit one model (progress bar) and save it. ``DATA`` is ``digits``, ``digits-threshold``,
    ``digits-stochastic``, ``mnist`` (fixed binarized MNIST via ``PYROGEN_DATA``) or a path to a
    ``.npz``/``.amat`` binarized MNIST file or a ``.npy`` matrix.

``pyrogen evaluate MODEL_FILE --data DATA [--estimator E] [-p NAME=VALUE ...] [--out DIR]``
    Load any saved model, evaluate its log-likelihood on ``DATA`` (same forms as ``fit``) with
    the estimator ``E`` (``exact``, ``ais``, ``raise`` or ``is``, among those the model offers;
    default: the model's own ``log_likelihood``), print the labelled number with its standard
    error and the data's identity, and write ``report.json`` + ``index.html`` into ``DIR``.

``pyrogen models``
    List the registered models.

``tour``, ``evaluate`` and ``fit --report DIR`` write a report folder: ``report.json`` and a
static ``index.html`` rendered from it (:mod:`pyrogen.report_html`).

Errors in the user's input (unknown model, missing or malformed data file, bad option or model
parameter) are found before any work starts and print one line on stderr, exit code 2. Any other
exception is a bug (of pyrogen or of a model) and propagates with its traceback (exit code 1).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import shlex
import sys
import time
import traceback

EXIT_USAGE = 2


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


def _parse_param(text: str):
    if "=" not in text:
        raise UsageError(f"--param must look like NAME=VALUE. Got {text!r} instead.")
    key, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _load_npy(spec: str):
    import numpy as np
    import torch

    from . import datasets

    try:
        arr = np.load(spec, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # not a .npy file, or an object array
        raise UsageError(f"--data {spec!r} is not a readable .npy array: {e}") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or 0 in arr.shape:
        shape = getattr(arr, "shape", None)
        raise UsageError(
            f"--data {spec!r} must hold a 2-D array of shape (n_samples, n_features) with "
            f"n_samples, n_features >= 1. Got shape {shape} instead."
        )
    if arr.dtype.kind not in "biuf":
        raise UsageError(
            f"--data {spec!r} must hold numbers (bool, int or float). Got dtype {arr.dtype} "
            "instead."
        )
    x = torch.as_tensor(arr.astype(np.float64), dtype=torch.get_default_dtype())
    info = {
        "name": os.path.basename(spec),
        "split": "all",
        "source": os.path.abspath(spec),
        "binarization": None,
        "binarization_seed": None,
        "n": x.shape[0],
        "n_features": x.shape[-1],
    }
    return datasets.Dataset(x, None, info)


def _load_data(spec: str, seed: int):
    """The data named by ``--data``; any problem with it is a :class:`UsageError`."""
    from . import datasets

    try:
        if spec in ("digits", "digits-threshold", "digits-stochastic"):
            binarize = None if spec == "digits" else spec.split("-", 1)[1]
            return datasets.load_digits(binarize=binarize, seed=seed)
        if spec == "mnist" or spec.startswith("mnist:"):
            split = spec.split(":", 1)[1] if ":" in spec else "train"
            return datasets.load_binarized_mnist(split=split)
        if os.path.exists(spec):  # a file, or a folder holding binarized MNIST
            if spec.endswith(".npy"):
                return _load_npy(spec)
            # .npz / .amat: an .amat file is labelled with the split its name names
            return datasets.load_binarized_mnist(path=spec)
    except (FileNotFoundError, ValueError, TypeError) as e:
        # the loaders raise these only about the file or the split they were given
        raise UsageError(f"--data {spec!r}: {e}") from None
    raise UsageError(
        f"--data must be digits, digits-threshold, digits-stochastic, mnist[:split] or an "
        f"existing .npz/.amat/.npy file. Got {spec!r} (no such file)."
    )


def _check_required_params(cls, params: dict, name: str) -> None:
    """Name missing/unknown constructor arguments as -p options (not Python signatures)."""
    import inspect

    sig = inspect.signature(cls.__init__)
    ps = list(sig.parameters.values())[2:]  # skip self, n_features
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in ps)
    known = {p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [
        p.name
        for p in ps
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in params
    ]
    if missing:
        opts = " ".join(f"-p {m}=..." for m in missing)
        raise UsageError(f"model {name!r} needs {', '.join(missing)}: pass {opts}")
    unknown = sorted(set(params) - known)
    if unknown and not accepts_any:
        raise UsageError(
            f"model {name!r} has no parameter(s) {', '.join(unknown)}; it takes: "
            f"{', '.join(sorted(known))}"
        )


def _cmd_models(args) -> int:
    from .models import MODELS

    for name, cls in sorted(MODELS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<12} {cls.__name__:<24} {doc[0] if doc else ''}")
    return 0


def _cmd_tour(args) -> int:
    from .tour import STEP_MODULES, run_tour

    unknown = sorted(set(args.only or ()) - set(STEP_MODULES))
    if unknown:
        raise UsageError(f"--only must name tour steps from {', '.join(STEP_MODULES)}. Got "
                         f"{', '.join(unknown)} instead.")
    run_tour(out_dir=args.out, seed=args.seed, quick=args.quick, only=args.only or None,
             command=_command_line(args))
    return 0


def _command_line(args) -> str:
    """The command as the user typed it (recorded in reports)."""
    return shlex.join(["pyrogen", *getattr(args, "argv", [])])


def _check_report_dir(path: str, option: str = "--out") -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a file; give a folder for the report")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path!r}: folder {parent!r} does not exist")


def _check_fit_options(model, name: str, fit_kwargs: dict) -> None:
    """``--method`` among the model's fit methods, and every option one its ``fit`` takes."""
    import inspect

    method = fit_kwargs.get("method")
    if method is not None and hasattr(model, "fit_methods"):
        methods = tuple(model.fit_methods())
        if method not in methods:
            raise UsageError(
                f"--method must be one of {', '.join(methods)} for model {name!r}. Got "
                f"{method!r} instead."
            )
    params = inspect.signature(model.fit).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    option = {"num_steps": "--steps", "lr": "--lr", "batch_size": "--batch-size",
              "method": "--method", "seed": "--seed", "progress": "--no-progress",
              "data_info": "--data"}
    unknown = [option.get(k, k) for k in fit_kwargs if k not in params]
    if unknown:
        raise UsageError(f"model {name!r} does not take {', '.join(unknown)} (its fit has no "
                         "such argument)")


def _check_out(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--out {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--out {path!r} is a folder; give a file name (e.g. model.pt)")


def _cmd_fit(args) -> int:
    import pyro

    from .models import MODELS

    # ---- the user's input, all checked before any work: UsageError (one line, exit 2)
    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; known models: {', '.join(sorted(MODELS))}")
    out = args.out or f"{args.model}.pt"
    _check_out(out)
    if args.report is not None:
        _check_report_dir(args.report, "--report")
    ds = _load_data(args.data, args.seed)
    params = dict(_parse_param(p) for p in args.param)
    cls = MODELS[args.model]
    pyro.set_rng_seed(args.seed)
    _check_required_params(cls, params, args.model)
    try:
        # constructors only validate and store their arguments (the house rule), so a
        # ValueError/TypeError here is about the -p values
        model = cls(ds.x.shape[1], **params)
    except (ValueError, TypeError) as e:
        raise UsageError(f"model {args.model!r}: {e}") from None
    fit_kwargs = {"method": args.method, "seed": args.seed, "progress": not args.no_progress,
                  "data_info": ds.info}
    if args.steps is not None:
        fit_kwargs["num_steps"] = args.steps
    if args.lr is not None:
        fit_kwargs["lr"] = args.lr
    if args.batch_size is not None:
        fit_kwargs["batch_size"] = args.batch_size
    if args.method is None:
        fit_kwargs.pop("method")
    _check_fit_options(model, args.model, fit_kwargs)
    # ---- the work: any exception from here on is not a usage error and keeps its traceback
    x = ds.x.to(model.dtype)
    t0 = time.perf_counter()
    history = model.fit(x, **fit_kwargs)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x)
    model.save(out)
    summary = {
        "model": args.model,
        "config": model.config,
        "data": ds.info,
        "fit": history.to_dict(),
        "fit_seconds": seconds,
        "train_log_likelihood": ll.to_dict(),
        "saved_to": os.path.abspath(out),
    }
    print(f"data: {ds.identity}")
    print(f"fitted {cls.__name__}({model.extra_repr()}) by {history.method} in {seconds:.2f}s")
    print(f"train log-likelihood: {ll}")
    print(f"saved to {out}")
    if args.report is not None:
        from .report_html import software_versions, write_report

        page = write_report(args.report, {
            "title": f"pyrogen fit {args.model}",
            "command": _command_line(args),
            "software": software_versions(),
            "seed": args.seed,
            "results": [{
                "model": f"{cls.__name__}({model.extra_repr()})",
                "data": ds.info,
                "method": history.method,
                "log_likelihood": summary["train_log_likelihood"],
                "fit_seconds": seconds,
                "figures": [],
                "summary": f"saved to {os.path.abspath(out)}",
            }],
        })
        print(f"report: {page}")
    if args.json:
        print(json.dumps(summary, default=str, indent=2))
    return 0


#: --estimator choices, and the kind of log-likelihood each gives
ESTIMATORS = {
    "exact": "exact (enumeration or closed form)",
    "ais": "annealed importance sampling",
    "raise": "RAISE (reverse AIS from the data: a stochastic lower bound)",
    "is": "importance sampling with the model's guide as proposal",
}
_KIND_TO_ESTIMATOR = {"exact": "exact", "ais_estimate": "ais", "ais_marginal": "ais",
                      "is_estimate": "is"}


def _vae_ais(model):
    """Prior -> posterior AIS of a decoder model (``pyrogen.infer.ais_log_likelihood``)."""
    from ._validation import check_binary
    from .infer import ais_log_likelihood

    def ais(x, *, num_chains: int = 16, num_betas: int | None = None, step_size: float = 0.1,
            num_leapfrog: int = 10, batch_size: int | None = None, seed: int | None = None):
        if model.config.get("likelihood", "bernoulli") == "bernoulli":
            check_binary(x, "x")
        return ais_log_likelihood(model.model, x, num_chains=num_chains, betas=num_betas,
                                  step_size=step_size, num_leapfrog=num_leapfrog,
                                  batch_size=batch_size, seed=seed)

    return ais


def offered_estimators(model) -> dict:
    """``{--estimator name: function(x, **options) -> LogLikelihood}`` a model offers.

    Every model offers its own ``log_likelihood`` under the name of its kind (exact, ais or
    is); some offer more: an RBM both exact (when enumerable) and AIS values and the RAISE
    check, an SBN / Helmholtz machine / DBN importance sampling next to exact enumeration, a
    VAE prior-to-posterior AIS next to importance sampling.
    """
    import functools

    offered = {}
    default = _KIND_TO_ESTIMATOR.get(getattr(model, "log_likelihood_kind", None))
    if default is not None:
        offered[default] = model.log_likelihood
    name = getattr(model, "registry_name", "")
    if name in ("rbm", "gb-rbm"):
        offered.pop("exact", None)
        if model.exact:
            offered["exact"] = functools.partial(model.log_likelihood, method="exact")
        offered["ais"] = functools.partial(model.log_likelihood, method="ais")
        if hasattr(model, "raise_check"):
            offered["raise"] = model.raise_check
    elif name in ("sbn", "helmholtz"):
        if model.exact:
            offered["exact"] = model.log_likelihood
        offered["is"] = _sbn_is(model)
    elif name == "dbn":
        offered.pop("exact", None)
        if model.exact:
            offered["exact"] = functools.partial(model.log_likelihood, method="exact")
        offered["is"] = functools.partial(model.log_likelihood, method="importance")
    elif name == "vae":
        offered["ais"] = _vae_ais(model)
    return offered


def _sbn_is(model):
    """Importance sampling even where the model would enumerate (``num_particles`` given)."""

    def importance(x, *, num_particles: int | None = None, batch_size: int = 100,
                   chunk: int = 100):
        k = model.config.get("num_is_particles", 1000) if num_particles is None else num_particles
        return model.log_likelihood(x, num_particles=k, batch_size=batch_size, chunk=chunk)

    return importance


def _estimator_options(fn) -> tuple[set, bool]:
    """Keyword options ``fn`` takes (after ``x``), and whether it takes any (``**kwargs``)."""
    import functools

    params = list(inspect.signature(fn).parameters.values())[1:]
    fixed = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - fixed, any(p.kind is p.VAR_KEYWORD for p in params)


def _is_input_error(exc: BaseException, names) -> bool:
    """Whether ``exc`` is pyrogen's input validation rejecting the data or a ``-p`` value.

    That is: raised by :mod:`pyrogen._validation` (the library's one argument checker), with a
    message about ``x`` (the data) or one of the ``-p`` option ``names``. Anything else from
    inside an estimator is a bug and keeps its traceback.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames or os.path.basename(frames[-1].filename) != "_validation.py":
        return False
    return str(exc).split(" ", 1)[0] in {"x", *names}


def _cmd_evaluate(args) -> int:
    import pyro

    from .models import load

    # ---- the user's input, all checked before any work: UsageError (one line, exit 2)
    out = args.out
    _check_report_dir(out)
    try:
        model = load(args.model_file)
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None
    label = f"{type(model).__name__}({model.extra_repr()})"
    ds = _load_data(args.data, args.seed)
    if ds.x.shape[1] != model.n_features:
        raise UsageError(
            f"--data {args.data!r} has {ds.x.shape[1]} features (columns); the model in "
            f"{args.model_file!r} has {model.n_features}."
        )
    offered = offered_estimators(model)
    if args.estimator is None:
        estimator, fn = "default", model.log_likelihood
    elif args.estimator in offered:
        estimator, fn = args.estimator, offered[args.estimator]
    else:
        has = (f"it offers {', '.join(sorted(offered))}" if offered else
               f"it offers only its own log_likelihood (kind {model.log_likelihood_kind}); "
               "omit --estimator")
        raise UsageError(
            f"--estimator {args.estimator} is not offered by {type(model).__name__} in "
            f"{args.model_file!r}: {has}."
        )
    options = dict(_parse_param(p) for p in args.param)
    known, takes_any = _estimator_options(fn)
    unknown = sorted(set(options) - known)
    if unknown and not takes_any:
        raise UsageError(
            f"the {estimator} estimator of {type(model).__name__} takes no option(s) "
            f"{', '.join(unknown)}; it takes: {', '.join(sorted(known)) or 'none'}"
        )
    if "seed" in known and "seed" not in options:
        options["seed"] = args.seed
    x = ds.x.to(model.dtype)
    # ---- the work: only pyrogen's own validation of the data or of a -p value is an input error
    pyro.set_rng_seed(args.seed)
    t0 = time.perf_counter()
    try:
        ll = fn(x, **options)
    except (ValueError, TypeError) as e:
        if _is_input_error(e, options):
            if str(e).startswith("x "):
                raise UsageError(f"--data {args.data!r} does not suit the {type(model).__name__} "
                                 f"in {args.model_file!r}: {e}") from None
            raise UsageError(f"-p: {e}") from None
        raise
    seconds = time.perf_counter() - t0
    fitted_on = dict(model.data_info or {})
    print(f"model: {label} from {args.model_file}")
    if fitted_on:
        from .report_html import format_data

        print(f"fitted on: {format_data(fitted_on)}")
    print(f"data: {ds.identity}")
    # the description names the kind and, for an estimate, which side it bounds
    print(f"log-likelihood: {ll}: {ll.description}, n={len(ll)}, in {seconds:.2f}s")

    from .report_html import software_versions, write_report

    figures = _evaluate_figures(model, ll, out, args.seed)
    page = write_report(out, {
        "title": f"pyrogen evaluate {os.path.basename(args.model_file)}",
        "command": _command_line(args),
        "software": software_versions(),
        "seed": args.seed,
        "model_file": os.path.abspath(args.model_file),
        "results": [{
            "model": label,
            "data": ds.info,
            "method": f"evaluate ({estimator} estimator)",
            "estimator": estimator,
            "log_likelihood": ll.to_dict(),
            "fit_seconds": None,
            "eval_seconds": seconds,
            "fitted_on": fitted_on,
            "figures": [os.path.relpath(f, out) for f in figures],
            "summary": (f"saved model {os.path.abspath(args.model_file)}, evaluated in "
                        f"{seconds:.2f}s" + (f"; fitted on {fitted_on.get('name')}"
                                             f"[{fitted_on.get('split')}]" if fitted_on else "")),
        }],
    })
    print(f"report: {page}")
    return 0


def _evaluate_figures(model, ll, out: str, seed: int) -> list[str]:
    """The evaluate report's pictures: the per-example log-likelihoods as a histogram, and, when
    the examples are square images, 30 draws from the model."""
    import math

    from .plotting import save_histogram, save_image_grid

    os.makedirs(out, exist_ok=True)
    figs = [save_histogram(ll.values, os.path.join(out, "log_likelihood.png"),
                           title=f"per-example log-likelihood [{ll.kind}]", xlabel="nats")]
    side = math.isqrt(model.n_features)
    if side * side == model.n_features and side > 1:
        import pyro
        import torch

        pyro.set_rng_seed(seed)
        with torch.no_grad():
            samples = model.sample(30)
        figs.append(save_image_grid(samples, (side, side), os.path.join(out, "samples.png"),
                                    ncols=10, title=f"30 draws from {type(model).__name__}"))
    return figs


def _positive(kind):
    """argparse type: a positive ``int`` or finite positive ``float``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a positive {kind.__name__}. Got {text!r} instead.") from None
        if not (0 < value < float("inf")):
            raise argparse.ArgumentTypeError(
                f"must be a positive {kind.__name__}. Got {text!r} instead.")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrogen", description="Deep generative models as Pyro programs."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("tour", help="fit every model on built-in data and write a report")
    p.add_argument("--out", default="pyrogen-report", help="report folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny fits (seconds), for smoke tests")
    p.add_argument("--only", nargs="*", help="run only these tour steps")
    p.set_defaults(func=_cmd_tour)

    p = sub.add_parser("fit", help="fit one model and save it")
    p.add_argument("model", help="registered model name (see `pyrogen models`)")
    p.add_argument("--data", required=True,
                   help="digits | digits-threshold | digits-stochastic | mnist[:split] | FILE")
    p.add_argument("-p", "--param", action="append", default=[],
                   help="constructor argument NAME=VALUE (repeatable), e.g. -p n_components=10")
    p.add_argument("--method", default=None, help="fit method (model-specific, e.g. em, svi)")
    p.add_argument("--steps", type=_positive(int), default=None,
                   help="number of optimizer steps/iterations")
    p.add_argument("--lr", type=_positive(float), default=None)
    p.add_argument("--batch-size", type=_positive(int), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where to save the model (default MODEL.pt)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="also print a JSON summary")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write report.json and index.html into this folder")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("evaluate", help="evaluate a saved model's log-likelihood on data")
    p.add_argument("model_file", help="a model saved by `pyrogen fit` or Model.save")
    p.add_argument("--data", required=True,
                   help="digits | digits-threshold | digits-stochastic | mnist[:split] | FILE")
    p.add_argument("--estimator", choices=sorted(ESTIMATORS), default=None,
                   help="how log p(x) is computed (default: the model's own log_likelihood)")
    p.add_argument("-p", "--param", action="append", default=[],
                   help="estimator option NAME=VALUE (repeatable), e.g. -p num_chains=200")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the estimator and of a stochastic binarization")
    p.add_argument("--out", default="pyrogen-evaluation",
                   help="report folder (default: %(default)s)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("models", help="list registered models")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as e:
        print(f"pyrogen: error: {e}", file=sys.stderr)
        return EXIT_USAGE
