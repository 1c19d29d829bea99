"""Multi-prediction training vs variational SML at equal steps: inpainting of held-out digits
(issue 15; Goodfellow, Mirza, Courville & Bengio 2013).

    python benchmarks/bench_dbm_mp.py --steps 1000 --seeds 0 1 2

Binarized 8x8 digits (``load_digits(binarize="threshold")``, a fixed split of 1500 / 297
rows), DBM 64-16-16, Adam, batch 100. For each seed: ``fit(method="mp")`` and
``fit(method="vsml")`` from the same initial parameters, then the mean-field prediction
(``DBM.inpaint``, threshold 0.5) of a random half of the pixels of every held-out digit (the
same mask for all), and the exact held-out log-likelihood of both models. Baselines: the
unfitted model and the per-pixel majority of the training data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from pyrogen.datasets import load_digits
from pyrogen.models import DBM


def _se(v):
    m = sum(v) / len(v)
    return math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1) / len(v)) if len(v) > 1 else 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--hidden", type=int, nargs="+", default=[16, 16])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mask-prob", type=float, default=0.5)
    args = p.parse_args()
    torch.set_num_threads(1)
    x = load_digits(binarize="threshold", dtype=torch.float64).x
    x = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))]
    tr, te = x[:-297], x[-297:]
    g = torch.Generator().manual_seed(123)
    mask = torch.rand(te.shape, generator=g, dtype=torch.float64) < args.mask_prob
    print(f"# load {os.getloadavg()}", flush=True)

    def accuracy(m):
        pred = (m.inpaint(te, mask) > 0.5).to(te.dtype)
        return float((pred == te)[mask].to(te.dtype).mean())

    majority = float(((tr.mean(0) > 0.5).to(te.dtype).expand_as(te) == te)[mask].double().mean())
    res = {"mp": [], "vsml": [], "unfitted": []}
    for seed in args.seeds:
        for method in ("mp", "vsml"):
            m = DBM(64, args.hidden, seed=seed, num_chains=100).double()
            if method == "mp":
                res["unfitted"].append(dict(acc=accuracy(m)))
            t0 = time.process_time()
            m.fit(tr, method=method, num_steps=args.steps, lr=args.lr, batch_size=100,
                  tol=None, seed=seed, progress=False)
            cpu = time.process_time() - t0
            ll = m.log_likelihood(te)
            r = dict(seed=seed, method=method, acc=accuracy(m), test_ll=float(ll.values.mean()),
                     ll_kind=ll.kind, cpu_s=cpu)
            res[method].append(r)
            print(json.dumps(r), flush=True)
    out = {"majority_acc": majority}
    for k, rows in res.items():
        a = [r["acc"] for r in rows]
        out[k] = dict(acc=sum(a) / len(a), acc_se=_se(a))
        if k != "unfitted":
            v = [r["test_ll"] for r in rows]
            out[k].update(test_ll=sum(v) / len(v), test_ll_se=_se(v),
                          cpu_s=sum(r["cpu_s"] for r in rows) / len(rows))
    out["load_end"] = os.getloadavg()
    out["args"] = vars(args)
    print("# summary " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
