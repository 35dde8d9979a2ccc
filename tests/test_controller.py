"""The controller on an HDL simulator against the golden model (see ``sim/tb_controller.py``)."""

import dataclasses

import pytest

from hw.config import DeviceConfig
from hw.controller import Controller
from sim.runner import BUILD, run

# The 4×5 array drains through a skid register, which the vector unit's one lane makes wait.
CONFIGS = [DeviceConfig(rows=2, cols=3, depth=160, imem=128, k_max=64, max_rows=8, vector_lanes=1,
                        serial_multipliers=True, data_depth=512),
           DeviceConfig(rows=4, cols=5, depth=256, imem=128, k_max=64, max_rows=10, vector_lanes=1)]


@pytest.mark.sim
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}")
def test_controller(config):
    params = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    results = BUILD / "efficiency" / f"program-{config.rows}x{config.cols}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    run(Controller(config), f"controller_{config.rows}x{config.cols}", "sim.tb_controller",
        {**params, "programs": 20, "results": str(results)})


@pytest.mark.parametrize("lanes", [0, 3, "2"])
def test_vector_lanes_must_divide_cols(lanes):
    with pytest.raises(ValueError, match=f"vector_lanes must be a divisor of cols=4 or None, not {lanes!r}"):
        DeviceConfig(cols=4, vector_lanes=lanes)
