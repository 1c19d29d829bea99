"""Input validation shared by every pyrogen model (scikit-learn style messages).

Every check raises ``ValueError`` or ``TypeError`` whose message names the argument, what was
expected and what was received, e.g. ``"n_components must be an int in the range [1, 64].
Got 65 instead."``. Never ``assert``: asserts vanish under ``python -O``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import torch

__all__ = [
    "check_int",
    "check_float",
    "check_choice",
    "check_data",
    "check_binary",
]


def _range_text(low, high, closed: str) -> str:
    left = "[" if closed[0] == "c" else "("
    right = "]" if closed[1] == "c" else ")"
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    return f"{left}{lo}, {hi}{right}"


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` in ``[low, high]`` or raise ``TypeError``/``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int in the range {_range_text(low, high, 'cc')}. "
            f"Got {value!r} of type {type(value).__name__} instead."
        )
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(
            f"{name} must be an int in the range {_range_text(low, high, 'cc')}. "
            f"Got {value!r} instead."
        )
    return value


def check_float(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    closed: str = "cc",
) -> float:
    """Return ``value`` as a finite ``float`` in the given interval.

    ``closed`` is two letters, ``c`` (closed) or ``o`` (open), for the left and right ends:
    ``check_float(lr, "lr", 0, None, "oc")`` requires ``lr > 0``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(
                f"{name} must be a float in the range {_range_text(low, high, closed)}. "
                f"Got {value!r} of type {type(value).__name__} instead."
            )
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad |= value < low if closed[0] == "c" else value <= low
    if high is not None:
        bad |= value > high if closed[1] == "c" else value >= high
    if bad:
        raise ValueError(
            f"{name} must be a float in the range {_range_text(low, high, closed)}. "
            f"Got {value!r} instead."
        )
    return value


def check_choice(value, name: str, choices: Iterable):
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices!r}. Got {value!r} instead.")
    return value


def check_data(
    x,
    name: str = "x",
    *,
    n_features: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    min_rows: int = 1,
    ndim: int = 2,
) -> torch.Tensor:
    """Validate a data matrix and return it as a tensor.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, shape ``(n, n_features)``
        The data. NumPy arrays are converted to ``dtype`` (the model's dtype); tensors are
        *not* silently cast: a floating tensor of another dtype is a ``TypeError`` that says how
        to convert, because a silent float64 -> float32 cast changes log-likelihoods.
    n_features : int, optional
        Required size of the last dimension.
    dtype : torch.dtype, optional
        The model's floating dtype.
    device : torch.device, optional
        The model's device; data on another device is a ``ValueError``.

    Raises
    ------
    TypeError
        Not a tensor/array, non-numeric, or a floating dtype that differs from ``dtype``.
    ValueError
        Wrong number of dimensions, wrong number of features, too few rows, NaN or inf values,
        or another device.
    """
    if isinstance(x, np.ndarray):
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise TypeError(f"{name} must be a numeric array. Got dtype {x.dtype} instead.")
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        x = x.to(dtype or torch.get_default_dtype())
        if device is not None:
            x = x.to(device)
    elif isinstance(x, torch.Tensor):
        if not (x.dtype.is_floating_point or x.dtype in _INT_DTYPES):
            raise TypeError(
                f"{name} must be a real-valued tensor. Got dtype {x.dtype} instead."
            )
        if device is not None and x.device != torch.device(device):
            raise ValueError(
                f"{name} must be on the model's device {torch.device(device)}. "
                f"Got a tensor on {x.device} instead; move it with x.to({str(device)!r})."
            )
        if not x.dtype.is_floating_point:
            x = x.to(dtype or torch.get_default_dtype())
        elif dtype is not None and x.dtype != dtype:
            raise TypeError(
                f"{name} must have the model's dtype {dtype}. Got {x.dtype} instead; "
                f"convert the data with x.to({dtype}) or the model with model.to({x.dtype})."
            )
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy.ndarray of shape (n, n_features). "
            f"Got {type(x).__name__} instead."
        )
    if x.dim() != ndim:
        want = "(n, n_features)" if ndim == 2 else f"{ndim} dimensions"
        raise ValueError(f"{name} must have shape {want}. Got shape {tuple(x.shape)} instead.")
    if x.shape[0] < min_rows:
        raise ValueError(
            f"{name} must have at least {min_rows} row(s). Got shape {tuple(x.shape)} instead."
        )
    if n_features is not None and x.shape[-1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} features (columns), as the model was built with. "
            f"Got {x.shape[-1]} instead."
        )
    if not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must be finite. Got {n_bad} NaN or infinite value(s) instead.")
    return x


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def check_binary(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise ``ValueError`` unless every entry of ``x`` is 0 or 1."""
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        example = x[bad].flatten()[0].item()
        raise ValueError(
            f"{name} must be binary (every entry 0 or 1). Got {int(bad.sum())} non-binary "
            f"value(s), e.g. {example!r}, instead; binarize first (see pyrogen.datasets)."
        )
    return x


def check_labels(
    y, n: int, n_classes: int, name: str = "y", unlabelled: int | None = None
) -> torch.Tensor:
    """Class labels: an integer tensor of shape ``(n,)`` with values in ``[0, n_classes)``.

    Returns ``y`` as ``torch.long``. ``TypeError`` for a non-tensor, ``ValueError`` for a float
    dtype, a wrong shape or a label out of range. ``unlabelled`` (e.g. ``-1``): a value that
    marks a missing label and is accepted besides ``[0, n_classes)`` (semi-supervised data).
    """
    if not torch.is_tensor(y):
        raise TypeError(f"{name} must be a tensor of int labels. Got {type(y).__name__} instead.")
    if y.dim() != 1 or y.shape[0] != n or y.dtype.is_floating_point:
        raise ValueError(
            f"{name} must be an integer tensor of shape ({n},). Got dtype {y.dtype} and shape "
            f"{tuple(y.shape)} instead."
        )
    known = y if unlabelled is None else y[y != unlabelled]
    if known.numel() and (int(known.min()) < 0 or int(known.max()) >= n_classes):
        also = "" if unlabelled is None else f" (or {unlabelled} for a missing label)"
        raise ValueError(
            f"{name} must hold labels in [0, {n_classes - 1}]{also}. Got values in "
            f"[{int(y.min())}, {int(y.max())}] instead."
        )
    return y.long()
