r"""Greedy layer-wise pretraining (book §15.1, §20.3; Hinton, Osindero & Teh 2006).

A deep stack is trained **one layer at a time**: layer 1 is fitted to the data :math:`x`, then
its representation of the data, :math:`h^{(1)} = f_1(x)`, becomes the training data of layer 2,
and so on. Each layer is any object with

* ``fit(x, **kwargs)`` (returning a history, e.g. a :class:`~pyrogen.models.FitHistory`), and
* ``transform(x)``: the layer's representation, for an RBM the hidden-unit probabilities
  :math:`P(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j})`,

or a *factory* ``make(n_inputs) -> layer`` called when the layer's input width is known. This
module does not import :mod:`pyrogen.models` (the layer order): the model-level stacks (RBMs with
a Gaussian-Bernoulli RBM at the bottom, the DBN) are built in :mod:`pyrogen.models.dbn`
(:func:`pyrogen.models.dbn.pretrain_rbm_stack`) and call :func:`greedy_layerwise`.

What the next layer is trained on (``propagate``):

* ``"probabilities"`` (default, the usual practice of Hinton et al. 2006 and Salakhutdinov &
  Murray 2008): :math:`h^{(l)} = P(h^{(l)} = 1 \mid h^{(l-1)})`, real values in :math:`[0, 1]`;
  less noisy training data for the layer above (a mean-field up-pass);
* ``"samples"``: one binary draw :math:`h^{(l)} \sim P(h^{(l)} \mid h^{(l-1)})` per example
  (fixed for the whole fit of the layer above, from a seeded generator). This is the setting of
  the variational-bound argument: the layer above is fitted by maximum likelihood to samples
  of the aggregated posterior :math:`\frac1N \sum_n q(h^{(l)} \mid x_n)`, which is exactly the
  term of the bound :math:`\mathbb E_q[\log p(h^{(l)})]` it can raise (Hinton et al. 2006).

Classification (§15.1): :func:`mlp_from_stack` turns the stack's affine maps into a sigmoid
multilayer perceptron with a fresh softmax output layer, and :func:`train_classifier` fine-tunes
it discriminatively (cross-entropy, Adam, a fixed number of epochs so that pretrained and
randomly initialised networks get exactly the same budget); :func:`random_mlp` is the same
architecture from a random initialisation (the control). ``benchmarks/bench_pretraining.py``
measures the two on digits and MNIST.

References

1. G. E. Hinton, S. Osindero, Y.-W. Teh, "A fast learning algorithm for deep belief nets",
   Neural Computation 18, 2006.
2. Y. Bengio, P. Lamblin, D. Popovici, H. Larochelle, "Greedy layer-wise training of deep
   networks", NIPS 2006.
3. D. Erhan, Y. Bengio, A. Courville, P.-A. Manzagol, P. Vincent, S. Bengio, "Why does
   unsupervised pre-training help deep learning?", JMLR 11, 2010.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from .._validation import check_choice, check_data, check_float, check_int

__all__ = [
    "LayerwiseResult",
    "greedy_layerwise",
    "layer_affine",
    "mlp_from_stack",
    "random_mlp",
    "train_classifier",
    "classification_error",
]

#: values of ``propagate`` in :func:`greedy_layerwise`
PROPAGATE = ("probabilities", "samples")


class LayerwiseResult(NamedTuple):
    """What :func:`greedy_layerwise` returns (fields below)."""

    layers: list
    histories: list
    seconds: list
    propagate: str
    inputs: list


# field docstrings on the fields themselves (an "Attributes" section would make Sphinx
# describe each field twice)
LayerwiseResult.layers.__doc__ = "The fitted layers, bottom first."
LayerwiseResult.histories.__doc__ = "What each layer's ``fit`` returned."
LayerwiseResult.seconds.__doc__ = "Wall-clock seconds of each layer's fit."
LayerwiseResult.propagate.__doc__ = '``"probabilities"`` or ``"samples"``.'
LayerwiseResult.inputs.__doc__ = (
    "The training data of each layer: ``inputs[0]`` is ``x``, ``inputs[l]`` the propagated "
    "representation layer ``l`` was fitted on (kept for diagnostics such as the bound of each "
    "added layer; drop the result to free them)."
)


def _per_layer(value, n: int, name: str) -> list:
    if value is None:
        return [{} for _ in range(n)]
    if isinstance(value, dict):
        return [dict(value) for _ in range(n)]
    if isinstance(value, (list, tuple)) and len(value) == n and all(
        isinstance(v, dict) for v in value
    ):
        return [dict(v) for v in value]
    raise TypeError(
        f"{name} must be a dict (used for every layer) or a list of {n} dicts (one per layer). "
        f"Got {value!r} instead."
    )


def greedy_layerwise(
    x: torch.Tensor,
    layers: Sequence[Any],
    *,
    propagate: str = "probabilities",
    fit_kwargs: dict | Sequence[dict] | None = None,
    seed: int | None = 0,
    progress: bool = True,
    callback: Callable[[int, Any, Any], None] | None = None,
) -> LayerwiseResult:
    r"""Fit a stack of layers greedily, bottom-up, each on the representation below it.

    .. math::

        h^{(0)} = x, \qquad \text{fit layer } l \text{ on } h^{(l-1)}, \qquad
        h^{(l)} = \begin{cases} f_l(h^{(l-1)}) & \text{probabilities} \\
        \mathrm{Bernoulli}(f_l(h^{(l-1)})) & \text{samples} \end{cases}

    Parameters
    ----------
    x : torch.Tensor, shape ``(n, d)``
        Training data of the bottom layer.
    layers : sequence
        Layer objects (``fit`` + ``transform``) or factories ``make(n_inputs) -> layer``,
        bottom first; at least one.
    propagate : {"probabilities", "samples"}
        What the next layer is trained on (module docstring).
    fit_kwargs : dict or list of dict, optional
        Keyword arguments of every layer's ``fit`` (a dict), or one dict per layer.
    seed : int or None
        Layer ``l``'s fit gets ``seed=seed + l`` unless its ``fit_kwargs`` set one; the
        Bernoulli draws of ``"samples"`` come from a generator seeded with ``seed``.
        ``None``: no seeds passed, draws from torch's global random state.
    progress : bool
        A progress bar over layers (and the layers' own bars: ``progress`` is passed to their
        ``fit`` unless ``fit_kwargs`` set it).
    callback : callable ``(l, layer, history) -> None``, optional
        Called after each layer is fitted (``l`` counts from 0).

    Returns
    -------
    LayerwiseResult

    Notes
    -----
    Cost: the sum of the layers' fits plus one ``transform`` of the training set per layer.
    """
    x = check_data(x, "x")
    if not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise ValueError(
            f"layers must be a non-empty list of layers or layer factories. Got {layers!r} "
            "instead."
        )
    check_choice(propagate, "propagate", PROPAGATE)
    kwargs = _per_layer(fit_kwargs, len(layers), "fit_kwargs")
    if seed is not None:
        seed = check_int(seed, "seed", low=0)
    gen = None
    if propagate == "samples":
        gen = torch.Generator(device=x.device)
        if seed is None:
            gen.manual_seed(int(torch.randint(0, 2**62, ()).item()))
        else:
            gen.manual_seed(seed)
    fitted, histories, seconds, inputs = [], [], [], [x]
    h = x
    bar = tqdm(total=len(layers), disable=not progress, desc="greedy layer-wise")
    try:
        for l, item in enumerate(layers):
            layer = item
            if not (hasattr(item, "fit") and hasattr(item, "transform")):
                if not callable(item):
                    raise TypeError(
                        f"layers[{l}] must have fit and transform methods or be a factory "
                        f"make(n_inputs) -> layer. Got {type(item).__name__} instead."
                    )
                layer = item(int(h.shape[1]))
                if not (hasattr(layer, "fit") and hasattr(layer, "transform")):
                    raise TypeError(
                        f"the factory layers[{l}] returned a {type(layer).__name__}, which has "
                        "no fit and transform methods."
                    )
            kw = kwargs[l]
            if seed is not None:
                kw.setdefault("seed", seed + l)
            kw.setdefault("progress", progress)
            t0 = time.perf_counter()
            hist = layer.fit(h, **kw)
            seconds.append(time.perf_counter() - t0)
            fitted.append(layer)
            histories.append(hist)
            if callback is not None:
                callback(l, layer, hist)
            bar.update(1)
            if progress and getattr(hist, "losses", None):
                bar.set_postfix(layer=l + 1, loss=f"{hist.losses[-1]:.4g}", refresh=False)
            if l + 1 < len(layers):
                with torch.no_grad():
                    h = layer.transform(h)
                    if propagate == "samples":
                        h = torch.bernoulli(h, generator=gen)
                inputs.append(h)
    finally:
        bar.close()
    return LayerwiseResult(fitted, histories, seconds, propagate, inputs)


def layer_affine(layer) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The affine map of a fitted RBM-like layer: ``(A, c)`` with hidden logits
    :math:`x A + c`, ``A`` of shape ``(n_in, n_out)``.

    For a binary RBM :math:`A = W`; for a Gaussian-Bernoulli RBM (a layer with a ``sigma``
    attribute) :math:`A = W / \sigma^2` row-wise, since :math:`P(h_j = 1 \mid v) =
    \sigma(c_j + \sum_i v_i W_{ij} / \sigma_i^2)`. Detached copies.
    """
    if not (hasattr(layer, "weight") and hasattr(layer, "hidden_bias")):
        raise TypeError(
            "layer must have weight (n_in, n_out) and hidden_bias (n_out,) attributes (an RBM "
            f"layer). Got {type(layer).__name__} instead."
        )
    w = layer.weight.detach().clone()
    sigma = getattr(layer, "sigma", None)
    if sigma is not None:
        w = w / sigma.detach().reshape(-1, 1) ** 2
    return w, layer.hidden_bias.detach().clone()


