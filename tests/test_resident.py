"""Resident training data: the data memory ``D`` and ``GATHER``, ``LOOP`` and ``ADVANCE`` in the golden
model, and training on resident data against streaming the same minibatches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from host.compiler import Network, Output, Resident
from host.data import Dataset, digits
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig
from hw.isa import Buf, GatherMode, Opcode, Reg, Status, instruction
from hw.numerics import ACT, Act
from sim.model import Device

CONFIG = DeviceConfig(rows=2, cols=3, depth=256, imem=256, k_max=64, max_rows=8, max_payload=256,
                      data_depth=512)
END = instruction(Opcode.END)


def tensor(t: int, buf: Buf, base: int, rows: int, cols: int, pitch: int) -> int:
    return instruction(Opcode.TENSOR, tensor={"t": t, "buf": buf, "base": base, "rows": rows, "cols": cols,
                                              "pitch": pitch})


def gather(src: int, idx: int, out: int, mode: GatherMode, shift: int = 0) -> int:
    return instruction(Opcode.GATHER, gather={"src": src, "idx": idx, "out": out, "mode": mode,
                                              "shift": shift})


def run(device: Device, *words: int) -> tuple[Status, int]:
    device.program(list(words) + [END])
    return device.run(0)


def test_gather_takes_the_listed_samples_as_words_bytes_or_one_hot_columns():
    rng = np.random.default_rng(3)
    device = Device(CONFIG)
    samples = rng.integers(-128, 128, (9, 5))                              # 9 samples of 5 features
    device.write_words(Buf.D, 0, samples.ravel())                          # as words: 5 a sample
    packed = Resident(9, True, 3, 1).pack(samples << 3)                    # as bytes: 3 words a sample
    device.write_words(Buf.D, 100, packed)
    classes = rng.integers(0, 4, 9)
    device.write_words(Buf.D, 200, classes)
    order = np.array([7, 0, 7, 3])
    device.write_words(Buf.D, 300, order)
    status = run(device,
                 tensor(0, Buf.D, 0, 9, 5, 5), tensor(1, Buf.D, 300, 1, 4, 4),
                 tensor(2, Buf.A, 0, 5, 4, 1), gather(0, 1, 2, GatherMode.WORDS),
                 tensor(3, Buf.D, 100, 9, 3, 3), tensor(4, Buf.G, 0, 5, 4, 1),
                 gather(3, 1, 4, GatherMode.BYTES, shift=3),
                 tensor(5, Buf.D, 200, 9, 1, 1), tensor(6, Buf.W, 0, 4, 4, 1),
                 gather(5, 1, 6, GatherMode.ONEHOT),
                 tensor(7, Buf.W, 8, 1, 4, 1), gather(5, 1, 7, GatherMode.ONEHOT))
    assert status == (Status.OK, 12)
    assert np.array_equal(device.read_matrix(Buf.A, 0, 1, 5, 4), samples[order].T)
    assert np.array_equal(device.read_matrix(Buf.G, 0, 1, 5, 4), samples[order].T << 3)
    one_hot = (np.arange(4)[:, None] == classes[order]) * ACT.one
    assert np.array_equal(device.read_matrix(Buf.W, 0, 1, 4, 4), one_hot)
    assert np.array_equal(device.read_matrix(Buf.W, 8, 1, 1, 4), [(classes[order] != 0) * ACT.one])


@pytest.mark.parametrize("name, words, status, pc", [
    ("sample past the rows", [tensor(0, Buf.D, 0, 2, 1, 1), tensor(1, Buf.D, 10, 1, 1, 1),
                              tensor(2, Buf.A, 0, 1, 1, 1), gather(0, 1, 2, GatherMode.WORDS)],
     Status.BAD_TENSOR, 3),
    ("out in D", [tensor(0, Buf.D, 0, 2, 1, 1), tensor(1, Buf.D, 10, 1, 1, 1),
                  gather(0, 1, 0, GatherMode.WORDS)], Status.BAD_SHAPE, 2),
    ("more rows than a sample", [tensor(0, Buf.D, 0, 2, 1, 1), tensor(1, Buf.D, 10, 1, 1, 1),
                                 tensor(2, Buf.A, 0, 2, 1, 1), gather(0, 1, 2, GatherMode.WORDS)],
     Status.BAD_SHAPE, 3),
    ("shift past 8", [tensor(0, Buf.D, 0, 2, 1, 1), tensor(1, Buf.D, 10, 1, 1, 1),
                      tensor(2, Buf.A, 0, 1, 1, 1), gather(0, 1, 2, GatherMode.BYTES, shift=9)],
     Status.BAD_OPCODE, 3),
    ("mode 3", [tensor(0, Buf.D, 0, 2, 1, 1), tensor(1, Buf.D, 10, 1, 1, 1),
                tensor(2, Buf.A, 0, 1, 1, 1), gather(0, 1, 2, GatherMode.WORDS) | (3 << 16)],
     Status.BAD_OPCODE, 3),
    ("D in a VEC", [tensor(0, Buf.D, 0, 1, 1, 1), tensor(1, Buf.A, 0, 1, 1, 1),
                    instruction(Opcode.VEC, vec={"a": 0, "b": 0, "use_b": 0, "out": 1,
                                                 "epi": {"op": 0, "act": 0}})], Status.BAD_SHAPE, 2),
    ("D past its depth", [tensor(0, Buf.D, 500, 2, 8, 8)], Status.BAD_TENSOR, 0),
    ("advance past the buffer", [tensor(0, Buf.D, 500, 1, 8, 8),
                                 instruction(Opcode.ADVANCE, advance={"t": 0, "delta": 5})],
     Status.BAD_TENSOR, 1),
    ("advance below 0", [tensor(0, Buf.A, 3, 1, 1, 1),
                         instruction(Opcode.ADVANCE, advance={"t": 0, "delta": -4})], Status.BAD_TENSOR, 1),
])
def test_faults(name, words, status, pc):
    device = Device(CONFIG)
    device.write_words(Buf.D, 10, [5])
    assert run(device, *words) == (status, pc)


def test_loop_runs_its_body_steps_times_and_advance_walks_a_tensor():
    """``out[k] = k``-th word of a list, for ``STEPS`` = 5 iterations, each advancing both tensors."""
    device = Device(CONFIG)
    device.write_words(Buf.D, 0, [0, 1, 2, 3, 4, 5, 6])
    device.write_words(Buf.D, 20, [6, 5, 4, 3, 2, 1, 0])
    advance = [instruction(Opcode.ADVANCE, advance={"t": t, "delta": 1}) for t in (1, 2)]
    status = run(device, tensor(0, Buf.D, 0, 7, 1, 1), tensor(1, Buf.D, 20, 1, 1, 1),
                 tensor(2, Buf.G, 0, 1, 1, 1), instruction(Opcode.SET, set={"reg": Reg.STEPS, "value": 5}),
                 gather(0, 1, 2, GatherMode.WORDS), *advance, instruction(Opcode.LOOP, loop={"target": 4}))
    assert status == (Status.OK, 8) and device.registers[Reg.STEPS] == 0
    assert [device.read_matrix(Buf.G, k, 1, 1, 1)[0, 0] for k in range(6)] == [6, 5, 4, 3, 2, 0]


def _blobs(features: int, n: int, integer: bool, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(features + n)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 1, (classes, features))[y] + rng.normal(0, 0.4, (n, features))
    return Dataset(np.round(x * 4) / 4 if integer else x, y, classes)


NETS = {
    "tanh, packed, one run": (Network((7, 6, 3), hidden=Act.TANH, batch=4, learning_rate=0.2), True, 4096),
    "prelu and stats, words, three runs": (Network((8, 6, 3), hidden=Act.LEAKY_RELU, learn_slope=True,
                                                   slope=0.25, stats=True, batch=4, learning_rate=0.2),
                                           False, 40 * 9 + 4 * 4),
    "sigmoid, three layers": (Network((5, 6, 4, 1), output=Output.SIGMOID, batch=8, learning_rate=0.2),
                              True, 4096),
}


@pytest.mark.parametrize("name", NETS)
def test_resident_training_ends_with_the_weights_of_streamed_training(name):
    net, integer, data_depth = NETS[name]
    data = _blobs(net.sizes[0], 40, integer, classes=max(net.sizes[-1], 2))
    config = dataclasses.replace(CONFIG, data_depth=data_depth)

    tests = data.x[::3] + 0.25 if data_depth > 1024 else None       # 14 inputs of the same grid

    def train(resident: bool):
        with Driver.open("model", config=config) as driver:
            trainer = Trainer(driver, net, seed=3, x=data.x, resident=data if resident else None,
                              tests=tests if resident else None)
            trainer.load(trainer.initial_weights())
            rng = np.random.default_rng(5)
            results = [trainer.train_epoch(data, rng, epoch) for epoch in (1, 2, 3)]
            driver.reset_stats()
            predictions = None if tests is None else trainer.predict(tests)
            return trainer, results, trainer.weights(), predictions, driver.bytes_sent

    streamed, on_the_line, expected, guessed, streaming = train(False)
    resident, on_device, weights, predicted, sent = train(True)
    assert resident.resident.packed == integer
    if tests is not None:                  # the resident test inputs are predicted, none of them sent
        assert np.array_equal(predicted, guessed) and sent < streaming / 2, (sent, streaming)
    assert all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True))
    for a, b in zip(on_device, on_the_line, strict=True):
        assert a.accuracy == b.accuracy and a.loss == pytest.approx(b.loss, abs=1e-3)
        assert (a.active is None) == (b.active is None)
        for x, y in zip(a.active or [], b.active or [], strict=True):
            assert np.array_equal(x, y)


def test_digits_train_resident_at_under_four_bytes_a_sample():
    train, _ = digits(seed=0)
    config = DeviceConfig(data_depth=65536)
    with Driver.open("model", config=config) as driver:
        trainer = Trainer(driver, Network((64, 32, 10)), x=train.x, resident=train)
        trainer.load(trainer.initial_weights())
        rng = np.random.default_rng(0)
        trainer.train_epoch(train, rng, 1)
        driver.reset_stats()
        result = trainer.train_epoch(train, rng, 2)
        assert not result.moves and trainer.resident.packed and trainer.resident.steps == len(train) // 32
        samples = len(train) // 32 * 32
        assert (driver.bytes_sent + driver.bytes_received) / samples < 4


def test_test_inputs_alone_are_predicted_from_the_data_memory():
    """``systolic eval``'s way: a trained network, its test inputs resident, one RUN for them all."""
    net = Network((7, 6, 3), batch=4)
    data = _blobs(7, 30, True)
    with Driver.open("model", config=CONFIG) as driver:
        trainer = Trainer(driver, net, seed=1, x=data.x)
        trainer.load(trainer.initial_weights())
        trainer.train_epoch(data, np.random.default_rng(0), 1)
        weights, streamed = trainer.weights(), trainer.predict(data.x)
    with Driver.open("model", config=CONFIG) as driver:
        trainer = Trainer(driver, net, seed=1, formats=trainer.program.formats, tests=data.x)
        trainer.load(weights)
        assert trainer.resident.samples == 0 and trainer.program.epoch is None
        assert np.array_equal(trainer.predict(data.x), streamed)


