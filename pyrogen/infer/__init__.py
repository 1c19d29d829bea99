"""Inference algorithms Pyro lacks, one module per algorithm family, exported flat.

As in :mod:`pyro.infer`, every public estimator and function is importable from the package
itself::

    from pyrogen.infer import ReweightedWakeSleep, IWAE_ELBO, importance_log_likelihood, ais

The submodules stay importable and document each family:

* :mod:`pyrogen.infer.importance` — the one per-example importance-weighting core
  (:func:`~pyrogen.infer.importance.per_example_log_weights`) and importance-sampled
  :math:`\\log p(x)` with a guide as proposal;
* :mod:`pyrogen.infer.rws`, :mod:`pyrogen.infer.wake_sleep`, :mod:`pyrogen.infer.iwae`,
  :mod:`pyrogen.infer.score_function` — Pyro losses: reweighted wake-sleep, wake-sleep, the
  IWAE bound, REINFORCE with NVIL and optimal baselines;
* :mod:`pyrogen.infer.refine` — per-example refinement of amortized guides, amortization gap;
* :mod:`pyrogen.infer.annealing` (and its historical façade :mod:`pyrogen.infer.ais`) —
  annealed importance sampling, SMC and RAISE over any kernel and path;
* :mod:`pyrogen.infer.lasso` — batched Lasso solvers (sparse coding's inference);
* :mod:`pyrogen.infer.adversarial` — GAN games and moment matching (GMMN) on Pyro models
  with a generated site, with ``SVI``'s interface.

Two functions share their module's name: ``ais`` (:mod:`pyrogen.infer.ais`) and ``refine``
(:mod:`pyrogen.infer.refine`). As an attribute of the package the name is the **function**
(``pyrogen.infer.ais(path, ...)`` runs AIS), deterministically: both submodules are loaded
here before the functions are bound. Nothing public was renamed for this. The modules remain
reachable as modules by ``from pyrogen.infer.ais import ...`` and
``importlib.import_module("pyrogen.infer.ais")``; but ``import pyrogen.infer.ais as m`` binds
the function (Python resolves ``as`` through the package attribute), and so do dotted strings
resolved attribute by attribute (``monkeypatch.setattr("pyrogen.infer.refine.X", ...)``):
use the module object from :func:`importlib.import_module` there.
"""

# Load the submodules named like a function first: Python sets a submodule as an attribute of
# its package when the submodule is first imported, so importing them after the functions are
# bound would replace the function ``pyrogen.infer.ais`` by the module.
from . import ais as _ais_module  # noqa: F401  (see the module docstring)
from . import refine as _refine_module  # noqa: F401
from .adversarial import (
    ADVERSARIAL_LOSSES,
    AdversarialInfo,
    AdversarialTrainer,
    MomentMatching,
    MomentMatchingInfo,
    generated_site,
    gradient_penalty,
    mmd2,
)
from .annealing import (
    DEFAULT_NUM_BETAS,
    HMC,
    MALA,
    SM_SCHEDULE_SEGMENTS,
    AISInfo,
    AISResult,
    AISState,
    AISWarning,
    AnnealingPath,
    BDMCResult,
    BinaryMetropolis,
    BlockGibbs,
    ChainRNG,
    DBMPath,
    GeometricPath,
    HMCKernelInfo,
    HMCKernelState,
    Kernel,
    KernelInfo,
    KernelState,
    PriorPosteriorPath,
    RAISEResult,
    RandomWalkMetropolis,
    RBMBaseRatePath,
    RBMInterpolationPath,
    SingleSiteGibbs,
    SMCResult,
    TransitionKernel,
    ais,
    ais_init,
    ais_log_likelihood,
    ais_step,
    base_rate_visible_bias,
    bdmc,
    check_betas,
    make_rng,
    resolve_kernel,
    reverse_ais,
    schedule,
    select_chains,
    smc,
)
from .importance import (
    ImportanceWeights,
    guess_max_plate_nesting,
    importance_log_likelihood,
    log_importance_weights,
    per_example_log_weights,
)
from .iwae import IWAE_ELBO
from .lasso import (
    LASSO_METHODS,
    LassoResult,
    duality_gap,
    lasso_objective,
    soft_threshold,
    solve_lasso,
)
from .layerwise import (
    LayerwiseResult,
    classification_error,
    greedy_layerwise,
    layer_affine,
    mlp_from_stack,
    random_mlp,
    train_classifier,
)
from .optim import JointOptim
from .refine import AmortizationGap, RefinedGuide, amortization_gap, refine
from .rws import ReweightedWakeSleep
from .score_function import (
    BASELINES,
    NVIL_ELBO,
    NeuralBaseline,
    OptimalBaselineReinforce,
    with_baseline,
)
from .wake_sleep import WakeSleep, sleep_phase_loss

__all__ = [
    "JointOptim",
    # importance weighting and importance-sampled evaluation
    "ImportanceWeights",
    "per_example_log_weights",
    "log_importance_weights",
    "importance_log_likelihood",
    "guess_max_plate_nesting",
    # greedy layer-wise pretraining and the classifier built from a stack
    "LayerwiseResult",
    "greedy_layerwise",
    "layer_affine",
    "mlp_from_stack",
    "random_mlp",
    "train_classifier",
    "classification_error",
    # Pyro losses
    "ReweightedWakeSleep",
    "WakeSleep",
    "sleep_phase_loss",
    "IWAE_ELBO",
    "NVIL_ELBO",
    "OptimalBaselineReinforce",
    "NeuralBaseline",
    "with_baseline",
    "BASELINES",
    # refinement of amortized guides
    "refine",
    "RefinedGuide",
    "amortization_gap",
    "AmortizationGap",
    # annealing: AIS, SMC, RAISE
    "ais",
    "ais_init",
    "ais_step",
    "smc",
    "reverse_ais",
    "AISState",
    "AISInfo",
    "AISResult",
    "SMCResult",
    "RAISEResult",
    "AISWarning",
    "AnnealingPath",
    "GeometricPath",
    "RBMBaseRatePath",
    "RBMInterpolationPath",
    "DBMPath",
    "base_rate_visible_bias",
    "BlockGibbs",
    "SingleSiteGibbs",
    "BinaryMetropolis",
    "RandomWalkMetropolis",
    "HMC",
    "MALA",
    "HMCKernelState",
    "HMCKernelInfo",
    # log p(x) of decoder models: AIS prior -> posterior, BDMC
    "PriorPosteriorPath",
    "ais_log_likelihood",
    "bdmc",
    "BDMCResult",
    "Kernel",
    "KernelInfo",
    "KernelState",
    "TransitionKernel",
    "resolve_kernel",
    "select_chains",
    "ChainRNG",
    "make_rng",
    "schedule",
    "check_betas",
    "SM_SCHEDULE_SEGMENTS",
    "DEFAULT_NUM_BETAS",
    # adversarial and moment-matching training of generators
    "AdversarialTrainer",
    "AdversarialInfo",
    "MomentMatching",
    "MomentMatchingInfo",
    "ADVERSARIAL_LOSSES",
    "generated_site",
    "gradient_penalty",
    "mmd2",
    # Lasso
    "solve_lasso",
    "lasso_objective",
    "duality_gap",
    "soft_threshold",
    "LassoResult",
    "LASSO_METHODS",
]
