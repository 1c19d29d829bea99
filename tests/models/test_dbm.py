"""DBM model (pyrogen/models/dbm.py): Algorithm 20.1 as SVI vs a hand-written Algorithm 20.1,
labelled log-likelihoods against exact values, pretraining, sampling."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyrogen.distributions import enumerate_binary_states
from pyrogen.evaluation import KINDS
from pyrogen.models import DBM

DT = torch.float64


def _data(n=40, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(d, generator=g, dtype=DT) * 0.8 + 0.1
    return torch.bernoulli(p.expand(n, d), generator=g)


def _bern(p):
    """The draw pyrogen._random.bernoulli makes with the global RNG: U < p."""
    return (torch.empty_like(p).uniform_() < p).to(p.dtype)


def _algorithm_20_1(W, b, V, steps, eps, k, num_chains, mf_iters):
    """Algorithm 20.1 of the book (two hidden layers), written out by hand, with biases.

    Mean field: bottom-up init with doubled W1, then H1 <- s(b1 + V W1 + H2 W2^T),
    H2 <- s(b2 + H1 W2). Gibbs block 1: V~ | H1~, H2~ | H1~ ; block 2: H1~ | V~, H2~.
    Chains initialised from Bernoulli(s(b_l)); the update is eps * (positive - negative)."""
    s = torch.sigmoid
    W1, W2 = W[0].clone(), W[1].clone()
    b0, b1, b2 = (t.clone() for t in b)
    Vt = _bern(s(b0).expand(num_chains, -1).contiguous())
    H1t = _bern(s(b1).expand(num_chains, -1).contiguous())
    H2t = _bern(s(b2).expand(num_chains, -1).contiguous())
    m = V.shape[0]
    for _ in range(steps):
        H1 = s(b1 + 2 * V @ W1)
        H2 = s(b2 + H1 @ W2)
        for _ in range(mf_iters):
            H1 = s(b1 + V @ W1 + H2 @ W2.T)
            H2 = s(b2 + H1 @ W2)
        for _ in range(k):
            Vt = _bern(s(b0 + H1t @ W1.T))
            H2t = _bern(s(b2 + H1t @ W2))
            H1t = _bern(s(b1 + Vt @ W1 + H2t @ W2.T))
        dW1 = V.T @ H1 / m - Vt.T @ H1t / num_chains
        dW2 = H1.T @ H2 / m - H1t.T @ H2t / num_chains
        db0 = V.mean(0) - Vt.mean(0)
        db1 = H1.mean(0) - H1t.mean(0)
        db2 = H2.mean(0) - H2t.mean(0)
        W1, W2 = W1 + eps * dW1, W2 + eps * dW2
        b0, b1, b2 = b0 + eps * db0, b1 + eps * db1, b2 + eps * db2
    return [W1, W2], [b0, b1, b2]


def test_algorithm_20_1_as_svi_equals_hand_written():
    """SVI(model, mean-field guide, SGD(lr = eps / m), Trace_ELBO) gives the same parameters as
    Algorithm 20.1 with step eps, step for step, with the same random numbers."""
    x = _data(12, 6)
    model = DBM(6, [4, 3], k=2, num_chains=5, mean_field_iters=3, init_scale=0.5, seed=1).double()
    with torch.no_grad():
        for i, bias in enumerate(model.biases):
            bias.copy_(0.3 * torch.randn(bias.shape[0], generator=torch.Generator().manual_seed(i)))
    W0 = [w.detach().clone() for w in model.weights]
    b0 = [t.detach().clone() for t in model.biases]
    eps, steps = 0.1, 4
    pyro.clear_param_store()
    torch.manual_seed(123)
    svi = pyro.infer.SVI(
        model.model, model.guide, pyro.optim.SGD({"lr": eps / x.shape[0]}), pyro.infer.Trace_ELBO()
    )
    for _ in range(steps):
        svi.step(x)
    torch.manual_seed(123)
    W_ref, b_ref = _algorithm_20_1(W0, b0, x, steps, eps, k=2, num_chains=5, mf_iters=3)
    for got, want in zip([*model.weights, *model.biases], [*W_ref, *b_ref]):
        torch.testing.assert_close(got.detach(), want, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(model.weights[0].detach(), W0[0])


def test_sampled_guide_runs_under_svi():
    x = _data(10, 6)
    model = DBM(6, [3, 2], guide="sampled", num_chains=4, seed=0).double()
    svi = pyro.infer.SVI(model.model, model.guide, pyro.optim.Adam({"lr": 1e-2}),
                         pyro.infer.Trace_ELBO())
    assert torch.isfinite(torch.tensor(svi.step(x)))


def test_log_likelihood_exact_and_labelled_bounds():
    x = enumerate_binary_states(6, dtype=DT)
    model = DBM(6, [3, 2], init_scale=0.8, seed=2).double()
    ll = model.log_likelihood(x)
    assert ll.kind == "exact"
    torch.testing.assert_close(torch.logsumexp(ll.values, 0), torch.zeros((), dtype=DT))
    # mean-field marginal with an exact log Z: a lower bound, on its side for every v
    lower = DBM(6, [3, 2], init_scale=0.8, seed=2, exact_max_units=1).double()
    lower.load_state_dict(model.state_dict())
    assert lower.log_likelihood_kind == "ais_mean_field"
    d = model.distribution()
    d.marginal = "mean_field"
    mf = (d.unnormalized_log_prob(x) - d.enumerate_log_z()).detach()
    assert (mf <= ll.values + 1e-10).all()
    # the Salakhutdinov & Hinton estimate: mean-field bound minus AIS log Z (labelled neither)
    est = lower.log_likelihood(x, num_chains=100, num_betas=500, seed=0)
    assert est.kind == "ais_mean_field" and est.bound is None and KINDS[est.kind][1] is None
    assert est.shared_stderr is not None
    assert abs(float((est.values - mf).mean())) < 4 * est.shared_stderr + 0.05


def test_pretraining_runs_layer_by_layer_then_vsml():
    x = _data(30, 6)
    model = DBM(6, [4, 3, 2], seed=0).double()
    before = [w.detach().clone() for w in model.weights]
    hist = model.fit(x, method="pretrain", num_steps=5, lr=0.05, progress=False, tol=None)
    assert hist.method == "pretrain" and len(hist.info["pretrain"]) == 3
    for w, w0 in zip(model.weights, before):  # the RBMs were trained and composed
        assert not torch.allclose(w.detach(), w0)
    assert all(torch.isfinite(torch.tensor(hist.info["pretrain"])))
    assert torch.isfinite(model.log_likelihood(x).values).all()
    hist = model.fit(x, method="pretrain+vsml", num_steps=3, progress=False, tol=None)
    assert hist.method == "vsml" and "pretrain" in hist.info


def test_transform_is_top_layer_mean_field_and_sample_is_binary():
    x = _data(9, 6)
    model = DBM(6, [4, 3], seed=0).double()
    z = model.transform(x)
    assert z.shape == (9, 3) and ((z > 0) & (z < 1)).all()
    torch.testing.assert_close(z, model.distribution().mean_field(x)[-1])
    s = model.sample(5)
    assert s.shape == (5, 6) and ((s == 0) | (s == 1)).all()


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_sizes must hold at least two"):
        DBM(6, [4])
    with pytest.raises(TypeError, match="hidden_sizes must be a sequence"):
        DBM(6, 4)
    with pytest.raises(ValueError, match="guide must be one of"):
        DBM(6, [3, 2], guide="nope")
    with pytest.raises(ValueError, match="x must be binary|binary"):
        DBM(6, [3, 2]).double().fit(torch.full((4, 6), 0.5, dtype=DT), progress=False)


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.parametrize("seed", [0, 1])
def test_ais_log_z_of_mnist_dbms_within_0_1_nats_with_defaults(mnist_path, seed):
    """Issue 15: DBMs with 784 visible units trained on binarized MNIST whose first hidden layer
    is small enough to enumerate: AIS log Z on the DBM path with the default settings (AIS()'s
    chains and temperatures, base rates of the training data) within 0.1 nats of the exact
    value. float32, as a user runs it."""
    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.normalizers import AIS

    x = load_binarized_mnist(mnist_path, "train", limit=2000).x.float()
    model = DBM(784, [12, 16], num_chains=100, seed=seed)
    model.fit(x, method="pretrain", num_steps=200, lr=1e-2, batch_size=100, seed=seed,
              tol=None, progress=False)
    model.fit(x, method="vsml", num_steps=200, lr=2e-3, batch_size=100, seed=seed, tol=None,
              progress=False)
    d = model.distribution()
    with torch.no_grad():
        exact = float(d.enumerate_log_z())
        est = AIS(base=model.base_rate_logits, seed=seed)(d)
    got, se = float(est.log_z.detach()), float(est.stderr)
    print(f"seed {seed}: AIS log Z {got:.4f} +- {se:.4f}, exact {exact:.4f}")
    assert abs(got - exact) < 0.1, (got, se, exact)
