# amaranth: UnusedElaboratable=no
"""The vector unit against its golden model (cocotb on Verilator), and its parameter checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.hdl import Const, Mux, Value

from hw import vector
from hw.numerics import Fixed
from hw.vector import VectorUnit
from sim.runner import run


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


def _round_half_up(value, shift, bits, *, stochastic=0, rand=0):
    """A wrong rounding: ties always round up (the bias is half, without the even correction)."""
    value = Value.cast(value)
    half = (Const(1) << shift) >> 1
    ones = (Const(1) << shift) - 1
    rounded = (value + Mux(stochastic, Value.cast(rand) & ones, half)) >> shift
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(rounded < lo, lo, Mux(rounded > hi, hi, rounded))[:bits].as_signed()


@pytest.mark.sim
def test_wrong_rounding_fails(monkeypatch):
    """Round-half-up instead of nearest-even in the RTL alone makes the scoreboard fail."""
    monkeypatch.setattr(vector, "requantize_hdl", _round_half_up)
    with pytest.raises(AssertionError, match="cocotb tests of sim.tb_vector failed") as failure:
        run(VectorUnit(lanes=2, acc_width=24), "vector_mutant", "sim.tb_vector",
            {"lanes": 2, "acc_width": 24}, testcase="test_rounding_ties")
    results = Path(str(failure.value).rsplit("see ", 1)[1])
    assert "vector item" in results.read_text(), "the mutant failed, but not on a mismatch"


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
