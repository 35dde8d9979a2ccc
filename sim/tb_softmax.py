"""cocotb testbench of :class:`hw.softmax.Softmax`, scored against :func:`sim.vector.softmax_groups`.

Parameters (from :func:`sim.runner.tb_params`): ``lanes``, ``physical_lanes`` (of the unit, default
``lanes``), ``serial`` (the unit multiplies serially: no ``test_latency``), ``max_rows``, ``groups``,
``patience`` (idle cycles before a hang is declared, default 1000) and ``shift`` (the input shift of
every run; by default each run picks one, and ``test_groups`` covers 0, the largest and two
between). The shift holds through a run and changes only between runs, while the unit is idle.
Stimulus is seeded as in ``sim/tb_vector.py``; ``SEED=<run seed>`` replays a run (see
``sim/runner.py``).
"""

from __future__ import annotations

import cocotb
import numpy as np

from hw.isa import SOFTMAX_SHIFT_MAX
from hw.numerics import ACT, exp_table
from sim.runner import tb_params
from sim.streams import transfer_cycles
from sim.tb_vector import Scoreboard, Sink, Source, pack, pump, start, unpack
from sim.vector import softmax_groups


class Pulses:
    """Counts the cycles a 1-bit output is high (a part for :func:`sim.tb_vector.pump`)."""

    def __init__(self, signal):
        self.signal, self.count = signal, 0

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        self.count += self.signal.value == 1


class SoftmaxBench:
    """The unit with a source, a sink, an overflow counter and a scoreboard of beats."""

    def __init__(self, dut, rng: np.random.Generator):
        p = tb_params()
        self.dut, self.rng = dut, rng
        self.lanes, self.max_rows = p.get("lanes", 4), p.get("max_rows", 8)
        self.board = Scoreboard("softmax")
        self.source = Source(lambda n: getattr(dut, f"i__{n}"), rng)
        self.sink = Sink(lambda n: getattr(dut, f"o__{n}"), rng, self.observe)
        self.overflows = Pulses(dut.overflow)

    def observe(self, word: int) -> None:
        bits = ACT.bits
        self.board.compare((tuple(unpack(word, bits, self.lanes)),
                            (word >> (self.lanes * bits)) & 1))

    def shifts(self, n: int) -> list[int]:
        """The input shifts of ``n`` runs: the ``shift`` parameter, or random ones."""
        fixed = tb_params().get("shift")
        if fixed is not None:
            return [fixed] * n
        return [int(s) for s in self.rng.integers(0, SOFTMAX_SHIFT_MAX + 1, n)]

    def group(self, rows: int, shift: int = 0) -> np.ndarray:
        """A random group: full-range values, a cluster, extremes only, one repeated value, or values
        whose ``(x - max) << shift`` lies about the exp table's low end (either side, or on it)."""
        rng, shape = self.rng, (rows, self.lanes)
        kind = rng.integers(0, 5)
        if kind == 0:
            return rng.integers(ACT.min, ACT.max + 1, shape)
        if kind == 1:
            centre = rng.integers(ACT.min, ACT.max + 1)
            return np.clip(centre + rng.integers(-4 * ACT.one, 4 * ACT.one, shape), ACT.min, ACT.max)
        if kind == 2:
            return rng.choice([ACT.min, ACT.max], shape)
        if kind == 3:
            return np.full(shape, rng.integers(ACT.min, ACT.max + 1))
        edge = -(-exp_table(ACT).lo >> shift)  # the least x - max whose d is not below the table
        top = rng.integers(ACT.min - edge + 3, ACT.max + 1)
        x = np.clip(top + edge + rng.integers(-3, 4, shape), ACT.min, top)
        x[rng.integers(0, rows)] = top  # each lane's maximum
        return x

    async def run(self, groups: list[np.ndarray], shift: int = 0, model_shift: int | None = None) -> None:
        """With the input shift ``shift``, send ``groups`` back to back and check every output beat
        and the overflow count against the model at ``model_shift`` (default ``shift``). The unit is
        idle (or reset) when this starts and when it returns."""
        self.dut.shift.value = shift
        model_shift = shift if model_shift is None else model_shift
        out, dropped = softmax_groups(groups, self.max_rows, ACT, model_shift)
        for y in out:
            last = np.zeros(len(y), dtype=np.int64)
            last[-1] = 1
            self.board.expect(zip(map(tuple, y.tolist()), last.tolist(), strict=True))
        for x in groups:
            last = np.zeros(len(x), dtype=np.int64)
            last[-1] = 1
            self.source.queue.extend(pack([(x, ACT.bits), (last, 1)]))
        expected = self.overflows.count + dropped
        await pump(self.dut.clk, [self.source, self.sink, self.overflows],
                   lambda: not self.board.expected and not self.source.queue
                   and self.overflows.count >= expected, tb_params().get("patience", 1000))
        self.board.check_done()
        assert self.overflows.count == expected, \
            f"overflow pulsed {self.overflows.count} times, expected {expected}"
        self.dut._log.info("%d groups at shift %d: %d answered (%d beats checked), %d dropped",
                           len(groups), shift, len(out), sum(map(len, out)), dropped)


