"""The GEMM instructions of the efficiency bench, and the small controllers that run them.

Two families of GEMM, each a program of its own: the **digits** GEMMs, taken from the ``train`` entry
of the compiled digits MLP (:func:`program_gemms`) and run alone (:func:`standalone`: the ``setup``
entry's ``SET``s, a ``TENSOR`` per register the GEMM uses with each buffer's regions moved down to
address 0, the GEMM word unchanged, ``END``); and the **sweep**, ``M = 4·R``, ``N = 8·C`` and ``K`` in
powers of two up to ``8·max(R, C)`` (:func:`sweep`). :data:`CONTROLLERS` hold one device per distinct
board array, with buffers just deep enough for both.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from host.compiler import Network, Program, compile_network
from hw.config import DeviceConfig
from hw.isa import Buf, Instruction, Opcode, decode, instruction
from sim.model import Tensor

__all__ = ["DIGITS", "BATCH", "TARGET", "Gemm", "gemm_kind", "program_gemms", "digits", "sweep",
           "standalone", "setup_words", "depth_needed", "tiles", "occupancy",
           "CONTROLLERS"]

DIGITS = (64, 32, 10)
"""The digits MLP: 64 inputs, 32 ReLU units, 10 softmax classes."""
BATCH = 32
"""The digits minibatch of the GEMM runs."""
TARGET = 0.90
"""The brief's array efficiency target, a share of ``R·C`` MACs per cycle."""
_END = instruction(Opcode.END)


@dataclass(frozen=True)
class Gemm:
    """A GEMM instruction word, its shape ``M × K × N`` and the tensors of the registers it uses."""

    word: int
    m: int
    k: int
    n: int
    ta: bool
    tb: bool
    tensors: dict[int, Tensor]

    @property
    def kind(self) -> str:
        return gemm_kind(self.ta, self.tb)


def gemm_kind(ta: bool, tb: bool) -> str:
    """The training-step role of a GEMM from its transposes (the compiler's placement)."""
    return "GEMM W·A (forward)" if not (ta or tb) else "GEMM Wᵀ·dZ (backward)" if ta else \
        "GEMM dZ·Aᵀ + SGD (update)"


def _fields(word: int):
    return decode(Instruction(), word.to_bytes(8, "little"))


def program_gemms(program: Program) -> dict[int, Gemm]:
    """Every GEMM of ``program``'s ``train`` entry by address, with the tensors its registers hold then."""
    regs: dict[int, Tensor] = {}
    gemms = {}
    pc = program.train
    while (word := program.words[pc]) != _END:
        view = _fields(word)
        if Opcode(view.op) == Opcode.TENSOR:
            t = view.args.tensor
            regs[int(t.t)] = Tensor(Buf(t.buf), int(t.base), int(t.rows), int(t.cols), int(t.pitch))
        elif Opcode(view.op) == Opcode.GEMM:
            g = view.args.gemm
            used = [int(g.a), int(g.b), int(g.out), *([int(g.c)] if g.use_c else [])]
            a, b = regs[int(g.a)], regs[int(g.b)]
            m, k = (a.cols, a.rows) if g.ta else (a.rows, a.cols)
            gemms[pc] = Gemm(word, m, k, b.rows if g.tb else b.cols, bool(g.ta), bool(g.tb),
                             {r: regs[r] for r in used})
        pc += 1
    return gemms


def digits(rows: int, cols: int) -> tuple[Program, list[Gemm]]:
    """The digits MLP at minibatch :data:`BATCH` compiled for an ``rows × cols`` array, and its GEMMs.

    The program is compiled for a default-sized device of that array: the GEMMs' shapes and pitches
    depend on the array only, and a board with shallow buffers need not hold the whole network.
    """
    program = compile_network(Network(DIGITS, batch=BATCH), DeviceConfig(rows=rows, cols=cols))
    return program, list(program_gemms(program).values())


