"""pyrogen.lightning (optional extra ``pyrogen[lightning]``): one Lightning step is one Pyro
``SVI.step`` with ``pyro.optim.Adam``. Skipped where Lightning is not installed."""

import warnings

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")


def test_one_lightning_step_is_one_svi_step():
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from torch.utils.data import DataLoader, TensorDataset

    from pyrogen.lightning import PyrogenLightningModule
    from pyrogen.models import BernoulliRBM

    x = (torch.rand(30, 12, generator=torch.Generator().manual_seed(0)) < 0.4).float()
    a = BernoulliRBM(12, 5, training="exact", seed=0)  # exact gradient: no random numbers
    b = BernoulliRBM(12, 5, training="exact", seed=0)
    for m in (a, b):
        m._init_from_data(x)
    pyro.clear_param_store()
    module = PyrogenLightningModule(a, lr=0.05, num_data=30)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice (workers, logging)
        trainer.fit(module, DataLoader(TensorDataset(x), batch_size=30))
    SVI(b.model, b.guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO()).step(x, num_data=30)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6, msg=name)
    assert not torch.equal(a.weight, BernoulliRBM(12, 5, seed=0).weight)
    with pytest.raises(TypeError, match="model must be a pyrogen model"):
        PyrogenLightningModule(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="optimizer must be"):
        PyrogenLightningModule(a, optimizer="lbfgs")