def test_data_that_does_not_fit_is_refused():
    data = _blobs(8, 40, False)
    with Driver.open("model", config=dataclasses.replace(CONFIG, data_depth=40 * 9 + 4)) as driver, \
            pytest.raises(ValueError, match=r"need 368 words of data memory, the device has 364: stream"):
        Trainer(driver, Network((8, 6, 3), batch=4), x=data.x, resident=data)
    with Driver.open("model", config=CONFIG) as driver:
        trainer = Trainer(driver, Network((8, 6, 3), batch=4), x=data.x, resident=data)
        trainer.load(trainer.initial_weights())
        with pytest.raises(ValueError, match="holds 40 resident samples, not the 12"):
            trainer.train_epoch(_blobs(8, 12, False), np.random.default_rng(0), 1)


@pytest.mark.sim
def test_the_virtual_board_trains_on_resident_data_as_the_model():
    """The gateware's data memory and gather unit, through the link: two epochs of ten steps (RUNs of
    three, three, three and one), with stats, bit for bit as the golden model."""
    from sim.virtual import VirtualBoard

    config = DeviceConfig(rows=2, cols=2, depth=256, imem=128, k_max=64, max_rows=4, max_payload=256,
                          clk_hz=12_000_000, baud=3_000_000, data_depth=40 * 5 + 4 * 4)
    net = Network((8, 6, 3), hidden=Act.TANH, stats=True, batch=4, learning_rate=0.2)
    data = _blobs(8, 40, True)

    def train(driver):
        trainer = Trainer(driver, net, seed=3, x=data.x, resident=data)
        trainer.load(trainer.initial_weights())
        rng = np.random.default_rng(5)
        results = [trainer.train_epoch(data, rng, epoch) for epoch in (1, 2)]
        return trainer, results, trainer.weights()

    with Driver.open("model", config=config) as driver:
        model, on_model, expected = train(driver)
    with VirtualBoard(config) as url, Driver.open(url, timeout=30.0) as driver:
        board, on_board, weights = train(driver)
    assert board.resident.steps == 3 and board.resident.packed
    assert all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True))
    for a, b in zip(on_board, on_model, strict=True):
        assert (a.loss, a.accuracy) == (b.loss, b.accuracy)
        assert all(np.array_equal(x, y) for x, y in zip(a.active, b.active, strict=True))
