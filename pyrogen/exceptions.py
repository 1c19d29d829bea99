"""pyrogen's warning classes (the bottom layer: imports nothing of pyrogen).

scikit-learn's :class:`sklearn.exceptions.ConvergenceWarning` plays the same role there; pyrogen
defines its own so that scikit-learn stays an optional dependency. Filter it as usual::

    import warnings
    from pyrogen import ConvergenceWarning
    warnings.simplefilter("error", ConvergenceWarning)  # make a short fit an error
"""

from __future__ import annotations

__all__ = ["ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at its iteration limit before meeting its convergence test.

    Raised by every ``fit`` whose stopping rule was not met: EM and alternating minimization
    (improvement per iteration below ``tol``) and the shared SVI training loop of
    :class:`pyrogen.models.base.GenerativeModel` (no relative improvement of the windowed
    mean loss above ``tol``; see :meth:`~pyrogen.models.base.GenerativeModel._train`).
    ``FitHistory.converged`` records the same outcome.
    """
