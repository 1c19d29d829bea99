"""One row per model: what the generic tests (``tests/models/test_generic.py``) run over.

Adding a model to pyrogen = adding a :class:`ModelSpec` row here. The generic tests then check,
for every row: the Pyro model/guide pair runs under ``pyro.infer.SVI`` and ``Predictive``;
``fit`` runs end to end at tiny size and returns a history; ``log_likelihood`` has shape ``(n,)``,
a declared kind and finite values; ``sample(n)`` has shape ``(n, n_features)`` and lies in the
support; ``transform`` has one row per example; ``save``/``load`` round-trips (atomic,
``weights_only=True``); bad input (NaN, wrong width, wrong dtype, wrong rank, bad ``n``) raises
``ValueError``/``TypeError`` naming the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class ModelSpec:
    """A tiny instance of a model and data it can be fitted on.

    Attributes
    ----------
    name : str
        Test id.
    make : callable () -> GenerativeModel
        Builds a small instance (float64 where the model allows it).
    data : callable (seed) -> Tensor
        Small data matrix the model accepts, shape ``(n, n_features)``.
    fit_kwargs : dict
        Arguments making ``fit`` run in well under a second.
    support : {"real", "binary"}
        Where ``sample`` must land.
    """

    name: str
    make: Callable
    data: Callable[[int], torch.Tensor]
    fit_kwargs: dict = field(default_factory=dict)
    support: str = "real"


def _gaussian_data(n_features: int, n: int = 60, rank: int = 2):
    def data(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(n_features, rank, generator=g, dtype=torch.float64)
        h = torch.randn(n, rank, generator=g, dtype=torch.float64)
        return h @ w.T + 0.3 * torch.randn(n, n_features, generator=g, dtype=torch.float64)

    return data


def _binary_data(n_features: int, n: int = 60):
    def data(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        p = torch.rand(n_features, generator=g, dtype=torch.float64) * 0.8 + 0.1
        return torch.bernoulli(p.expand(n, n_features), generator=g)

    return data


def _joint_class_data(n_visible: int, n_classes: int, n: int = 60):
    """Rows ``[v, one_hot(y)]``: binary inputs and a one-hot class (classification RBMs)."""

    def data(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        y = torch.randint(0, n_classes, (n,), generator=g)
        p = torch.rand(n_classes, n_visible, generator=g, dtype=torch.float64) * 0.8 + 0.1
        v = torch.bernoulli(p[y], generator=g)
        return torch.cat([v, torch.nn.functional.one_hot(y, n_classes).double()], -1)

    return data


def _ica_data(n_features: int = 3, n: int = 200):
    """Non-Gaussian sources (two +-1 signals, one Laplace) mixed by a random matrix."""

    def data(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        s = torch.empty(n, n_features, dtype=torch.float64)
        s[:, :-1] = torch.randint(0, 2, (n, n_features - 1), generator=g).double() * 2 - 1
        e = torch.empty(n, dtype=torch.float64).exponential_(1.0, generator=g)
        s[:, -1] = e * (torch.randint(0, 2, (n,), generator=g).double() * 2 - 1)
        a = torch.randn(n_features, n_features, generator=g, dtype=torch.float64)
        return s @ (a + 2 * torch.eye(n_features, dtype=torch.float64)).T

    return data


def _specs() -> list[ModelSpec]:
    from pyrogen import models as m

    specs: list[ModelSpec] = []
    # -- rows: one per model (keep alphabetical within a family) ------------------------------
    specs.append(
        ModelSpec(
            "FactorAnalysis",
            lambda: m.FactorAnalysis(6, 2).double(),
            _gaussian_data(6),
            {"method": "svi", "num_steps": 5},
        )
    )
    specs.append(
        ModelSpec(
            "PPCA",
            lambda: m.PPCA(6, 2).double(),
            _gaussian_data(6),
            {"method": "svi", "num_steps": 5},
        )
    )
    # Bayesian factor models (pyrogen/models/bayesian_factor.py): posterior predictive density
    specs.append(
        ModelSpec(
            "BayesianFactorAnalysis",
            lambda: m.BayesianFactorAnalysis(6, 2, num_prior_draws=20).double(),
            _gaussian_data(6),
            {"num_steps": 5, "num_posterior_samples": 10},
        )
    )
    specs.append(
        ModelSpec(
            "BayesianPPCA",
            lambda: m.BayesianPPCA(6, 2, num_prior_draws=20).double(),
            _gaussian_data(6),
            {"num_steps": 5, "num_posterior_samples": 10},
        )
    )
    # ICA family (pyrogen/models/ica.py, noisy_ica.py)
    specs.append(
        ModelSpec(
            "BayesianNoisyICA",
            lambda: m.BayesianNoisyICA(3, 2).double(),
            _ica_data(),
            {"num_steps": 5},
        )
    )
    specs.append(
        ModelSpec("ICA", lambda: m.ICA(3).double(), _ica_data(), {"num_steps": 30})
    )
    specs.append(
        ModelSpec("NoisyICA", lambda: m.NoisyICA(3, 2).double(), _ica_data(), {"num_steps": 5})
    )
    # slow feature analysis (pyrogen/models/sfa.py): the (n, n_features) matrix is one time
    # series (T, n_features)
    specs.append(
        ModelSpec(
            "ProbabilisticSFA",
            lambda: m.ProbabilisticSFA(6, 2).double(),
            _gaussian_data(6),
            {"num_steps": 3},
        )
    )
    specs.append(
        ModelSpec(
            "SlowFeatureAnalysis", lambda: m.SlowFeatureAnalysis(6, 2).double(), _gaussian_data(6)
        )
    )
    # sparse coding (pyrogen/models/sparse_coding.py): importance-sampled log-likelihood
    specs.append(
        ModelSpec(
            "SparseCoding",
            lambda: m.SparseCoding(6, 4, lam=0.5, fit_bias=True, num_is_samples=50).double(),
            _gaussian_data(6),
            {"num_iter": 3},
        )
    )
    specs.append(
        ModelSpec(
            "SparseCoding-svi-normal",
            lambda: m.SparseCoding(6, 4, lam=0.5, guide="normal", num_is_samples=50).double(),
            _gaussian_data(6),
            {"method": "svi", "num_steps": 5},
        )
    )
    # restricted Boltzmann machines (pyrogen/models/rbm.py): exact log-likelihood when the
    # smaller layer is small, AIS estimate otherwise
    specs.append(
        ModelSpec(
            "BernoulliRBM",
            lambda: m.BernoulliRBM(6, 4).double(),
            _binary_data(6),
            {"num_steps": 5},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "BernoulliRBM-ais",
            lambda: m.BernoulliRBM(
                22, 21, num_chains=10, ais_num_chains=10, ais_num_betas=30, sample_steps=5
            ).double(),
            _binary_data(22),
            {"num_steps": 3, "batch_size": 20},
            support="binary",
        )
    )
    # classification RBM (pyrogen/models/drbm.py): the joint p(v, y) over rows [v, one_hot(y)]
    specs.append(
        ModelSpec(
            "DiscriminativeRBM",
            lambda: m.DiscriminativeRBM(5, 3, 4, objective="hybrid", sample_steps=5).double(),
            _joint_class_data(5, 3),
            {"num_steps": 5, "batch_size": 20},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "GaussianBernoulliRBM",
            lambda: m.GaussianBernoulliRBM(4, 3, sample_steps=5).double(),
            _gaussian_data(4),
            {"num_steps": 5},
        )
    )
    # convolutional RBMs with probabilistic max pooling (pyrogen/models/conv_rbm.py, §20.6):
    # exact log-likelihood by the smaller side (images or hidden configurations), else AIS
    specs.append(
        ModelSpec(
            "ConvRBM",
            lambda: m.ConvRBM((4, 4), 2, 3, 2, num_chains=10, sample_steps=5).double(),
            _binary_data(16),
            {"num_steps": 5},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "ConvRBM-ais-sparse",
            lambda: m.ConvRBM(
                (6, 6), 3, 3, 2, num_chains=10, sparsity_cost=0.1, ais_num_chains=10,
                ais_num_betas=100, sample_steps=5,
            ).double(),
            _binary_data(36),
            {"num_steps": 3, "batch_size": 20},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "GaussianConvRBM",
            lambda: m.GaussianConvRBM((4, 4), 2, 3, 2, num_chains=10, sample_steps=5).double(),
            _gaussian_data(16),
            {"num_steps": 5},
        )
    )
    # models of conditional covariance (pyrogen/models/covariance_rbm.py, book §20.5.2): exact
    # log-likelihood by hidden-state enumeration (mcRBM, ssRBM) or an AIS estimate
    specs.append(
        ModelSpec(
            "MeanCovarianceRBM",
            lambda: m.MeanCovarianceRBM(4, 2, 2, num_chains=10, sample_steps=5).double(),
            _gaussian_data(4),
            {"num_steps": 5},
        )
    )
    specs.append(
        ModelSpec(
            "MeanCovarianceRBM-ais",
            lambda: m.MeanCovarianceRBM(4, 2, 2, num_chains=10, exact_max_units=2,
                                        ais_num_chains=8, ais_num_betas=10,
                                        sample_steps=5).double(),
            _gaussian_data(4),
            {"num_steps": 3},
        )
    )
    specs.append(
        ModelSpec(
            "MeanProductStudentT",
            lambda: m.MeanProductStudentT(4, 2, 2, num_chains=10, ais_num_chains=8,
                                          ais_num_betas=10, sample_steps=5).double(),
            _gaussian_data(4),
            {"num_steps": 5},
        )
    )
    specs.append(
        ModelSpec(
            "SpikeSlabRBM",
            lambda: m.SpikeSlabRBM(4, 3, num_chains=10, sample_steps=5).double(),
            _gaussian_data(4),
            {"num_steps": 5},
        )
    )
    # sequence RBMs (pyrogen/models/sequential_rbm.py): a 2-D x is ONE sequence whose rows are
    # frames, so the (n, n_features) contract holds with per-frame conditionals log P(v_t | v_<t)
    # (3-D batches of sequences are tested in tests/models/test_sequential_rbm.py)
    for _name, _make in (
        ("ConditionalRBM", lambda: m.ConditionalRBM(6, 4, n_delay=2, sample_steps=5).double()),
        ("ConditionalRBM-ais", lambda: m.ConditionalRBM(
            18, 17, n_delay=1, sample_steps=3, ais_num_chains=8, ais_num_betas=20).double()),
        ("RNNRBM", lambda: m.RNNRBM(6, 4, n_recurrent=3, sample_steps=5).double()),
    ):
        _nf = 18 if _name.endswith("-ais") else 6
        specs.append(
            ModelSpec(_name, _make, _binary_data(_nf, n=20), {"num_steps": 5}, support="binary")
        )
    # factored gated RBM (pyrogen/models/gated_rbm.py): rows [x, y]; log_likelihood is the
    # conditional log P(y | x), exact when small, else AIS per input
    specs.append(
        ModelSpec("GatedRBM", lambda: m.GatedRBM(4, 4, 3, 5, sample_steps=5).double(),
                  _binary_data(8), {"num_steps": 5}, support="binary")
    )
    specs.append(
        ModelSpec("GatedRBM-ais", lambda: m.GatedRBM(
            3, 17, 17, 4, sample_steps=3, ais_num_chains=8, ais_num_betas=20).double(),
            _binary_data(20), {"num_steps": 3, "batch_size": 20}, support="binary")
    )
    # deep Boltzmann machines (pyrogen/models/dbm.py): exact when small, otherwise AIS log Z on
    # the DBM path + mean-field bound of log p~(v) (kind "ais_mean_field")
    specs.append(
        ModelSpec(
            "DBM",
            lambda: m.DBM(6, [3, 2], num_chains=10).double(),
            _binary_data(6),
            {"num_steps": 5},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "DBM-ais-mean-field",
            lambda: m.DBM(
                22, [21, 21], num_chains=10, mean_field_iters=3, ais_num_chains=10,
                ais_num_betas=30, sample_steps=5,
            ).double(),
            _binary_data(22),
            {"num_steps": 3, "batch_size": 20},
            support="binary",
        )
    )
    # deep belief net (pyrogen/models/dbn.py): exact log-likelihood by enumeration when small
    specs.append(
        ModelSpec(
            "DBN",
            lambda: m.DBN([6, 3, 4], sample_steps=5).double(),
            _binary_data(6),
            {"method": "up_down", "num_steps": 5},
            support="binary",
        )
    )
    # sigmoid belief nets (pyrogen/models/sbn.py): exact log-likelihood by enumeration for
    # few hidden units, importance-sampled otherwise
    specs.append(
        ModelSpec(
            "FVSBN", lambda: m.FVSBN(6).double(), _binary_data(6), {"num_steps": 5},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "HelmholtzMachine",
            lambda: m.HelmholtzMachine([6, 3, 2]).double(),
            _binary_data(6),
            {"method": "wake_sleep", "num_steps": 5},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "SigmoidBeliefNet",
            lambda: m.SigmoidBeliefNet([6, 4]).double(),
            _binary_data(6),
            {"method": "nvil", "num_steps": 5},
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "SigmoidBeliefNet-is",
            lambda: m.SigmoidBeliefNet([8, 10, 10], num_is_particles=50).double(),
            _binary_data(8),
            {"method": "rws", "num_steps": 3, "batch_size": 20},
            support="binary",
        )
    )
    # auto-regressive (pyrogen/models/nade.py): exact log-likelihood
    specs.append(
        ModelSpec(
            "NADEModel", lambda: m.NADEModel(6, 4).double(), _binary_data(6),
            {"num_steps": 5}, support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "NADEModel-order-agnostic-ensemble",
            lambda: m.NADEModel(6, 4, order_agnostic=True, num_orderings=3).double(),
            _binary_data(6), {"num_steps": 5}, support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "DeepNADEModel",
            lambda: m.DeepNADEModel(6, hidden_dims=(8,), num_orderings=3).double(),
            _binary_data(6), {"num_steps": 5, "batch_size": 20}, support="binary",
        )
    )
    # -- variational autoencoders (pyrogen/models/vae.py) ------------------------------------
    _vae_fit = {"num_epochs": 2, "batch_size": 30}
    specs.append(
        ModelSpec(
            "VAE",
            lambda: m.VAE(12, latent_dims=2, hidden_dims=(8,)).double(),
            _binary_data(12),
            _vae_fit,
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "VAE-gaussian-2layer",
            lambda: m.VAE(6, latent_dims=(3, 2), hidden_dims=(8,), top_hidden_dims=(4,),
                          likelihood="gaussian").double(),
            _gaussian_data(6),
            _vae_fit,
        )
    )
    specs.append(
        ModelSpec(
            "VAE-conv",
            lambda: m.VAE(16, latent_dims=2, hidden_dims=(8,), architecture="conv",
                          image_shape=(4, 4), conv_channels=(2,)).double(),
            _binary_data(16),
            _vae_fit,
            support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "ConditionalVAE",
            lambda: m.ConditionalVAE(12, 3, latent_dims=2, hidden_dims=(8,)).double(),
            _binary_data(12),
            _vae_fit,
            support="binary",
        )
    )
    specs.append(
        ModelSpec(  # pyrogen/models/ssvae.py: M2 fitted without labels (y enumerated)
            "SemiSupervisedVAE",
            lambda: m.SemiSupervisedVAE(12, 3, latent_dims=2, hidden_dims=(8,)).double(),
            _binary_data(12),
            _vae_fit,
            support="binary",
        )
    )
    # -- implicit generators (pyrogen/models/gan.py): AIS log p(x) of the observation model
    _gan_fit = {"num_epochs": 2, "batch_size": 30}
    specs.append(
        ModelSpec(
            "GAN-gaussian",
            lambda: m.GAN(6, latent_dim=2, hidden_dims=(8,), observation="gaussian",
                          obs_scale=0.5, ais_num_chains=4, ais_num_betas=10,
                          ais_num_leapfrog=2).double(),
            _gaussian_data(6),
            _gan_fit,
        )
    )
    specs.append(
        ModelSpec(
            "GAN-conv-bernoulli",
            lambda: m.GAN(16, latent_dim=2, architecture="conv", image_shape=(4, 4),
                          conv_channels=(2,), output="sigmoid", observation="bernoulli",
                          loss="wgan_gp", ais_num_chains=4, ais_num_betas=10,
                          ais_num_leapfrog=2).double(),
            _binary_data(16),
            {**_gan_fit, "loss": "minimax"},
            support="binary",
        )
    )
    # -- diffusion inversion (pyrogen/models/diffusion.py): IS estimate, forward chain proposal
    specs.append(
        ModelSpec(
            "DiffusionModel",
            lambda: m.DiffusionModel(3, num_timesteps=4, hidden_dims=(8,),
                                     time_embedding_dim=4).double(),
            _gaussian_data(3),
            {"num_steps": 5},
        )
    )
    specs.append(
        ModelSpec(
            "BinomialDiffusion",
            lambda: m.BinomialDiffusion(6, num_timesteps=4, hidden_dims=(8,),
                                        time_embedding_dim=4).double(),
            _binary_data(6), {"num_steps": 5}, support="binary",
        )
    )
    # -- Markov-chain generators (pyrogen/models/gsn.py): Parzen estimate, kind
    # "parzen_unreliable" (no tractable likelihood)
    _chain = {"num_steps": 5}
    specs.append(
        ModelSpec(
            "DenoisingAutoencoder",
            lambda: m.DenoisingAutoencoder(6, hidden_dims=(8,), walkback=2, sample_steps=5,
                                           parzen_num_samples=20).double(),
            _binary_data(6), _chain, support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "DenoisingAutoencoder-gaussian",
            lambda: m.DenoisingAutoencoder(6, hidden_dims=(8,), likelihood="gaussian",
                                           noise=0.5, sample_steps=5,
                                           parzen_num_samples=20).double(),
            _gaussian_data(6), _chain,
        )
    )
    specs.append(
        ModelSpec(
            "GSN",
            lambda: m.GSN(6, n_hidden=8, walkback=2, sample_steps=5,
                          parzen_num_samples=20).double(),
            _binary_data(6), _chain, support="binary",
        )
    )
    specs.append(
        ModelSpec(
            "GSN-discriminant",
            lambda: m.GSN(6, n_hidden=8, n_classes=3, walkback=2, sample_steps=5,
                          parzen_num_samples=20).double(),
            _binary_data(6), _chain, support="binary",
        )
    )
    return specs


MODEL_SPECS: list[ModelSpec] = _specs()
