"""The configuration of one device: everything the gateware, the golden model and the host agree on."""

from __future__ import annotations

from dataclasses import dataclass, field

from .numerics import ACT, acc_bits

__all__ = ["DeviceConfig", "BOARD_DEVICES"]


@dataclass(frozen=True)
class DeviceConfig:
    """One device: array size, buffers, link. Board tops pick one; tests build small ones.

    Parameters
    ----------
    rows, cols : int
        The systolic array, R×C. The vector unit takes beats of ``cols`` lanes.
    depth : int
        Words per bank of each of the three buffers.
    imem : int
        Instructions the instruction memory holds.
    k_max : int
        Deepest GEMM (sets the accumulator width).
    max_rows : int
        Most rows (classes) a softmax, argmax or loss column may have.
    max_payload : int
        Largest frame payload the link accepts, in bytes.
    clk_hz, baud : int
        Clock and UART rate (reported by ``INFO``; the virtual board has no UART).
    vector_lanes : int or None
        Lanes the vector, softmax and reduce units compute per cycle, a divisor of ``cols`` (``None``:
        ``cols``, a beat per cycle). Fewer save logic on small parts; results are the same.
    data_depth : int
        Words of the data memory ``D`` that holds resident training data (0: none; the host then
        streams every minibatch).
    serial_multipliers : bool
        The vector and softmax units multiply by shift and add, 16 (softmax: 18) cycles per step of
        products (``MUL``, ``SGD``, leaky ReLU, the tables), for parts whose multiplier blocks all go
        to the array.
    """

    rows: int = 4
    cols: int = 4
    depth: int = 2048
    imem: int = 256
    k_max: int = 1024
    max_rows: int = 16
    max_payload: int = 1024
    clk_hz: int = 50_000_000
    baud: int = 3_000_000
    vector_lanes: int | None = None
    serial_multipliers: bool = False
    data_depth: int = 0
    gateware: int = field(default=1)

    def __post_init__(self):
        for name in ("rows", "cols", "depth", "imem", "k_max", "max_rows", "max_payload"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DeviceConfig.{name} must be a positive integer, not {value!r}")
        if not isinstance(self.data_depth, int) or not 0 <= self.data_depth <= 1 << 16:
            raise ValueError(f"DeviceConfig.data_depth must be 0 … 65536 words, not {self.data_depth!r}")
        lanes = self.vector_lanes
        if lanes is not None and (not isinstance(lanes, int) or lanes < 1 or self.cols % lanes):
            raise ValueError(f"DeviceConfig.vector_lanes must be a divisor of cols={self.cols} or None, "
                             f"not {lanes!r}")

    @property
    def banks(self) -> int:
        """Banks per buffer: the smallest power of two covering both array edges."""
        return 1 << (max(self.rows, self.cols) - 1).bit_length()

    @property
    def acc_width(self) -> int:
        return acc_bits(16, 16, self.k_max)

    @property
    def act_frac(self) -> int:
        return ACT.frac


# 75 MHz (3 Mbaud is a twenty-fifth of it), every critical path registered: the buffers' lanes reach
# the reduce and softmax units through a register, the vector unit rounds its interpolation in a
# stage of its own, block-RAM reads pass a register before any check, and the array's drain waits on
# no unit after it. Two vector lanes (an 8-wide beat in 4 cycles) leave the 8×8 parts' router room;
# the smaller parts multiply serially in the vector and softmax units, their DSPs going to the array.
# The data memory takes the block RAM the buffers leave (a DP16KD holds 1,024 words): the digits
# training set, packed, needs about 46 K words; the 12F has no room left for the gather unit. The 45F
# stays at 45 MHz (a fifteenth of it is 3 Mbaud) until its reads' ready path meets 75 MHz.
_ECP5 = dict(depth=2048, imem=256, k_max=1024, max_rows=16, max_payload=1024, clk_hz=75_000_000,
             baud=3_000_000)

BOARD_DEVICES: dict[str, DeviceConfig] = {
    "icebreaker": DeviceConfig(rows=2, cols=4, depth=256, imem=128, k_max=256, max_rows=16, max_payload=256,
                               clk_hz=12_000_000, baud=3_000_000, vector_lanes=1, serial_multipliers=True),
    "ulx3s-12f": DeviceConfig(rows=4, cols=4, **{**_ECP5, "depth": 1024},
                              vector_lanes=1, serial_multipliers=True),
    "ulx3s-25f": DeviceConfig(rows=4, cols=4, **_ECP5, vector_lanes=2,
                              serial_multipliers=True, data_depth=16384),
    "ulx3s-45f": DeviceConfig(rows=8, cols=8, **{**_ECP5, "clk_hz": 45_000_000}, vector_lanes=2,
                              serial_multipliers=True, data_depth=49152),
    "ulx3s-85f": DeviceConfig(rows=8, cols=8, **_ECP5, vector_lanes=2, data_depth=65536),
}
"""The device of every board, by board name (``hw.boards`` adds its part, clock and pins): what
``--board`` gives the virtual board and the golden model."""
