"""Test helper: run a fit and check that it reports non-convergence honestly."""

import warnings

from pyrogen import ConvergenceWarning


def fit_honestly(fit, *args, **kwargs):
    """``fit(*args, **kwargs)`` (a model's ``fit`` or ``_fit_svi``) for runs that may or may not
    meet their convergence test (tiny registry fits, a method parametrization where some
    converge): a ``ConvergenceWarning`` must be raised exactly when the returned history says
    ``converged is False``. Every other warning stays an error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        hist = fit(*args, **kwargs)
    warned = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(warned) == (hist.converged is False), (hist.converged, [str(w) for w in warned])
    return hist
