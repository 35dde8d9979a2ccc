# amaranth: UnusedElaboratable=no
"""The reduction unit against its golden model (cocotb on Verilator), the model itself, and the
unit's parameter checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hw import reduce
from hw.isa import ReduceOp
from hw.numerics import ACT, Fixed
from hw.reduce import Reduce
from sim.reduce import reduce_group, reduce_groups
from sim.runner import run


@pytest.mark.sim
def test_reduce():
    run(Reduce(lanes=8, max_rows=10), "reduce_l8", "sim.tb_reduce", {"lanes": 8, "max_rows": 10})


@pytest.mark.sim
def test_reduce_on_one_physical_lane():
    run(Reduce(lanes=4, max_rows=10, physical_lanes=1), "reduce_l4p1", "sim.tb_reduce",
        {"lanes": 4, "max_rows": 10, "physical_lanes": 1, "stride": 7})


def _wrapping(value, shift, bits):
    """A wrong requantiser (of ``shift`` 0, as the unit uses it): it wraps instead of saturating."""
    return Value.cast(value)[:bits].as_signed()


@pytest.mark.sim
def test_wrong_saturation_fails(monkeypatch):
    """A loss that wraps instead of saturating, in the RTL alone, fails the exhaustive check."""
    monkeypatch.setattr(reduce, "requantize_hdl", _wrapping)
    with pytest.raises(AssertionError, match="cocotb tests of sim.tb_reduce failed") as failure:
        run(Reduce(lanes=8, max_rows=10), "reduce_mutant", "sim.tb_reduce",
            {"lanes": 8, "max_rows": 10}, testcase="test_loss_exhaustive")
    results = Path(str(failure.value).rsplit("see ", 1)[1])
    assert "reduce item" in results.read_text(), "the mutant failed, but not on a mismatch"


def test_model_argmax_first_on_ties_and_saturated():
    a = np.array([[1, 5, 0], [7, 5, 0], [7, 2, 0], [3, 9, 0]])
    assert reduce_group(ReduceOp.ARGMAX, a, np.zeros_like(a)).tolist() == [1, 3, 0]
    assert reduce_group(ReduceOp.ARGMAX, a, np.zeros_like(a), max_rows=3).tolist() == [1, 2, 0]


def test_model_loss_picks_the_hot_row():
    a = np.array([[ACT.one // 2, ACT.one // 4], [ACT.one // 4, ACT.one // 2]])
    y = np.array([[ACT.one, 0], [0, 3]])
    loss = reduce_group(ReduceOp.LOSS, a, y) / ACT.one
    assert loss == pytest.approx([math.log(2), math.log(2)], abs=2 / ACT.one)


def test_model_binary_loss():
    quarter = ACT.one // 4
    a = np.array([[quarter, quarter, quarter, -ACT.one, ACT.min]])
    y = np.array([[ACT.one, ACT.one // 2, ACT.one // 2 - 1, 0, 0]])
    loss = reduce_group(ReduceOp.LOSS, a, y) / ACT.one
    # 1 - a saturates for a = ACT.min; a = -1.0 gives p = 2.0, a negative loss.
    expected = [math.log(4), math.log(4), -math.log(0.75), -math.log(2), -math.log(ACT.max / ACT.one)]
    assert loss == pytest.approx(expected, abs=2 / ACT.one)


def test_model_loss_saturates():
    a = np.array([[0, -5, 1, ACT.one]])
    assert reduce_group(ReduceOp.LOSS, a, np.full_like(a, ACT.one)).tolist() == [ACT.max] * 3 + [0]


def test_model_groups():
    groups = [np.array([[1, 2]]), np.array([[0, 3], [4, 1]])]
    out = reduce_groups([ReduceOp.ARGMAX, ReduceOp.ARGMAX], groups, groups)
    assert out.tolist() == [[0, 0], [1, 0]]
    with pytest.raises(ValueError, match="2 groups of a and 1 of y"):
        reduce_groups(ReduceOp.LOSS, groups, groups[:1])
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        reduce_group(ReduceOp.LOSS, np.zeros((0, 2)), np.zeros((0, 2)))


@pytest.mark.parametrize("kwargs, bad", [
    ({"lanes": 0}, "0"), ({"max_rows": 0}, "0"), ({"fmt": Fixed(18, 12)}, "18"),
    ({"max_rows": 129, "fmt": Fixed(8, 4)}, "129"), ({"fmt": "ACT"}, "ACT"),
    ({"lanes": 4, "physical_lanes": 3}, "3"),
])
def test_bad_parameters(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Reduce(**kwargs)


@pytest.mark.parametrize("kwargs", [{"lanes": 1, "max_rows": 1}, {"max_rows": 128, "fmt": Fixed(8, 4)}])
def test_edge_parameters_elaborate(kwargs):
    assert "module reduce" in verilog.convert(Reduce(**kwargs), name="reduce")


@pytest.mark.parametrize("fmt", [Fixed(12, 8), Fixed(17, 15), Fixed(16, 0)])
def test_other_formats(fmt):
    """Every p of a narrow format, or random ones of others, as binary LOSS groups (Python sim)."""
    lanes = 64
    rng = np.random.default_rng(1)
    count = min(1 << fmt.bits, 16 * lanes)
    a = np.arange(fmt.min, fmt.min + count) if count == 1 << fmt.bits else \
        rng.integers(fmt.min, fmt.max + 1, count)
    a = a.reshape(-1, lanes)
    y = rng.choice([0, fmt.one // 2, fmt.max], a.shape)
    dut = Reduce(lanes=lanes, max_rows=4, fmt=fmt)
    expected = reduce_groups(ReduceOp.LOSS, list(a[:, None]), list(y[:, None]), fmt)
    observed = []

    async def source(ctx):
        ctx.set(dut.op, ReduceOp.LOSS)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload.last, 1)
        for beat_a, beat_y in zip(a, y, strict=True):
            ctx.set(dut.i.payload.a, beat_a.tolist())
            ctx.set(dut.i.payload.y, beat_y.tolist())
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        while len(observed) < len(a):
            await ctx.tick()
            if ctx.get(dut.o.valid):
                observed.append(list(ctx.get(dut.o.payload.y)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert np.array_equal(np.array(observed), expected)
