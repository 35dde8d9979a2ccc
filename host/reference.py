"""The compiled training step in floating point: the float32 baseline the device is measured against.

The functions compute exactly what :func:`host.compiler.compile_network`'s ``train`` entry does, in
the precision of the weights they are given (float32 in :class:`Reference`, float64 for a tighter
check). Columns are samples inside; ``x`` comes in a sample per row, as everywhere on the host::

    [A[0]; 1] = [xᵀ; 1]
    Z[l]  = W[l]·[A[l-1]; 1]              A[l] = g(Z[l])                       (l < L)
    A[L]  = softmax(Z[L])  loss = −ln A[L][y]                 (softmax + cross-entropy)
    A[L]  = σ(Z[L])        loss = −y·ln A[L] − (1 − y)·ln(1 − A[L])  (sigmoid + binary CE)
    dZ[L] = A[L] − Y
    dZ[l] = (W[l+1][:, :-1]ᵀ · dZ[l+1]) ⊙ g'(Z[l])       (with W[l+1] before its update)
    dW[l] = dZ[l]·[A[l-1]; 1]ᵀ / m                       (the bias gradient is its last column)
    W[l] −= α·dW[l]

With learned slopes (PReLU, ``Network.learn_slope``) hidden layer ``l`` has a slope per unit,
``s[l]``: ``g(z) = max(z, 0) + s·min(z, 0)``, ``g'(z) = 1`` for ``z > 0`` else ``s``, and
``s[l] −= α·Σ_samples (dA[l] ⊙ min(Z[l], 0)) / m`` with ``dA[l] = W[l+1][:, :-1]ᵀ · dZ[l+1]``.
The parameters are then ``W[1] … W[L]`` followed by ``s[1] … s[L-1]`` (each ``n_l × 1``).

``W[l]`` is ``n_l × (n_{l-1} + 1)`` with the bias last, as on the device; ``g`` and ``g'`` are
:func:`hw.numerics.activation_float` and the softmax :func:`hw.numerics.softmax_float`. Losses are
evaluated from ``Z[L]`` in log-sum-exp form, which equals the formulas above without overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.compiler import Network, Output, Program
from host.data import minibatches
from hw.numerics import Act, activation_float, softmax_float

__all__ = ["forward", "trace", "Trace", "gradients", "step", "Reference"]


def _g(net: Network, params: list[np.ndarray], k: int, z: np.ndarray, deriv: bool) -> np.ndarray:
    """``g`` (or ``g'``) of hidden layer ``k`` at ``z``."""
    if not net.learn_slope:
        return activation_float(net.hidden, deriv, z, net.slope).astype(z.dtype)
    slope = params[net.layers + k - 1]
    return np.where(z > 0, 1, slope) if deriv else np.maximum(z, 0) + slope * np.minimum(z, 0)


def forward(net: Network, weights: list[np.ndarray],
            x) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The forward pass in the precision of ``weights``.

    Parameters
    ----------
    net : Network
    weights : list[numpy.ndarray]
        The parameters: ``W[1] … W[L]``, real values, bias last column (then the slopes).
    x : array_like
        ``m × n_0`` inputs, a sample per row.

    Returns
    -------
    inputs : list[numpy.ndarray]
        ``[A[l]; 1]`` for ``l = 0 … L-1``, each ``(n_l + 1) × m``.
    zs : list[numpy.ndarray]
        ``Z[l]`` for ``l = 1 … L``.
    probabilities : numpy.ndarray
        ``A[L]``, ``n_L × m``.
    """
    dtype = weights[0].dtype
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != net.sizes[0]:
        raise ValueError(f"x must be m × {net.sizes[0]} (a sample per row), not shape {x.shape}")
    ones = np.ones((1, len(x)), dtype=dtype)
    inputs, zs = [np.vstack([x.T, ones])], []
    for k, w in enumerate(weights[:net.layers], 1):
        zs.append(w @ inputs[-1])
        if k < net.layers:
            inputs.append(np.vstack([_g(net, weights, k, zs[-1], False).astype(dtype), ones]))
    if net.output == Output.SOFTMAX:
        probabilities = softmax_float(zs[-1]).astype(dtype)
    else:
        probabilities = activation_float(Act.SIGMOID, False, zs[-1]).astype(dtype)
    return inputs, zs, probabilities


def _predictions(net: Network, probabilities: np.ndarray) -> np.ndarray:
    if net.output == Output.SOFTMAX:
        return probabilities.argmax(axis=0)
    return (probabilities[0] >= 0.5).astype(np.int64)


@dataclass
class Trace:
    """Every tensor of one training step (columns are samples), as :func:`trace` computes them."""

    inputs: list[np.ndarray]      # [A[l]; 1], l = 0 … L-1
    zs: list[np.ndarray]          # Z[l], l = 1 … L
    probabilities: np.ndarray     # A[L]
    dzs: list[np.ndarray]         # dZ[l], l = 1 … L
    derivatives: list[np.ndarray]  # g'(Z[l]) of the hidden layers
    losses: np.ndarray
    predictions: np.ndarray
    gradients: list[np.ndarray]   # shaped like each parameter


def trace(net: Network, weights: list[np.ndarray], x, y) -> Trace:
    """The forward and backward pass of one minibatch in the precision of ``weights``.

    ``x`` is ``m × n_0``, ``y`` the ``m`` class numbers (0/1 for a sigmoid output). The gradients are
    those of the mean loss.
    """
    inputs, zs, p = forward(net, weights, x)
    y = np.asarray(y)
    m, z = len(y), zs[-1]
    classes = max(net.sizes[-1], 2)
    if y.shape != (p.shape[1],) or y.min() < 0 or y.max() >= classes:
        raise ValueError(f"y must be {p.shape[1]} class numbers in 0..{classes - 1}")
    if net.output == Output.SOFTMAX:
        shifted = z - z.max(axis=0)
        losses = np.log(np.exp(shifted).sum(axis=0)) - shifted[y, np.arange(m)]
        labels = (np.arange(len(z))[:, None] == y[None, :]).astype(p.dtype)
    else:
        labels = y[None, :].astype(p.dtype)
        losses = (np.logaddexp(0, z) - labels * z)[0]
    dz = p - labels
    grads: list[np.ndarray] = [np.empty(0)] * len(weights)
    dzs, derivatives = [dz], []
    for k in range(net.layers, 0, -1):
        grads[k - 1] = dz @ inputs[k - 1].T / m
        if k > 1:
            da = weights[k - 1][:, :-1].T @ dz
            if net.learn_slope:
                grads[net.layers + k - 2] = (da * np.minimum(zs[k - 2], 0)).sum(axis=1, keepdims=True) / m
            derivatives.insert(0, _g(net, weights, k - 1, zs[k - 2], True).astype(dz.dtype))
            dz = da * derivatives[0]
            dzs.insert(0, dz)
    return Trace(inputs, zs, p, dzs, derivatives, losses, _predictions(net, p), grads)


def gradients(net: Network, weights: list[np.ndarray], x,
              y) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Losses, predictions and the gradients of the mean loss of one minibatch (:func:`trace`)."""
    t = trace(net, weights, x, y)
    return t.losses, t.predictions, t.gradients


def step(net: Network, weights: list[np.ndarray], x,
         y) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One SGD step: ``(losses, predictions, new weights)``; ``weights`` are left unchanged."""
    losses, predictions, grads = gradients(net, weights, x, y)
    return losses, predictions, [w - net.learning_rate * g for w, g in zip(weights, grads, strict=True)]


class Reference:
    """The network trained in float32, from the same initial weights and minibatches as the device.

    Parameters
    ----------
    network : Network
    weights : list[numpy.ndarray]
        ``W[1] … W[L]`` in real units, ``n_l × (n_{l-1} + 1)`` with the bias last, then the learned
        slopes ``n_l × 1`` if any (see :meth:`from_raw` for the device's raw parameters).

    Raises
    ------
    ValueError
        If the number or shapes of the weight matrices do not match ``network``, or they are
        integers (raw weights belong in :meth:`from_raw`).
    """

    def __init__(self, network: Network, weights: list[np.ndarray]):
        shapes = [(n, k + 1) for k, n in zip(network.sizes[:-1], network.sizes[1:], strict=True)]
        if network.learn_slope:
            shapes += [(n, 1) for n in network.sizes[1:-1]]
        got = [np.shape(w) for w in weights]
        if got != shapes:
            raise ValueError(f"weights must be shaped {shapes} for sizes {network.sizes}, not {got}")
        if any(np.issubdtype(np.asarray(w).dtype, np.integer) for w in weights):
            raise ValueError("weights are integers, raw device weights: start from "
                             "Reference.from_raw(program, raw) instead")
        self.network = network
        self._weights = [np.array(w, dtype=np.float32) for w in weights]

    @classmethod
    def from_raw(cls, program: Program, raw: list[np.ndarray]) -> Reference:
        """A reference starting from raw device parameters of ``program`` (in its formats), such as
        :meth:`host.compiler.Program.initial_weights` returns."""
        return cls(program.network, program.dequantize(raw))

    def train_step(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Train on one minibatch (``x`` a sample per row, ``y`` class numbers): per-sample losses and
        the predictions made before the update, as the device's ``train`` entry returns them."""
        losses, predictions, self._weights = step(self.network, self._weights, x, y)
        return losses, predictions

    def train_epoch(self, data, rng: np.random.Generator) -> None:
        """One pass over ``data`` (a :class:`host.data.Dataset`) in the minibatches
        :func:`host.data.minibatches` draws from ``rng``: the device's order for the same ``rng``."""
        for x, y in minibatches(data, self.network.batch, rng):
            self.train_step(x, y)

    def predict(self, x) -> np.ndarray:
        """Class numbers of ``x`` (any number of samples, a sample per row)."""
        return _predictions(self.network, forward(self.network, self._weights, x)[2])

    def weights(self) -> list[np.ndarray]:
        """Copies of the current float32 parameters (weights with the bias last column, slopes)."""
        return [w.copy() for w in self._weights]
