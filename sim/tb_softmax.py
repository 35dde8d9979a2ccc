"""cocotb testbench of :class:`hw.softmax.Softmax`, scored against :func:`sim.vector.softmax_groups`.

Parameters (from :func:`sim.runner.tb_params`): ``lanes``, ``max_rows``, ``groups`` and ``patience``
(idle cycles before a hang is declared, default 1000). Stimulus is seeded as in ``sim/tb_vector.py``;
``SEED=<run seed>`` replays a run (see ``sim/runner.py``).
"""

from __future__ import annotations

import cocotb
import numpy as np

from hw.numerics import ACT
from sim.runner import tb_params
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

    def group(self, rows: int) -> np.ndarray:
        """A random group: full-range values, a cluster, extremes only, or one repeated value."""
        rng, shape = self.rng, (rows, self.lanes)
        kind = rng.integers(0, 4)
        if kind == 0:
            return rng.integers(ACT.min, ACT.max + 1, shape)
        if kind == 1:
            centre = rng.integers(ACT.min, ACT.max + 1)
            return np.clip(centre + rng.integers(-4 * ACT.one, 4 * ACT.one, shape), ACT.min, ACT.max)
        if kind == 2:
            return rng.choice([ACT.min, ACT.max], shape)
        return np.full(shape, rng.integers(ACT.min, ACT.max + 1))

    async def run(self, groups: list[np.ndarray]) -> None:
        """Send ``groups`` back to back and check every output beat and the overflow count."""
        out, dropped = softmax_groups(groups, self.max_rows, ACT)
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
        self.dut._log.info("%d groups: %d answered (%d beats checked), %d dropped", len(groups),
                           len(out), sum(map(len, out)), dropped)


@cocotb.test()
async def test_groups(dut):
    """Groups of 1..max_rows beats, random and extreme values, with random stalls."""
    bench = SoftmaxBench(dut, await start(dut))
    rng = bench.rng
    for k in range(4):
        bench.source.p_idle, bench.sink.p_stall = [(0, 0), (0.5, 0), (0, 0.5), (0.3, 0.6)][k]
        groups = [bench.group(int(rng.integers(1, bench.max_rows + 1)))
                  for _ in range(tb_params().get("groups", 30))]
        groups.append(bench.group(bench.max_rows))
        await bench.run(groups)


@cocotb.test()
async def test_overflow(dut):
    """Groups longer than max_rows are consumed and dropped, pulsing overflow; others still work."""
    bench = SoftmaxBench(dut, await start(dut))
    rng = bench.rng
    bench.source.p_idle, bench.sink.p_stall = 0.2, 0.3
    lengths = [bench.max_rows + 1, 1, 2 * bench.max_rows + 3, bench.max_rows, bench.max_rows + 1,
               bench.max_rows + 2]
    lengths += [int(rng.integers(1, bench.max_rows + 4)) for _ in range(20)]
    await bench.run([bench.group(n) for n in lengths])
