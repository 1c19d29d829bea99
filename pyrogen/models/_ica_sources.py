"""Source-density handling shared by the ICA models (:mod:`pyrogen.models.ica`,
:mod:`pyrogen.models.noisy_ica`): the built-in unit-variance sources, validation of a
user-supplied one, and the mixin that builds the source distribution."""

from __future__ import annotations

import math
import numbers

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroParam

from .._validation import check_choice, check_float
from ..distributions.sources import GeneralizedNormal

__all__ = ["SOURCES", "GENNORM_SHAPE_BOUNDS", "SourceMixin", "make_source", "config_source"]

#: built-in source densities (all with zero mean and unit variance)
SOURCES = ("gennorm", "logistic", "laplace", "student_t")

#: range of the learnt generalized-normal shape (0.5: spikier than Laplace, 1: Laplace,
#: 2: Gaussian, 20: nearly uniform). The shape is parametrized by its log (no saturating
#: bound that could trap it); it is clamped to this range only for numerical safety.
GENNORM_SHAPE_BOUNDS = (0.5, 20.0)


def make_source(source) -> tuple[str, object]:
    """Validate ``source``: a built-in name or a univariate torch Distribution."""
    if isinstance(source, str):
        return check_choice(source, "source", SOURCES), None
    if isinstance(source, torch.distributions.Distribution):
        if source.event_shape != ():
            raise ValueError(
                "source must be a univariate distribution (event_shape ()). Got event_shape "
                f"{tuple(source.event_shape)} instead."
            )
        if source.support is not constraints.real and not isinstance(
            source.support, type(constraints.real)
        ):
            raise ValueError(
                f"source must have real support. Got support {source.support} instead."
            )
        return "custom", source
    raise TypeError(
        f"source must be one of {SOURCES!r} or a torch.distributions.Distribution. "
        f"Got {type(source).__name__} instead."
    )


class SourceMixin:
    """Source-density handling shared by the three models."""

    def _init_source(self, source, df, k):
        self._source_name, self._custom_source = make_source(source)
        if self._source_name == "student_t":
            df = check_float(df, "df", 2.0, None, "oo")
        self._df = float(df) if isinstance(df, numbers.Real) else df
        if self._custom_source is not None:
            bs = self._custom_source.batch_shape
            if bs not in (torch.Size(), torch.Size([k])):
                raise ValueError(
                    f"source must have batch_shape () or ({k},). Got {tuple(bs)} instead."
                )
        if self._source_name == "gennorm":
            self.source_shape = PyroParam(torch.full((k,), 1.5), constraint=constraints.positive)

    def source_distribution(self) -> torch.distributions.Distribution:
        """The univariate source density, batch shape ``(n_components,)`` (unit variance)."""
        k = self.n_components
        zero = torch.zeros(k, dtype=self.dtype, device=self.device)
        one = torch.ones_like(zero)
        name = self._source_name
        if name == "gennorm":
            return GeneralizedNormal(zero, one, self.source_shape.clamp(*GENNORM_SHAPE_BOUNDS))
        if name == "logistic":
            return dist.Logistic(zero, one * (math.sqrt(3.0) / math.pi))
        if name == "laplace":
            return dist.Laplace(zero, one / math.sqrt(2.0))
        if name == "student_t":
            nu = self._df
            return dist.StudentT(one * nu, zero, one * math.sqrt((nu - 2.0) / nu))
        return self._custom_source.expand(torch.Size([k]))

    def _source_is_symmetric(self) -> bool:
        return self._source_name != "custom"

    def save(self, path):
        if self._source_name == "custom":
            raise ValueError(
                "save needs a built-in source (one of "
                f"{SOURCES!r}); this model has a user-supplied source distribution, which "
                "cannot be rebuilt from a weights-only file. Save its state_dict instead."
            )
        return super().save(path)


def config_source(source):
    """The ``source`` entry of a model's config: the name, or ``"custom"``."""
    return source if isinstance(source, str) else "custom"
