"""Pyro distributions of pyrogen: energy-based distributions (Boltzmann machines, RBMs,
Gaussian-Bernoulli RBMs) whose log-normalizer comes from a :mod:`pyrogen.normalizers` strategy.
"""

from .boltzmann import RBM, BoltzmannMachine, GaussianBernoulliRBM
from .class_rbm import ClassRBM, ClassRBMBaseRatePath, class_logits
from .conv_rbm import ConvolutionalRBM, GaussianConvolutionalRBM
from .covariance_rbm import MeanCovarianceRBM, MeanProductStudentT, SpikeSlabRBM
from .dbm import DBMJoint, DeepBoltzmannMachine
from .energy import (
    BinaryEnergyBasedDistribution,
    EnergyBasedDistribution,
    enumerate_binary_states,
)
from .nade import MADE, NADE, MADEMixture, NADEEnsemble
from .sources import FactorialSources, GeneralizedNormal
from .transforms import MatrixTransform

__all__ = [
    "EnergyBasedDistribution",
    "BinaryEnergyBasedDistribution",
    "BoltzmannMachine",
    "RBM",
    "GaussianBernoulliRBM",
    "ClassRBM",
    "ClassRBMBaseRatePath",
    "class_logits",
    "ConvolutionalRBM",
    "GaussianConvolutionalRBM",
    "MeanCovarianceRBM",
    "MeanProductStudentT",
    "SpikeSlabRBM",
    "DeepBoltzmannMachine",
    "DBMJoint",
    "enumerate_binary_states",
    "GeneralizedNormal",
    "FactorialSources",
    "MatrixTransform",
    "NADE",
    "NADEEnsemble",
    "MADE",
    "MADEMixture",
]
