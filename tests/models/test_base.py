"""The model protocol's shared machinery (``pyrogen/models/base.py``): the one training loop,
seeded construction and ``load``'s errors."""

import math
import os
import warnings

import pytest
import torch

from pyrogen import ConvergenceWarning
from pyrogen.models import FactorAnalysis, GenerativeModel, load
from pyrogen.models.base import FitHistory


class _Toy(GenerativeModel):
    """Not registered: a stand-in to drive ``_train`` directly."""

    def __init__(self, seed=0):
        super().__init__(n_features=1, seed=seed)
        self.w = torch.nn.Parameter(torch.randn(3))


def _train(step, **kwargs):
    hist = FitHistory(method="toy")
    kwargs.setdefault("progress", False)
    return _Toy()._train(step, hist, **kwargs)


# ---------------------------------------------------------------------------- minibatches
def test_minibatches_are_a_permutation_per_epoch():
    seen = []
    torch.manual_seed(0)
    _train(lambda i, idx: seen.append(idx.clone()) or 1.0, n=10, batch_size=3, num_epochs=4,
           tol=None)
    assert [len(b) for b in seen] == [3, 3, 3, 1] * 4  # the last batch of an epoch is smaller
    for e in range(4):
        rows = torch.cat(seen[4 * e : 4 * e + 4])
        assert sorted(rows.tolist()) == list(range(10)), "every row exactly once per epoch"
    assert not torch.equal(torch.cat(seen[:4]), torch.cat(seen[4:8])), "fresh permutation"


def test_num_steps_runs_across_epochs_and_full_batch_passes_none():
    idxs = []
    hist = _train(lambda i, idx: idxs.append(idx) or 1.0, n=10, batch_size=4, num_steps=7,
                  tol=None)
    assert len(hist.losses) == 7 and hist.info["num_steps_run"] == 7
    assert hist.info["num_epochs_run"] == 2 and hist.converged is None
    idxs = []
    _train(lambda i, idx: idxs.append(idx) or 1.0, n=10, num_steps=3, tol=None)
    assert idxs == [None, None, None]


def test_fit_seed_reproduces_the_batches():
    def order(seed):
        torch.manual_seed(seed)
        seen = []
        _train(lambda i, idx: seen.append(idx) or 1.0, n=20, batch_size=5, num_steps=8,
               tol=None)
        return torch.cat(seen)

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))


# ---------------------------------------------------------------------------- NaN stop
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_naming_step_and_lr(bad):
    with pytest.raises(FloatingPointError, match=r"at step 4 \(epoch 2\).*lr \(got 0.5\)"):
        _train(lambda i, idx: bad if i == 4 else 1.0, n=4, batch_size=2, num_steps=10, lr=0.5)


# ---------------------------------------------------------------------------- convergence
def test_flat_loss_converges_and_stops_early():
    hist = _train(lambda i, idx: 2.0, n=1, num_steps=10_000, window=10, patience=2)
    assert hist.converged is True
    assert len(hist.losses) == 30  # three windows: the first sets the best, two do not improve
    assert hist.metrics["window_mean_loss"] == [2.0, 2.0, 2.0]


def test_decaying_loss_converges_once_improvement_is_below_tol():
    # loss 1 + 100 exp(-i/50): improves by less than 1e-4 relative per 50-step window
    # once 100 exp(-i/50) (1 - e^-1) < 1e-4, i.e. after about 680 steps
    hist = _train(lambda i, idx: 1 + 100 * math.exp(-i / 50), n=1, num_steps=5000, window=50)
    assert hist.converged is True
    assert 600 <= len(hist.losses) <= 900


def test_too_short_fit_warns_and_records_not_converged():
    with pytest.warns(ConvergenceWarning, match="too few to judge"):
        hist = _train(lambda i, idx: 1.0 / (i + 1), n=1, num_steps=20, window=10)
    assert hist.converged is False


