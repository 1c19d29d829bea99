import numpy as np
import pytest
import torch

from pyrogen._validation import (
    check_binary,
    check_choice,
    check_data,
    check_float,
    check_int,
    check_labels,
)


def test_check_int():
    assert check_int(3, "k", 1, 5) == 3
    assert check_int(np.int64(2), "k", 1) == 2
    with pytest.raises(ValueError, match=r"k must be an int in the range \[1, 5\]. Got 7"):
        check_int(7, "k", 1, 5)
    with pytest.raises(TypeError, match="k must be an int .* Got 2.5 of type float"):
        check_int(2.5, "k")
    with pytest.raises(TypeError, match="k must be an int"):
        check_int(True, "k")


def test_check_float():
    assert check_float(0.5, "lr", 0, None, "oc") == 0.5
    assert check_float(torch.tensor(2.0), "s") == 2.0
    with pytest.raises(ValueError, match=r"lr must be a float in the range \(0, inf\]. Got 0.0"):
        check_float(0.0, "lr", 0, None, "oc")
    with pytest.raises(ValueError, match="Got nan"):
        check_float(float("nan"), "lr")
    with pytest.raises(TypeError, match="lr must be a float"):
        check_float("0.1", "lr")


def test_check_choice():
    assert check_choice("em", "method", ("em", "svi")) == "em"
    with pytest.raises(ValueError, match=r"method must be one of \('em', 'svi'\). Got 'x'"):
        check_choice("x", "method", ("em", "svi"))


def test_check_data_numpy_is_converted_to_model_dtype():
    x = check_data(np.ones((3, 2)), dtype=torch.float32, n_features=2)
    assert x.dtype == torch.float32 and x.shape == (3, 2)


def test_check_data_integer_tensor_is_converted():
    x = check_data(torch.ones(3, 2, dtype=torch.uint8), dtype=torch.float64)
    assert x.dtype == torch.float64


@pytest.mark.parametrize(
    "x, kwargs, err, match",
    [
        (torch.ones(3, 2, dtype=torch.float64), {"dtype": torch.float32}, TypeError, "dtype"),
        (torch.ones(3, 2), {"n_features": 3}, ValueError, "must have 3 features"),
        (torch.ones(3), {}, ValueError, r"shape \(n, n_features\)"),
        (torch.ones(0, 2), {}, ValueError, "at least 1 row"),
        (torch.tensor([[1.0, float("inf")]]), {}, ValueError, "must be finite"),
        ([[1.0]], {}, TypeError, "torch.Tensor or numpy.ndarray"),
        (np.array([["a"]]), {}, TypeError, "numeric"),
        (torch.ones(2, 2, dtype=torch.complex64), {}, TypeError, "real-valued"),
        (torch.ones(2, 2), {"device": "meta"}, ValueError, "device"),
    ],
)
def test_check_data_errors(x, kwargs, err, match):
    with pytest.raises(err, match=match):
        check_data(x, **kwargs)


def test_check_binary():
    check_binary(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="x must be binary .* 1 non-binary value"):
        check_binary(torch.tensor([0.0, 0.5]))


def test_check_labels():
    y = torch.tensor([0, 2, 1], dtype=torch.int32)
    out = check_labels(y, 3, 3)
    assert out.dtype == torch.long and out.tolist() == [0, 2, 1]
    with pytest.raises(TypeError, match="y must be a tensor of int labels. Got list"):
        check_labels([0, 1], 2, 3)
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(3,\)"):
        check_labels(torch.tensor([0.0, 1.0, 2.0]), 3, 3)
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(2,\)"):
        check_labels(y, 2, 3)
    with pytest.raises(ValueError, match=r"labels in \[0, 1\]. Got values in \[0, 2\]"):
        check_labels(y, 3, 2)
