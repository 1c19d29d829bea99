r"""A Lightning module around any pyrogen model (optional extra ``pyrogen[lightning]``).

Follows Pyro's ``examples/svi_lightning.py``: the loss is the model's ELBO loss
(``Trace_ELBO().differentiable_loss(model.model, model.guide, batch, num_data=...)``) and
Lightning runs the optimizer, the devices and, under its DDP strategy, the gradient
averaging. The pyrogen model is a submodule, so its PyroModule parameters are the
``LightningModule``'s parameters; for DDP set ``pyro.settings.set(module_local_params=True)``
before building the model (as Pyro's example does), so that each process keeps its
parameters in the module rather than in Pyro's global parameter store.

One Lightning step with ``optimizer="adam"`` is one ``pyro.infer.SVI.step`` with
``pyro.optim.Adam`` on the same batch (tested with the exact-gradient RBM, which draws no
random numbers). ``fit``'s own conveniences (data validation, base-rate initialisation of an
RBM's visible biases, the convergence test, the log Z value refresh schedule) are not part of
this module: ``fit`` (also under ``torchrun``, :mod:`pyrogen.distributed`) remains the tested
route for those.

Example::

    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset
    from pyrogen.lightning import PyrogenLightningModule

    module = PyrogenLightningModule(model, lr=1e-3, num_data=len(x))
    loader = DataLoader(TensorDataset(x), batch_size=100, shuffle=True)
    pl.Trainer(max_epochs=5, accelerator="cpu").fit(module, loader)
"""

from __future__ import annotations

try:
    import lightning.pytorch as pl
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "pyrogen.lightning needs Lightning: pip install 'pyrogen[lightning]' (or "
        "pip install lightning)."
    ) from e

import pyro
import torch

from ._validation import check_choice, check_float, check_int

__all__ = ["PyrogenLightningModule"]


class PyrogenLightningModule(pl.LightningModule):
    """Train a pyrogen model's ``model``/``guide`` pair with Lightning.

    Parameters
    ----------
    model : pyrogen.models.GenerativeModel
        Any model with Pyro ``model(x, num_data=...)`` and ``guide(x, num_data=...)``
        methods (every SVI-trained pyrogen model).
    lr : float
        Step size of the optimizer.
    num_data : int, optional
        Size of the whole data set: the data plate scales each mini-batch's loss to it, as
        ``fit(batch_size=...)`` does. Default: no scaling (the batch is the data).
    loss : pyro.infer.ELBO, optional
        Default ``Trace_ELBO()``.
    optimizer : {"adam", "sgd"}
        ``torch.optim.Adam`` or ``torch.optim.SGD`` over the model's parameters.

    The logged ``loss`` is per example (the loss divided by the batch's rows).
    """

    def __init__(self, model, *, lr: float = 1e-3, num_data: int | None = None, loss=None,
                 optimizer: str = "adam"):
        super().__init__()
        if not (callable(getattr(model, "model", None)) and callable(getattr(model, "guide",
                                                                            None))):
            raise TypeError(
                "model must be a pyrogen model with model() and guide() methods. Got "
                f"{type(model).__name__} instead."
            )
        self.model = model
        self.lr = check_float(lr, "lr", 0.0, None, "oc")
        self.num_data = None if num_data is None else check_int(num_data, "num_data", low=1)
        self.loss = loss or pyro.infer.Trace_ELBO()
        self.optimizer_name = check_choice(optimizer, "optimizer", ("adam", "sgd"))

    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        loss = self.loss.differentiable_loss(self.model.model, self.model.guide, x,
                                             num_data=self.num_data)
        self.log("loss", loss.detach() / x.shape[0], prog_bar=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=self.lr)
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)
