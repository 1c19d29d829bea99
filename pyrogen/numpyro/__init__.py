r"""NumPyro backend: twins of pyrogen's Bayesian linear factor models and multi-chain NUTS.

``import pyrogen`` does not import JAX; this subpackage does (it needs the ``numpyro`` extra:
``pip install pyrogen[numpyro]``).

Usage
-----
One-line switch on a pyrogen model (draws land in the same posterior buffers, so
``log_likelihood``, ``sample``, ``transform``, ``aligned_W``, ``to_inference_data`` and
save/load work unchanged; ``model.mcmc`` is then the NumPyro ``MCMC`` object)::

    from pyrogen.models import BayesianFactorAnalysis
    m = BayesianFactorAnalysis(D, K).double()
    m.fit(x, method="nuts", backend="numpyro", num_chains=4, chain_method="vectorized",
          num_samples=500, warmup_steps=500, seed=0)
    m.mcmc                         # numpyro.infer.MCMC (extra fields kept, see below)
    m.mcmc.pyrogen_timing          # {"total_s", "compile_s", "chain_method", "num_devices"}

NumPyro directly (same site names and priors as the Pyro models)::

    import jax; jax.config.update("jax_enable_x64", True)    # optional, float64
    from pyrogen.numpyro import bayesian_fa, run_nuts, sample_stats, procrustes_align
    mcmc = run_nuts(bayesian_fa, x, n_components=3, num_chains=4, chain_method="parallel",
                    num_warmup=500, num_samples=500, seed=0)
    post = mcmc.get_samples(group_by_chain=True)             # {"alpha", "W", "noise", "loc",
                                                             #  "W_decentered"}: (C, S, ...)
    stats = sample_stats(mcmc)     # {"diverging", "energy", "n_steps", "tree_depth",
                                   #  "acceptance_rate", "lp", "step_size"}: (C, S)
    W_aligned, R = procrustes_align(post["W"])                # r-hat-ready W
    summaries = factor_summaries(post["W"])                   # WWt_diag, col_norm2

``mcmc.get_extra_fields(group_by_chain=True)`` holds the raw fields ``energy``, ``diverging``,
``num_steps``, ``accept_prob``, ``potential_energy``, ``adapt_state.step_size``
(:data:`DEFAULT_EXTRA_FIELDS`), e.g. for BFMI. Log-likelihood per observation:
``numpyro.infer.log_likelihood(bayesian_fa, post_flat, x, n_components=3)["x"]`` (with
``post_flat = mcmc.get_samples()``). The observed site is always ``"x"`` in the plate
``"data"``.

Contents
--------
* Models (:mod:`pyrogen.numpyro.models`): :func:`bayesian_fa`, :func:`bayesian_ppca`,
  :func:`bayesian_noisy_ica`, :func:`bayesian_sparse_coding`.
* NUTS (:mod:`pyrogen.numpyro.mcmc`): :func:`run_nuts`, :func:`setup_host_devices`,
  :func:`sample_stats`, :class:`SufficientStatisticsNUTS` (the FA / PPCA NUTS target from
  :func:`gaussian_sufficient_statistics`, :math:`O(D^2 K)` per gradient whatever :math:`n`;
  :func:`run_nuts` uses it by default, ``sufficient_stats=False`` turns it off).
* Several devices (:mod:`pyrogen.numpyro.sharding`): :func:`shard_rows` splits the data's
  rows over JAX devices for a data-sharded log-density (large ``n``).
* Identifiability (:mod:`pyrogen.numpyro.align`): :func:`procrustes_align`,
  :func:`reference_W`, :func:`factor_summaries` (FA/PPCA: rotations);
  :func:`signed_permutation_align`, :func:`apply_signed_permutation` (ICA, sparse coding).
"""

from .align import (
    apply_signed_permutation,
    factor_summaries,
    procrustes_align,
    reference_W,
    signed_permutation_align,
)
from .mcmc import (
    CHAIN_METHODS,
    DEFAULT_EXTRA_FIELDS,
    ParallelChainsWarning,
    SufficientStatisticsNUTS,
    run_nuts,
    sample_stats,
    setup_host_devices,
)
from .models import (
    GaussianSufficientStatistics,
    LowRankGaussianSufficientStatistics,
    bayesian_fa,
    bayesian_noisy_ica,
    bayesian_ppca,
    bayesian_sparse_coding,
    gaussian_sufficient_statistics,
)
from .sharding import shard_rows

__all__ = [
    "bayesian_fa",
    "bayesian_ppca",
    "bayesian_noisy_ica",
    "bayesian_sparse_coding",
    "run_nuts",
    "SufficientStatisticsNUTS",
    "GaussianSufficientStatistics",
    "gaussian_sufficient_statistics",
    "LowRankGaussianSufficientStatistics",
    "setup_host_devices",
    "shard_rows",
    "sample_stats",
    "ParallelChainsWarning",
    "CHAIN_METHODS",
    "DEFAULT_EXTRA_FIELDS",
    "procrustes_align",
    "reference_W",
    "factor_summaries",
    "signed_permutation_align",
    "apply_signed_permutation",
]
