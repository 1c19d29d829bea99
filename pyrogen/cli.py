"""The ``pyrogen`` command line: thin over the library.

``pyrogen tour [--out DIR] [--seed N] [--quick] [--only STEP ...]``
    Fit every model family on built-in data, print one line per model (log-likelihood labelled
    exact / estimate / bound, with its standard error, and timing) and write a report folder.

``pyrogen fit MODEL --data DATA [-p NAME=VALUE ...] [--method M] [--steps N] [--out PATH]``
    Fit one model (progress bar) and save it. ``DATA`` is ``digits``, ``digits-threshold``,
    ``digits-stochastic``, ``mnist`` (fixed binarized MNIST via ``PYROGEN_DATA``) or a path to a
    ``.npz``/``.amat`` binarized MNIST file or a ``.npy`` matrix.

``pyrogen models``
    List the registered models.

Errors a user can make (unknown model, missing data file, bad option) print one line on stderr
and exit with code 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time

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


def _load_data(spec: str, seed: int):
    from . import datasets

    if spec in ("digits", "digits-threshold", "digits-stochastic"):
        binarize = None if spec == "digits" else spec.split("-", 1)[1]
        return datasets.load_digits(binarize=binarize, seed=seed)
    if spec.startswith("mnist"):
        split = spec.split(":", 1)[1] if ":" in spec else "train"
        return datasets.load_binarized_mnist(split=split)
    if os.path.exists(spec):
        if spec.endswith(".npy"):
            import numpy as np
            import torch

            arr = np.load(spec)
            x = torch.as_tensor(arr, dtype=torch.get_default_dtype())
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
        return datasets.load_binarized_mnist(path=spec)
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
    from .tour import run_tour

    run_tour(out_dir=args.out, seed=args.seed, quick=args.quick, only=args.only or None)
    return 0


def _cmd_fit(args) -> int:
    import pyro

    from .models import MODELS

    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; known models: {', '.join(sorted(MODELS))}")
    ds = _load_data(args.data, args.seed)
    params = dict(_parse_param(p) for p in args.param)
    cls = MODELS[args.model]
    pyro.set_rng_seed(args.seed)
    _check_required_params(cls, params, args.model)
    model = cls(ds.x.shape[1], **params)
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
    x = ds.x.to(model.dtype)
    t0 = time.perf_counter()
    history = model.fit(x, **fit_kwargs)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x)
    out = args.out or f"{args.model}.pt"
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
    if args.json:
        print(json.dumps(summary, default=str, indent=2))
    return 0


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
    p.add_argument("--steps", type=int, default=None, help="number of optimizer steps/iterations")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="where to save the model (default MODEL.pt)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="also print a JSON summary")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("models", help="list registered models")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (UsageError, FileNotFoundError, ValueError, TypeError) as e:
        print(f"pyrogen: error: {e}", file=sys.stderr)
        return EXIT_USAGE
