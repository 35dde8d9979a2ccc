"""Saturation counters (golden model) and the formats that follow them while training."""

import numpy as np
import pytest

from host.checkpoint import Checkpoint
from host.compiler import Formats, Network, compile_network
from host.data import Dataset
from host.driver import Driver
from host.exponents import SATURATED, follow, rescale
from host.train import Trainer
from hw import numerics
from hw.config import DeviceConfig
from hw.isa import COUNT_MAX, Buf, Opcode, VecOp, instruction
from hw.numerics import Act
from sim.model import Device

CONFIG = DeviceConfig(rows=2, cols=3, depth=256, imem=64, k_max=64, max_rows=8, max_payload=256)
SMALL = DeviceConfig(rows=2, cols=2, depth=256, imem=96, k_max=64, max_rows=4, max_payload=256)
NET = Network((8, 6, 3), hidden=Act.RELU, batch=4, learning_rate=0.2)


def _tensor(t, buf, base, rows, cols):
    return instruction(Opcode.TENSOR, tensor={"t": t, "buf": buf, "base": base, "rows": rows,
                                              "cols": cols, "pitch": -(-cols // CONFIG.banks)})


def _vec(a, out, counter, read=False, shift=0, b=None):
    return instruction(Opcode.VEC, vec={"a": a, "b": b or 0, "use_b": b is not None, "out": out, "epi": {
        "op": VecOp.ADD, "shift": shift, "counter": counter, "read_counter": read}})


def _run(device, *words):
    device.program([*words, instruction(Opcode.END)])
    return device.run(0)


def test_saturates_marks_the_results_the_clamp_changed_or_pinned():
    rng = np.random.default_rng(0)
    t = rng.integers(-(1 << 40), 1 << 40, 20000) >> rng.integers(0, 40, 20000)
    for shift in (0, 1, 5, 16, 24):
        x, exact = numerics.requantize(t, shift), numerics.shift_round(t, shift)
        flagged = numerics.saturates(t, shift)
        assert flagged.any() and not flagged.all()
        np.testing.assert_array_equal(x[~flagged], exact[~flagged])
        assert np.isin(x[flagged], [numerics.ACT.min, numerics.ACT.max]).all()
        rand = rng.integers(0, 1 << 32, t.shape)
        stochastic = numerics.shift_stochastic(t, shift, rand)
        flagged = numerics.saturates(t, shift, rand=rand)
        np.testing.assert_array_equal(flagged, (stochastic < -(1 << 15)) | (stochastic >= 1 << 15))


def test_uses_top_bit_is_what_one_integer_bit_fewer_would_clamp():
    x = np.arange(-(1 << 15), 1 << 15)
    np.testing.assert_array_equal(numerics.uses_top_bit(x), numerics.saturate(x, 15) != x)


def test_counters_count_the_lanes_in_the_matrix_and_reads_clear_them():
    """5×7 results in beats of 3 lanes: the padding lanes are not counted; a read writes the two
    counts into rows 0 and 1 (zero below), every column, and clears them."""
    rng = np.random.default_rng(1)
    a = rng.integers(-(1 << 15), 1 << 15, (5, 7))
    device = Device(CONFIG)
    device.write_matrix(Buf.W, 0, 2, a)
    words = [_tensor(0, Buf.W, 0, 5, 7), _tensor(1, Buf.G, 0, 5, 7), _tensor(2, Buf.A, 0, 5, 7),
             _tensor(3, Buf.G, 40, 3, 2)]
    device.write_matrix(Buf.A, 0, 2, np.zeros((5, 7), dtype=np.int64))
    vec = instruction(Opcode.VEC, vec={"a": 2, "b": 0, "use_b": True, "out": 1, "epi": {
        "op": VecOp.ADD, "b_shift": 2, "counter": 5}})   # t = 0 + (a << 2)
    assert _run(device, *words, vec, vec, _vec(3, 3, 5, read=True))[0].name == "OK"
    saturated = numerics.saturates(a << 2, 0).sum() * 2
    high = numerics.uses_top_bit(numerics.saturate(a << 2, 16)).sum() * 2
    assert 0 < saturated < high
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 40, 1, 3, 2),
                                  [[saturated, saturated], [high, high], [0, 0]])
    assert _run(device, *words, _vec(3, 3, 5, read=True))[0].name == "OK"
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 40, 1, 3, 2), np.zeros((3, 2)))


def test_counters_stop_at_count_max_and_counter_zero_stays_zero():
    device = Device(CONFIG)
    device.write_matrix(Buf.W, 0, 64, np.full((3, 256), 1 << 14))   # every result saturates by << 2
    device.write_matrix(Buf.A, 0, 64, np.zeros((3, 256), dtype=np.int64))
    spill = instruction(Opcode.VEC, vec={"a": 1, "b": 0, "use_b": True, "out": 2, "epi": {
        "op": VecOp.ADD, "b_shift": 2, "counter": 1}})
    words = [_tensor(0, Buf.W, 0, 3, 256), _tensor(1, Buf.A, 0, 3, 256), _tensor(2, Buf.G, 0, 3, 256)]
    device.program([*words, *[spill] * 43, instruction(Opcode.END)])
    assert device.run(0)[0].name == "OK"
    assert device.counters[1].tolist() == [COUNT_MAX, COUNT_MAX]    # 43·768 results
    zero_counter = instruction(Opcode.VEC, vec={"a": 1, "b": 0, "use_b": True, "out": 2, "epi": {
        "op": VecOp.ADD, "b_shift": 2, "counter": 0}})
    read = _vec(3, 3, 0, read=True)
    assert _run(device, *words, zero_counter, _tensor(3, Buf.G, 200, 2, 1), read)[0].name == "OK"
    assert device.counters[0].tolist() == [0, 0]
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 200, 1, 2, 1), [[0], [0]])


