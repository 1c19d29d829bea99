"""Shared data for the ICA tests (tests/models/test_ica.py, test_noisy_ica.py): independent
non-Gaussian sources mixed by a random matrix, and scikit-learn's FastICA on them."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import FastICA

from pyrogen.models.ica import amari_distance


@pytest.fixture(autouse=True)
def one_thread():
    """These are small problems: a second intra-op thread only adds synchronisation (and, on a
    busy shared machine, long waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mixture(seed, n=1000, kinds=("laplace", "uniform", "student_t", "binary"), d=None):
    """Unit-variance independent sources of the given kinds, mixed by a random square matrix."""
    g = np.random.default_rng(seed)
    cols = []
    for k in kinds:
        if k == "laplace":
            c = g.laplace(size=n)
        elif k == "uniform":
            c = g.uniform(-1, 1, size=n)
        elif k == "student_t":
            c = g.standard_t(5, size=n)
        elif k == "binary":
            c = np.sign(g.standard_normal(n))
        elif k == "gaussian":
            c = g.standard_normal(n)
        else:
            raise AssertionError(k)
        cols.append((c - c.mean()) / c.std())
    s = np.stack(cols, 1)
    a = g.normal(size=(d or len(kinds), len(kinds)))
    return torch.tensor(s @ a.T), a


def fastica_amari(x, a, seed):
    f = FastICA(
        a.shape[1], whiten="unit-variance", random_state=seed, max_iter=2000, tol=1e-6
    ).fit(x.numpy())
    return amari_distance(f.components_, a)
