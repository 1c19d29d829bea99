r"""The ArviZ bridge and the Bayesian-workflow report for Pyro and NumPyro runs.

One job a module, every public name exported flat from here:

- :mod:`~pyrogen.diagnostics.arviz_bridge`: build and read ArviZ data on arviz 0.x and 1.x;
- :mod:`~pyrogen.diagnostics.inference_data`: :func:`to_inference_data` from MCMC runs, guides
  and draws (model replays in the private ``_replay`` module);
- :mod:`~pyrogen.diagnostics.sample_stats`: per-draw sampler statistics of Pyro / NumPyro runs;
- :mod:`~pyrogen.diagnostics.recording`: :class:`RecordingNUTS`, and the only use of private
  Pyro API in pyrogen (with a version check);
- :mod:`~pyrogen.diagnostics.checks`: r-hat / ESS summary, PSIS-LOO, BFMI, predictive p-values;
- :mod:`~pyrogen.diagnostics.compare`: model comparison by PSIS-LOO;
- :mod:`~pyrogen.diagnostics.selection`: choosing the number of components by PSIS-LOO;
- :mod:`~pyrogen.diagnostics.reporting`: :func:`report`, every check of one run written to files.

:func:`to_inference_data` builds one ArviZ object, with the same groups, from four sources: a
Pyro ``MCMC`` run (or a list of single-chain runs), a NumPyro ``MCMC`` run (all chains), a
fitted Pyro SVI guide, and a fitted NumPyro SVI guide with its parameters (or a dict of
draws):

========================  ====================================================================
group                     content
========================  ====================================================================
``posterior``             latent sample sites, shape ``(chain, draw, ...)``
``sample_stats``          ``diverging``, and where the sampler records them ``energy``,
                          ``lp``, ``n_steps``, ``tree_depth``, ``step_size``,
                          ``acceptance_rate`` (MCMC only; see the table below)
``log_likelihood``        per observation :math:`\log p(y_j \mid \theta_s)` for every observed
                          site, shape ``(chain, draw, *batch)``: what ``az.loo`` needs
``observed_data``         the observed values
``posterior_predictive``  one replicated data set per draw, :math:`y^\mathrm{rep}_s \sim
                          p(y \mid \theta_s)`, same shape as the observed site
========================  ====================================================================

Dimension names come from the plates (a site in ``plate("data", n)`` gets the dimension
``"data"``; other dimensions are ``"<site>_dim_<i>"``), overridable with ``dims``.

Sampler statistics by source:

- NumPyro ``MCMC`` run with ``extra_fields=NUMPYRO_EXTRA_FIELDS``: ``diverging``, ``energy``,
  ``lp``, ``n_steps``, ``tree_depth``, ``step_size``, ``acceptance_rate``;
- NumPyro ``MCMC`` with its default fields: ``diverging``;
- Pyro ``MCMC`` with :class:`RecordingNUTS`: the same seven as NumPyro;
- Pyro ``MCMC`` with ``NUTS`` or ``HMC``: ``diverging`` only (Pyro keeps neither per-draw
  energy nor tree statistics, so BFMI is unavailable);
- SVI guides and dicts of draws: none.

``energy`` is the Hamiltonian :math:`H = U(q) + \tfrac12 p^\top M^{-1} p` of the sampled
state (its potential plus the kinetic energy of its momentum) and ``lp`` is :math:`-U(q)`, the
log joint density in the unconstrained space (with the log-Jacobian of the transforms); both
follow NumPyro's (and Stan's) conventions, so the energy BFMI [3]_

.. math::

    \widehat{\mathrm{BFMI}} = \frac{\sum_{n=2}^{N} (E_n - E_{n-1})^2}
    {\sum_{n=1}^{N} (E_n - \bar E)^2}

means the same for both libraries.

:func:`report` puts r-hat and bulk/tail ESS [2]_, divergences, BFMI [3]_, PSIS-LOO with
Pareto-k counts and posterior predictive checks [4]_ of one run into ``report.json``,
``report.txt`` and PNG plots, and says what is wrong in plain words. :func:`compare_models`
and :func:`choose_n_components` rank models by PSIS-LOO [1]_ and pick one (e.g. the number
of factors).

Version policy. The object is always assembled by pyrogen from NumPy dictionaries and handed to
``arviz.from_dict``; ``arviz.from_pyro`` is never used (it is gone in arviz 1.x, and it drops
the log-likelihood when the model does not vectorize). On arviz 0.x (tested: 0.23) the call is
``az.from_dict(posterior=..., log_likelihood=..., ...)`` returning ``InferenceData``; on arviz
>= 1 it is ``az.from_dict({"posterior": ..., ...})`` returning a ``DataTree`` with the same
groups. :func:`summary`, :func:`loo`, :func:`compare_loo` and :func:`report` likewise call the
functions of the installed major version and return the same column names. ArviZ, NumPyro and
JAX are imported lazily, inside the functions, so that ``import pyrogen`` imports none of them.

References
----------
.. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model evaluation using
   leave-one-out cross-validation and WAIC", Statistics and Computing 27, 2017.
.. [2] A. Vehtari, A. Gelman, D. Simpson, B. Carpenter and P.-C. Bürkner, "Rank-normalization,
   folding, and localization: an improved R-hat for assessing convergence of MCMC",
   Bayesian Analysis 16(2), 2021.
.. [3] M. Betancourt, "Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
   Carlo", arXiv:1604.00695, 2016.
.. [4] A. Gelman, X.-L. Meng and H. Stern, "Posterior predictive assessment of model fitness
   via realized discrepancies", Statistica Sinica 6, 1996.
"""

from .arviz_bridge import arviz_major_version, from_arrays, group_names
from .checks import bfmi, loo, loo_numbers, ppc_pvalues, summary
from .compare import ModelComparison, compare_loo, compare_models
from .inference_data import to_inference_data
from .recording import RecordingNUTS
from .reporting import Report, report
from .sample_stats import NUMPYRO_EXTRA_FIELDS, SAMPLE_STATS, mcmc_sample_stats
from .selection import choose_n_components

__all__ = [
    "to_inference_data",
    "from_arrays",
    "mcmc_sample_stats",
    "RecordingNUTS",
    "NUMPYRO_EXTRA_FIELDS",
    "SAMPLE_STATS",
    "summary",
    "loo",
    "loo_numbers",
    "bfmi",
    "ppc_pvalues",
    "compare_loo",
    "compare_models",
    "choose_n_components",
    "ModelComparison",
    "report",
    "Report",
    "arviz_major_version",
    "group_names",
]
