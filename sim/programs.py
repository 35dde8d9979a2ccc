"""Random programs for the device: valid instruction streams with random shapes and operands.

Used by the controller and SoC testbenches: the same program runs on the gateware and on the golden
model (``sim/model.py``), and every buffer word, the status and the pc must agree.
"""

from __future__ import annotations

import numpy as np

from hw.config import DeviceConfig
from hw.isa import (
    COUNTERS,
    OPERAND_BUFFERS,
    SOFTMAX_SHIFT_MAX,
    Buf,
    GatherMode,
    Opcode,
    Reg,
    Rounding,
    VecOp,
    instruction,
)
from hw.numerics import Act

__all__ = ["random_program", "gather_program", "clear_counters", "SAMPLE_NUMBERS"]

SAMPLE_NUMBERS = 64
"""Words at the start of ``D`` that a test fills with small sample numbers (below 12) for the sample
lists of :func:`gather_program`; the rest of ``D`` holds any words."""


class _Allocator:
    """Hands out regions of each buffer, bump-pointer style, and tensor registers in turn."""

    def __init__(self, config: DeviceConfig):
        self.config, self.top, self.reg = config, dict.fromkeys(Buf, 0), 0

    def tensor(self, buf: Buf, rows: int, cols: int, words: list[int]) -> int | None:
        banks = self.config.banks
        pitch = -(-cols // banks)
        if self.top[buf] + rows * pitch > self.config.depth:
            return None
        t, self.reg = self.reg, (self.reg + 1) % 16
        words.append(instruction(Opcode.TENSOR, tensor={
            "t": t, "buf": buf, "base": self.top[buf], "rows": rows, "cols": cols, "pitch": pitch}))
        self.top[buf] += rows * pitch
        return t


def _epilogue(rng: np.random.Generator) -> dict:
    """Mostly useful settings, now and then any value the fields can hold (an unknown act faults)."""
    wild = rng.random() < 0.1
    return {"op": VecOp(int(rng.integers(0, 4))), "act": int(rng.integers(0, 8 if wild else len(Act))),
            "deriv": int(rng.integers(0, 2)), "round": Rounding(int(rng.integers(0, 2))),
            "shift": int(rng.integers(0, 64 if wild else 40)),
            "b_shift": int(rng.integers(0, 32 if wild else 16)),
            "counter": int(rng.integers(0, COUNTERS if wild else 3)),
            "read_counter": int(rng.random() < 0.25)}


def random_program(rng: np.random.Generator, config: DeviceConfig, ops: int = 3,
                   max_dim: int = 9) -> list[int]:
    """``ops`` random instructions (with their TENSOR and SET set-up), then END."""
    alloc, words = _Allocator(config), []
    bufs = list(Buf)

    def dims():
        return int(rng.integers(1, max_dim + 1))

    for _ in range(ops):
        if rng.random() < 0.3:
            reg = Reg(int(rng.integers(0, 3)))
            words.append(instruction(Opcode.SET, set={"reg": reg, "value": int(rng.integers(0, 1 << 32))}))
        order = [bufs[i] for i in rng.permutation(3)]
        kind = rng.choice(["gemm", "gemm", "vec", "softmax", "argmax", "loss"])
        m, n = dims(), dims()
        if kind in ("softmax", "argmax", "loss"):
            m = min(m, config.max_rows)
        if kind == "gemm":
            k = int(rng.integers(1, 2 * max_dim))
            ta, tb, use_c = (int(v) for v in rng.integers(0, 2, 3))
            a = alloc.tensor(order[0], *((k, m) if ta else (m, k)), words)
            b = alloc.tensor(order[1], *((n, k) if tb else (k, n)), words)
            c = alloc.tensor(order[2], m, n, words) if use_c else 0
            out = alloc.tensor(order[int(rng.integers(0, 3))], m, n, words)
            if None in (a, b, c, out):
                break
            words.append(instruction(Opcode.GEMM, gemm={
                "a": a, "ta": ta, "b": b, "tb": tb, "c": c, "use_c": use_c, "out": out,
                "epi": _epilogue(rng)}))
        elif kind == "vec":
            use_b = int(rng.integers(0, 2))
            a = alloc.tensor(order[0], m, n, words)
            b = alloc.tensor(order[1], m, n, words) if use_b else 0
            out = alloc.tensor(order[int(rng.integers(0, 3))], m, n, words)
            if None in (a, b, out):
                break
            words.append(instruction(Opcode.VEC, vec={
                "a": a, "b": b, "use_b": use_b, "out": out, "epi": _epilogue(rng)}))
        elif kind == "loss":
            a = alloc.tensor(order[0], m, n, words)
            y = alloc.tensor(order[1], m, n, words)
            out = alloc.tensor(order[2], 1, n, words)
            if None in (a, y, out):
                break
            words.append(instruction(Opcode.LOSS, loss={"a": a, "y": y, "out": out}))
        else:
            a = alloc.tensor(order[0], m, n, words)
            out = alloc.tensor(order[1], m if kind == "softmax" else 1, n, words)
            if None in (a, out):
                break
            if kind == "softmax":
                shift = int(rng.integers(0, SOFTMAX_SHIFT_MAX + 1))
                words.append(instruction(Opcode.SOFTMAX, softmax={"a": a, "out": out, "shift": shift}))
            else:
                words.append(instruction(Opcode.ARGMAX, unary={"a": a, "out": out}))
    words.append(instruction(Opcode.END))
    return words


def gather_program(rng: np.random.Generator, config: DeviceConfig) -> list[int]:
    """A loop of ``GATHER``s: ``SET STEPS`` 1 … 4, then a body that gathers (any mode, now and then
    a shift or a shape the checks refuse) from samples in ``D`` by a sample list at its start, and
    advances the list and the output, then ``LOOP`` and ``END``. A sample number past the samples'
    rows faults, as do lists or outputs advanced past their memory."""
    words, steps = [], int(rng.integers(1, 5))
    mode = GatherMode(int(rng.integers(0, 3)))
    # Half the loops take their samples from 12 rows, which every sample number names: they fault
    # only where a list or an output moves past its memory.
    samples = 12 if rng.random() < 0.5 else int(rng.integers(1, 13))
    width = int(rng.integers(1, 4))
    n, rows = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    if mode == GatherMode.ONEHOT:
        width = 1 if rng.random() < 0.9 else 2
    elif rng.random() < 0.9:
        rows = min(rows, width * (2 if mode == GatherMode.BYTES else 1))
    src_base = int(rng.integers(SAMPLE_NUMBERS, config.data_depth - samples * width))
    out = OPERAND_BUFFERS[int(rng.integers(0, 3))]
    pitch = -(-n // config.banks)
    shift = int(rng.integers(0, 10 if rng.random() < 0.1 else 9))
    tensors = [(0, Buf.D, src_base, samples, width, width), (1, Buf.D, int(rng.integers(0, 8)), 1, n, n),
               (2, out, int(rng.integers(0, config.depth // 2)), rows, n, pitch)]
    for t, buf, base, r, c, p in tensors:
        words.append(instruction(Opcode.TENSOR, tensor={"t": t, "buf": buf, "base": base, "rows": r,
                                                        "cols": c, "pitch": p}))
    words.append(instruction(Opcode.SET, set={"reg": Reg.STEPS, "value": steps}))
    body = len(words)
    words.append(instruction(Opcode.GATHER, gather={"src": 0, "idx": 1, "out": 2, "mode": mode,
                                                    "shift": shift}))
    words += [instruction(Opcode.ADVANCE, advance={"t": 1, "delta": int(rng.integers(-2, n + 2))}),
              instruction(Opcode.ADVANCE, advance={"t": 2, "delta": rows * pitch}),
              instruction(Opcode.LOOP, loop={"target": body}), instruction(Opcode.END)]
    return words


def clear_counters() -> list[int]:
    """A program that reads, and so clears, every saturation counter (into words 0 and 1 of G)."""
    scratch = instruction(Opcode.TENSOR, tensor={"t": 0, "buf": Buf.G, "base": 0, "rows": 2, "cols": 1,
                                                 "pitch": 1})
    reads = [instruction(Opcode.VEC, vec={"a": 0, "out": 0, "epi": {"counter": c, "read_counter": 1}})
             for c in range(1, COUNTERS)]
    return [scratch, *reads, instruction(Opcode.END)]
