r"""Few-label probes of learned representations (book §15.2-15.4).

A representation :math:`h = f(x)` (any model's ``transform``) is judged by how well a *linear*
classifier learns the labels from few labelled examples of it: for each seed, draw :math:`k`
labelled training examples per class, fit a multinomial logistic regression (L2-penalized,
scikit-learn's ``LogisticRegression``) on their standardized codes and report its accuracy on a
held-out test set. The spread over seeds (which :math:`k` examples were drawn) gives the
confidence interval. The same probe on raw pixels is the baseline a representation must beat
(Goodfellow et al. §15.3: unsupervised pretraining helps most when labelled data are few).

The standardization (mean and standard deviation per feature) uses **all** training codes,
labelled or not: in the semi-supervised setting the unlabelled inputs are available.

:func:`few_label_probe` consumes codes only; :func:`probe_representations` calls the
``transform`` of already fitted models (nothing here fits a generative model, so this module
sits low in the layer order).

References
----------
1. I. Goodfellow, Y. Bengio, A. Courville. *Deep Learning*, MIT Press 2016, §15.2 (transfer),
   §15.3 (semi-supervised disentangling), §15.4.
2. G. Alain, Y. Bengio. *Understanding intermediate layers using linear classifier probes*.
   ICLR workshop 2017 (arXiv:1610.01644).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ._validation import check_float, check_int

__all__ = ["ProbeResult", "few_label_probe", "probe_representations", "t_interval"]

#: two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (beyond: the normal 1.960)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_interval(values) -> tuple[float, float, float]:
    r"""Mean and 95% Student-t confidence interval :math:`\bar a \pm t_{0.975, S-1}\, s/\sqrt S`
    of ``S`` values (``(mean, nan, nan)`` for one value)."""
    a = np.asarray(values, dtype=np.float64)
    m = float(a.mean())
    if a.size < 2:
        return m, math.nan, math.nan
    df = a.size - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.960
    half = t * float(a.std(ddof=1)) / math.sqrt(a.size)
    return m, m - half, m + half


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of a few-label linear probe, over seeds.

    Attributes
    ----------
    k_per_class : int
        Labelled training examples per class.
    accuracies : tuple of float
        Test accuracy for each seed (which examples were labelled).
    mean, ci_low, ci_high : float
        Mean over seeds and its 95% Student-t confidence interval (``nan`` for one seed).
    chance : float
        Accuracy of always predicting the most frequent test class.
    n_test : int
    seeds : tuple of int
    info : dict
        Probe settings (``C``, ``n_features``).
    """

    k_per_class: int
    accuracies: tuple
    mean: float
    ci_low: float
    ci_high: float
    chance: float
    n_test: int
    seeds: tuple
    info: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if math.isnan(self.ci_low):
            return f"{100 * self.mean:.1f}% (k={self.k_per_class}, 1 seed)"
        return (f"{100 * self.mean:.1f}% [95% CI {100 * self.ci_low:.1f}, "
                f"{100 * self.ci_high:.1f}] (k={self.k_per_class}, {len(self.seeds)} seeds)")

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {"k_per_class": self.k_per_class, "accuracies": list(self.accuracies),
                "mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "chance": self.chance, "n_test": self.n_test, "seeds": list(self.seeds),
                **self.info}


def _as_codes(a, name: str) -> np.ndarray:
    if torch.is_tensor(a):
        a = a.detach().cpu().double().numpy()
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a 2-D tensor or array. Got {type(a).__name__} instead.")
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, n_features). Got shape {a.shape} instead.")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers. Got dtype {a.dtype} instead.")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite. Got {int((~np.isfinite(a)).sum())} NaN/inf "
                         "value(s) instead.")
    return a


def _as_labels(y, n: int, name: str) -> np.ndarray:
    if torch.is_tensor(y):
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TypeError(f"{name} must hold int labels. Got dtype {y.dtype} instead.")
        y = y.detach().cpu().numpy()
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name} must be a 1-D tensor or array of int labels. Got "
                        f"{type(y).__name__} instead.")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold int labels. Got dtype {y.dtype} instead.")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one label per row of the codes). Got "
                         f"shape {y.shape} instead.")
    if y.size and int(y.min()) < 0:
        raise ValueError(f"{name} must hold labels >= 0. Got minimum {int(y.min())} instead.")
    return y.astype(np.int64)


