"""cocotb testbench of the controller's iCE40 netlist (``sim/gate.py``) against the golden model.

First a GEMM with the netlist's mutant on must differ from the golden model, and be reported; then,
with the mutant off, the tests of ``sim/tb_controller.py`` compare every buffer word with the golden
model after compiled MLP training steps, GEMMs and random programs. Parameters as
``sim/tb_controller.py``'s.
"""

from __future__ import annotations

import cocotb
import numpy as np

from hw.isa import Buf, Opcode, Status, instruction
from sim import tb_controller
from sim.gate import MUTANT
from sim.tb_controller import CONFIG, compare_buffers, fresh_model, program, run, start


def _gemm(m: int, k: int, n: int) -> list[int]:
    """``W·A`` (``m×k`` by ``k×n``) into G, every tensor at word 0, the sums shifted right by 16."""
    shapes = ((Buf.W, m, k), (Buf.A, k, n), (Buf.G, m, n))
    tensors = [instruction(Opcode.TENSOR, tensor={"t": t, "buf": buf, "base": 0, "rows": rows, "cols": cols,
                                                  "pitch": -(-cols // CONFIG.banks)})
               for t, (buf, rows, cols) in enumerate(shapes)]
    epilogue = {"op": 0, "act": 0, "deriv": 0, "round": 0, "shift": 16, "b_shift": 0}
    gemm = {"a": 0, "ta": 0, "b": 1, "tb": 0, "c": 0, "use_c": 0, "out": 2, "epi": epilogue}
    return [*tensors, instruction(Opcode.GEMM, gemm=gemm), instruction(Opcode.END)]


@cocotb.test()
async def mutant_caught(dut):
    """With one DSP product bit inverted, a GEMM's output differs from the model's and is reported."""
    await start(dut)
    mutant = getattr(dut, MUTANT)
    mutant.value = 1
    try:
        model = await fresh_model(dut, np.random.default_rng(cocotb.RANDOM_SEED))
        words = _gemm(4 * CONFIG.rows, 8, 4 * CONFIG.cols)
        model.program(words)
        await program(dut, words)
        status, pc, _ = await run(dut)
        assert model.run(0) == (Status(status), pc) == (Status.OK, len(words) - 1)
        try:
            await compare_buffers(dut, model, "mutant")
        except AssertionError as error:
            dut._log.info("caught as expected: %s", error)
        else:
            raise AssertionError("the mutant (one DSP product bit inverted) went unnoticed")
    finally:
        mutant.value = 0


# The controller's own tests, run in this order after mutant_caught has turned the mutant off.
training_steps = tb_controller.training_steps
gemm_efficiency = tb_controller.gemm_efficiency
random_programs = tb_controller.random_programs
scoreboard_bites = tb_controller.scoreboard_bites
