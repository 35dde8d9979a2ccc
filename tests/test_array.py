"""The systolic array on an HDL simulator against its golden model (see ``sim/tb_array.py``)."""

import numpy as np
import pytest

from hw.array import SystolicArray
from sim.array import array_model, assemble, gemm, gemm_steps
from sim.runner import BUILD, run

SIZES = [(1, 1), (2, 3), (4, 4), (8, 8)]


@pytest.mark.parametrize("transposes", [(False, False), (True, False), (False, True), (True, True)])
def test_golden_model_tiles_add_up_to_the_product(transposes):
    rng = np.random.default_rng(1)
    for rows, cols, m, k, n in [(2, 3, 5, 4, 7), (4, 4, 4, 1, 1), (1, 1, 3, 2, 2)]:
        buf_a = rng.integers(-9, 9, m * k)
        buf_b = rng.integers(-9, 9, k * n)
        steps = gemm_steps(buf_a, buf_b, m, k, n, *transposes, rows, cols)
        y = assemble(array_model(steps, rows, cols), m, n, rows, cols)
        assert np.array_equal(y, gemm(buf_a, buf_b, m, k, n, *transposes))


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="rows"):
        SystolicArray(0, 4)
    with pytest.raises(ValueError, match="need 38 bits"):
        SystolicArray(4, 4, width=16, k_max=64, acc_width=37)
    assert SystolicArray(4, 4, width=16, k_max=64).acc_width == 38


@pytest.mark.sim
@pytest.mark.parametrize("rows,cols", SIZES, ids=[f"{r}x{c}" for r, c in SIZES])
def test_array(rows, cols):
    k_max = 8 * max(rows, cols)
    dut = SystolicArray(rows, cols, width=16, k_max=k_max)
    results = BUILD / "efficiency" / f"{rows}x{cols}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    run(dut, f"array_{rows}x{cols}", "sim.tb_array",
        {"rows": rows, "cols": cols, "width": 16, "k_max": k_max, "acc_width": dut.acc_width,
         "m_tiles": 2, "results": str(results)})