def sweep(config: DeviceConfig) -> list[Gemm]:
    """``M = 4·R``, ``N = 8·C``, ``K = 1, 2, 4 … 8·max(R, C)``: ``A`` in W, ``B`` in A, ``C`` in G at 0."""
    r, c, banks = config.rows, config.cols, config.banks
    m, n = 4 * r, 8 * c
    epi = {"op": 0, "act": 0, "deriv": 0, "round": 0, "shift": 16, "b_shift": 0}
    word = instruction(Opcode.GEMM, gemm={"a": 0, "ta": 0, "b": 1, "tb": 0, "c": 0, "use_c": 0, "out": 2,
                                          "epi": epi})
    ks = [1 << i for i in range((8 * max(r, c)).bit_length())]
    return [Gemm(word, m, k, n, False, False,
                 {0: Tensor(Buf.W, 0, m, k, -(-k // banks)), 1: Tensor(Buf.A, 0, k, n, -(-n // banks)),
                  2: Tensor(Buf.G, 0, m, n, -(-n // banks))}) for k in ks]


def _lowest(gemm: Gemm) -> dict[Buf, int]:
    """The lowest address ``gemm`` uses in each buffer it uses."""
    low: dict[Buf, int] = {}
    for t in gemm.tensors.values():
        low[t.buf] = min(low.get(t.buf, t.base), t.base)
    return low


def depth_needed(gemms: list[Gemm]) -> int:
    """Words per bank that every GEMM of ``gemms`` needs, run alone by :func:`standalone`."""
    return max(t.end - _lowest(g)[t.buf] for g in gemms for t in g.tensors.values())


def standalone(gemm: Gemm, depth: int, prefix: tuple[int, ...] = ()) -> list[int]:
    """A program running ``gemm`` alone: ``prefix``, its ``TENSOR``s moved down to address 0 of each
    buffer (their layout kept), the GEMM, ``END``.

    Raises
    ------
    ValueError
        If a buffer of ``depth`` words per bank cannot hold the tensors.
    """
    need = depth_needed([gemm])
    if need > depth:
        raise ValueError(f"{gemm.m}×{gemm.k}×{gemm.n} {gemm.kind} needs {need} words per bank, "
                         f"the buffers hold {depth}: deepen the controller")
    low = _lowest(gemm)
    tensors = [instruction(Opcode.TENSOR, tensor={"t": reg, "buf": t.buf, "base": t.base - low[t.buf],
                                                  "rows": t.rows, "cols": t.cols, "pitch": t.pitch})
               for reg, t in gemm.tensors.items()]
    return [*prefix, *tensors, gemm.word, _END]


def setup_words(program: Program) -> tuple[int, ...]:
    """The ``SET``s of ``program``'s ``setup`` entry (the leaky slope, the LFSR seed)."""
    words = program.words[program.setup:program.words.index(_END, program.setup)]
    return tuple(w for w in words if Opcode(_fields(w).op) == Opcode.SET)


def tiles(m: int, n: int, rows: int, cols: int) -> int:
    """Output tiles of an ``M × N`` result on an ``R × C`` array."""
    return -(-m // rows) * -(-n // cols)


def occupancy(m: int, n: int, rows: int, cols: int) -> float:
    """The share of the array's cells the output tiles of an ``M × N`` result keep busy."""
    return m * n / (tiles(m, n, rows, cols) * rows * cols)


def _controllers() -> dict[tuple[int, int], DeviceConfig]:
    """Per distinct array of ``hw.boards``, its first board's device with buffers just deep enough
    for the digits GEMMs and the sweep, a 16-word instruction memory (a short Verilator build), and a
    vector unit of every lane with multiplier blocks, so that the epilogue keeps up with the array: a
    board's fewer lanes or serial multipliers show in its training-step profile instead."""
    from hw.boards import BOARDS

    out: dict[tuple[int, int], DeviceConfig] = {}
    for board in BOARDS.values():
        config = board.config
        if (config.rows, config.cols) not in out:
            depth = depth_needed(digits(config.rows, config.cols)[1] + sweep(config))
            out[config.rows, config.cols] = replace(config, depth=depth, imem=16, vector_lanes=None,
                                                    serial_multipliers=False)
    return out


CONTROLLERS = _controllers()
"""The devices of the GEMM-instruction runs, by ``(rows, cols)``."""
