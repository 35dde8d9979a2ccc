"""cocotb testbench of the systolic array: every stream the golden model predicts, compared row by row.

Parameters (from ``tests/test_array.py``): ``rows``, ``cols``, ``width``, ``k_max``, ``acc_width``,
``m_tiles`` (row tiles of the sweep), ``results`` (where efficiency figures are written). The seed is
cocotb's (``COCOTB_RANDOM_SEED``, printed at start-up), so a failing run replays exactly.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from sim.array import Steps, array_model, assemble, gemm, gemm_steps
from sim.runner import tb_params
from sim.streams import pack, run_stream, unpack

P = tb_params()
R, C, W, ACC = P["rows"], P["cols"], P["width"], P["acc_width"]
LO, HI = -(1 << (W - 1)), (1 << (W - 1)) - 1


class Scoreboard:
    """Compares emitted rows with the golden model's, naming the first difference."""

    def __init__(self, log):
        self.log, self.checked = log, 0

    def compare(self, what: str, got: np.ndarray, want: np.ndarray) -> None:
        if got.shape != want.shape:
            raise AssertionError(f"{what}: got {got.shape[0]} rows, expected {want.shape[0]}")
        bad = np.argwhere(got != want)
        if len(bad):
            r, c = bad[0]
            raise AssertionError(f"{what}: {len(bad)} wrong outputs, first at row {r} col {c}: "
                                 f"got {got[r, c]}, expected {want[r, c]}")
        self.checked += got.size


async def start(dut) -> None:
    Clock(dut.clk, 10, unit="ns").start()
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def stream(dut, steps: Steps, rng: random.Random, p_valid=1.0, p_ready=1.0):
    """Run ``steps`` through the array; returns emitted rows (T×C) and the cycle count."""
    words = pack([(steps.a, W), (steps.b, W), (steps.first, 1), (steps.last, 1)])
    n_rows = int(steps.last.sum()) * R
    got, cycles = await run_stream(dut, words, n_rows, rng=rng, p_valid=p_valid,
                                   p_ready=p_ready, settle=2 * (R + C) + 4)
    y, last = unpack(got, [(C, ACC, True), (1, 1, False)])
    expected_last = (np.arange(n_rows) % R) == R - 1
    if not np.array_equal(last[:, 0].astype(bool), expected_last):
        raise AssertionError("o.last does not mark the final row of each tile")
    return y, cycles


def random_buffers(rng: np.random.Generator, m: int, k: int, n: int):
    return (rng.integers(LO, HI + 1, m * k, dtype=np.int64),
            rng.integers(LO, HI + 1, k * n, dtype=np.int64))


@cocotb.test()
async def gemm_sweep(dut):
    """K in {1, R, 4R+3}, N in {1, 7, 64}, all four transposes, random stalls on both streams."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED)
    nrng = np.random.default_rng(cocotb.RANDOM_SEED)
    board = Scoreboard(dut._log)
    m = P["m_tiles"] * R - (1 if R > 1 else 0)           # a partial row tile when R > 1
    for k, n, ta, tb in itertools.product(sorted({1, R, 4 * R + 3}), (1, 7, 64), (False, True),
                                          (False, True)):
        buf_a, buf_b = random_buffers(nrng, m, k, n)
        steps = gemm_steps(buf_a, buf_b, m, k, n, ta, tb, R, C)
        y, _ = await stream(dut, steps, rng, p_valid=0.7, p_ready=0.6)
        name = f"M={m} K={k} N={n} transA={ta} transB={tb}"
        board.compare(name, y, array_model(steps, R, C))
        board.compare(name + " vs numpy", assemble(y, m, n, R, C), gemm(buf_a, buf_b, m, k, n,
                                                                         ta, tb))
    dut._log.info("gemm_sweep: %d outputs checked", board.checked)


@cocotb.test()
async def accumulate(dut):
    """``Y = A1·B1`` then ``Y += A2·B2`` in the same cells, and a fresh ``first`` after it."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    nrng = np.random.default_rng(cocotb.RANDOM_SEED + 1)
    board = Scoreboard(dut._log)
    m, n = R, C
    for k1, k2 in ((1, 1), (R, 4 * R + 3), (3, 2)):
        a1, b1 = random_buffers(nrng, m, k1, n)
        a2, b2 = random_buffers(nrng, m, k2, n)
        steps = Steps.concat([gemm_steps(a1, b1, m, k1, n, False, False, R, C),
                              gemm_steps(a2, b2, m, k2, n, True, True, R, C, first=False),
                              gemm_steps(a2, b2, m, k2, n, True, True, R, C)])
        y, _ = await stream(dut, steps, rng, p_valid=0.8, p_ready=0.5)
        p1 = gemm(a1, b1, m, k1, n, False, False)
        p2 = gemm(a2, b2, m, k2, n, True, True)
        board.compare(f"accumulate K={k1}+{k2}", y, np.concatenate([p1, p1 + p2, p2]))