def test_still_improving_fit_warns_with_the_window_means():
    with pytest.warns(ConvergenceWarning, match="still improved"):
        hist = _train(lambda i, idx: -float(i), n=1, num_steps=100, window=10)
    assert hist.converged is False and len(hist.losses) == 100
    assert len(hist.metrics["window_mean_loss"]) == 10


def test_tol_none_runs_every_step_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hist = _train(lambda i, idx: -float(i), n=1, num_steps=100, tol=None)
    assert hist.converged is None and len(hist.losses) == 100


def test_window_counts_whole_epochs():
    hist = _train(lambda i, idx: 3.0, n=70, batch_size=20, num_epochs=100, window=10)
    # 4 steps per epoch: windows of 3 epochs (12 steps); converged after 3 windows
    assert hist.info["window"] == 12 and len(hist.losses) == 36 and hist.converged


def test_max_seconds_stops_and_warns():
    import time

    def slow(i, idx):
        time.sleep(0.01)
        return 1.0 / (i + 1)

    with pytest.warns(ConvergenceWarning, match="max_seconds"):
        hist = _train(slow, n=10, batch_size=5, num_epochs=1000, max_seconds=0.05)
    assert hist.converged is False and len(hist.losses) < 100


def test_bad_tol():
    with pytest.raises(ValueError, match="tol must be"):
        _train(lambda i, idx: 1.0, n=1, num_steps=3, tol=-1.0)


def test_fa_default_svi_does_not_stop_silently():
    """Bug 8 (quick version): an FA SVI fit that is clearly too short for its problem warns."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g, dtype=torch.float64) @ torch.randn(
        8, 8, generator=g, dtype=torch.float64
    )
    with pytest.warns(ConvergenceWarning, match="FactorAnalysis"):
        hist = FactorAnalysis(8, 2).double().fit(x, method="svi", num_steps=150, progress=False)
    assert hist.converged is False


# ---------------------------------------------------------------------------- seeds
def test_constructor_seed_fixes_init_and_leaves_global_state():
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a, b = _Toy(seed=1), _Toy(seed=1)
    assert torch.equal(a.w, b.w) and not torch.equal(a.w, _Toy(seed=2).w)
    assert torch.equal(torch.get_rng_state(), state)


def test_constructor_seed_none_uses_the_global_state():
    torch.manual_seed(5)
    a = _Toy(seed=None)
    torch.manual_seed(5)
    assert torch.equal(a.w, _Toy(seed=None).w)
    assert not torch.equal(a.w, _Toy(seed=None).w)


def test_bad_constructor_seed():
    with pytest.raises(ValueError, match="seed must be"):
        FactorAnalysis(4, 2, seed=-1)
    with pytest.raises(TypeError, match="seed must be"):
        FactorAnalysis(4, 2, seed=1.5)


# ---------------------------------------------------------------------------- load errors
def _saved(tmp_path):
    path = tmp_path / "fa.pt"
    FactorAnalysis(4, 2).save(path)
    return path


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.pt.*not a pyrogen model file.*not a torch"):
        load(path)


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match=r"notes\.txt.*not a pyrogen model file.*not a torch"):
        load(path)


def test_load_torch_file_with_plain_dict(tmp_path):
    path = tmp_path / "dict.pt"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"dict\.pt.*torch file but not a pyrogen model.*'a'"):
        load(path)


def test_load_torch_file_with_a_tensor(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(ValueError, match=r"t\.pt.*not a pyrogen model file: it holds a Tensor"):
        load(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_load_truncated_pyrogen_file(tmp_path, keep):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"fa\.pt.*not a pyrogen model file"):
        load(path)


def test_load_directory_and_missing(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        load(os.path.join(tmp_path, "missing.pt"))


def test_load_round_trip_still_works(tmp_path):
    path = _saved(tmp_path)
    assert isinstance(load(path), FactorAnalysis)