def mlp_from_stack(layers_or_affines, n_outputs: int) -> nn.Sequential:
    r"""A sigmoid MLP initialised from a pretrained stack, with a new output layer (§15.1).

    Hidden layer :math:`l` computes :math:`\sigma(h^{(l-1)} A_l + c_l)` with the stack's
    :math:`(A_l, c_l)` (:func:`layer_affine`); the output layer ``nn.Linear(n_L, n_outputs)``
    (logits; train with cross-entropy) starts at zero weights and biases, so that the initial
    network predicts the uniform distribution and all of its information comes from the stack.

    Parameters
    ----------
    layers_or_affines : list
        Fitted layers (see :func:`layer_affine`) or ``(A, c)`` pairs, bottom first.
    n_outputs : int
        Number of classes.
    """
    n_outputs = check_int(n_outputs, "n_outputs", low=1)
    if not isinstance(layers_or_affines, (list, tuple)) or not layers_or_affines:
        raise ValueError(
            "layers_or_affines must be a non-empty list of layers or (A, c) pairs. Got "
            f"{layers_or_affines!r} instead."
        )
    affines = [
        item if isinstance(item, tuple) else layer_affine(item) for item in layers_or_affines
    ]
    with torch.random.fork_rng(devices=[]):  # every parameter is overwritten: no RNG use
        return _build_mlp(affines, n_outputs)


