"""cocotb testbench of :class:`hw.vector.VectorUnit`, scored against :class:`sim.vector.VectorModel`.

Parameters (from :func:`sim.runner.tb_params`): ``lanes``, ``acc_width``, ``physical_lanes`` (of the
unit, default ``lanes``), ``beats`` (per random batch), ``batches`` and ``stride`` (of the exhaustive
inputs, default 1). Stimulus comes from
``numpy.random.default_rng(cocotb.RANDOM_SEED)``, the per-test seed cocotb derives from the run's seed
(``COCOTB_RANDOM_SEED``, logged at the start and in a failure's results); ``SEED=<run seed> pytest
...`` replays a run (see ``sim/runner.py``).

The stream helpers here (:class:`Source`, :class:`Sink`, :class:`Scoreboard`, :func:`pump`,
:func:`pack`, :func:`unpack`) are shared with ``sim/tb_softmax.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hw.isa import Rounding, VecOp
from hw.numerics import ACT, SLOPE, Act
from hw.vector import VectorUnit
from sim.runner import tb_params
from sim.vector import VectorModel

__all__ = ["pack", "unpack", "Source", "Sink", "Scoreboard", "pump", "start"]


# -- stream helpers ------------------------------------------------------------------------------

def pack(fields) -> list[int]:
    """Pack beats into payload words: ``fields`` is a list of ``(values, width)`` from the LSB up,
    each ``values`` a ``(beats, n)`` integer matrix of ``n`` elements of ``width`` bits."""
    words = None
    offset = 0
    for values, width in fields:
        values = np.asarray(values, dtype=np.int64).reshape(len(values), -1)
        mask = (1 << width) - 1
        for column in values.T:
            part = [(int(v) & mask) << offset for v in column]
            words = part if words is None else [w | p for w, p in zip(words, part, strict=True)]
            offset += width
    return words


def unpack(word: int, width: int, count: int, offset: int = 0) -> list[int]:
    """``count`` signed ``width``-bit elements of ``word`` starting at bit ``offset``."""
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    out = []
    for k in range(count):
        v = (word >> (offset + k * width)) & mask
        out.append(v - (v & sign) * 2)
    return out


class Source:
    """Drives a stream input from a queue of payload words; ``valid`` idles with ``p_idle``."""

    def __init__(self, port, rng: np.random.Generator, p_idle: float = 0.0):
        self.valid, self.ready, self.payload = port("valid"), port("ready"), port("payload")
        self.rng, self.p_idle = rng, p_idle
        self.queue: deque[int] = deque()
        self.valid.value = 0

    def drive(self) -> None:
        if self.queue and (self.valid.value == 1 or self.rng.random() >= self.p_idle):
            self.payload.value = self.queue[0]
            self.valid.value = 1
        else:
            self.valid.value = 0

    def sample(self) -> None:
        if self.valid.value == 1 and self.ready.value == 1:
            self.queue.popleft()


class Sink:
    """Accepts a stream output, stalling ``ready`` with ``p_stall``; hands each word to ``take``."""

    def __init__(self, port, rng: np.random.Generator, take: Callable[[int], None],
                 p_stall: float = 0.0):
        self.valid, self.ready, self.payload = port("valid"), port("ready"), port("payload")
        self.rng, self.take, self.p_stall = rng, take, p_stall
        self.count = 0
        self.ready.value = 0

    def drive(self) -> None:
        self.ready.value = int(self.rng.random() >= self.p_stall)

    def sample(self) -> None:
        if self.valid.value == 1 and self.ready.value == 1:
            self.count += 1
            self.take(self.payload.value.to_unsigned())


class Scoreboard:
    """Compares observed items with the model's predictions, in order, item by item."""

    def __init__(self, name: str):
        self.name = name
        self.expected: deque = deque()
        self.compared = 0

    def expect(self, items) -> None:
        self.expected.extend(items)

    def compare(self, observed) -> None:
        assert self.expected, f"{self.name}: unexpected item {observed}"
        expected = self.expected.popleft()
        assert observed == expected, \
            f"{self.name} item {self.compared}: expected {expected}, observed {observed}"
        self.compared += 1

    def check_done(self) -> None:
        assert not self.expected, f"{self.name}: {len(self.expected)} item(s) never arrived"


async def pump(clk, parts, done: Callable[[], bool], patience: int = 1000) -> None:
    """Clock ``parts`` (sources and sinks) until ``done()``; fail after ``patience`` idle cycles."""
    idle, progress = 0, None
    while not done():
        await RisingEdge(clk)
        for part in parts:
            part.drive()
        await ReadOnly()
        for part in parts:
            part.sample()
        state = tuple(getattr(p, "count", None) or len(getattr(p, "queue", ())) for p in parts)
        idle = idle + 1 if state == progress else 0
        progress = state
        assert idle < patience, f"no transfer for {patience} cycles: the design hangs"
    await RisingEdge(clk)


