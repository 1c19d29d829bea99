"""NADE on the fixed binarized MNIST: training with checkpoints, and log_prob throughput.

Two modes:

``--mode throughput`` (default): images/s of ``pyrogen.distributions.NADE.log_prob`` (forward,
and forward + backward) against two plain-PyTorch NADEs on the same batch, same dtype and
threads, timed interleaved by ``harness.compare``: the reference loop over pixels
(Larochelle & Murray's algorithm, autograd for the gradient) and the one-shot cumulative sum
over a ``(n, D, H)`` tensor (autograd).

``--mode train-made``: MADE (Germain et al. 2015; ``pyrogen.distributions.MADE`` over a
one-hidden-layer ``pyro.nn.AutoRegressiveNN`` with ReLU, ``--hidden`` >= 784 units, which is
Pyro's requirement) trained by the same SVI (empty guide, exact NLL) with ``--masks K`` orderings:
every minibatch uses the next of K fixed random orderings (the masks are rebuilt in place, the
weights shared: mask-agnostic training); after every epoch the validation and test log-likelihood
of the first ordering and of the K-ordering ensemble, log of the MEAN probability
(``logsumexp_k log p_k(x) - log K``), are recorded; checkpoint and resume as in ``train``.

``--mode train-eonade`` / ``--mode eval-eonade``: order-agnostic training of a deep NADE
(``pyrogen.models.nade.DeepNADEModel``, EoNADE, Uria, Murray & Larochelle 2014) with a learning
curve per round of minibatches and checkpoints (resume by rerunning), then the exact test
log-likelihood of the ensemble over orderings (log of the mean probability).

``--mode train``: maximum-likelihood training of ``NADEModel`` by Pyro SVI (``Trace_ELBO`` on
the empty guide = the exact negative log-likelihood), Adam, one random permutation of the
50,000 training images per epoch; after every epoch the exact mean log-likelihood of the 10,000
validation and 10,000 test images is recorded and a checkpoint (model, Adam state, RNG state,
learning curve) is written atomically to ``--checkpoint``. Run it again with the same
arguments to resume from the checkpoint. ``--max-minutes`` stops after the first epoch that
ends past the budget.

Examples::

    python benchmarks/bench_nade.py --mode throughput --threads 1
    nohup python benchmarks/bench_nade.py --mode train --hidden 500 --epochs 100 \\
        --checkpoint runs/nade/nade_h500.pt > runs/nade/nade_h500.log 2>&1 &
    nohup python benchmarks/bench_nade.py --mode train-made --hidden 1000 --masks 8 \\
        --checkpoint runs/nade/made_h1000_m8.pt > runs/nade/made_h1000_m8.log 2>&1 &
    nohup nice -n 10 python benchmarks/bench_nade.py --mode train-eonade --hidden 500 \\
        --layers 2 --max-cpu-minutes 60 --checkpoint runs/nade/eonade_2x500.pt \\
        >> runs/nade/eonade_2x500.log 2>&1 &
    python benchmarks/bench_nade.py --mode eval-eonade --checkpoint runs/nade/eonade_2x500.pt \\
        --eval-images 500 --eval-orderings 16
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import bench_parser, compare, header  # noqa: E402


# ------------------------------------------------------------------------------------------------
# plain-PyTorch NADEs (the comparison)
# ------------------------------------------------------------------------------------------------
def _save_checkpoint(ckpt, model, optim, state):
    """Resumable checkpoint (model, optimizer, RNG, loop state), the model alone, the curve."""
    from pyrogen._io import atomic_torch_save, atomic_write_text

    atomic_torch_save({"config": model.config, "state_dict": model.state_dict(),
                       "optim": optim.get_state(), "rng": torch.get_rng_state(),
                       "state": state}, ckpt)
    model.save(ckpt.replace(".pt", "") + "_model.pt")
    atomic_write_text(ckpt.replace(".pt", "") + "_curve.json",
                      json.dumps(state["curve"], indent=1) + "\n")


def plain_loop_logp(x, W, c, V, b):
    """Reference NADE: one pixel at a time, a (n, H) running pre-activation (autograd)."""
    n, D = x.shape
    a = c.expand(n, -1)
    out = []
    for d in range(D):
        h = torch.sigmoid(a)
        out.append(h @ V[d])
        a = a + x[:, d : d + 1] * W[:, d]
    logits = torch.stack(out, -1) + b
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def plain_cumsum_logp(x, W, c, V, b):
    """One-shot NADE: exclusive cumulative sum over an (n, D, H) tensor (autograd)."""
    contrib = x.unsqueeze(-1) * W.T
    a = torch.cumsum(contrib, -2) - contrib + c
    logits = (torch.sigmoid(a) * V).sum(-1) + b
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def throughput(args):
    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.distributions import NADE

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    n, H = (20, 50) if args.quick else (args.batch_size, args.hidden)
    try:
        x = load_binarized_mnist(args.data, "test", limit=n, subset="spaced").x.to(dtype)
    except FileNotFoundError:
        x = torch.bernoulli(torch.full((n, 784), 0.13, dtype=dtype))
    D = x.shape[1]
    g = torch.Generator().manual_seed(0)
    params = [
        (torch.rand(H, D, generator=g, dtype=dtype) - 0.5) * 0.07,
        torch.zeros(H, dtype=dtype),
        (torch.rand(D, H, generator=g, dtype=dtype) - 0.5) * 0.09,
        torch.zeros(D, dtype=dtype),
    ]
    params = [p.requires_grad_() for p in params]

    def ours(p=params):
        return NADE(*p).log_prob(x)

    fns = {"pyrogen NADE": ours, "plain loop": lambda: plain_loop_logp(x, *params),
           "plain cumsum": lambda: plain_cumsum_logp(x, *params)}
    ref = plain_loop_logp(x, *params)
    for k, f in fns.items():
        with torch.no_grad():
            err = float((f() - ref).abs().max())
        print(f"{k}: max |log p - reference| = {err:.2e}")
    reps = 2 if args.quick else (args.repeats or 5)

    def fwd(f):
        def run():
            with torch.no_grad():
                return f()
        return run

    def fwd_bwd(f):
        def run():
            for p in params:
                p.grad = None
            f().sum().backward()
        return run

    for label, wrap in (("log_prob forward (no grad)", fwd), ("forward + backward", fwd_bwd)):
        cmp = compare({k: wrap(f) for k, f in fns.items()}, repeats=reps, warmup=args.warmup,
                      baseline="plain loop", title=f"{label}: batch {n}, D={D}, H={H}, {dtype}",
                      print_fn=None)
        print(cmp.table(extra={k: f"{n / t.median:,.0f} images/s"
                               for k, t in cmp.timings.items()}))


# ------------------------------------------------------------------------------------------------
# training with checkpoints
# ------------------------------------------------------------------------------------------------
def train(args):
    import pyro
    import pyro.infer
    import pyro.optim

    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.models import NADEModel

    limit = 500 if args.quick else None
    tr = load_binarized_mnist(args.data, "train", limit=limit)
    va = load_binarized_mnist(args.data, "valid", limit=limit)
    te = load_binarized_mnist(args.data, "test", limit=limit, subset="spaced")  # class-ordered
    xtr, xva, xte = tr.x.float(), va.x.float(), te.x.float()
    H = 20 if args.quick else args.hidden
    epochs = 2 if args.quick else args.epochs
    pyro.clear_param_store()
    model = NADEModel(784, H, order_agnostic=args.order_agnostic,
                      num_orderings=args.num_orderings, seed=args.seed)
    model.initialize_from_data(xtr)
    model.data_info = dict(tr.info)
    optim = pyro.optim.Adam({"lr": args.lr})
    svi = pyro.infer.SVI(model.model, model.guide, optim, pyro.infer.Trace_ELBO())
    state = {"epoch": 0, "curve": [], "seconds": 0.0}
    ckpt = args.checkpoint
    if ckpt and os.path.exists(ckpt):
        saved = torch.load(ckpt, weights_only=True)
        if saved["config"] != model.config:
            raise SystemExit(f"{ckpt} holds config {saved['config']}, not {model.config}")
        model.load_state_dict(saved["state_dict"])
        svi.step(xtr[:2], num_data=xtr.shape[0])  # creates the optimizer slots...
        model.load_state_dict(saved["state_dict"])  # ...then undo that step
        optim.set_state(saved["optim"])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
        print(f"resumed from {ckpt} at epoch {state['epoch']}", flush=True)

    def evaluate(x):
        model.eval()
        v = model.log_likelihood(x, batch_size=500).values
        model.train()
        return float(v.mean()), float(v.std() / len(v) ** 0.5)

    n, bs = xtr.shape[0], args.batch_size
    t_start = time.perf_counter()
    while state["epoch"] < epochs:
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, bs):
            total += svi.step(xtr[perm[i : i + bs]], num_data=n) / n
        nb = (n + bs - 1) // bs
        state["seconds"] += time.perf_counter() - t0
        va_ll, va_se = evaluate(xva)
        te_ll, te_se = evaluate(xte)
        state["epoch"] += 1
        row = {"epoch": state["epoch"], "train_nll_running": total / nb, "valid": va_ll,
               "valid_se": va_se, "test": te_ll, "test_se": te_se,
               "train_seconds": round(state["seconds"], 1),
               "load": round(os.getloadavg()[0], 2)}
        state["curve"].append(row)
        print(json.dumps(row), flush=True)
        if ckpt:
            _save_checkpoint(ckpt, model, optim, state)
        if args.max_minutes and time.perf_counter() - t_start > 60 * args.max_minutes:
            print(f"stopping: --max-minutes {args.max_minutes} reached", flush=True)
            break
    best = max(state["curve"], key=lambda r: r["valid"]) if state["curve"] else None
    print("best-valid epoch:", json.dumps(best), flush=True)


def _set_made_ordering(arn, perm):
    """Rebuild the masks of a ``pyro.nn.AutoRegressiveNN`` in place for ordering ``perm``."""
    from pyro.nn.auto_reg_nn import create_mask

    masks, _ = create_mask(arn.input_dim, 0, arn.hidden_dims, perm, arn.output_multiplier)
    arn.permutation.copy_(perm)
    for layer, m in zip(arn.layers, masks):
        layer.mask.copy_(m)


def train_made(args):
    import pyro
    import pyro.infer
    import pyro.optim
    from pyro.nn import AutoRegressiveNN

    from pyrogen._io import atomic_torch_save, atomic_write_text
    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.distributions import MADE

    limit = 500 if args.quick else None
    xtr, xva, xte = (load_binarized_mnist(args.data, s, limit=limit).x.float()
                     for s in ("train", "valid", "test"))
    H = 784 if args.quick else args.hidden
    K = 2 if args.quick else args.masks
    epochs = 2 if args.quick else args.epochs
    torch.manual_seed(args.seed)
    orderings = torch.stack([torch.arange(784)] + [torch.randperm(784) for _ in range(K - 1)])
    arn = AutoRegressiveNN(784, [H], param_dims=[1], permutation=orderings[0].clone(),
                           nonlinearity=torch.nn.ReLU())
    with torch.no_grad():  # output bias = logit of the pixel marginals
        p = xtr.mean(0).clamp(1e-3, 1 - 1e-3)
        arn.layers[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
    config = {"hidden": H, "masks": K, "seed": args.seed}

    def model(x, num_data=None):
        pyro.module("made", arn)
        with pyro.plate("data", num_data or x.shape[0], subsample_size=x.shape[0]):
            pyro.sample("x", MADE(arn), obs=x)

    def guide(x, num_data=None):
        pass

    pyro.clear_param_store()
    optim = pyro.optim.Adam({"lr": args.lr})
    svi = pyro.infer.SVI(model, guide, optim, pyro.infer.Trace_ELBO())
    state = {"epoch": 0, "step": 0, "curve": [], "seconds": 0.0}
    ckpt = args.checkpoint
    if ckpt and os.path.exists(ckpt):
        saved = torch.load(ckpt, weights_only=True)
        if saved["config"] != config:
            raise SystemExit(f"{ckpt} holds config {saved['config']}, not {config}")
        orderings = saved["orderings"]
        arn.load_state_dict(saved["state_dict"])
        svi.step(xtr[:2], num_data=xtr.shape[0])  # creates the optimizer slots...
        arn.load_state_dict(saved["state_dict"])  # ...then undo that step
        optim.set_state(saved["optim"])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
        print(f"resumed from {ckpt} at epoch {state['epoch']}", flush=True)

    def evaluate(x):
        with torch.no_grad():
            lps = []
            for o in orderings:
                _set_made_ordering(arn, o)
                lps.append(torch.cat([MADE(arn).log_prob(xb) for xb in x.split(1000)]))
            lp = torch.stack(lps).double()
            ens = torch.logsumexp(lp, 0) - math.log(len(orderings))
        se = len(x) ** 0.5
        return (float(lp[0].mean()), float(lp[0].std() / se), float(ens.mean()),
                float(ens.std() / se))

    n, bs = xtr.shape[0], args.batch_size
    t_start = time.perf_counter()
    while state["epoch"] < epochs:
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, bs):
            _set_made_ordering(arn, orderings[state["step"] % K])
            state["step"] += 1
            total += svi.step(xtr[perm[i : i + bs]], num_data=n) / n
        nb = (n + bs - 1) // bs
        state["seconds"] += time.perf_counter() - t0
        va1, va1_se, vak, vak_se = evaluate(xva)
        te1, te1_se, tek, tek_se = evaluate(xte)
        state["epoch"] += 1
        row = {"epoch": state["epoch"], "train_nll_running": total / nb,
               "valid_1": va1, "valid_1_se": va1_se, "valid_ens": vak, "valid_ens_se": vak_se,
               "test_1": te1, "test_1_se": te1_se, "test_ens": tek, "test_ens_se": tek_se,
               "train_seconds": round(state["seconds"], 1),
               "load": round(os.getloadavg()[0], 2)}
        state["curve"].append(row)
        print(json.dumps(row), flush=True)
        if ckpt:
            atomic_torch_save({"config": config, "state_dict": arn.state_dict(),
                               "orderings": orderings, "optim": optim.get_state(),
                               "rng": torch.get_rng_state(), "state": state}, ckpt)
            atomic_write_text(ckpt.replace(".pt", "") + "_curve.json",
                              json.dumps(state["curve"], indent=1) + "\n")
        if args.max_minutes and time.perf_counter() - t_start > 60 * args.max_minutes:
            print(f"stopping: --max-minutes {args.max_minutes} reached", flush=True)
            break
    best = max(state["curve"], key=lambda r: r["valid_ens"]) if state["curve"] else None
    print("best-valid epoch (ensemble):", json.dumps(best), flush=True)


def train_eonade(args):
    """Order-agnostic training of a deep NADE (``DeepNADEModel``, Uria et al. 2014) by SVI.

    One "round" = ``--round-steps`` minibatches (without replacement within a pass over the
    training set); after every round: the order-agnostic objective (one mask per image, an
    unbiased estimate of E_o log p_o(x)) on ``--curve-valid`` validation images and the exact
    log p_o(x) of the identity ordering on ``--curve-exact`` of them; checkpoint (model, Adam,
    RNG, data position, curve) written atomically; rerun the same command to resume."""
    import pyro
    import pyro.infer
    import pyro.optim

    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.models.nade import DeepNADEModel

    limit = 500 if args.quick else None
    tr = load_binarized_mnist(args.data, "train", limit=limit)
    xtr = tr.x.float()
    xva = load_binarized_mnist(args.data, "valid", limit=limit).x.float()
    hidden = [20, 20] if args.quick else [args.hidden] * args.layers
    steps_per_round = 3 if args.quick else args.round_steps
    rounds = 2 if args.quick else args.rounds
    pyro.clear_param_store()
    model = DeepNADEModel(784, hidden, num_orderings=args.num_orderings, seed=args.seed)
    model.initialize_from_data(xtr)
    model.data_info = dict(tr.info)
    optim = pyro.optim.Adam({"lr": args.lr})
    svi = pyro.infer.SVI(model.model, model.guide, optim, pyro.infer.Trace_ELBO())
    n, bs = xtr.shape[0], args.batch_size
    state = {"round": 0, "step": 0, "perm": torch.randperm(n), "curve": [], "cpu": 0.0,
             "wall": 0.0}
    ckpt = args.checkpoint
    if ckpt and os.path.exists(ckpt):
        saved = torch.load(ckpt, weights_only=True)
        if saved["config"] != model.config:
            raise SystemExit(f"{ckpt} holds config {saved['config']}, not {model.config}")
        model.load_state_dict(saved["state_dict"])
        svi.step(xtr[:2], num_data=n)  # creates the optimizer slots...
        model.load_state_dict(saved["state_dict"])  # ...then undo that step
        optim.set_state(saved["optim"])
        torch.set_rng_state(saved["rng"])
        state = saved["state"]
        print(f"resumed from {ckpt} at round {state['round']}", flush=True)
    nv, ne = min(args.curve_valid, len(xva)), min(args.curve_exact, len(xva))
    t_start = time.perf_counter()
    while state["round"] < rounds:
        c0, w0 = time.process_time(), time.perf_counter()
        total = 0.0
        for _ in range(steps_per_round):
            i = (state["step"] * bs) % n
            if i + bs > n:
                state["perm"] = torch.randperm(n)
                i = 0
                state["step"] = 0
            total += svi.step(xtr[state["perm"][i : i + bs]], num_data=n) / n
            state["step"] += 1
        state["cpu"] += time.process_time() - c0
        state["wall"] += time.perf_counter() - w0
        state["round"] += 1
        with torch.no_grad():
            model.eval()
            oa = torch.cat([model.order_agnostic_objective(c) for c in xva[:nv].split(500)])
            ex = model.log_prob_orderings(xva[:ne])[0]
            model.train()
        row = {"round": state["round"],
               "images_seen": state["round"] * steps_per_round * bs,
               "epochs": round(state["round"] * steps_per_round * bs / n, 2),
               "train_oa_objective_running": -total / steps_per_round,
               "valid_oa_objective": float(oa.mean()), "valid_oa_se": float(oa.std() / nv**0.5),
               "valid_exact_identity": float(ex.mean()),
               "valid_exact_identity_se": float(ex.std() / ne**0.5),
               "cpu_seconds": round(state["cpu"], 1), "wall_seconds": round(state["wall"], 1),
               "load": round(os.getloadavg()[0], 2)}
        state["curve"].append(row)
        print(json.dumps(row), flush=True)
        if ckpt:
            _save_checkpoint(ckpt, model, optim, state)
        if args.max_minutes and time.perf_counter() - t_start > 60 * args.max_minutes:
            print(f"stopping: --max-minutes {args.max_minutes} reached", flush=True)
            break
        if args.max_cpu_minutes and state["cpu"] > 60 * args.max_cpu_minutes:
            print(f"stopping: --max-cpu-minutes {args.max_cpu_minutes} reached", flush=True)
            break


def eval_eonade(args):
    """Test log-likelihood of a saved ``DeepNADEModel``: exact log p_o(x) for ``--eval-orderings``
    orderings (identity + random) on ``--eval-images`` test images drawn at random (seed 0);
    the ensemble log (1/M) sum_m p_m(x) (log of the MEAN probability) for M = 1, 2, 4, ...,
    and the mean of the single-ordering log-likelihoods; standard errors over images."""
    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.evaluation import log_mean_exp
    from pyrogen.models.nade import DeepNADEModel

    saved = torch.load(args.checkpoint, weights_only=True)  # not in the registry: no load()
    model = DeepNADEModel(**saved["config"])
    model.load_state_dict(saved["state_dict"])
    model.eval()
    limit = 50 if args.quick else args.eval_images
    xte = load_binarized_mnist(args.data, "test").x.float()
    # a fixed random subset: the file's test split is sorted by class (the first 980 are 0s)
    xte = xte[torch.randperm(xte.shape[0], generator=torch.Generator().manual_seed(0))[:limit]]
    g = torch.Generator().manual_seed(1234)
    M = 2 if args.quick else args.eval_orderings
    orderings = torch.stack([torch.arange(784)] + [torch.randperm(784, generator=g)
                                                   for _ in range(M - 1)])
    c0, w0 = time.process_time(), time.perf_counter()
    lp = model.log_prob_orderings(xte, orderings).double()  # (M, n)
    out = {"images": len(xte), "orderings": M, "cpu_seconds": round(time.process_time() - c0, 1),
           "wall_seconds": round(time.perf_counter() - w0, 1),
           "load": round(os.getloadavg()[0], 2)}
    se = len(xte) ** 0.5
    single = lp.mean(0)
    out["mean_single_ordering"] = [float(single.mean()), float(single.std() / se)]
    out["identity_ordering"] = [float(lp[0].mean()), float(lp[0].std() / se)]
    k = 1
    while k <= M:
        ens = log_mean_exp(lp[:k], 0).value
        out[f"ensemble_{k}"] = [float(ens.mean()), float(ens.std() / se)]
        k *= 2
    print(json.dumps(out), flush=True)
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(out, f, indent=1)


def main():
    p = bench_parser("NADE: MNIST training with checkpoints, log_prob throughput")
    p.add_argument("--mode", choices=("throughput", "train", "train-made", "train-eonade",
                                      "eval-eonade"),
                   default="throughput")
    p.add_argument("--masks", type=int, default=8, help="train-made: number of orderings")
    p.add_argument("--data", default=os.environ.get("PYROGEN_DATA",
                                                    "../shared/data/binarized_mnist.npz"))
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--order-agnostic", action="store_true")
    p.add_argument("--num-orderings", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--layers", type=int, default=2, help="train-eonade: hidden layers")
    p.add_argument("--round-steps", type=int, default=100, help="train-eonade: steps per round")
    p.add_argument("--rounds", type=int, default=10_000, help="train-eonade: max rounds")
    p.add_argument("--max-cpu-minutes", type=float, default=None)
    p.add_argument("--curve-valid", type=int, default=2000)
    p.add_argument("--curve-exact", type=int, default=100)
    p.add_argument("--eval-images", type=int, default=500)
    p.add_argument("--eval-orderings", type=int, default=16)
    p.add_argument("--out-json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    print(header())
    {"train": train, "train-made": train_made, "throughput": throughput,
     "train-eonade": train_eonade, "eval-eonade": eval_eonade}[args.mode](args)


if __name__ == "__main__":
    main()