def few_label_probe(
    codes_train,
    y_train,
    codes_test,
    y_test,
    k_per_class: int,
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    C: float = 1.0,
    max_iter: int = 2000,
) -> ProbeResult:
    r"""Accuracy of a logistic-regression probe trained on ``k_per_class`` labelled codes per
    class, over seeds.

    Parameters
    ----------
    codes_train : Tensor or ndarray, shape ``(n, d)``
        Codes of the training inputs (all of them: ``k`` per class are drawn as labelled).
    y_train : int Tensor or ndarray, shape ``(n,)``
        Their labels in ``[0, C)``; every class of ``y_test`` must occur.
    codes_test : shape ``(m, d)``
    y_test : shape ``(m,)``
    k_per_class : int
        :math:`k \ge 1`, at most the size of the smallest training class.
    seeds : iterable of int
        One draw of the labelled examples per seed (numpy ``default_rng(seed)``).
    C : float
        Inverse L2 strength of ``sklearn.linear_model.LogisticRegression``.
    max_iter : int
        L-BFGS iterations (a non-converged fit raises scikit-learn's ``ConvergenceWarning``).

    Returns
    -------
    ProbeResult
        Mean test accuracy with its 95% Student-t interval over seeds.

    Raises
    ------
    ValueError
        Codes of the wrong shape or not finite; label vectors whose length differs from the
        codes; negative labels, or test labels of a class absent from training; ``k_per_class``
        larger than the smallest class; no seeds.
    TypeError
        Non-numeric codes or non-integer labels.
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:  # pragma: no cover - scikit-learn is in the test/data extras
        raise ImportError("few_label_probe needs scikit-learn: pip install 'pyrogen[data]'.") \
            from e
    xtr = _as_codes(codes_train, "codes_train")
    xte = _as_codes(codes_test, "codes_test")
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"codes_test must have {xtr.shape[1]} columns like codes_train. Got "
                         f"{xte.shape[1]} instead.")
    ytr = _as_labels(y_train, xtr.shape[0], "y_train")
    yte = _as_labels(y_test, xte.shape[0], "y_test")
    classes, counts = np.unique(ytr, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"y_train must hold at least 2 classes. Got {classes.size} instead.")
    missing = sorted(set(np.unique(yte).tolist()) - set(classes.tolist()))
    if missing:
        raise ValueError(f"y_test holds label(s) {missing} absent from y_train (classes "
                         f"{classes.tolist()}): out of range of the training labels.")
    k = check_int(k_per_class, "k_per_class", low=1)
    if k > int(counts.min()):
        raise ValueError(
            f"k_per_class must be at most the size of the smallest class in y_train "
            f"(class {int(classes[counts.argmin()])} has {int(counts.min())} examples). Got "
            f"{k} instead."
        )
    C = check_float(C, "C", 0.0, None, "oc")
    max_iter = check_int(max_iter, "max_iter", low=1)
    seeds = tuple(check_int(s, "seeds", low=0) for s in seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed. Got none.")
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    ztr, zte = (xtr - mu) / sd, (xte - mu) / sd
    by_class = [np.flatnonzero(ytr == c) for c in classes]
    accs = []
    for s in seeds:
        rng = np.random.default_rng(s)
        idx = np.concatenate([rng.choice(ix, size=k, replace=False) for ix in by_class])
        clf = LogisticRegression(C=C, max_iter=max_iter)
        clf.fit(ztr[idx], ytr[idx])
        accs.append(float((clf.predict(zte) == yte).mean()))
    mean, lo, hi = t_interval(accs)
    chance = float(np.bincount(yte).max() / yte.size)
    return ProbeResult(k, tuple(accs), mean, lo, hi, chance, int(yte.size), seeds,
                       info={"C": C, "n_features": int(xtr.shape[1])})


def probe_representations(
    encoders: Mapping[str, Callable | object],
    x_train,
    y_train,
    x_test,
    y_test,
    k_per_class: int | Iterable[int],
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    raw: bool = True,
    **probe_kwargs,
) -> dict[str, dict[int, ProbeResult]]:
    r"""Run :func:`few_label_probe` on the codes of several fitted models.

    Parameters
    ----------
    encoders : mapping name -> fitted model (with ``transform``) or callable ``x -> codes``
    x_train, y_train, x_test, y_test
        Inputs and labels; each encoder maps ``x_train`` and ``x_test`` to codes.
    k_per_class : int or iterable of int
    seeds : iterable of int
    raw : bool
        Add the raw-input baseline under the name ``"raw pixels"``.
    **probe_kwargs
        ``C``, ``max_iter`` of :func:`few_label_probe`.

    Returns
    -------
    dict
        ``{name: {k: ProbeResult}}``.
    """
    ks = (k_per_class,) if isinstance(k_per_class, int) else tuple(k_per_class)
    seeds = tuple(seeds)
    items = list(encoders.items())
    if raw:
        items = [("raw pixels", lambda x: x), *items]
    out: dict[str, dict[int, ProbeResult]] = {}
    for name, enc in items:
        fn = enc.transform if hasattr(enc, "transform") else enc
        if not callable(fn):
            raise TypeError(f"encoders[{name!r}] must have a transform method or be callable. "
                            f"Got {type(enc).__name__} instead.")
        ctr, cte = fn(x_train), fn(x_test)
        out[name] = {k: few_label_probe(ctr, y_train, cte, y_test, k, seeds, **probe_kwargs)
                     for k in ks}
    return out
