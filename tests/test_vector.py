# amaranth: UnusedElaboratable=no
"""The vector unit against its golden model (cocotb on Verilator), and its parameter checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from hw import vector
from hw.isa import Rounding
from hw.numerics import Fixed
from hw.vector import VectorUnit
from sim.runner import run
from sim.vector import VectorModel


@pytest.mark.sim
def test_vector_unit():
    run(VectorUnit(lanes=4, acc_width=40), "vector_l4", "sim.tb_vector",
        {"lanes": 4, "acc_width": 40})


@pytest.mark.sim
def test_vector_unit_on_two_physical_lanes():
    """Four-lane beats sliced over two physical lanes: the same results, stalls included."""
    run(VectorUnit(lanes=4, acc_width=40, physical_lanes=2), "vector_l4p2", "sim.tb_vector",
        {"lanes": 4, "acc_width": 40, "physical_lanes": 2})


@pytest.mark.sim
def test_vector_unit_on_one_lane_with_serial_multipliers():
    """One physical lane multiplying by shift and add: the same results, stalls included (a sample
    of the exhaustive inputs, which take sixteen cycles each through a table)."""
    run(VectorUnit(lanes=4, acc_width=40, physical_lanes=1, serial_multipliers=True), "vector_l4p1s",
        "sim.tb_vector", {"lanes": 4, "acc_width": 40, "physical_lanes": 1, "stride": 13, "beats": 100})


@pytest.mark.sim
def test_wrong_rounding_fails(monkeypatch):
    """Round-half-up instead of nearest-even in the RTL alone makes the scoreboard fail."""
    monkeypatch.setattr(vector, "round_nearest_even", lambda half, sticky, lsb: half)
    with pytest.raises(AssertionError, match="cocotb tests of sim.tb_vector failed") as failure:
        run(VectorUnit(lanes=2, acc_width=24), "vector_mutant", "sim.tb_vector",
            {"lanes": 2, "acc_width": 24}, testcase="test_rounding_ties")
    results = Path(str(failure.value).rsplit("see ", 1)[1])
    assert "vector item" in results.read_text(), "the mutant failed, but not on a mismatch"


@pytest.mark.parametrize("physical_lanes", [1, 2, 4])
def test_reseed_with_a_zero_lane_seed(physical_lanes):
    """A seed whose raw value for lane 1 is zero (so that lane seeds 1), and stochastically rounded
    beats offered from the seed load's cycle on, with the configuration set in that cycle too, against
    the model (Amaranth's simulator)."""
    seed = -0x9E3779B9 % (1 << 32)
    a = np.random.default_rng(5).integers(-(1 << 30), 1 << 30, (12, 4))
    expected = VectorModel(4)
    expected.seed(seed)
    expected = expected(a, 0 * a, shift=16, round=Rounding.STOCHASTIC).tolist()
    dut = VectorUnit(lanes=4, acc_width=40, physical_lanes=physical_lanes)
    observed = []

    async def bench(ctx):
        ctx.set(dut.round, Rounding.STOCHASTIC)
        ctx.set(dut.shift, 16)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.seed, seed)
        pending = a.tolist()
        for cycle in range(200):
            ctx.set(dut.seed_load, cycle == 0)
            ctx.set(dut.i.valid, bool(pending))
            if pending:
                ctx.set(dut.i.payload.a, pending[0])
            taken = pending and ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                observed.append(list(ctx.get(dut.o.payload.y)))
            await ctx.tick()
            if taken:
                pending.pop(0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert observed == expected


@pytest.mark.parametrize("kwargs, bad", [
    ({"lanes": 0}, "0"), ({"lanes": 4, "physical_lanes": 3}, "3"), ({"physical_lanes": 0}, "0"),
    ({"acc_width": 16}, "16"), ({"acc_width": 47}, "47"),
    ({"segments": 100}, "100"), ({"fmt": Fixed(40, 12)}, "40"),
])
def test_bad_parameters(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        VectorUnit(**kwargs)


@pytest.mark.parametrize("lo, hi, bits", [(0, 0, 2), (-1, 0, 2), (-64, 63, 7), (-65, 0, 8), (0, 64, 8),
                                          (-18244, 520006, 20), (-3151, 4505, 14)])
def test_tables_are_stored_in_the_narrowest_signed_width(lo, hi, bits):
    assert vector._signed_width([lo, hi]) == bits


@pytest.mark.parametrize("split", [None, 0, 2, 4])
def test_shift_right(split):
    """The requantising shifter's window, sticky bit and fit against plain integer arithmetic for
    every shift (Amaranth's simulator): whole (``split`` None), or as the unit splits it between two
    stages, the bits of ``shift`` from ``split`` up, then those below it with the first part's sticky
    and spill bits."""
    width, keep = 20, 5
    m = Module()
    value, shift = Signal(signed(width)), Signal(range(width + 6))
    if split is None:
        window, sticky, fits = vector.shift_right(m, value, shift, keep)
    else:
        window, sign = vector.shift_window(value, keep)
        window, sticky, spill = vector.shift_steps(m, window, sign, shift, range(split, len(shift)), keep)
        window, sticky, spill = vector.shift_steps(m, window, sign, shift, range(split), keep, sticky,
                                                   spill)
        fits = vector.shift_fits(window, sign, spill, keep)
    rng = np.random.default_rng(7)
    samples = [-(1 << (width - 1)), (1 << (width - 1)) - 1, -1, 0, 1,
               *rng.integers(-(1 << (width - 1)), 1 << (width - 1), 40).tolist()]

    async def bench(ctx):
        for v in samples:
            for s in range(width + 6):
                ctx.set(value, v)
                ctx.set(shift, s)
                shifted = v >> s
                assert ctx.get(window[:keep]) == shifted & ((1 << keep) - 1), (v, s)
                assert ctx.get(sticky) == (v & ((1 << s) - 1) != 0), (v, s)
                assert ctx.get(fits) == (-(1 << (keep - 1)) <= shifted < 1 << (keep - 1)), (v, s)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_thermometer():
    """The stochastic rounding's mask: the low ``shift`` bits set, at most 12 (Amaranth's simulator)."""
    m = Module()
    shift = Signal(range(26))
    ones = vector.thermometer(m, shift, 12)

    async def bench(ctx):
        for s in range(26):
            ctx.set(shift, s)
            assert ctx.get(ones) == (1 << min(s, 12)) - 1, s

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_serial_product():
    """:func:`vector.serial_product` over its ``cycles`` cycles, holding its product while ``ready``
    stays high, then the next product at once, against plain multiplication (Amaranth's simulator)."""
    cycles = 16
    m = Module()
    a, b = Signal(signed(20)), Signal(signed(cycles))
    first, ready = Signal(), Signal()
    product = vector.serial_product(m, a, b, cycles, first, ready)
    rng = np.random.default_rng(13)
    extremes = [(-(1 << 19), -(1 << 15)), ((1 << 19) - 1, (1 << 15) - 1), (-(1 << 19), (1 << 15) - 1),
                (0, -1), (-1, 1)]
    pairs = [*extremes, *zip(rng.integers(-(1 << 19), 1 << 19, 20).tolist(),
                             rng.integers(-(1 << 15), 1 << 15, 20).tolist(), strict=True)]

    async def bench(ctx):
        for k, (x, y) in enumerate(pairs):
            ctx.set(a, x)
            ctx.set(b, y)
            for step in range(cycles + k % 3):  # the last k % 3 hold the product
                ctx.set(first, step == 0)
                ctx.set(ready, step >= cycles - 1)
                if step >= cycles - 1:
                    assert ctx.get(product) == x * y, (x, y, step)
                await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