@cocotb.test()
async def test_groups(dut):
    """Groups of 1..max_rows beats, random and extreme values, with random stalls (the last run's
    long enough to hold the pipeline for whole steps), at input shifts 0, the largest and three
    between (or the ``shift`` parameter's), changed between runs."""
    bench = SoftmaxBench(dut, await start(dut))
    rng = bench.rng
    stalls = [(0, 0), (0.5, 0), (0, 0.5), (0.3, 0.6), (0.1, 0.95)]
    shifts = [0, SOFTMAX_SHIFT_MAX, *(int(s) for s in rng.integers(1, SOFTMAX_SHIFT_MAX, len(stalls) - 2))]
    if tb_params().get("shift") is not None:
        shifts = bench.shifts(len(shifts))
    for (idle, stall), shift in zip(stalls, shifts, strict=True):
        bench.source.p_idle, bench.sink.p_stall = idle, stall
        groups = [bench.group(int(rng.integers(1, bench.max_rows + 1)), shift)
                  for _ in range(tb_params().get("groups", 30))]
        groups.append(bench.group(bench.max_rows, shift))
        await bench.run(groups, shift)


@cocotb.test()
async def test_overflow(dut):
    """Groups longer than max_rows are consumed and dropped, pulsing overflow; others still work."""
    bench = SoftmaxBench(dut, await start(dut))
    rng = bench.rng
    bench.source.p_idle, bench.sink.p_stall = 0.2, 0.3
    lengths = [bench.max_rows + 1, 1, 2 * bench.max_rows + 3, bench.max_rows, bench.max_rows + 1,
               bench.max_rows + 2]
    lengths += [int(rng.integers(1, bench.max_rows + 4)) for _ in range(20)]
    shift = bench.shifts(1)[0]
    await bench.run([bench.group(n, shift) for n in lengths], shift)


@cocotb.test()
async def scoreboard_bites(dut):
    """The model at another input shift than the unit's is caught: the scoreboard sees the shift."""
    bench = SoftmaxBench(dut, await start(dut))
    rng = bench.rng
    shift = int(rng.integers(0, SOFTMAX_SHIFT_MAX))
    span = -exp_table(ACT).lo >> (shift + 1)  # (x - max) << (shift + 1) stays in the table
    top = int(rng.integers(ACT.min + span, ACT.max + 1))
    groups = [top - rng.integers(0, span, (bench.max_rows, bench.lanes)) for _ in range(3)]
    try:
        await bench.run(groups, shift, model_shift=shift + 1)
    except AssertionError as error:
        dut._log.info("caught as expected: %s", error)
    else:
        raise AssertionError(f"the scoreboard missed a unit at shift {shift} scored at {shift + 1}")


@cocotb.skipif(tb_params().get("serial", False), reason="serial multipliers step once per product")
@cocotb.test()
async def test_latency(dut):
    """A group of n beats offered to an idle unit: its beats transfer in cycles 0, S, …, (n - 1)·S,
    S = lanes / physical_lanes, and its results leave a beat per S cycles from cycle 2·n·S + 18·S + 13:
    the last beat's slices are picked by cycle n·S, then exp takes n·S + 6 cycles, reciprocal 17·S and
    output S + 6 to its first beat."""
    await start(dut)
    p = tb_params()
    lanes = p.get("lanes", 4)
    slices = lanes // p.get("physical_lanes", lanes)
    rows = min(3, p.get("max_rows", 8))
    last = np.zeros(rows, dtype=np.int64)
    last[-1] = 1
    words = pack([(np.arange(rows * lanes).reshape(rows, lanes), ACT.bits), (last, 1)])
    dut.shift.value = 0
    first = 2 * rows * slices + 18 * slices + 13
    taken, outputs = await transfer_cycles(dut, first + rows * slices + 10,
                                           lambda n: words[n] if n < rows else None)
    assert taken == list(range(0, rows * slices, slices)), f"beats taken in cycles {taken}"
    expected = list(range(first, first + rows * slices, slices))
    assert outputs == expected, f"results in cycles {outputs}, expected {expected}"
