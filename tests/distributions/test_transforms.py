"""Tests of pyrogen.distributions.transforms: MatrixTransform's Jacobian and inverse against
autograd, singular and non-square matrices refused."""

import pytest
import torch

from pyrogen.distributions.transforms import MatrixTransform, check_invertible


def test_matrix_transform_jacobian_and_inverse():
    torch.manual_seed(0)
    m = torch.randn(4, 4, dtype=torch.float64)
    t = MatrixTransform(m)
    h = torch.randn(7, 4, dtype=torch.float64)
    y = t(h)
    torch.testing.assert_close(t.inv(y), h)
    jac = torch.autograd.functional.jacobian(lambda v: t(v), h[0])
    torch.testing.assert_close(
        t.log_abs_det_jacobian(h, y), torch.linalg.slogdet(jac).logabsdet.expand(7)
    )


def test_matrix_transform_rejects_singular_and_non_square():
    with pytest.raises(ValueError, match="matrix must be invertible"):
        MatrixTransform(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="matrix must be square"):
        MatrixTransform(torch.ones(2, 3))


def test_check_invertible_names_the_argument_and_dtype_limit():
    check_invertible(torch.eye(3), "mixing")
    with pytest.raises(ValueError, match=r"mixing must be invertible.*torch.float32"):
        check_invertible(torch.tensor([[1.0, 1.0], [1.0, 1.0 + 1e-9]]), "mixing")
