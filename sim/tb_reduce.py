"""cocotb testbench of :class:`hw.reduce.Reduce`, scored against :func:`sim.reduce.reduce_groups`.

Parameters (from :func:`sim.runner.tb_params`): ``lanes``, ``physical_lanes`` (of the unit, default
``lanes``), ``max_rows``, ``groups`` (per random batch) and ``stride`` (of the LOSS sweep, default 1:
every value). Stimulus is seeded as in ``sim/tb_vector.py``; ``SEED=<run seed>`` replays a run (see
``sim/runner.py``).
"""

from __future__ import annotations

from collections import deque

import cocotb
import numpy as np

from hw.isa import ReduceOp
from hw.numerics import ACT
from hw.reduce import Reduce
from sim.reduce import reduce_groups
from sim.runner import tb_params
from sim.streams import transfer_cycles
from sim.tb_vector import Scoreboard, Sink, Source, pack, pump, start, unpack

BITS = ACT.bits


class GroupSource(Source):
    """A :class:`Source` that also drives ``op``: the operation of the beat at the queue's head."""

    def __init__(self, dut, rng: np.random.Generator):
        super().__init__(lambda n: getattr(dut, f"i__{n}"), rng)
        self.op = dut.op
        self.ops: deque[int] = deque()

    def drive(self) -> None:
        super().drive()
        if self.ops:
            self.op.value = self.ops[0]

    def sample(self) -> None:
        if self.valid.value == 1 and self.ready.value == 1:
            self.ops.popleft()
        super().sample()


class Holds:
    """Checks that a stalled output keeps ``valid`` high and its payload stable until the transfer."""

    def __init__(self, port):
        self.valid, self.ready, self.payload = port("valid"), port("ready"), port("payload")
        self.stalled: int | None = None

    def drive(self) -> None:
        pass

    def sample(self) -> None:
        valid = self.valid.value == 1
        if self.stalled is not None:
            assert valid and self.payload.value.to_unsigned() == self.stalled, \
                "o dropped valid or changed its payload while stalled"
        self.stalled = self.payload.value.to_unsigned() if valid and self.ready.value == 0 else None


