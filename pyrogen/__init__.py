"""pyrogen: deep generative models as Pyro programs.

The classic latent-variable and deep generative models of Goodfellow, Bengio & Courville,
*Deep Learning* (chapters 13, 15 and 20) as Pyro model/guide pairs and Pyro distributions, with
energy-based distributions whose log-normalizer is computed exactly or by annealed importance
sampling, so that ``pyro.infer.SVI``, ``MCMC``, ``Predictive`` and ``poutine`` work on them.
"""

__version__ = "0.1.0"

from . import datasets, evaluation  # noqa: E402
from .evaluation import LogLikelihood  # noqa: E402
from .exceptions import ConvergenceWarning  # noqa: E402

__all__ = ["__version__", "datasets", "evaluation", "LogLikelihood", "ConvergenceWarning"]
