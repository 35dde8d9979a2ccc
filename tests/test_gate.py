"""The controller's iCE40 netlist on an HDL simulator against the golden model (see ``sim/gate.py``)."""

import dataclasses

import pytest

from hw.config import DeviceConfig
from hw.controller import Controller
from sim.gate import run, synthesize

CONFIG = DeviceConfig(rows=2, cols=2, depth=128, imem=128, k_max=32, max_rows=4)
"""Small enough to synthesize and build in a few minutes, large enough for the compiled 12-8-4 MLPs
of ``training_steps``."""


@pytest.mark.sim
def test_gate():
    netlist = synthesize(Controller(CONFIG), "controller_gate")
    assert netlist.cells.get("SB_MAC16", 0) >= CONFIG.rows * CONFIG.cols, \
        f"the array's multipliers are not in DSPs: {netlist.cells}"
    assert netlist.cells.get("SB_RAM40_4K", 0) >= 3 * CONFIG.banks, \
        f"the buffers are not in block RAM: {netlist.cells}"
    params = {f.name: getattr(CONFIG, f.name) for f in dataclasses.fields(CONFIG)}
    run(netlist, "sim.tb_gate", {**params, "programs": 8})
