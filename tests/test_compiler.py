"""The compiler: a training step equals float64 back-propagation, training converges, misfits raise."""

from __future__ import annotations

import numpy as np
import pytest

from host.compiler import Formats, Network, Output, Program, compile_network, initial_parameters
from hw.config import DeviceConfig
from hw.frame import decode_frame
from hw.isa import Buf, Command, ProgramArgs, Rounding, RunArgs, RunReply, Status, WriteArgs, decode, encode
from hw.numerics import ACT, Act, Fixed, activation_float, softmax_float
from sim.link import LinkModel
from sim.model import Device

SMALL = DeviceConfig(rows=4, cols=4)
BIG = DeviceConfig(rows=8, cols=8, depth=1024)


def load(program: Program, weights: list[np.ndarray]) -> Device:
    """A device with ``program``, ``weights`` and the constants loaded and ``setup`` run."""
    device = Device(program.config)
    device.program(program.words)
    for buf, addr, words in program.load_writes(weights):
        device.write_words(buf, addr, words)
    assert device.run(program.setup) == (Status.OK, program.train - 1)
    return device


def step(device: Device, program: Program, x, y, entry: int) -> tuple[np.ndarray, np.ndarray]:
    """One minibatch through ``entry``: the decoded (losses, predictions)."""
    for buf, addr, words in program.batch_writes(x, y):
        device.write_words(buf, addr, words)
    status, _ = device.run(entry)
    assert status == Status.OK
    return program.decode_output(device.read_words(*program.output))


def read_weights(device: Device, program: Program) -> list[np.ndarray]:
    return [r.unpack(device.read_words(r.buf, r.first, r.words)) for r in program.parameters]


def float_step(net: Network, params: list[np.ndarray], x: np.ndarray, y: np.ndarray):
    """Float64 back-propagation of one minibatch: (losses, predictions, new parameters)."""
    m, weights, slopes = len(x), params[:net.layers], params[net.layers:]

    def g(k, z, deriv):
        if not slopes:
            return activation_float(net.hidden, deriv, z, net.slope)
        s = slopes[k - 1]
        return np.where(z > 0, 1, s) if deriv else np.where(z > 0, z, s * z)

    acts = [np.vstack([x.T, np.ones((1, m))])]
    zs = []
    for k, w in enumerate(weights, 1):
        zs.append(w @ acts[-1])
        if k < net.layers:
            acts.append(np.vstack([g(k, zs[-1], False), np.ones((1, m))]))
    if net.output == Output.SOFTMAX:
        p = softmax_float(zs[-1])
        onehot = (np.arange(len(p))[:, None] == y[None, :]).astype(float)
        losses, predictions = -np.log(p[y, np.arange(m)]), p.argmax(axis=0)
    else:
        p = activation_float(Act.SIGMOID, False, zs[-1])
        onehot = y[None, :].astype(float)
        losses = -np.log(np.where(y == 1, p[0], 1 - p[0]))
        predictions = (p[0] >= 0.5).astype(int)
    dz = p - onehot
    new = [None] * len(params)
    for k in range(net.layers, 0, -1):
        w = weights[k - 1]
        new[k - 1] = w - net.learning_rate / m * dz @ acts[k - 1].T
        if k > 1:
            da = w[:, :-1].T @ dz
            if slopes:
                grad = (da * np.minimum(zs[k - 2], 0)).sum(axis=1, keepdims=True)
                new[net.layers + k - 2] = slopes[k - 2] - net.learning_rate / m * grad
            dz = da * g(k - 1, zs[k - 2], True)
    return losses, predictions, new