async def start(dut) -> np.random.Generator:
    """Start the clock, reset the design and return the test's seeded generator."""
    seed = cocotb.RANDOM_SEED
    dut._log.info("random seed %d: cocotb derives it from the test name and the run's seed N "
                  "(logged as 'Seeding Python random module with N'); replay with SEED=N", seed)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    return np.random.default_rng(seed)


# -- the vector unit bench -----------------------------------------------------------------------

class VectorBench:
    """The unit with a source, a sink, the model and a scoreboard of ``(y lanes, saturated, high,
    last)`` items (the flags as one bit per lane)."""

    def __init__(self, dut, rng: np.random.Generator, lanes: int, acc_width: int):
        self.dut, self.lanes, self.acc_width, self.bits = dut, lanes, acc_width, ACT.bits
        self.model = VectorModel(lanes, ACT)
        self.board = Scoreboard("vector")
        self.source = Source(lambda n: getattr(dut, f"i__{n}"), rng)
        self.sink = Sink(lambda n: getattr(dut, f"o__{n}"), rng, self.observe)

    def decode(self, word: int):
        flags = word >> (self.lanes * self.bits)
        mask = (1 << self.lanes) - 1
        return (tuple(unpack(word, self.bits, self.lanes)), flags & mask, (flags >> self.lanes) & mask,
                (flags >> (2 * self.lanes)) & 1)

    def observe(self, word: int) -> None:
        self.board.compare(self.decode(word))

    async def reseed(self, seed: int) -> None:
        self.dut.seed.value = seed
        self.dut.seed_load.value = 1
        await RisingEdge(self.dut.clk)
        self.dut.seed_load.value = 0
        self.model.seed(seed)

    async def batch(self, a, b, last=None, *, op=VecOp.ADD, b_shift=0, shift=0,
                    round=Rounding.NEAREST_EVEN, act=Act.IDENTITY, deriv=False, slope=0, scale=0):
        """Send the beats ``a``, ``b`` with one configuration and check every result."""
        dut = self.dut
        last = np.zeros(len(a), dtype=np.int64) if last is None else last
        for name, value in [("op", op.value), ("b_shift", b_shift), ("shift", shift),
                            ("round", round.value), ("act", int(act)), ("deriv", int(deriv)),
                            ("slope", slope), ("scale", scale)]:
            getattr(dut, name).value = value
        y, saturated, high = self.model.run(a, b, op=op, b_shift=b_shift, shift=shift, round=round,
                                            act=act, deriv=deriv, slope=slope, scale=scale)
        weights = 1 << np.arange(self.lanes)
        self.board.expect(zip(map(tuple, y.tolist()), (saturated @ weights).tolist(),
                              (high @ weights).tolist(), last.tolist(), strict=True))
        self.source.queue.extend(pack([(a, self.acc_width), (b, self.bits), (last, 1)]))
        await pump(dut.clk, [self.source, self.sink], lambda: not self.board.expected)
        return y


def _bench(dut, rng) -> VectorBench:
    p = tb_params()
    return VectorBench(dut, rng, p.get("lanes", 4), p.get("acc_width", 40))


def _slopes() -> list[int]:
    return [int(SLOPE.quantize(s)) for s in (0.01, 0.3, -1.5)]


@cocotb.test()
async def test_activations_exhaustive(dut):
    """Every g and g' on all 2**16 inputs (every ``stride``-th and the largest), bit-exact (leaky ReLU
    with three slopes)."""
    bench = _bench(dut, await start(dut))
    x = np.arange(ACT.min, ACT.max + 1, tb_params().get("stride", 1), dtype=np.int64)
    x = np.append(x, [ACT.max] * (-len(x) % bench.lanes)).reshape(-1, bench.lanes)
    configs = [(act, 0) for act in Act if act != Act.LEAKY_RELU]
    configs += [(Act.LEAKY_RELU, s) for s in _slopes()]
    for act, slope in configs:
        for deriv in (False, True):
            dut._log.info("%s%s slope %d", act.name, "'" if deriv else "", slope)
            y = await bench.batch(x, np.zeros_like(x), act=act, deriv=deriv, slope=slope)
            if act == Act.LEAKY_RELU and slope < -SLOPE.one and not deriv:
                assert (y == ACT.max).any(), "the leaky slope never saturated the output"
    bench.board.check_done()


def _operands(rng, beats: int, lanes: int, acc_width: int, bits: int):
    """Random ``a``, ``b`` of random magnitude, a tenth of them at the extremes of their range."""
    magnitude = int(rng.integers(1, acc_width))
    a = rng.integers(-(1 << magnitude), 1 << magnitude, (beats, lanes))
    b = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (beats, lanes))
    for v, w in ((a, acc_width), (b, bits)):
        pick = rng.random(v.shape) < 0.1
        v[pick] = rng.choice([-(1 << (w - 1)), (1 << (w - 1)) - 1], pick.sum())
    return a, b


