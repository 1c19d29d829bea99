"""The record of one fit: :class:`FitHistory`, what every ``fit`` returns.

It lives below the model layer so that everything that fits a model (``pyrogen.models``, the
NumPyro backend in ``pyrogen.numpyro``) can return one without importing the models;
``pyrogen.models.FitHistory`` and ``pyrogen.models.base.FitHistory`` are this class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FitHistory"]


@dataclass
class FitHistory:
    """What :meth:`pyrogen.models.base.GenerativeModel.fit` returns.

    Attributes
    ----------
    method : str
        The training method (``"svi"``, ``"em"``, ``"closed_form"``, ...).
    losses : list of float
        Per step (or per EM iteration) loss; for SVI the negative ELBO per example (nats).
    metrics : dict of str -> list
        The model's own diagnostics per step/epoch (e.g. ``"log_likelihood"``, ``"kl"``).
    seconds : float
        Wall-clock training time.
    converged : bool or None
        Whether the fit's convergence test was met (the training loop's windowed test of
        ``GenerativeModel._train``, or an EM tolerance); ``False`` comes with a
        ``pyrogen.ConvergenceWarning``. ``None`` when no test ran (``tol=None``, MCMC).
    info : dict
        Anything else (number of steps, data identity, ...).
    """

    method: str
    losses: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    converged: bool | None = None
    info: dict = field(default_factory=dict)

    def log(self, **values):
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "final_loss": self.losses[-1] if self.losses else None,
            "num_steps": len(self.losses),
            "seconds": self.seconds,
            "converged": self.converged,
            "metrics": {k: v[-1] for k, v in self.metrics.items() if v},
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
        }