def test_follow_moves_a_format_by_one_bit_within_its_bounds():
    program = compile_network(NET, SMALL)
    fmt = program.formats
    names = [c.name for c in program.counted]
    assert names == ["Z2", "Z1", "W1", "W2", "dZ1"]
    busy = {name: (0, 1) for name in names}     # the top bit used, nothing saturated: no move
    assert follow(program, busy, 10)[1] == []
    results = 6 * NET.batch * 10
    over = int(SATURATED * results) + 1
    formats, moves = follow(program, {**busy, "Z1": (over, over)}, 10)
    assert [(m.name, m.old, m.new) for m in moves] == [("Z1", fmt.a[0], fmt.a[0] - 1)]
    assert formats.a == (fmt.a[0] - 1,) and formats.w == fmt.w
    lo, hi = fmt.bounds(NET, "logits")
    at_bound = compile_network(NET, SMALL, formats=fmt.moved("logits", 0, lo))
    assert follow(at_bound, {**busy, "Z2": (results, results)}, 10)[1] == []
    idle = compile_network(NET, SMALL, formats=fmt.moved("dz", 0, 9))
    formats, moves = follow(idle, {**busy, "dZ1": (0, 0)}, 10)
    assert formats.dz == (10,) and "none of 240 results used the top bit" in str(moves[0])
    assert hi == fmt.logits


def test_a_move_the_program_cannot_follow_is_not_made():
    """8-bit weights at a low learning rate: one more fraction bit of dZ1 would put layer 1's SGD step
    below what the multiplier holds."""
    net = Network((8, 6, 3), hidden=Act.RELU, batch=4, learning_rate=0.005, weight_bits=8)
    program = compile_network(net, SMALL)
    assert program.formats.dz == (13,)
    with pytest.raises(ValueError, match="too small for the SGD multiplier"):
        compile_network(net, SMALL, formats=program.formats.moved("dz", 0, 14))
    tally = {c.name: (0, 1) for c in program.counted}
    assert follow(program, {**tally, "dZ1": (0, 0)}, 10) == (program.formats, [])


def test_tables_inputs_are_not_counted_and_infer_counts_nothing():
    program = compile_network(Network((8, 6, 3), hidden=Act.TANH, batch=4), SMALL)
    assert [c.name for c in program.counted] == ["Z2", "W1", "W2", "dZ1"]
    device = Device(SMALL)
    device.program(list(program.words))
    assert device.run(program.setup)[0].name == "OK"
    device.write_words(Buf.A, 0, np.full(SMALL.banks * SMALL.depth, 1 << 14))
    assert device.run(program.infer)[0].name == "OK"
    assert not device.counters.any()


def _data(n: int = 40) -> Dataset:
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 1, (3, 8))
    y = rng.integers(0, 3, n)
    return Dataset(3 * (centres[y] + rng.normal(0, 0.3, (n, 8))), y, 3)


def test_a_weight_format_moved_rescales_the_weights_on_the_device():
    with Driver.open("model", config=SMALL) as driver:
        chosen = Formats.choose(NET)
        trainer = Trainer(driver, NET, seed=3, formats=chosen.moved("w", 0, chosen.w[0] - 2))
        trainer.load(trainer.initial_weights())
        before = trainer.weights()
        moves = trainer.follow(steps=1)            # nothing ran: no result used a top bit
        assert ("W1", chosen.w[0] - 2, chosen.w[0] - 1) in [(m.name, m.old, m.new) for m in moves]
        after = trainer.weights()
        np.testing.assert_array_equal(after[0], before[0] << 1)
        np.testing.assert_array_equal(after[1], before[1])
        assert trainer.program.formats.w[0] == chosen.w[0] - 1


def _narrow(driver):
    """A trainer whose hidden layer starts two bits short of range: Z1 saturates until it moves."""
    chosen = Formats.choose(NET, _data().x)
    return Trainer(driver, NET, seed=3, formats=chosen.moved("a", 0, 14))


def test_a_narrow_format_grows_while_training_and_a_resume_is_exact(tmp_path):
    with Driver.open("model", config=SMALL) as driver:
        trainer, rng = _narrow(driver), np.random.default_rng(3)
        trainer.load(trainer.initial_weights())
        moves = [trainer.train_epoch(_data(), rng, epoch).moves for epoch in (1, 2, 3)]
        straight = trainer.weights()
    grown = [(m.old, m.new) for epoch in moves for m in epoch if m.name == "Z1"]
    assert grown[:2] == [(14, 13), (13, 12)], moves
    path = tmp_path / "run.npz"
    with Driver.open("model", config=SMALL) as driver:
        trainer, rng = _narrow(driver), np.random.default_rng(3)
        trainer.load(trainer.initial_weights())
        trainer.train_epoch(_data(), rng, 1)
        Checkpoint(NET, trainer.weights(), 1, 3, rng.bit_generator.state, trainer.program.formats).save(path)
    state = Checkpoint.load(path)
    assert state.formats.a == (13,)
    with Driver.open("model", config=SMALL) as driver:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.rng_state
        trainer = Trainer(driver, state.network, state.seed, state.formats)
        trainer.load(state.weights)
        for epoch in (2, 3):
            trainer.train_epoch(_data(), rng, epoch)
        resumed = trainer.weights()
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("old, new, raw, expected", [(12, 11, [5, 6, 7, -5], [2, 3, 4, -2]),
                                                     (11, 12, [3, -3, 20000], [6, -6, 32767])])
def test_rescale_rounds_to_nearest_even_and_saturates(old, new, raw, expected):
    np.testing.assert_array_equal(rescale(np.array(raw), old, new), expected)