class ReduceBench:
    """The unit with a source, a sink, a hold checker and a scoreboard of result beats."""

    def __init__(self, dut, rng: np.random.Generator):
        p = tb_params()
        self.dut, self.rng = dut, rng
        self.lanes, self.max_rows = p.get("lanes", 8), p.get("max_rows", 10)
        self.board = Scoreboard("reduce")
        self.source = GroupSource(dut, rng)
        self.sink = Sink(lambda n: getattr(dut, f"o__{n}"), rng, self.observe)
        self.holds = Holds(lambda n: getattr(dut, f"o__{n}"))

    def observe(self, word: int) -> None:
        self.board.compare(tuple(unpack(word, BITS, self.lanes)))

    def values(self, rows: int) -> np.ndarray:
        """Random ``a`` or ``y``: full range, a few values (ties), the extremes of p, or constant."""
        rng, shape = self.rng, (rows, self.lanes)
        kind = rng.integers(0, 4)
        if kind == 0:
            return rng.integers(ACT.min, ACT.max + 1, shape)
        if kind == 1:
            return rng.choice(rng.integers(ACT.min, ACT.max + 1, 3), shape)
        if kind == 2:
            return rng.choice([ACT.min, -1, 0, 1, 2, ACT.one // 2, ACT.one - 1, ACT.one, ACT.max],
                              shape)
        return np.full(shape, rng.integers(ACT.min, ACT.max + 1))

    def labels(self, rows: int) -> np.ndarray:
        """Random ``y``: one-hot (of ``ACT.one`` or 1), near ``ACT.one / 2`` (binary), or any values."""
        rng = self.rng
        kind = rng.integers(0, 3)
        if kind == 0:
            y = np.zeros((rows, self.lanes), dtype=np.int64)
            y[rng.integers(0, rows, self.lanes), np.arange(self.lanes)] = rng.choice([1, ACT.one])
            return y
        if kind == 1:
            return ACT.one // 2 + rng.integers(-2, 2, (rows, self.lanes))
        return self.values(rows)

    async def run(self, ops, groups_a, groups_y) -> np.ndarray:
        """Send the groups back to back (``ops[k]`` for group ``k``) and check every result beat."""
        expected = reduce_groups(ops, groups_a, groups_y, ACT, self.max_rows)
        self.board.expect(map(tuple, expected.tolist()))
        for op, a, y in zip(ops, groups_a, groups_y, strict=True):
            last = np.zeros(len(a), dtype=np.int64)
            last[-1] = 1
            self.source.queue.extend(pack([(a, BITS), (y, BITS), (last, 1)]))
            self.source.ops.extend([op.value] * len(a))
        await pump(self.dut.clk, [self.source, self.sink, self.holds],
                   lambda: not self.board.expected and not self.source.queue)
        self.board.check_done()
        self.dut._log.info("%d groups of %d beats checked", len(groups_a), sum(map(len, groups_a)))
        return expected


@cocotb.test()
async def test_groups(dut):
    """Groups of 1..max_rows beats, both ops mixed, one-hot and arbitrary labels, random stalls."""
    bench = ReduceBench(dut, await start(dut))
    rng = bench.rng
    seen = set()
    for k in range(4):
        bench.source.p_idle, bench.sink.p_stall = [(0, 0), (0.5, 0), (0, 0.5), (0.3, 0.6)][k]
        n = tb_params().get("groups", 60)
        rows = [int(r) for r in rng.integers(1, bench.max_rows + 1, n)] + [bench.max_rows]
        ops = [ReduceOp(int(b)) for b in rng.integers(0, 2, len(rows))]
        groups_a = [bench.values(r) for r in rows]
        groups_y = [bench.labels(r) for r in rows]
        out = await bench.run(ops, groups_a, groups_y)
        for op, r, beat in zip(ops, rows, out, strict=True):
            seen |= {(op, r == 1, v == ACT.max) for v in beat.tolist()}
    wanted = {(op, binary, False) for op in ReduceOp for binary in (False, True)}
    missing = (wanted | {(ReduceOp.LOSS, False, True), (ReduceOp.LOSS, True, True)}) - seen
    assert not missing, f"never covered (op, binary, saturated): {sorted(missing, key=str)}"


@cocotb.test()
async def test_long_groups(dut):
    """Groups longer than max_rows: the ARGMAX row saturates at max_rows - 1, the LOSS stays exact."""
    bench = ReduceBench(dut, await start(dut))
    rng = bench.rng
    bench.source.p_idle, bench.sink.p_stall = 0.2, 0.3
    rows = [bench.max_rows + 1, 2 * bench.max_rows + 3, 1, bench.max_rows, bench.max_rows + 2]
    rows += [int(r) for r in rng.integers(1, 3 * bench.max_rows, 20)]
    groups_a, groups_y, ops = [], [], []
    for r in rows:
        for op in ReduceOp:
            a, y = bench.values(r), bench.labels(r)
            a[-1], y[-1] = ACT.max, ACT.max  # the largest value in the last row, past max_rows
            groups_a.append(a)
            groups_y.append(y)
            ops.append(op)
    out = await bench.run(ops, groups_a, groups_y)
    capped = [o == ReduceOp.ARGMAX and len(a) > bench.max_rows
              for o, a in zip(ops, groups_a, strict=True)]
    assert (out[capped] == bench.max_rows - 1).any(), "no ARGMAX row saturated"


@cocotb.test()
async def test_loss_exhaustive(dut):
    """LOSS of every p in [-2**15, 2**15) as one-beat binary groups, labelled 1 and then 0; with the
    parameter ``stride`` of every ``stride``-th p and both ends (a unit whose lanes take turns through
    one physical lane runs the same arithmetic as a full one, swept whole by another run)."""
    bench = ReduceBench(dut, await start(dut))
    stride = tb_params().get("stride", 1)
    p = np.unique(np.r_[np.arange(ACT.min, ACT.max + 1, stride), ACT.max - np.arange(bench.lanes)])
    a = np.resize(p, -(-len(p) // bench.lanes) * bench.lanes).reshape(-1, bench.lanes)
    for label in (ACT.one, 0):
        groups_a = list(a[:, None, :])
        groups_y = [np.full((1, bench.lanes), label)] * len(groups_a)
        dut._log.info("y = %d", label)
        await bench.run([ReduceOp.LOSS] * len(groups_a), groups_a, groups_y)


@cocotb.test()
async def test_latency(dut):
    """One-beat ARGMAX groups flow one per S cycles, S = lanes / physical_lanes, from cycle 0; a
    group's result leaves S - 1 + LATENCY cycles after its beat."""
    await start(dut)
    p = tb_params()
    lanes = p.get("lanes", 8)
    slices = lanes // p.get("physical_lanes", lanes)
    groups = 20
    dut.op.value = ReduceOp.ARGMAX.value
    word = pack([(np.zeros((1, lanes)), BITS), (np.zeros((1, lanes)), BITS), (np.ones(1), 1)])[0]
    taken, outputs = await transfer_cycles(dut, slices * groups + 4 * Reduce.LATENCY,
                                           lambda n: word if n < groups else None)
    assert taken == list(range(0, slices * groups, slices)), f"groups taken in cycles {taken}"
    expected = [t + slices - 1 + Reduce.LATENCY for t in taken]
    assert outputs == expected, f"results in cycles {outputs}, expected {expected}"


@cocotb.test()
async def test_scoreboard_catches_flip(dut):
    """A single flipped output bit makes the scoreboard fail."""
    bench = ReduceBench(dut, await start(dut))
    rng = bench.rng
    flip = int(rng.integers(0, bench.lanes * BITS))
    victim = 7
    seen = bench.sink.take

    def corrupt(word: int) -> None:
        seen(word ^ (1 << flip) if bench.sink.count == victim + 1 else word)

    bench.sink.take = corrupt
    rows = [int(r) for r in rng.integers(1, bench.max_rows + 1, 12)]
    try:
        await bench.run([ReduceOp.LOSS] * len(rows), [bench.values(r) for r in rows],
                        [bench.labels(r) for r in rows])
    except AssertionError as error:
        assert f"item {victim}:" in str(error), error
        dut._log.info("caught as expected: %s", error)
    else:
        raise AssertionError("the scoreboard missed a flipped bit")
