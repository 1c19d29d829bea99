r"""One torch optimizer over a model's parameters, behind :class:`pyro.optim.PyroOptim`'s interface.

Pyro's stock wrappers (``pyro.optim.Adam`` and friends) build one torch optimizer *per parameter
tensor* and call each of them on every step. That is the right default for parameters that
appear lazily, and costs nothing for big tensors; for the small networks of a GAN on 2-D data
or the three tensors of an RBM, the per-call overhead (hooks, profiler records, single-tensor
kernels) is a large share of a step. :class:`JointOptim` holds ONE optimizer, built by the
caller over a fixed parameter set (with parameter groups if wanted), and steps it with torch's
multi-tensor (``foreach``) kernels. Adam and SGD are elementwise, so the updates equal those of
``pyro.optim.Adam`` / ``pyro.optim.SGD`` with the same settings (the RBM tests check one
``fit`` step against one ``SVI.step`` with Pyro's optimizers, parameter for parameter).

It is used by :class:`~pyrogen.models.BernoulliRBM`'s and :class:`~pyrogen.models.GAN`'s
``fit``; any ``SVI``-style trainer accepts it where it accepts a ``pyro.optim`` optimizer.
"""

from __future__ import annotations

import pyro.optim
import torch

__all__ = ["JointOptim"]


class JointOptim(pyro.optim.PyroOptim):
    """A :class:`pyro.optim.PyroOptim` holding one ``torch.optim.Optimizer`` over fixed parameters.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Built over the parameters this object may update (e.g.
        ``torch.optim.Adam(module.parameters(), lr=1e-3, foreach=True)``).

    Notes
    -----
    ``optim(params)`` steps the optimizer once (every parameter of it that has a gradient) and
    then releases the gradients (``grad = None``) instead of zero-filling them as Pyro does, so the
    next backward pass writes fresh gradients rather than adding into zeros. A parameter in
    ``params`` that the optimizer does not hold is a ``ValueError`` (it would silently not be
    trained). ``torch.optim.SGD`` is stepped through torch's functional ``sgd`` on the optimizer's
    own groups and momentum buffers: the same update as ``SGD.step`` without its per-call hooks.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                "optimizer must be a torch.optim.Optimizer built over the parameters to train. "
                f"Got {type(optimizer).__name__} instead."
            )
        super().__init__(type(optimizer), {})
        self.optimizer = optimizer
        self._all = [p for g in optimizer.param_groups for p in g["params"]]
        self._ids = {id(p) for p in self._all}
        self._sgd = type(optimizer) is torch.optim.SGD

    def __call__(self, params, *args, **kwargs) -> None:
        for p in params:
            if id(p) not in self._ids:
                raise ValueError(
                    "JointOptim got a parameter its optimizer does not hold (shape "
                    f"{tuple(p.shape)}); build the optimizer over every parameter to train."
                )
        if self._sgd:
            self._sgd_step()
        else:
            self.optimizer.step()
        for p in self._all:
            p.grad = None

    @torch.no_grad()
    def _sgd_step(self) -> None:
        from torch.optim.sgd import sgd

        state = self.optimizer.state
        for group in self.optimizer.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            bufs = [state[p].get("momentum_buffer") for p in ps]
            sgd(
                ps,
                [p.grad for p in ps],
                bufs,
                foreach=True,
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                lr=group["lr"],
                dampening=0.0,
                nesterov=False,
                maximize=False,
            )
            if group["momentum"]:
                for p, b in zip(ps, bufs, strict=True):
                    state[p]["momentum_buffer"] = b
