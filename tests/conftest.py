import os
import pathlib

import pyro
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "binarized_mnist.npz"


@pytest.fixture(autouse=True)
def _fresh_pyro():
    """Every test starts from an empty param store and a fixed seed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def mnist_path():
    """Path of the fixed binarized MNIST; skips the test cleanly when it is absent."""
    env = os.environ.get("PYROGEN_DATA")
    for cand in ([env] if env else []) + [str(SHARED_MNIST)]:
        if cand and os.path.exists(cand):
            return cand
    pytest.skip("fixed binarized MNIST not found (set PYROGEN_DATA or provide ../shared/data)")


# The suite is dominated by small tensors, where intra-op threading costs more than it gives
# (measured 10-100x slower with 2 threads on a loaded 2-core machine). One thread everywhere.
torch.set_num_threads(1)
