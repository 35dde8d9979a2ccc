# amaranth: UnusedElaboratable=no
"""The softmax unit against its golden model (cocotb on Verilator), and its parameter checks."""

from __future__ import annotations

import pytest

from hw.numerics import Fixed
from hw.softmax import Softmax
from sim.runner import run


@pytest.mark.sim
def test_softmax():
    run(Softmax(lanes=4, max_rows=10), "softmax_l4", "sim.tb_softmax",
        {"lanes": 4, "max_rows": 10})


@pytest.mark.sim
def test_softmax_on_one_physical_lane_with_serial_multipliers():
    run(Softmax(lanes=4, max_rows=10, physical_lanes=1, serial_multipliers=True), "softmax_l4p1s",
        "sim.tb_softmax", {"lanes": 4, "max_rows": 10, "physical_lanes": 1, "serial": True, "patience": 4000})


@pytest.mark.parametrize("kwargs, bad", [({"lanes": 0}, "0"), ({"max_rows": 0}, "0"),
                                         ({"lanes": 4, "physical_lanes": 3}, "3"),
                                         ({"fmt": Fixed(32, 31)}, "31")])
def test_bad_parameters(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Softmax(**kwargs)
