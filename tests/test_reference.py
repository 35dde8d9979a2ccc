"""The float32 reference: its step is the documented math, its gradients are right, it learns digits."""

from __future__ import annotations

import numpy as np
import pytest

from host.compiler import Network, Output, compile_network
from host.data import digits, minibatches
from host.reference import Reference, forward, gradients, step
from hw.config import DeviceConfig
from hw.numerics import Act

NETS = [
    Network((8, 6, 3), hidden=Act.RELU, batch=5, learning_rate=0.5),
    Network((8, 6, 5, 3), hidden=Act.TANH, batch=5, learning_rate=0.5),
    Network((8, 6, 1), hidden=Act.LEAKY_RELU, output=Output.SIGMOID, batch=5, learning_rate=0.5, slope=0.1),
    Network((8, 4, 4, 1), hidden=Act.SWISH, output=Output.SIGMOID, batch=5, learning_rate=0.5),
    Network((8, 6, 4), hidden=Act.SIGMOID, batch=5, learning_rate=0.5),
    Network((8, 6, 5, 3), hidden=Act.LEAKY_RELU, learn_slope=True, batch=5, learning_rate=0.5),
]


def name(net: Network) -> str:
    return f"{'PRELU' if net.learn_slope else net.hidden.name}-{net.output.name}"


def problem(net: Network, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Float64 weights (non-zero biases), inputs and labels for ``net``."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.7, (n, k + 1)) for k, n in zip(net.sizes[:-1], net.sizes[1:], strict=True)]
    if net.learn_slope:
        weights += [rng.uniform(0.05, 0.5, (n, 1)) for n in net.sizes[1:-1]]
    return weights, rng.normal(0, 1, (net.batch, net.sizes[0])), rng.integers(0, max(net.sizes[-1], 2),
                                                                             net.batch)


@pytest.mark.parametrize("net", NETS, ids=name)
def test_float32_step_matches_float64(net):
    weights, x, y = problem(net)
    reference = Reference(net, weights)
    losses, predictions = reference.train_step(x, y)
    ref_losses, ref_predictions, ref_after = step(net, weights, x, y)
    assert losses.dtype == np.float32 and all(w.dtype == np.float32 for w in reference.weights())
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predictions, ref_predictions)
    for w, ref in zip(reference.weights(), ref_after, strict=True):
        np.testing.assert_allclose(w, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("net", NETS, ids=name)
def test_losses_and_predictions_follow_the_probabilities(net):
    weights, x, y = problem(net)
    p = forward(net, weights, x)[2]
    losses, predictions, _ = gradients(net, weights, x, y)
    if net.output == Output.SOFTMAX:
        np.testing.assert_allclose(p.sum(axis=0), 1)
        np.testing.assert_allclose(losses, -np.log(p[y, np.arange(len(y))]))
        np.testing.assert_array_equal(predictions, p.argmax(axis=0))
    else:
        np.testing.assert_allclose(losses, -np.log(np.where(y == 1, p[0], 1 - p[0])))
        np.testing.assert_array_equal(predictions, p[0] >= 0.5)


@pytest.mark.parametrize("net", NETS, ids=name)
def test_gradients_match_finite_differences(net):
    weights, x, y = problem(net, seed=1)
    grads = gradients(net, weights, x, y)[2]
    h = 1e-6
    for w, g in zip(weights, grads, strict=True):
        numeric = np.empty_like(w)
        for index in np.ndindex(w.shape):
            saved = w[index]
            w[index] = saved + h
            up = gradients(net, weights, x, y)[0].mean()
            w[index] = saved - h
            down = gradients(net, weights, x, y)[0].mean()
            w[index] = saved
            numeric[index] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-8)


def test_step_is_sgd_on_the_gradients_and_keeps_its_input():
    net = NETS[1]
    weights, x, y = problem(net)
    before = [w.copy() for w in weights]
    grads = gradients(net, weights, x, y)[2]
    after = step(net, weights, x, y)[2]
    for w0, w, g, w1 in zip(before, weights, grads, after, strict=True):
        np.testing.assert_array_equal(w, w0)
        np.testing.assert_allclose(w1, w0 - net.learning_rate * g)


def test_reference_state_and_checks():
    net = NETS[0]
    weights, x, y = problem(net)
    reference = Reference(net, weights)
    first = reference.weights()
    first[0][:] = 0   # a copy
    np.testing.assert_array_equal(reference.predict(x), reference.train_step(x, y)[1])
    assert not np.allclose(reference.weights()[0], weights[0])
    assert reference.predict(x[:2]).shape == (2,)
    with pytest.raises(ValueError, match=r"weights must be shaped \[\(6, 9\), \(3, 7\)\]"):
        Reference(net, weights[:1])
    with pytest.raises(ValueError, match="x must be m × 8"):
        reference.predict(x[:, :4])
    with pytest.raises(ValueError, match="class numbers in 0..2"):
        reference.train_step(x, y + 3)


@pytest.mark.parametrize("options", [{}, {"learn_slope": True, "hidden": Act.LEAKY_RELU, "weight_bits": 10}])
def test_from_raw_starts_where_the_device_starts(options):
    net = Network((64, 32, 10), **options)
    program = compile_network(net, DeviceConfig())
    raw = program.initial_weights(np.random.default_rng(0))
    assert len(raw) == 2 + net.learn_slope
    for w, r, fmt in zip(Reference.from_raw(program, raw).weights(), raw, program.parameter_formats,
                         strict=True):
        np.testing.assert_array_equal(w, fmt.dequantize(r))
    with pytest.raises(ValueError, match="raw device weights: start from Reference.from_raw"):
        Reference(net, raw)


def test_digits_reaches_95_percent():
    net = Network((64, 32, 10), hidden=Act.RELU, batch=32, learning_rate=0.1)
    train, test = digits(seed=0)
    rng = np.random.default_rng(0)
    program = compile_network(net, DeviceConfig())
    reference = Reference.from_raw(program, program.initial_weights(rng))
    epoch_losses = []
    for _ in range(20):
        epoch_losses.append(np.mean([reference.train_step(x, y)[0] for x, y in minibatches(train, 32, rng)]))
    accuracy = np.mean(reference.predict(test.x) == test.y)
    assert epoch_losses[-1] < epoch_losses[0] / 5
    assert accuracy >= 0.95, f"test accuracy {accuracy:.3f}, epoch losses {epoch_losses}"
