"""JointOptim: one torch optimizer behind pyro.optim's interface, the same updates."""

import pyro
import pyro.optim
import pytest
import torch
from torch import nn

from pyrogen.infer import JointOptim


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def _loss(net, x):
    return (net(x) ** 2).mean()


def _run(net, optim, steps=5):
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    params = list(net.parameters())
    for _ in range(steps):
        _loss(net, x).backward()
        optim(params)
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("kind", ["adam", "sgd_momentum"])
def test_same_updates_as_pyro_optim(kind):
    pyro.clear_param_store()
    if kind == "adam":
        ref = pyro.optim.Adam({"lr": 0.05, "betas": (0.5, 0.9)})
        make = lambda ps: torch.optim.Adam(ps, lr=0.05, betas=(0.5, 0.9), foreach=True)  # noqa: E731
    else:
        ref = pyro.optim.SGD({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01})
        make = lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)  # noqa: E731
    a = _run(_net(0), ref)
    net = _net(0)
    b = _run(net, JointOptim(make(net.parameters())))
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-12, atol=1e-12)


def test_releases_gradients_and_refuses_foreign_parameters():
    net = _net(0)
    opt = JointOptim(torch.optim.Adam(net.parameters(), lr=0.1))
    _loss(net, torch.ones(2, 3, dtype=torch.float64)).backward()
    opt(list(net.parameters()))
    assert all(p.grad is None for p in net.parameters())
    stranger = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="does not hold"):
        opt([stranger])
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        JointOptim(pyro.optim.Adam({"lr": 0.1}))
