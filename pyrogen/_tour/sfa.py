"""Tour step: slow feature analysis on a synthetic mixture of sinusoids (book §13.3).

Fits closed-form SFA and probabilistic SFA (Turner & Sahani 2007) on the same sinusoid mixture,
reports the correlation of the recovered features with the known sources, the slowness values
and the exact log-likelihood per time step of both generative models, and draws the recovered
features against the sources.
"""

from __future__ import annotations

import time

import torch

from ..models import ProbabilisticSFA, SlowFeatureAnalysis
from ..models.sfa import sinusoid_mixture
from ..plotting import save_figure

#: cycles of the three sources over the series, for the quick (300 steps) and full (1000) tour:
#: about the same frequencies per step. (Much slower sources per step, e.g. the quick cycles
#: over 1000 steps, push the slowness of the two slowest SFA features onto the floor set by the
#: white noise, and closed-form SFA mixes them up; probabilistic SFA does not: see the docs.)
CYCLES = {True: (2.3, 11.7, 31.1), False: (4.6, 23.4, 62.2)}
NOISE = 0.05


def _abs_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1]))


def _plot(path: str, sources, sfa_y, psfa_y) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    def unit(v, ref):
        v = (v - v.mean()) / v.std()
        return v * torch.sign(torch.dot(v, ref - ref.mean()))

    k = sources.shape[1]
    fig, axes = plt.subplots(k, 1, figsize=(7, 1.6 * k + 0.4), sharex=True, squeeze=False)
    for i in range(k):
        ax = axes[i, 0]
        s = sources[:, i]
        ax.plot(unit(s, s).numpy(), color="0.6", lw=3, label="source")
        ax.plot(unit(sfa_y[:, i], s).numpy(), color="C0", lw=1, label="SFA")
        ax.plot(unit(psfa_y[:, i], s).numpy(), color="C3", lw=1, ls="--", label="PSFA")
        ax.set_ylabel(f"feature {i + 1}", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="upper right")
    axes[-1, 0].set_xlabel("time step", fontsize=8)
    fig.suptitle("slow features (slowest first) vs the known sources, standardized", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def step(ctx) -> list[dict]:
    n_steps = 300 if ctx.quick else 1000
    cycles = CYCLES[bool(ctx.quick)]
    x, sources = sinusoid_mixture(n_steps, 4, cycles=cycles, noise=NOISE, seed=ctx.seed)
    data = {
        "name": "sinusoid_mixture",
        "split": "all",
        "binarization": None,
        "binarization_seed": None,
        "n": n_steps,
        "n_features": 4,
        "cycles": list(cycles),
        "noise": NOISE,
        "seed": ctx.seed,
    }
    results = []

    sfa = SlowFeatureAnalysis(4, n_components=3).double()
    t0 = time.perf_counter()
    sfa.fit(x, data_info=data)
    sfa_seconds = time.perf_counter() - t0
    y = sfa.transform(x)
    corr = [_abs_corr(y[:, k], sources[:, k]) for k in range(3)]
    delta = [round(float(d), 4) for d in sfa.slowness_]
    results.append(
        {
            "model": "SlowFeatureAnalysis(K=3)",
            "data": data,
            "method": "closed_form",
            "log_likelihood": sfa.log_likelihood(x).to_dict(),
            "fit_seconds": sfa_seconds,
            "abs_corr_with_sources": corr,
            "slowness": delta,
            "summary": f"|corr| slowest {corr[0]:.4f} (all {', '.join(f'{c:.3f}' for c in corr)})"
            f"; slowness {', '.join(f'{d:.4f}' for d in delta)}",
        }
    )

    psfa = ProbabilisticSFA(4, 3).double()
    hist = psfa.fit(x, num_steps=10 if ctx.quick else 150, lr=0.02, seed=ctx.seed, progress=False)
    z = psfa.transform(x)
    pcorr = [_abs_corr(z[:, k], sources[:, k]) for k in range(3)]
    ll = psfa.log_likelihood(x)
    fig = _plot(ctx.path("sfa_features.png"), sources, y, z)
    lam = [round(float(v), 4) for v in psfa.lam.detach().sort(descending=True).values]
    results.append(
        {
            "model": "ProbabilisticSFA(K=3)",
            "data": data,
            "method": "svi",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": hist.seconds,
            "abs_corr_with_sources": pcorr,
            "lambda": lam,
            "figures": [fig],
            "summary": f"|corr| slowest {pcorr[0]:.4f}; lambda {', '.join(map(str, lam))}; "
            f"{len(hist.losses)} SVI steps from SFA init",
        }
    )
    return results
