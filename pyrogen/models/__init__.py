"""pyrogen models: PyroModules following the model protocol (see :mod:`pyrogen.models.base`)."""

from .base import MODELS, FitHistory, GenerativeModel, load, register_model
from .bayesian_factor import BayesianFactorAnalysis, BayesianPPCA
from .conv_rbm import ConvDBN, ConvRBM, GaussianConvRBM
from .covariance_rbm import MeanCovarianceRBM, MeanProductStudentT, SpikeSlabRBM
from .dbm import DBM
from .dbn import DBN
from .diffusion import BinomialDiffusion, DiffusionModel
from .drbm import DiscriminativeRBM
from .factor import PPCA, FactorAnalysis
from .gan import GAN
from .gated_rbm import GatedRBM
from .gsn import GSN, DenoisingAutoencoder
from .ica import ICA
from .nade import DeepNADEModel, NADEGuide, NADEModel
from .noisy_ica import BayesianNoisyICA, NoisyICA
from .rbm import BernoulliRBM, GaussianBernoulliRBM
from .sbn import FVSBN, HelmholtzMachine, SigmoidBeliefNet
from .sequential_rbm import RNNRBM, ConditionalRBM
from .sfa import ProbabilisticSFA, SlowFeatureAnalysis
from .sparse_coding import SparseCoding
from .ssvae import M1M2, SemiSupervisedVAE
from .vae import VAE, ConditionalVAE

__all__ = [
    "MODELS",
    "FitHistory",
    "GenerativeModel",
    "load",
    "register_model",
    "FactorAnalysis",
    "PPCA",
    "BayesianFactorAnalysis",
    "BayesianPPCA",
    "ICA",
    "NoisyICA",
    "BayesianNoisyICA",
    "SlowFeatureAnalysis",
    "ProbabilisticSFA",
    "SparseCoding",
    "VAE",
    "ConditionalVAE",
    "SemiSupervisedVAE",
    "M1M2",
    "GAN",
    "DenoisingAutoencoder",
    "GSN",
    "BernoulliRBM",
    "GaussianBernoulliRBM",
    "DiscriminativeRBM",
    "ConvRBM",
    "GaussianConvRBM",
    "ConvDBN",
    "MeanCovarianceRBM",
    "MeanProductStudentT",
    "SpikeSlabRBM",
    "ConditionalRBM",
    "RNNRBM",
    "GatedRBM",
    "DBM",
    "DBN",
    "DiffusionModel",
    "BinomialDiffusion",
    "SigmoidBeliefNet",
    "HelmholtzMachine",
    "FVSBN",
    "NADEModel",
    "NADEGuide",
    "DeepNADEModel",
]