@pytest.mark.parametrize("hidden, output, sizes, options", [
    (Act.RELU, Output.SOFTMAX, (8, 6, 3), {}),
    (Act.TANH, Output.SOFTMAX, (8, 6, 5, 3), {}),
    (Act.LEAKY_RELU, Output.SIGMOID, (8, 6, 1), {}),
    (Act.LEAKY_RELU, Output.SOFTMAX, (8, 6, 5, 3), {"learn_slope": True, "stats": True}),
    (Act.RELU, Output.SOFTMAX, (8, 6, 3), {"weight_bits": 12, "stats": True}),
    (Act.SWISH, Output.SIGMOID, (8, 6, 5, 1), {"stats": True}),
])
def test_step_matches_float(hidden, output, sizes, options):
    net = Network(sizes, hidden=hidden, output=output, batch=4, learning_rate=1.0, slope=0.1, **options)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, sizes[0]))
    program = compile_network(net, SMALL, formats=Formats.choose(net, x))
    x = Fixed(16, program.formats.x).dequantize(Fixed(16, program.formats.x).quantize(x))
    weights = program.initial_weights(rng)
    y = rng.integers(0, max(sizes[-1], 2), 4)
    device = load(program, weights)
    losses, predictions = step(device, program, x, y, program.train)
    after = read_weights(device, program)

    w_float = program.dequantize(weights)
    ref_losses, ref_predictions, ref_after = float_step(net, w_float, x, y)
    np.testing.assert_allclose(losses, ref_losses, atol=0.005)
    np.testing.assert_array_equal(predictions, ref_predictions)
    for w0, w1, ref, fmt in zip(w_float, after, ref_after, program.parameter_formats, strict=True):
        update, ref_update = fmt.dequantize(w1) - w0, ref - w0
        assert np.abs(ref_update).max() > 0.01   # the step is many weight LSBs
        tolerance = 0.005 * np.abs(ref_update).max() + 2.0 ** (1 - fmt.frac)
        np.testing.assert_allclose(update, ref_update, atol=tolerance)


