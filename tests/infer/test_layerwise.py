"""Greedy layer-wise pretraining and the MLP built from a stack (pyrogen/infer/layerwise.py)."""

import pytest
import torch

from pyrogen.infer.layerwise import (
    classification_error,
    greedy_layerwise,
    layer_affine,
    mlp_from_stack,
    random_mlp,
    train_classifier,
)
from pyrogen.models import BernoulliRBM, GaussianBernoulliRBM

D = torch.float64


class _Squash:
    """A fake layer: fit records its input; transform = sigmoid(x @ A)."""

    def __init__(self, n_in, n_out, seed):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(n_in, n_out, generator=g, dtype=D)
        self.seen = None

    def fit(self, x, **kw):
        self.seen, self.kw = x, kw
        return None

    def transform(self, x):
        return torch.sigmoid(x @ self.a)


def _x(n=30, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, d), 0.4, dtype=D), generator=g)


@pytest.mark.parametrize("propagate", ["probabilities", "samples"])
def test_each_layer_is_fitted_on_the_representation_below(propagate):
    x = _x()
    layers = [_Squash(5, 4, 0), lambda n_in: _Squash(n_in, 3, 1)]
    seen = []
    res = greedy_layerwise(x, layers, propagate=propagate, progress=False, seed=7,
                           callback=lambda l, layer, h: seen.append(l))
    assert seen == [0, 1] and len(res.layers) == 2 and res.propagate == propagate
    assert res.layers[0].seen is x and res.layers[0].kw == {"seed": 7, "progress": False}
    assert res.layers[1].kw["seed"] == 8
    h = res.layers[1].seen
    p = torch.sigmoid(x @ res.layers[0].a)
    if propagate == "probabilities":
        torch.testing.assert_close(h, p)
    else:
        assert ((h == 0) | (h == 1)).all() and h.shape == p.shape
        again = greedy_layerwise(x, [_Squash(5, 4, 0), _Squash(4, 3, 1)], propagate=propagate,
                                 progress=False, seed=7)
        assert torch.equal(again.layers[1].seen, h)  # seeded draws


def test_rbm_stack_gives_an_mlp_computing_the_up_pass():
    x = _x(40, 6)
    res = greedy_layerwise(
        x, [lambda n: GaussianBernoulliRBM(n, 4, training="exact").double(),
            lambda n: BernoulliRBM(n, 3, training="exact").double()],
        propagate="samples", fit_kwargs={"num_steps": 3, "tol": None}, progress=False,
    )
    net = mlp_from_stack(res.layers, 2)
    hidden = net[:-1](x)
    expect = res.layers[1].transform(res.layers[0].transform(x))
    torch.testing.assert_close(hidden, expect)
    assert (net(x) == 0).all()  # zero output layer: uniform prediction before fine-tuning
    a, c = layer_affine(res.layers[0])
    assert a.shape == (6, 4) and c.shape == (4,)


def test_classifier_fine_tuning_learns_and_random_mlp_keeps_global_rng():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g, dtype=D)
    y = (x[:, 0] + x[:, 1] > 0).long()
    state = torch.get_rng_state()
    net = random_mlp([4, 8], 2, seed=3, dtype=D)
    assert torch.equal(torch.get_rng_state(), state)
    err0 = classification_error(net, x, y)
    losses = train_classifier(net, x, y, num_epochs=60, lr=0.02, batch_size=20, seed=0)
    assert losses[-1] < losses[0] and classification_error(net, x, y) < min(err0, 0.15)


def test_bad_input():
    x = _x()
    with pytest.raises(ValueError, match="layers must be"):
        greedy_layerwise(x, [], progress=False)
    with pytest.raises(ValueError, match="propagate must be"):
        greedy_layerwise(x, [_Squash(5, 4, 0)], propagate="means", progress=False)
    with pytest.raises(TypeError, match=r"layers\[0\]"):
        greedy_layerwise(x, [3], progress=False)
    with pytest.raises(TypeError, match="fit_kwargs"):
        greedy_layerwise(x, [_Squash(5, 4, 0)], fit_kwargs=[{}, {}], progress=False)
    with pytest.raises(ValueError, match="chaining"):
        mlp_from_stack([(torch.zeros(5, 4), torch.zeros(4)), (torch.zeros(3, 2),
                                                                torch.zeros(2))], 2)
    with pytest.raises(ValueError, match="y must be"):
        train_classifier(random_mlp([5, 3], 2), x.float(), torch.zeros(30), num_epochs=1)
    with pytest.raises(ValueError, match="sizes"):
        random_mlp([5], 2)
