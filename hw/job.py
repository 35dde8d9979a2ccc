"""What the controller's parts share about the running instruction (``hw/controller.py``)."""

from __future__ import annotations

from amaranth.hdl import Mux
from amaranth.lib import data
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from .config import DeviceConfig
from .isa import Epilogue, Opcode

__all__ = ["Operand", "Job", "Tiles", "Tag", "run_members", "dim_bits", "row_bits", "last_start",
           "block_cols"]


def dim_bits(config: DeviceConfig) -> int:
    """Bits of a dimension M, N or K: a valid tensor has at most ``depth`` rows, ``banks·depth`` columns."""
    return min(12, (config.banks * config.depth).bit_length())


def row_bits(config: DeviceConfig) -> int:
    """Bits of a buffer address (a row start or a pitch), as :class:`hw.buffers.ReadRequest` has them."""
    return max(1, ceil_log2(config.depth))


class Operand(data.StructLayout):
    """Where a matrix's rows are: its buffer, the address of row 0 and the addresses between rows."""

    def __init__(self, config: DeviceConfig):
        super().__init__({"buf": 2, "base": row_bits(config), "pitch": row_bits(config)})


class Job(data.StructLayout):
    """The running instruction as its streams need it, set while the sequencer loads its registers.

    ``x`` is a GEMM's ``a`` (its buffer 3, none, for a pass); ``y`` a GEMM's ``b`` or a pass's ``a``;
    ``z`` a GEMM's ``c`` or a pass's second operand, read when ``use_z``; ``out`` the result. The
    instruction is ``m × k`` by ``k × n`` (a GEMM) or ``m × n`` (a pass).
    """

    def __init__(self, config: DeviceConfig):
        dim = dim_bits(config)
        super().__init__({
            "op": Opcode, "epi": Epilogue(), "ta": 1, "tb": 1, "gemm": 1, "use_z": 1,
            "x": Operand(config), "y": Operand(config), "z": Operand(config), "out": Operand(config),
            "m": dim, "n": dim, "k": dim,
        })


class Tiles(data.StructLayout):
    """Where the last row tile and column block start, and how many rows (columns) they have."""

    def __init__(self, config: DeviceConfig):
        dim = dim_bits(config)
        super().__init__({"last_i0": dim, "last_j0": dim,
                          "last_rows": range(config.rows + 1), "last_cols": range(config.cols + 1)})


def run_members(config: DeviceConfig) -> dict:
    """The running instruction as the sequencer hands it to the other parts (their side; the
    sequencer's is flipped): ``go`` one cycle before its streams, ``running`` while they run, and its
    :class:`Job` and :class:`Tiles`."""
    return {"job": In(Job(config)), "tiles": In(Tiles(config)), "go": In(1), "running": In(1)}


class Tag(data.StructLayout):
    """Carried from a read request to its response: the step's flags."""

    def __init__(self):
        super().__init__({"first": 1, "last": 1})


def last_start(n, step: int):
    """``step·floor((n − 1)/step)`` for ``1 ≤ n < 2**12``: a shift, or a multiplication by the reciprocal."""
    if step & (step - 1) == 0:
        return (n - 1) & ~(step - 1)
    shift = 12 + (step - 1).bit_length()          # exact for every n below 2**12
    return ((n - 1) * -(-(1 << shift) // step) >> shift) * step


def block_cols(tiles, j0, cols: int):
    """Columns of the column block starting at ``j0`` inside the matrix."""
    return Mux(j0 == tiles.last_j0, tiles.last_cols, cols)