def _build_mlp(affines, n_outputs) -> nn.Sequential:
    mods: list[nn.Module] = []
    prev = None
    for l, (a, c) in enumerate(affines):
        if a.dim() != 2 or c.shape != (a.shape[1],) or (prev is not None and a.shape[0] != prev):
            raise ValueError(
                f"layer {l}: A must have shape (n_in, n_out) chaining with the layer below "
                f"({prev}) and c shape (n_out,). Got A {tuple(a.shape)}, c {tuple(c.shape)} "
                "instead."
            )
        lin = nn.Linear(a.shape[0], a.shape[1]).to(a.dtype)
        with torch.no_grad():
            lin.weight.copy_(a.T)
            lin.bias.copy_(c)
        mods += [lin, nn.Sigmoid()]
        prev = a.shape[1]
    out = nn.Linear(prev, n_outputs).to(affines[0][0].dtype)
    with torch.no_grad():
        out.weight.zero_()
        out.bias.zero_()
    mods.append(out)
    return nn.Sequential(*mods)


def random_mlp(sizes: Sequence[int], n_outputs: int, *, seed: int = 0,
               dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The same sigmoid architecture as :func:`mlp_from_stack`, randomly initialised.

    Hidden layers: PyTorch's default ``nn.Linear`` initialisation (uniform in
    :math:`\\pm 1/\\sqrt{n_{in}}`) drawn from a generator seeded with ``seed`` (the global
    random state is left as it was); the output layer starts at zero as in
    :func:`mlp_from_stack`. ``sizes = [d, n_1, ..., n_L]``.
    """
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes
    ):
        raise ValueError(
            f"sizes must be a list of at least two positive ints [d, n_1, ...]. Got {sizes!r} "
            "instead."
        )
    seed = check_int(seed, "seed", low=0)
    state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        affines = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            lin = nn.Linear(a, b).to(dtype)
            affines.append((lin.weight.detach().T.clone(), lin.bias.detach().clone()))
    finally:
        torch.set_rng_state(state)
    return mlp_from_stack(affines, n_outputs)


def _check_labels(y, n: int, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != n or (
        y.dtype.is_floating_point or y.dtype == torch.bool
    ):
        raise ValueError(
            f"{name} must be a 1-d integer tensor of {n} class labels. Got "
            f"{type(y).__name__} {tuple(getattr(y, 'shape', ()))} "
            f"{getattr(y, 'dtype', '')} instead."
        )
    return y.long()


def train_classifier(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_epochs: int = 100,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> list[float]:
    r"""Discriminative fine-tuning: minimize the cross-entropy of ``net(x)`` against ``y``.

    Adam on every parameter of ``net`` for exactly ``num_epochs`` passes over the data
    (minibatches without replacement from a generator seeded with ``seed``), no early
    stopping, so that two networks compared get exactly the same budget. Supervised training
    of a plain ``nn.Module``, not a generative model: it does not go through the models'
    training loop (:meth:`pyrogen.models.base.GenerativeModel._train`).

    Returns
    -------
    list of float
        Mean training cross-entropy (nats per example) of each epoch.
    """
    x = check_data(x, "x")
    y = _check_labels(y, x.shape[0])
    num_epochs = check_int(num_epochs, "num_epochs", low=1)
    lr = check_float(lr, "lr", 0.0, None, "oc")
    batch_size = check_int(batch_size, "batch_size", low=1)
    weight_decay = check_float(weight_decay, "weight_decay", 0.0, None)
    g = torch.Generator().manual_seed(check_int(seed, "seed", low=0))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = x.shape[0]
    losses = []
    net.train()
    for _ in range(num_epochs):
        perm = torch.randperm(n, generator=g).to(x.device)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum")
            opt.zero_grad(set_to_none=True)
            (loss / idx.shape[0]).backward()
            opt.step()
            total += float(loss.detach())
        losses.append(total / n)
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"the training loss became {losses[-1]}; lower lr ({lr}).")
    net.eval()
    return losses


def classification_error(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of misclassified rows of ``x`` (argmax of ``net(x)``)."""
    x = check_data(x, "x")
    y = _check_labels(y, x.shape[0])
    with torch.no_grad():
        return float((net(x).argmax(-1) != y).double().mean())
