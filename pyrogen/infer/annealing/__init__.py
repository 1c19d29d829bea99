r"""The annealing engine: AIS and SMC over any transition kernel and any annealing path.

See :mod:`pyrogen.infer.annealing.base` for the protocol and the layout of the package. Every
public name is exported here flat; :mod:`pyrogen.infer.ais` re-exports the historical ones.
"""

from . import defaults
from .base import (
    AISWarning,
    AnnealingPath,
    ChainRNG,
    Kernel,
    KernelInfo,
    KernelState,
    TransitionKernel,
    select_chains,
)
from .decoder import BDMCResult, PriorPosteriorPath, ais_log_likelihood, bdmc
from .defaults import DEFAULT_NUM_BETAS
from .hmc import HMC, MALA, HMCKernelInfo, HMCKernelState
from .kernels import (
    BinaryMetropolis,
    BlockGibbs,
    RandomWalkMetropolis,
    SingleSiteGibbs,
    resolve_kernel,
)
from .loop import AISInfo, AISResult, AISState, SMCResult, ais, ais_init, ais_step, make_rng, smc
from .paths import (
    DBMPath,
    GeometricPath,
    RBMBaseRatePath,
    RBMInterpolationPath,
    base_rate_visible_bias,
)
from .reverse import RAISEResult, reverse_ais
from .schedules import SM_SCHEDULE_SEGMENTS, check_betas, schedule

__all__ = [
    "HMC",
    "MALA",
    "HMCKernelState",
    "HMCKernelInfo",
    "PriorPosteriorPath",
    "ais_log_likelihood",
    "bdmc",
    "BDMCResult",
    "defaults",
    "AISWarning",
    "AnnealingPath",
    "ChainRNG",
    "Kernel",
    "KernelInfo",
    "KernelState",
    "TransitionKernel",
    "resolve_kernel",
    "select_chains",
    "DEFAULT_NUM_BETAS",
    "AISInfo",
    "AISResult",
    "AISState",
    "ais",
    "ais_init",
    "ais_step",
    "SMCResult",
    "smc",
    "make_rng",
    "GeometricPath",
    "DBMPath",
    "RBMInterpolationPath",
    "BlockGibbs",
    "SingleSiteGibbs",
    "BinaryMetropolis",
    "RandomWalkMetropolis",
    "RBMBaseRatePath",
    "base_rate_visible_bias",
    "RAISEResult",
    "reverse_ais",
    "SM_SCHEDULE_SEGMENTS",
    "check_betas",
    "schedule",
]