def prototypes(rng: np.random.Generator, samples: int, classes: int = 10, features: int = 64,
               noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A separable synthetic dataset: a random prototype per class plus Gaussian noise."""
    centres = rng.normal(0, 1, (classes, features))
    y = rng.integers(0, classes, samples)
    return centres[y] + rng.normal(0, noise, (samples, features)), y


def test_training_reaches_high_accuracy():
    net = Network((64, 32, 10), hidden=Act.RELU, batch=32, learning_rate=0.1)
    program = compile_network(net, BIG)
    rng = np.random.default_rng(7)
    x, y = prototypes(rng, 1024 + 512)
    (x_train, x_test), (y_train, y_test) = np.split(x, [1024]), np.split(y, [1024])
    device = load(program, program.initial_weights(rng))
    epoch_losses = []
    for _ in range(3):
        order = rng.permutation(len(x_train))
        losses = [step(device, program, x_train[b], y_train[b], program.train)[0]
                  for b in np.split(order, len(order) // net.batch)]
        epoch_losses.append(np.mean(losses))
    predictions = np.concatenate([step(device, program, xb, None, program.infer)[1]
                                  for xb in np.split(x_test, len(x_test) // net.batch)])
    accuracy = np.mean(predictions == y_test)
    assert epoch_losses[-1] < epoch_losses[0]
    assert accuracy >= 0.9, f"test accuracy {accuracy:.3f}, epoch losses {epoch_losses}"


class Host:
    """Commands to a device as wire bytes, the way the driver sends them."""

    def __init__(self, device: Device):
        self.device, self.seq = device, 0

    def command(self, command: Command, payload: bytes = b""):
        self.seq = (self.seq + 1) & 0xFF
        wire = self.device.feed(LinkModel.reply(command, self.seq, payload))
        frame = decode_frame(wire[:-1], max_payload=1 << 16)
        assert (frame.type, frame.seq) == (command, self.seq)
        return frame.payload

    def write(self, buf: Buf, addr: int, words: np.ndarray) -> None:
        per_frame = (self.device.config.max_payload - 5) // 2
        for i in range(0, len(words), per_frame):
            chunk = words[i:i + per_frame]
            self.command(Command.WRITE, encode(WriteArgs(), {"buf": buf, "addr": addr + i})
                         + chunk.astype("<i2").tobytes())

    def program(self, words: tuple[int, ...]) -> None:
        per_frame = (self.device.config.max_payload - 2) // 8
        for i in range(0, len(words), per_frame):
            self.command(Command.PROGRAM, encode(ProgramArgs(), {"addr": i})
                         + b"".join(w.to_bytes(8, "little") for w in words[i:i + per_frame]))

    def run(self, entry: int, buf: Buf, addr: int, count: int) -> tuple[int, np.ndarray]:
        reply = self.command(Command.RUN, encode(RunArgs(), {"entry": entry, "buf": buf, "addr": addr,
                                                             "count": count}))
        return decode(RunReply(), reply).status, np.frombuffer(reply[7:], dtype="<i2")


def test_training_over_the_wire_equals_direct():
    net = Network((8, 6, 3), batch=4, learning_rate=0.5)
    config = DeviceConfig(rows=4, cols=4, max_payload=64)
    program = compile_network(net, config)
    rng = np.random.default_rng(3)
    weights = program.initial_weights(rng)
    x, y = rng.normal(0, 1, (4, 8)), rng.integers(0, 3, 4)

    direct = load(program, weights)
    expected = step(direct, program, x, y, program.train)

    host = Host(Device(config))
    host.program(program.words)
    for write in program.load_writes(weights) + program.batch_writes(x, y):
        host.write(*write)
    assert host.run(program.setup, *program.output)[0] == Status.OK
    status, words = host.run(program.train, *program.output)
    assert status == Status.OK
    got = program.decode_output(words)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    for buf in Buf:
        np.testing.assert_array_equal(host.device.buffers[buf], direct.buffers[buf])


@pytest.mark.parametrize("net, config, what", [
    (Network((64, 32, 10), batch=32), DeviceConfig(depth=256), "buffer W"),
    (Network((8, 6, 3), batch=64), DeviceConfig(k_max=32), "k_max"),
    (Network((8, 6, 20), batch=4), DeviceConfig(max_rows=16), "max_rows"),
    (Network((8,) * 12, batch=4), DeviceConfig(imem=64), "instruction memory"),
    (Network((8, 6, 3), batch=256), DeviceConfig(depth=4096, max_payload=256), "RUN reply"),
    (Network((8, 6, 3), batch=4, learning_rate=1e-9), DeviceConfig(), "learning rate"),
])
def test_too_large_raises(net, config, what):
    with pytest.raises(ValueError, match=what):
        compile_network(net, config)


@pytest.mark.parametrize("kwargs", [
    {"sizes": (8,)}, {"sizes": (8, 1)}, {"sizes": (8, 2), "output": Output.SIGMOID},
    {"sizes": (8, 2), "batch": 0}, {"sizes": (8, 2), "learning_rate": 0},
])
def test_bad_network_raises(kwargs):
    with pytest.raises(ValueError):
        Network(**kwargs)


def test_pack_unpack_round_trip():
    program = compile_network(Network((8, 6, 3), batch=5), DeviceConfig(rows=4, cols=4))
    region = program.inputs[0]
    matrix = np.arange(region.rows * region.cols).reshape(region.rows, region.cols)
    assert np.array_equal(region.unpack(region.pack(matrix)), matrix)
    device = Device(program.config)
    device.write_words(region.buf, region.first, region.pack(matrix))
    assert np.array_equal(device.read_matrix(region.buf, region.base, region.pitch, *matrix.shape), matrix)


@pytest.mark.parametrize("hidden", [Act.RELU, Act.TANH])
def test_counters_count_active_units(hidden):
    net = Network((8, 6, 5, 3), hidden=hidden, batch=7, learning_rate=0.5, stats=True)
    program = compile_network(net, SMALL)
    rng = np.random.default_rng(4)
    device = load(program, program.initial_weights(rng))
    # [Z > 0] is left in D[k] (ReLU) or R[k] (others) by every step.
    active = [program.regions[f"{'D' if hidden == Act.RELU else 'R'}{k}"] for k in (1, 2)]
    expected = [np.zeros(6, dtype=np.int64), np.zeros(5, dtype=np.int64)]
    for _ in range(3):
        step(device, program, rng.normal(0, 1, (7, 8)), rng.integers(0, 3, 7), program.train)
        for e, r in zip(expected, active, strict=True):
            flags = r.unpack(device.read_words(r.buf, r.first, r.words))
            assert set(np.unique(flags)) <= {0, ACT.one}
            e += (flags == ACT.one).sum(axis=1)
    counts = [r.unpack(device.read_words(r.buf, r.first, r.words))[:, 0] for r in program.counters]
    for got, want in zip(counts, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert 0 < sum(c.sum() for c in counts) < 3 * 7 * 11
    for buf, addr, words in program.clear_counters():
        device.write_words(buf, addr, words)
    assert all(not device.read_words(r.buf, r.first, r.words).any() for r in program.counters)


def test_stochastic_rounding_keeps_small_updates():
    """With 8-bit weights (5 fraction bits) a small step vanishes when rounded to nearest and does not
    when rounded stochastically."""
    changed = {}
    for rounding in Rounding:
        net = Network((8, 6, 3), batch=8, learning_rate=0.02, weight_bits=8, rounding=rounding)
        program = compile_network(net, SMALL)
        rng = np.random.default_rng(5)
        weights = program.initial_weights(rng)
        device = load(program, weights)
        step(device, program, rng.normal(0, 1, (8, 8)), rng.integers(0, 3, 8), program.train)
        changed[rounding] = sum(int((a != b).sum()) for a, b in
                                zip(weights, read_weights(device, program), strict=True))
    assert changed[Rounding.NEAREST_EVEN] < changed[Rounding.STOCHASTIC] / 4, changed
    assert changed[Rounding.STOCHASTIC] > 0


@pytest.mark.parametrize("kwargs, what", [
    ({"learn_slope": True}, "set hidden=Act.LEAKY_RELU"),
    ({"weight_bits": 4}, "weight_bits must be 5"),
])
def test_bad_options_raise(kwargs, what):
    with pytest.raises(ValueError, match=what):
        Network((8, 6, 3), **kwargs)


def test_formats_fit_the_data_and_the_weights():
    net = Network((8, 6, 3))
    params = initial_parameters(net, np.random.default_rng(0))
    small = Formats.choose(net, np.full((4, 8), 0.5), params)
    large = Formats.choose(net, np.full((4, 8), 3000.0), params)
    assert small.x == 14 and large.x == 3             # 3000 < 2**12: 12 integer bits and the sign
    assert large.a[0] < small.a[0] and large.logits <= small.logits
    assert Formats.choose(Network((8, 6, 3), hidden=Act.TANH), None).a == (ACT.frac,)  # tables read ACT
    assert Formats.choose(Network((8, 6, 3), weight_bits=10)).w == tuple(f - 6 for f in Formats.choose(net).w)
    with pytest.raises(ValueError, match="Formats.logits = 4 is outside 5 … 12"):
        Formats(x=12, a=(12,), logits=4, w=(12, 12), dz=(12,), slope=12)
    with pytest.raises(ValueError, match="need 1 hidden entries"):
        Formats(x=12, a=(), logits=12, w=(12, 12), dz=(), slope=12)
    with pytest.raises(ValueError, match="do not fit a net of 3"):
        compile_network(Network((8, 6, 5, 3)), SMALL, formats=Formats.choose(net))
    with pytest.raises(ValueError, match="not finite"):
        Formats.choose(net, np.full((4, 8), np.inf), params)


def test_kept_program_writes_dz_beside_z():
    net = Network((8, 6, 3), batch=4)
    kept, plain = compile_network(net, SMALL, keep=True), compile_network(net, SMALL)
    assert {"dZ1", "dZ2"} <= set(kept.regions) and "dZ1" not in plain.regions
    assert kept.regions["dZ1"] != kept.regions["Z1"]


def test_swish_keeps_its_range_past_the_table():
    """Swish is z·σ(z): hidden values far beyond ACT's ±8 come out as in float64, not clipped."""
    net = Network((8, 6, 3), hidden=Act.SWISH, batch=4)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 8, (4, 8))
    params = initial_parameters(net, rng)
    program = compile_network(net, SMALL, formats=Formats.choose(net, x, params))
    device = load(program, program.quantize(params))
    step(device, program, x, rng.integers(0, 3, 4), program.infer)
    a = program.regions["A1"]
    got = device.read_words(a.buf, a.first, a.words)
    got = a.unpack(got)[:-1] / 2.0 ** program.formats.act(1)
    xq = Fixed(16, program.formats.x).dequantize(Fixed(16, program.formats.x).quantize(x))
    z = program.dequantize(program.quantize(params))[0] @ np.vstack([xq.T, np.ones((1, 4))])
    assert np.abs(z).max() > 12
    np.testing.assert_allclose(got, activation_float(Act.SWISH, False, z), atol=0.02, rtol=0.002)