@cocotb.test()
async def test_random_ops(dut):
    """ADD/SUB/MUL/SGD with random shifts, both roundings, reseeds, activations and stalls."""
    rng = await start(dut)
    bench = _bench(dut, rng)
    p = tb_params()
    lanes, acc_width, bits = bench.lanes, bench.acc_width, bench.bits
    saturated = set()
    for k in range(p.get("batches", 48)):
        op, round = VecOp(k % 4), Rounding(k // 4 % 2)
        if k % 7 == 6:
            await bench.reseed(int(rng.integers(0, 1 << 32)))
        bench.source.p_idle, bench.sink.p_stall = rng.choice([0.0, 0.3, 0.7], 2)
        a, b = _operands(rng, p.get("beats", 300), lanes, acc_width, bits)
        b_shift = int(rng.integers(0, 32))
        # The first eight batches (every op and rounding) shift little enough that the extreme a
        # saturate; later ones range over every shift.
        shift = int(rng.integers(0, acc_width - bits if k < 8 else 63))
        scale = int(rng.integers(-(1 << 15), 1 << 15))
        act, deriv, slope = Act.IDENTITY, False, 0
        if k >= 16:
            act, deriv = Act(int(rng.integers(0, len(Act)))), bool(rng.integers(0, 2))
            slope = int(rng.integers(SLOPE.min, SLOPE.max + 1))
        # The floor of t / 2**shift, which either rounding raises by at most one.
        floor = VectorModel.combine(a, b, op, b_shift, scale) >> shift
        if act == Act.IDENTITY and not deriv:
            saturated |= {(op, round, "max")} if (floor > ACT.max).any() else set()
            saturated |= {(op, round, "min")} if (floor + 1 < ACT.min).any() else set()
        last = (rng.random(len(a)) < 0.1).astype(np.int64)
        dut._log.info("batch %d: %s %s b_shift %d shift %d %s%s", k, op.name, round.name,
                      b_shift, shift, act.name, "'" if deriv else "")
        await bench.batch(a, b, last, op=op, b_shift=b_shift, shift=shift, round=round, act=act,
                          deriv=deriv, slope=slope, scale=scale)
    bench.board.check_done()
    missing = {(op, r, s) for op in VecOp for r in Rounding for s in ("max", "min")} - saturated
    assert not missing, f"stimulus never saturated: {sorted(missing, key=str)}"


@cocotb.test()
async def test_latency(dut):
    """A beat offered in cycle 0 to an idle unit is valid at the output in cycle ``latency``; the
    unit takes it on the cycle of its last slice."""
    await start(dut)
    p = tb_params()
    latency = VectorUnit.LATENCY + p.get("lanes", 4) // p.get("physical_lanes", p.get("lanes", 4)) - 1
    for name in ("op", "act", "deriv"):  # ADD, identity: no step waits for a serial multiplier
        getattr(dut, name).value = 0
    dut.o__ready.value = 1
    dut.i__payload.value = 0
    dut.i__valid.value = 1
    slices = latency - VectorUnit.LATENCY + 1
    cycle, taken = 0, None
    while cycle < 4 * latency:
        await ReadOnly()
        if taken is None and dut.i__ready.value == 1:
            taken = cycle
        if dut.o__valid.value == 1:
            break
        await RisingEdge(dut.clk)
        if taken is not None:
            dut.i__valid.value = 0
        cycle += 1
    assert taken == slices - 1, f"taken in cycle {taken}, with its last slice in cycle {slices - 1}"
    assert cycle == latency, f"latency {cycle}, documented {latency}"


@cocotb.test()
async def test_rounding_ties(dut):
    """Exact ties between two outputs, for shifts 1..15: nearest-even picks the even one."""
    rng = await start(dut)
    bench = _bench(dut, rng)
    for shift in range(1, 16):
        half = 1 << (shift - 1)
        a = (2 * rng.integers(-(1 << 14), 1 << 14, (50, bench.lanes)) + 1) * half
        await bench.batch(a, np.zeros_like(a), shift=shift)
        await bench.batch(a >> shift - 1, np.ones_like(a) * half, op=VecOp.MUL, shift=shift)
    bench.board.check_done()


@cocotb.test()
async def test_scoreboard_catches_flip(dut):
    """A single flipped output bit makes the scoreboard fail."""
    rng = await start(dut)
    bench = _bench(dut, rng)
    flip = int(rng.integers(0, bench.lanes * (bench.bits + 2)))  # y or a flag
    victim = 17
    seen = bench.sink.take

    def corrupt(word: int) -> None:
        seen(word ^ (1 << flip) if bench.sink.count == victim + 1 else word)

    bench.sink.take = corrupt
    a, b = _operands(rng, 40, bench.lanes, bench.acc_width, bench.bits)
    try:
        await bench.batch(a, b, op=VecOp.MUL, shift=20)
    except AssertionError as error:
        assert f"item {victim}:" in str(error), error
        dut._log.info("caught as expected: %s", error)
    else:
        raise AssertionError("the scoreboard missed a flipped bit")
