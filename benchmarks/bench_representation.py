"""Representation learning (book §15.2-15.4, §13.5): few-label probes, transfer, SS-VAE.

Sub-commands::

    python benchmarks/bench_representation.py probe    --data digits [--quick]
    python benchmarks/bench_representation.py probe    --data mnist  [--n-train 5000]
    python benchmarks/bench_representation.py transfer [--n-train 5000]
    python benchmarks/bench_representation.py ssvae    --data digits [--labels 50 100 300]
                                                       [--seeds 0 1 2] [--epochs 25]
    python benchmarks/bench_representation.py ssvae    --data mnist [--labels 100 1000]
                                                       [--n-unlabelled 10000] [--minutes 4]

``probe``: fits every registered model family that has a ``transform`` (FA, PPCA, ICA, sparse
coding, RBM, DBN, DBM, VAE, Helmholtz machine / SBN, NADE hidden units) on the training images
with short, fixed budgets, then runs :func:`pyrogen.probes.few_label_probe` on its codes: a
logistic regression on ``k`` labelled examples per class (5 seeds: which examples), test accuracy
with a 95% t-interval over the seeds, against the same probe on raw pixels. Real-valued models
see grey levels (constant pixels dropped), binary models the threshold-binarized digits (or the
fixed binarized MNIST). Writes a markdown table and the accuracy-vs-labels plot.

``transfer`` (§15.2): PPCA, RBM and VAE trained on MNIST, probed on the 8x8 digits mapped to
MNIST's frame (upsampled to 20x20 and padded to 28x28), against the same model trained on the
digits themselves; and the reverse (digits-trained models probed on MNIST cropped to its central
20x20 and downsampled to 8x8, against MNIST-trained ones at 8x8).

``ssvae``: the semi-supervised table of Kingma et al. (2014) at this machine's budget: M2 and
M1+M2 with ``--labels`` labels (balanced: labels/10 per class), test error, against a logistic
regression on the labelled images alone (same labelled examples) -- several seeds. Digits: 1500
training digits (threshold-binarized), 297 test, ``--epochs`` per fit. MNIST: ``--n-unlabelled``
training images, ``--minutes`` per fit, ``--n-test`` evenly spaced test images.

Label-based MNIST measurements first check that the labels belong to the images
(:func:`check_label_alignment`, leave-one-out 1-NN accuracy); the shared binarized MNIST fails
it (0.093), so they refuse to run rather than report chance-level numbers.

Results go to ``runs/representation/`` (JSON per sub-command; the probe reuses fitted codes
cached there). MNIST: ``$PYROGEN_DATA`` or ``../shared/data/binarized_mnist.npz``.
Single-threaded (``torch.set_num_threads(1)``) unless ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import header  # noqa: E402

from pyrogen.datasets import load_binarized_mnist, load_digits  # noqa: E402
from pyrogen.probes import few_label_probe, t_interval  # noqa: E402

OUT = os.path.join("runs", "representation")


# ---------------------------------------------------------------------- data
def _digits():
    grey = load_digits(dtype=torch.float64)
    binary = load_digits(binarize="threshold", dtype=torch.float64)
    return grey.x, binary.x, grey.y


DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared",
                            "data", "binarized_mnist.npz")


def check_label_alignment(x, y, name, n=2000, threshold=0.5):
    """Refuse labels that do not belong to their images: the leave-one-out 1-nearest-neighbour
    accuracy on the first ``n`` rows (MNIST: about 0.9; labels shuffled against the images:
    about 0.1) must exceed ``threshold``."""
    xs, ys = x[:n].float(), y[:n]
    dist = torch.cdist(xs, xs)
    dist.fill_diagonal_(float("inf"))
    acc = float((ys[dist.argmin(1)] == ys).double().mean())
    if acc < threshold:
        raise RuntimeError(
            f"{name}: the labels do not match the images (leave-one-out 1-NN accuracy {acc:.3f}"
            f" on the first {min(n, x.shape[0])} rows, chance ~0.1); label-based results would "
            "be meaningless. Fix the data's labels first."
        )
    return acc


def _mnist(n_train, n_test, labels=True):
    path = os.environ.get("PYROGEN_DATA", DEFAULT_DATA)
    tr = load_binarized_mnist(path, split="train", dtype=torch.float64, limit=n_train)
    te = load_binarized_mnist(path, split="test", dtype=torch.float64, limit=n_test,
                              subset="spaced")  # the test split is ordered by class
    if labels:
        check_label_alignment(tr.x, tr.y, f"{path} train")
    return tr.x, tr.y, te.x, te.y


def digits_to_mnist_frame(x8):
    """8x8 digits in [0, 1] -> 28x28: bilinear upsampling to 20x20 (MNIST's digit box), padded
    by 4 pixels, thresholded at 0.5 (binary like the fixed binarized MNIST)."""
    im = torch.nn.functional.interpolate(x8.reshape(-1, 1, 8, 8), size=(20, 20),
                                         mode="bilinear", align_corners=False)
    im = torch.nn.functional.pad(im, (4, 4, 4, 4))
    return (im.reshape(-1, 784) > 0.5).to(x8.dtype)


def mnist_to_digits_frame(x28):
    """28x28 -> 8x8 grey levels: crop the central 20x20 box, area-average to 8x8."""
    im = x28.reshape(-1, 1, 28, 28)[:, :, 4:24, 4:24]
    return torch.nn.functional.adaptive_avg_pool2d(im, (8, 8)).reshape(-1, 64)


# ---------------------------------------------------------------------- models
def model_table(d, quick, mnist, scale=None):
    """name -> (input kind, constructor, fit). Budgets are short and fixed (tol=None): the
    digits budgets times ``scale`` (default 1 on digits, 0.3 on MNIST, 0.1 with ``quick``)."""
    from pyrogen import models as m

    s = scale if scale is not None else (0.1 if quick else (0.3 if mnist else 1.0))

    def steps(n):
        return max(5, int(n * s))

    h1, h2, k = (100, 50, 32) if mnist else (32, 16, 16)
    return {
        "FA": ("grey", lambda dd: m.FactorAnalysis(dd, k).double(),
               lambda mo, x: mo.fit(x, method="em", progress=False, seed=0)),
        "PPCA": ("grey", lambda dd: m.PPCA(dd, k).double(),
                 lambda mo, x: mo.fit(x, method="closed_form", progress=False, seed=0)),
        "ICA": ("grey", lambda dd: m.ICA(dd, n_components=k).double(),
                lambda mo, x: mo.fit(x, num_steps=steps(200), progress=False, seed=0,
                                     check_identifiability=False)),
        "SparseCoding": ("grey", lambda dd: m.SparseCoding(dd, 2 * k, lam=0.5, beta=1.0,
                                                          fit_bias=True).double(),
                         lambda mo, x: mo.fit(x, method="alternating", num_iter=steps(20),
                                              progress=False, seed=0)),
        "RBM": ("binary", lambda dd: m.BernoulliRBM(dd, h1, num_chains=100, seed=0).double(),
                lambda mo, x: mo.fit(x, method="pcd", num_steps=steps(1500), lr=0.02,
                                     batch_size=100, progress=False, seed=0, tol=None)),
        "DBN": ("binary", lambda dd: m.DBN([dd, h1, h2], training="cd", seed=0).double(),
                lambda mo, x: mo.fit(x, method="greedy", num_steps=steps(1500), lr=3e-3,
                                     batch_size=100, progress=False, seed=0, tol=None)),
        "DBM": ("binary", lambda dd: m.DBM(dd, [h1, h2], k=1, num_chains=100, seed=0).double(),
                lambda mo, x: (mo.fit(x, method="pretrain", num_steps=steps(600), lr=1e-2,
                                      batch_size=100, progress=False, seed=0, tol=None),
                               mo.fit(x, method="vsml", num_steps=steps(1500), lr=2e-3,
                                      batch_size=100, progress=False, seed=0, tol=None))),
        "VAE": ("binary", lambda dd: m.VAE(dd, latent_dims=k, hidden_dims=(2 * h1,),
                                           seed=0).double(),
                lambda mo, x: mo.fit(x, loss="analytic_kl", num_epochs=max(1, int(
                    (10 if mnist else 40) * s)), batch_size=100, lr=3e-3, progress=False,
                    seed=0, tol=None)),
        "HelmholtzMachine": ("binary", lambda dd: m.HelmholtzMachine([dd, h1, h2]).double(),
                             lambda mo, x: mo.fit(x, method="wake_sleep",
                                                  num_steps=steps(2000), lr=3e-3,
                                                  batch_size=100, progress=False, seed=0)),
        "NADE": ("binary", lambda dd: m.NADEModel(dd, h1, seed=0).double(),
                 lambda mo, x: mo.fit(x, num_steps=steps(1500), lr=1e-2, batch_size=100,
                                      progress=False, seed=0, tol=None)),
    }


def fit_codes(name, spec, x_grey_tr, x_bin_tr, x_grey_te, x_bin_te, keep):
    kind, make, fit = spec
    if kind == "grey":
        xtr, xte = x_grey_tr[:, keep], x_grey_te[:, keep]
    else:
        xtr, xte = x_bin_tr, x_bin_te
    model = make(xtr.shape[1])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short fixed budgets: ConvergenceWarnings expected
        fit(model, xtr)
    seconds = time.perf_counter() - t0
    return model, model.transform(xtr), model.transform(xte), seconds, kind


# ---------------------------------------------------------------------- probe
def cmd_probe(args):
    os.makedirs(OUT, exist_ok=True)
    if args.data == "digits":
        grey, binary, y = _digits()
        ntr = 1500
        gtr, gte, btr, bte = grey[:ntr], grey[ntr:], binary[:ntr], binary[ntr:]
        ytr, yte = y[:ntr], y[ntr:]
        ks = (1, 2, 5, 10, 20, 50)
    else:
        btr, ytr, bte, yte = _mnist(args.n_train, args.n_test)
        gtr, gte = btr, bte  # MNIST here is the fixed binarization: "grey" models see it too
        ks = (1, 10, 100)
    if args.quick:
        ks = ks[:3]
    seeds = tuple(range(args.num_seeds))
    keep = gtr.std(0) > 0
    table = model_table(gtr.shape[1] if args.data == "digits" else 784, args.quick,
                        args.data == "mnist", args.scale)
    names = args.models or list(table)
    results = {}
    for base, xtr, xte in (("raw pixels (grey)", gtr, gte), ("raw pixels (binary)", btr, bte)):
        if args.data == "mnist" and base.endswith("(grey)"):
            continue
        results[base] = {"seconds": 0.0, "dim": int(xtr.shape[1]),
                         "probe": {k: few_label_probe(xtr, ytr, xte, yte, k, seeds).to_dict()
                                   for k in ks}}
        print(base, {k: round(v["mean"], 4) for k, v in results[base]["probe"].items()},
              flush=True)
    for name in names:
        try:
            _, ctr, cte, sec, kind = fit_codes(name, table[name], gtr, btr, gte, bte, keep)
            results[name] = {"seconds": sec, "dim": int(ctr.shape[1]), "input": kind,
                             "probe": {k: few_label_probe(ctr, ytr, cte, yte, k, seeds).to_dict()
                                       for k in ks}}
            print(name, f"fit {sec:.1f}s", {k: round(v["mean"], 4)
                                           for k, v in results[name]["probe"].items()},
                  flush=True)
        except Exception as e:  # report, keep going: the table says what failed
            results[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            print(name, "FAILED", results[name]["error"], flush=True)
        _dump(results, f"probe_{args.data}{'_quick' if args.quick else ''}.json")
    print(probe_markdown(results, ks, seeds, args))
    _plot(results, ks, os.path.join(OUT, f"probe_{args.data}.png"),
          f"few-label linear probe, {args.data} (mean over {len(seeds)} seeds, 95% CI)")


def probe_markdown(results, ks, seeds, args):
    lines = ["| representation (dim) | fit s | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---|---:|" + "---:|" * len(ks)]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:80]} |" + " |" * len(ks))
            continue
        cells = []
        for k in ks:
            p = r["probe"][k]
            cells.append(f"{100 * p['mean']:.1f} ± {100 * (p['ci_high'] - p['mean']):.1f}")
        lines.append(f"| {name} ({r['dim']}) | {r['seconds']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(results, ks, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        if "error" in r:
            continue
        m = [100 * r["probe"][k]["mean"] for k in ks]
        lo = [100 * r["probe"][k]["ci_low"] for k in ks]
        hi = [100 * r["probe"][k]["ci_high"] for k in ks]
        style = "k--" if name.startswith("raw") else "-o"
        ax.plot(ks, m, style, label=name, markersize=3)
        ax.fill_between(ks, lo, hi, alpha=0.12)
    ax.set_xscale("log")
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print("wrote", path)


def _dump(obj, name):
    path = os.path.join(OUT, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    os.replace(tmp, path)


# ---------------------------------------------------------------------- transfer
def cmd_transfer(args):
    os.makedirs(OUT, exist_ok=True)
    grey8, bin8, y8 = _digits()
    m_tr, my_tr, m_te, my_te = _mnist(args.n_train, args.n_test, labels=False)
    try:  # probing ON MNIST needs its labels; learning ON MNIST does not
        check_label_alignment(m_tr, my_tr, "MNIST train")
        mnist_labels = True
    except RuntimeError as e:
        print("reverse direction (probed on MNIST) skipped:", e)
        mnist_labels = False
    d_tr, d_te, dy_tr, dy_te = slice(0, 1500), slice(1500, None), y8[:1500], y8[1500:]
    seeds = tuple(range(args.num_seeds))
    ks = (1, 5, 10, 50)
    # targets: digits in MNIST's frame; MNIST in the digits' frame
    d_as_m = digits_to_mnist_frame(grey8)
    m_as_d_grey = mnist_to_digits_frame(torch.cat([m_tr, m_te]))
    m_as_d_bin = (m_as_d_grey > 0.5).double()
    n_mtr = m_tr.shape[0]
    rows = {}
    for name in ("PPCA", "RBM", "VAE"):
        tab_m = model_table(784, args.quick, True, args.scale)
        tab_d = model_table(64, args.quick, False, args.scale)
        # MNIST-trained model
        kind, make, fit = tab_m[name]
        mm = make(784)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(mm, m_tr)
        # digits-trained model
        kind, make, fit = tab_d[name]
        md = make(64)
        xd_fit = grey8[d_tr] if kind == "grey" else bin8[d_tr]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit(md, xd_fit)
        # probe on digits: MNIST-trained codes of digits-in-MNIST-frame vs digits-trained codes
        xd = grey8 if kind == "grey" else bin8
        c_src = mm.transform(d_as_m)
        c_tgt = md.transform(xd)
        # probe on MNIST: digits-trained codes of MNIST-in-digits-frame vs MNIST-trained codes
        xm8 = m_as_d_grey if kind == "grey" else m_as_d_bin
        c_src2 = md.transform(xm8)
        c_tgt2 = mm.transform(torch.cat([m_tr, m_te]))
        res = {}
        for tag, ctr, cte, ytr, yte in (
            ("digits <- MNIST-trained", c_src[d_tr], c_src[d_te], dy_tr, dy_te),
            ("digits <- digits-trained", c_tgt[d_tr], c_tgt[d_te], dy_tr, dy_te),
            ("MNIST <- digits-trained", c_src2[:n_mtr], c_src2[n_mtr:], my_tr, my_te),
            ("MNIST <- MNIST-trained", c_tgt2[:n_mtr], c_tgt2[n_mtr:], my_tr, my_te),
        ):
            if tag.startswith("MNIST") and not mnist_labels:
                continue
            res[tag] = {k: few_label_probe(ctr, ytr, cte, yte, k, seeds).to_dict() for k in ks}
            print(name, tag, {k: round(v["mean"], 4) for k, v in res[tag].items()}, flush=True)
        rows[name] = res
        _dump(rows, "transfer.json")
    lines = ["| model | probed on <- trained on | " + " | ".join(f"k={k}" for k in ks) + " |",
             "|---|---|" + "---:|" * len(ks)]
    for name, res in rows.items():
        for tag, r in res.items():
            cells = [f"{100 * r[k]['mean']:.1f} ± {100 * (r[k]['ci_high'] - r[k]['mean']):.1f}"
                     for k in ks]
            lines.append(f"| {name} | {tag} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


# ---------------------------------------------------------------------- SS-VAE
def _balanced_labels(y, n_labels, seed):
    rng = np.random.default_rng(seed)
    per = n_labels // 10
    idx = np.concatenate([rng.choice(np.flatnonzero(y.numpy() == c), per, replace=False)
                          for c in range(10)])
    return torch.as_tensor(idx)


def cmd_ssvae(args):
    from pyrogen.models import M1M2, VAE, SemiSupervisedVAE

    os.makedirs(OUT, exist_ok=True)
    name = f"ssvae_{args.data}.json"
    path = os.path.join(OUT, name)
    done = json.load(open(path)) if os.path.exists(path) else {}
    if args.data == "mnist":
        xtr, ytr, xte, yte = _mnist(args.n_unlabelled, args.n_test)
        d, lat, hid, lat2, hid2, alpha = 784, 50, (500,), 20, (300,), None
        budget = dict(max_seconds=60.0 * args.minutes, num_epochs=1000)
        budget_m1 = dict(max_seconds=30.0 * args.minutes, num_epochs=1000)
        lr = 1e-3
    else:
        x = load_digits(binarize="threshold").x
        y_all = load_digits().y
        xtr, ytr, xte, yte = x[:1500], y_all[:1500], x[1500:], y_all[1500:]
        d, lat, hid, lat2, hid2, alpha = 64, 8, (64,), 4, (32,), 20.0
        budget = budget_m1 = dict(num_epochs=args.epochs)
        lr = 3e-3
    xtr, xte = xtr.float(), xte.float()  # float32 networks (speed)
    m1_cache = {}
    for seed in args.seeds:
        for n_lab in args.labels:
            lab = _balanced_labels(ytr, n_lab, seed)
            y = torch.full_like(ytr, -1)
            y[lab] = ytr[lab]
            key = f"{n_lab}/{seed}"
            row = done.get(key, {})
            if "baseline" not in row:
                # logistic regression on the labelled images alone (same examples)
                from sklearn.linear_model import LogisticRegression

                clf = LogisticRegression(max_iter=3000).fit(xtr[lab].numpy(), ytr[lab].numpy())
                row["baseline"] = float((clf.predict(xte.numpy()) != yte.numpy()).mean())
            if "M2" not in row:
                m2 = SemiSupervisedVAE(d, 10, latent_dims=lat, hidden_dims=hid, seed=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    h = m2.fit(xtr, y, batch_size=100, lr=lr, seed=seed, progress=False,
                               tol=None, classification_weight=alpha, **budget)
                row["M2"] = float((m2.predict(xte) != yte).double().mean())
                row["M2_epochs"] = h.info["num_epochs"]
                row["M2_seconds"] = h.seconds
            if "M1+M2" not in row:
                if seed not in m1_cache:
                    m1 = VAE(d, latent_dims=lat, hidden_dims=hid, seed=seed)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        h1 = m1.fit(xtr, loss="analytic_kl", batch_size=100, lr=lr, seed=seed,
                                    progress=False, tol=None, **budget_m1)
                    m1_cache[seed] = (m1, h1.info["num_epochs"], h1.seconds)
                m1, e1, s1 = m1_cache[seed]
                mm = M1M2(m1, 10, latent_dims=lat2, hidden_dims=hid2, seed=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    h = mm.fit(xtr, y, batch_size=100, lr=lr, seed=seed, progress=False,
                               tol=None, classification_weight=alpha, **budget_m1)
                row["M1+M2"] = float((mm.predict(xte) != yte).double().mean())
                row["M1_epochs"], row["M1_seconds"] = e1, s1
                row["M1M2_epochs"], row["M1M2_seconds"] = h.info["num_epochs"], h.seconds
            done[key] = row
            _dump(done, name)
            print(key, row, flush=True)
    paper = {100: (11.97, 3.33), 600: (4.94, 2.59), 1000: (3.60, 2.40), 3000: (3.92, 2.18)}
    lines = ["| labels | seeds | LR on labelled only | M2 | M1+M2 | paper M2 (MNIST) | "
             "paper M1+M2 (MNIST) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for n_lab in args.labels:
        rs = [done[f"{n_lab}/{s}"] for s in args.seeds if f"{n_lab}/{s}" in done]

        def cell(key, rs=rs):
            m, lo, hi = t_interval([100 * r[key] for r in rs])
            return f"{m:.2f}" + ("" if math.isnan(lo) else f" ± {hi - m:.2f}")

        pm2, pm12 = paper.get(n_lab, (math.nan, math.nan))
        lines.append(f"| {n_lab} | {len(rs)} | {cell('baseline')} | {cell('M2')} | "
                     f"{cell('M1+M2')} | {pm2} | {pm12} |")
    print(f"test error (%) on {xte.shape[0]} {args.data} test images; mean ± 95% t half-width "
          "over seeds (the draw of the labelled set and the initialization)")
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("probe", "transfer", "ssvae"))
    p.add_argument("--data", choices=("digits", "mnist"), default="digits")
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--num-seeds", type=int, default=5)
    p.add_argument("--labels", type=int, nargs="*", default=[100, 1000])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    p.add_argument("--n-unlabelled", type=int, default=10000)
    p.add_argument("--minutes", type=float, default=4.0, help="SS-VAE MNIST: per-fit budget")
    p.add_argument("--epochs", type=int, default=25, help="SS-VAE digits: epochs per fit")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", type=float, default=None,
                   help="fit budgets relative to the digits ones (default 1 digits, 0.3 MNIST)")
    p.add_argument("--out-dir", default=OUT, help="JSON results and plots")
    args = p.parse_args(argv)
    globals()["OUT"] = args.out_dir
    torch.set_num_threads(args.threads)
    print(header())
    print("command:", "python benchmarks/bench_representation.py", *sys.argv[1:])
    {"probe": cmd_probe, "transfer": cmd_transfer, "ssvae": cmd_ssvae}[args.command](args)


if __name__ == "__main__":
    main()