@cocotb.test()
async def extremes(dut):
    """Sums of ``k_max`` extreme products reach the accumulator's limits without overflow."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    board = Scoreboard(dut._log)
    k = P["k_max"]
    for va, vb in ((LO, LO), (LO, HI), (HI, HI), (HI, LO)):
        steps = gemm_steps(np.full(R * k, va), np.full(k * C, vb), R, k, C, False, False, R, C)
        y, _ = await stream(dut, steps, rng, p_ready=0.5)
        want = np.full((R, C), k * va * vb, dtype=np.int64)
        board.compare(f"extreme {va}*{vb} x{k}", y, want)
    top = (1 << (ACC - 1)) - 1
    assert k * LO * LO <= top < 2 * k * LO * LO, "acc_width is not the tightest safe width"


@cocotb.test()
async def efficiency(dut):
    """Cycles of each GEMM shape with no stalls, against ideal ``M·N·K / (R·C)``.

    ``M = 2·R``; ``K`` in powers of two up to ``8·max(R, C)``, ``R`` and ``4·R + 3``; ``N`` in 1, 7, 64.
    """
    await start(dut)
    rng = random.Random(0)
    nrng = np.random.default_rng(0)
    rows = []
    m = 2 * R
    depths = {1 << i for i in range((8 * max(R, C)).bit_length())} | {R, 4 * R + 3}
    for k, n in itertools.product(sorted(depths), (1, 7, 64)):
        buf_a, buf_b = random_buffers(nrng, m, k, n)
        steps = gemm_steps(buf_a, buf_b, m, k, n, False, False, R, C)
        y, cycles = await stream(dut, steps, rng)
        Scoreboard(dut._log).compare("efficiency run", y, array_model(steps, R, C))
        ideal = m * n * k / (R * C)
        rows.append({"rows": R, "cols": C, "m": m, "k": k, "n": n, "cycles": cycles,
                     "ideal": ideal, "efficiency": ideal / cycles})
        dut._log.info("M=%d K=%d N=%d: %d cycles, ideal %.1f, efficiency %.1f %%",
                      m, k, n, cycles, ideal, 100 * ideal / cycles)
    Path(P["results"]).write_text(json.dumps(rows, indent=1))


@cocotb.test()
async def scoreboard_bites(dut):
    """One flipped bit in one emitted value is reported by the scoreboard."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 3)
    nrng = np.random.default_rng(cocotb.RANDOM_SEED + 3)
    buf_a, buf_b = random_buffers(nrng, R, 5, C)
    steps = gemm_steps(buf_a, buf_b, R, 5, C, False, False, R, C)
    y, _ = await stream(dut, steps, rng)
    want = array_model(steps, R, C)
    Scoreboard(dut._log).compare("unmodified", y, want)
    y[rng.randrange(R), rng.randrange(C)] ^= 1 << rng.randrange(ACC)
    try:
        Scoreboard(dut._log).compare("one bit flipped", y, want)
    except AssertionError as error:
        dut._log.info("caught as expected: %s", error)
    else:
        raise AssertionError("the scoreboard missed a flipped bit")
