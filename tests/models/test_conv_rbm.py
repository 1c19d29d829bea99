"""ConvRBM, GaussianConvRBM and ConvDBN: the model protocol around the convolutional RBM
distributions (the distributions themselves: tests/distributions/test_conv_rbm.py)."""

import warnings

import pyro
import pytest
import torch

from pyrogen.distributions import ConvolutionalRBM, enumerate_binary_states
from pyrogen.exceptions import ConvergenceWarning
from pyrogen.infer.layerwise import LayerwiseResult
from pyrogen.models import ConvDBN, ConvRBM, GaussianConvRBM
from pyrogen.models.conv_rbm import _ProbabilityConvRBM

D = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _bars(n=120, seed=0):
    """4x4 binary images: one random horizontal or vertical bar plus 5% noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 4, 4, dtype=D)
    for i in range(n):
        k = int(torch.randint(0, 4, (), generator=g))
        if torch.rand((), generator=g) < 0.5:
            x[i, k, :] = 1
        else:
            x[i, :, k] = 1
    flip = torch.rand(n, 4, 4, generator=g, dtype=D) < 0.05
    return torch.where(flip, 1 - x, x).reshape(n, 16)


def test_exact_log_likelihood_is_the_distribution_log_prob():
    m = ConvRBM((3, 3), 2, 2, 2, init_scale=0.5).double()
    x = enumerate_binary_states(9, dtype=D)
    ll = m.log_likelihood(x)
    assert ll.kind == "exact" and m.exact
    d = ConvolutionalRBM(m.weight, m.visible_bias, m.hidden_bias, (3, 3), 2)
    torch.testing.assert_close(ll.values, d.log_prob(x).detach())
    # normalized: over all 2^9 images the probabilities sum to 1
    torch.testing.assert_close(torch.logsumexp(ll.values, 0), torch.tensor(0.0, dtype=D))


def test_exact_gradient_fit_raises_the_likelihood():
    x = _bars()
    m = ConvRBM((4, 4), 2, 3, 2, training="exact", seed=1).double()
    before = float(m.log_likelihood(x).mean())
    hist = m.fit(x, num_steps=60, lr=0.05, tol=None, seed=0, progress=False)
    after = float(m.log_likelihood(x).mean())
    assert hist.info["learning_rule"] == "exact gradient"
    assert after > before + 1.0


@pytest.mark.parametrize("method", ["pcd", "cd"])
def test_pcd_and_cd_through_svi(method):
    x = _bars()
    m = ConvRBM((4, 4), 2, 3, 2, seed=1).double()
    before = float(m.log_likelihood(x).mean())
    m.fit(x, method=method, num_steps=60, lr=0.05, batch_size=40, tol=None, seed=0,
          progress=False)
    assert float(m.log_likelihood(x).mean()) > before + 1.0
    assert m.normalizer(method).calls > 0


def test_sparsity_penalty_is_a_factor_in_the_model():
    x = _bars(10)
    m = ConvRBM((4, 4), 2, 3, 2, sparsity_cost=2.0, sparsity_target=0.1).double()
    tr = pyro.poutine.trace(m.model).get_trace(x)
    assert "sparsity" in tr.nodes
    q = m.distribution(None).detection_probs(x).reshape(10, 2, -1).mean((0, 2))
    expected = -10 * 2.0 * ((0.1 - q) ** 2).sum()
    torch.testing.assert_close(tr.nodes["sparsity"]["fn"].log_factor, expected.detach())
    off = ConvRBM((4, 4), 2, 3, 2).double()
    assert "sparsity" not in pyro.poutine.trace(off.model).get_trace(x).nodes


def test_ais_log_likelihood_is_labelled_with_its_standard_error():
    x = torch.bernoulli(torch.full((30, 36), 0.3, dtype=D),
                        generator=torch.Generator().manual_seed(0))
    m = ConvRBM((6, 6), 3, 3, 2, ais_num_chains=20, ais_num_betas=100).double()
    assert not m.exact
    ll = m.log_likelihood(x, seed=0)
    assert ll.kind == "ais_estimate" and ll.shared_stderr > 0
    assert {"log_z", "log_z_stderr", "ess"} <= set(ll.info)


def test_transform_and_sample_shapes():
    m = ConvRBM((2, 6, 6), 3, 3, 2).double()  # two channels
    assert m.n_features == 72 and m.pooled_shape == (3, 2, 2) and m.n_pooled == 12
    x = torch.bernoulli(torch.full((5, 72), 0.5, dtype=D))
    z = m.transform(x)
    assert z.shape == (5, 12) and bool(((z >= 0) & (z <= 1)).all())
    s = m.sample(4, num_steps=3)
    assert s.shape == (4, 72) and bool(((s == 0) | (s == 1)).all())
    assert m.filters().shape == (6, 3, 3)


def test_gaussian_conv_rbm_exact_density_and_fit():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 16, generator=g, dtype=D)
    m = GaussianConvRBM((4, 4), 2, 3, 2, init_scale=0.1).double()
    assert m.exact
    before = float(m.log_likelihood(x).mean())
    m.fit(x, method="exact", num_steps=40, lr=0.05, tol=None, seed=0, progress=False)
    assert float(m.log_likelihood(x).mean()) > before
    torch.testing.assert_close(m.visible_bias.detach().shape, torch.Size([1]))


def test_bad_input():
    with pytest.raises(ValueError, match="pool_size must divide"):
        ConvRBM((5, 5), 2, 3, 2)  # 3 x 3 detection units, 2 x 2 blocks
    with pytest.raises(ValueError, match="image_shape must be"):
        ConvRBM((4,), 2, 3, 2)
    with pytest.raises(ValueError, match="n_filters must be"):
        ConvRBM((4, 4), 0, 3, 2)
    with pytest.raises(ValueError, match="sparsity_target must be"):
        ConvRBM((4, 4), 2, 3, 2, sparsity_target=1.5)
    m = ConvRBM((4, 4), 2, 3, 2).double()
    with pytest.raises(ValueError, match="binary"):
        m.log_likelihood(torch.full((3, 16), 0.5, dtype=D))
    with pytest.raises(ValueError, match="binary"):
        m.fit(torch.full((3, 16), 0.5, dtype=D), progress=False)
    with pytest.raises(ValueError, match="16 features"):
        m.transform(torch.zeros(3, 1, 4, 4, dtype=D).reshape(3, 1, 16)[:, 0, :15])


def test_save_load_roundtrip(tmp_path):
    m = GaussianConvRBM((1, 4, 4), 2, 3, 2, sigma=0.5).double()
    m.save(tmp_path / "m.pt")
    from pyrogen.models import load

    back = load(tmp_path / "m.pt")
    assert isinstance(back, GaussianConvRBM) and back.config == m.config
    torch.testing.assert_close(back.sigma, m.sigma)


# ------------------------------------------------------------------------ ConvDBN
def test_conv_dbn_stacks_two_layers_through_greedy_layerwise():
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((40, 64), 0.3, dtype=D), generator=g)
    dbn = ConvDBN((8, 8), [dict(n_filters=3, filter_size=3, pool_size=2, num_chains=10),
                           dict(n_filters=2, filter_size=2, pool_size=2, num_chains=10,
                                sample_steps=5)]).double()
    first, second = dbn.layers
    assert second.image_shape == first.pooled_shape == (3, 3, 3)
    assert isinstance(second, _ProbabilityConvRBM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = dbn.fit(x, fit_kwargs={"num_steps": 5, "batch_size": 20}, progress=False)
    assert isinstance(res, LayerwiseResult) and len(res.layers) == 2
    torch.testing.assert_close(res.inputs[1], first.transform(x))
    assert dbn.transform(x).shape == (40, second.n_pooled)
    assert dbn.transform(x, layer=1).shape == (40, first.n_pooled)
    s = dbn.sample(3, num_steps=2, clamped_steps=2)
    assert s.shape == (3, 64) and bool(((s >= 0) & (s <= 1)).all())


def test_conv_dbn_bad_layers():
    with pytest.raises(ValueError, match="layers must be a list of two dicts"):
        ConvDBN((8, 8), [dict(n_filters=3)])
    with pytest.raises(ValueError, match="pool_size must divide"):
        # layer 2 over the 3 x 3 pooling maps with 2 x 2 filters: 2 x 2 detection, pool 3
        ConvDBN((8, 8), [dict(n_filters=3, filter_size=3, pool_size=2),
                         dict(n_filters=2, filter_size=2, pool_size=3)])


def test_pixel_bias_starts_at_the_base_rates_and_fits():
    x = _bars()
    m = ConvRBM((4, 4), 2, 3, 2, pixel_bias=True, training="exact", seed=1).double()
    assert m.visible_bias.shape == (1, 4, 4)
    m.fit(x, num_steps=1, lr=1e-9, tol=None, seed=0, progress=False)
    torch.testing.assert_close(m.visible_bias.detach().reshape(16), m.base_rate_logits,
                               atol=1e-6, rtol=0)
    g = GaussianConvRBM((4, 4), 2, 3, 2, pixel_bias=True).double()
    xg = torch.randn(30, 16, generator=torch.Generator().manual_seed(0), dtype=D)
    g.fit(xg, method="exact", num_steps=1, lr=1e-9, tol=None, seed=0, progress=False)
    torch.testing.assert_close(g.visible_bias.detach().reshape(16), xg.mean(0), atol=1e-6,
                               rtol=0)
    with pytest.raises(TypeError, match="pixel_bias must be a bool"):
        ConvRBM((4, 4), 2, 3, 2, pixel_bias=1)
