r"""Fixed annealing schedules and their validation.

A schedule is a non-decreasing sequence of inverse temperatures from :math:`\beta_0 = 0` (the
tractable base) to :math:`\beta_K = 1` (the target). :func:`schedule` builds the classic
shapes; :func:`check_betas` validates a user's schedule (the one check every entry point uses).
The adaptive schedule of SMC lives in :mod:`pyrogen.infer.annealing.loop`.
"""

from __future__ import annotations

import torch

from ..._validation import check_int
from . import defaults

__all__ = ["schedule", "check_betas", "SM_SCHEDULE_SEGMENTS"]

#: The Salakhutdinov & Murray (2008) schedule: ``(start, end, count)`` segments of uniformly
#: spaced betas: 500 in [0, 0.5), 4000 in [0.5, 0.9), 10000 in [0.9, 1].
SM_SCHEDULE_SEGMENTS = ((0.0, 0.5, 500), (0.5, 0.9, 4000), (0.9, 1.0, 10000))


def schedule(
    num_betas: int | None = None,
    kind: str = "sm",
    *,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""An annealing schedule: ``num_betas`` increasing inverse temperatures from 0 to 1.

    Parameters
    ----------
    num_betas : int, at least 2, optional
        Default :data:`~pyrogen.infer.annealing.defaults.DEFAULT_NUM_BETAS`. Number of
        distributions :math:`K+1` (the first is the base, the last the target).
    kind : {"sm", "linear", "sigmoid"}
        ``"sm"``: the Salakhutdinov & Murray (2008) shape, :data:`SM_SCHEDULE_SEGMENTS` scaled to
        ``num_betas`` (500/14500 of the steps in [0, 0.5), 4000/14500 in [0.5, 0.9), the rest
        in [0.9, 1]); ``schedule(14501, "sm")`` is their schedule. ``"linear"``: uniform.
        ``"sigmoid"``: :math:`\sigma(\delta(2t-1))` rescaled to [0, 1] with :math:`\delta=4`
        (Grosse et al.), dense at both ends.

    Returns
    -------
    torch.Tensor, shape ``(num_betas,)``
        ``betas[0] == 0``, ``betas[-1] == 1``, strictly increasing.
    """
    if num_betas is None:
        num_betas = defaults.DEFAULT_NUM_BETAS
    num_betas = check_int(num_betas, "num_betas", low=2)
    if kind not in ("sm", "linear", "sigmoid"):
        raise ValueError(f"kind must be one of ('sm', 'linear', 'sigmoid'). Got {kind!r} instead.")
    if kind == "linear" or num_betas < 4:
        return torch.linspace(0.0, 1.0, num_betas, dtype=dtype)
    if kind == "sigmoid":
        t = torch.linspace(-4.0, 4.0, num_betas, dtype=torch.float64)
        s = torch.sigmoid(t)
        return ((s - s[0]) / (s[-1] - s[0])).to(dtype)
    total = sum(c for _, _, c in SM_SCHEDULE_SEGMENTS)
    steps = num_betas - 1
    counts = [max(1, round(c * steps / total)) for _, _, c in SM_SCHEDULE_SEGMENTS]
    counts[-1] = steps - sum(counts[:-1])
    if counts[-1] < 1:  # tiny num_betas: fall back to uniform
        return torch.linspace(0.0, 1.0, num_betas, dtype=dtype)
    parts = [
        torch.linspace(lo, hi, c + 1, dtype=torch.float64)[:-1]
        for (lo, hi, _), c in zip(SM_SCHEDULE_SEGMENTS, counts)
    ]
    parts.append(torch.ones(1, dtype=torch.float64))
    return torch.cat(parts).to(dtype)


def check_betas(betas, kind: str | None = None) -> list[float]:
    """Validate a schedule: ``None`` (the default number of temperatures), an int (that many,
    :func:`schedule` of shape ``kind``) or a 1-D sequence from 0 to 1, non-decreasing.
    Returns the betas as a list of Python floats (float64 precision)."""
    if betas is None:
        betas = defaults.DEFAULT_NUM_BETAS
    if isinstance(betas, int) and not isinstance(betas, bool):
        return schedule(betas, kind or defaults.DEFAULT_SCHEDULE).tolist()
    if not isinstance(betas, torch.Tensor):
        try:
            betas = torch.as_tensor(betas, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                "betas must be an int (number of inverse temperatures) or a 1-D tensor of "
                f"inverse temperatures. Got {type(betas).__name__} instead."
            ) from None
    if betas.dim() != 1 or betas.numel() < 2:
        raise ValueError(
            "betas must be a 1-D tensor with at least 2 entries. "
            f"Got shape {tuple(betas.shape)} instead."
        )
    b = betas.detach().double()
    if not torch.isfinite(b).all() or b[0] != 0 or b[-1] != 1:
        raise ValueError(
            "betas must start at 0 and end at 1. "
            f"Got first {b[0].item()!r} and last {b[-1].item()!r} instead."
        )
    if (b[1:] < b[:-1]).any():
        raise ValueError("betas must be non-decreasing. Got a decreasing step instead.")
    return b.tolist()
