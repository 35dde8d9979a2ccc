"""The instruction set and host commands of the Systolic device, defined once.

Instructions are 64-bit words (:class:`Instruction`), stored in the device's instruction memory and
run by the controller; host commands are frames (``hw/frame.py``) whose payloads are the byte
layouts below. The controller decodes these layouts in hardware; the golden model and the host
encode and decode them with :func:`encode` / :func:`decode`, so one definition describes the bits.
``docs/isa.md`` explains the semantics.
"""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data, enum

__all__ = [
    "Buf", "OPERAND_BUFFERS", "Opcode", "Reg", "VecOp", "Rounding", "ReduceOp", "GatherMode", "Mode",
    "Command", "Status", "Epilogue",
    "Instruction", "TensorDescriptor", "TENSORS", "field_max", "nbytes",
    "InfoReply", "WriteArgs", "ReadArgs", "ProgramArgs", "RunArgs", "RunReply",
    "encode", "decode", "instruction", "info_payload", "INSTRUCTION_BYTES", "VERSION",
    "SOFTMAX_SHIFT_MAX", "COUNTERS", "COUNT_MAX",
]

VERSION = 4
"""Version of this instruction set and command protocol, reported by ``INFO``."""

TENSORS = 16
"""Tensor registers of the controller."""


class Buf(enum.Enum, shape=2):
    """On-chip memories: the buffers of weights, activations (inputs and ``g(Z)``) and the rest (``Z``,
    ``dZ``, labels), and the data memory ``D`` of resident training data, which only ``GATHER`` reads."""

    W = 0
    A = 1
    G = 2
    D = 3


OPERAND_BUFFERS = (Buf.W, Buf.A, Buf.G)
"""The banked buffers instructions compute on (``D`` is a plain memory of ``data_depth`` words)."""


class Opcode(enum.Enum, shape=4):
    NOP = 0
    TENSOR = 1
    GEMM = 2
    VEC = 3
    SOFTMAX = 4
    ARGMAX = 5
    LOSS = 6
    SET = 7
    GATHER = 8
    LOOP = 9
    ADVANCE = 10
    END = 15


class Reg(enum.Enum, shape=4):
    """Run-time registers written by ``SET``."""

    SLOPE = 0   # leaky-ReLU slope, raw in numerics.SLOPE
    SCALE = 1   # multiplier of the SGD step (learning rate / minibatch, scaled)
    SEED = 2    # reseeds the stochastic-rounding LFSRs: lane l := lfsr_seed(SEED, l)
    STEPS = 3   # times LOOP sends the program back (16 bits, unsigned)


class VecOp(enum.Enum, shape=2):
    """How the operands combine: ``a + (b << b_shift)``, ``a - (b << b_shift)``, ``a * b``, or the
    SGD step ``(b << b_shift) - a * scale`` (``b`` a weight, ``a`` its gradient, ``scale`` the
    learning rate)."""

    ADD = 0
    SUB = 1
    MUL = 2
    SGD = 3


class Rounding(enum.Enum, shape=1):
    """Rounding of the requantising shift (both saturate)."""

    NEAREST_EVEN = 0
    STOCHASTIC = 1


class ReduceOp(enum.Enum, shape=1):
    """What a group reduces to: the row of each column's largest ``a``, or the cross-entropy loss."""

    ARGMAX = 0
    LOSS = 1


class GatherMode(enum.Enum, shape=2):
    """What ``GATHER`` makes of a sample's words in ``D``: the words themselves, two signed bytes per
    word (low byte first) shifted up, or a class number as a one-hot column in ``ACT``."""

    WORDS = 0
    BYTES = 1
    ONEHOT = 2


class Mode(enum.Enum, shape=1):
    """How a buffer access walks the stored matrix; lane ``l`` of the access is element ``l`` of the walk.

    - ``ROW``: elements ``(p, q + l)``, a row segment.
    - ``COLUMN``: elements ``(p + l, q)``, a column segment.

    Host word ``w`` is element ``(0, w)`` of a matrix whose row 0 starts at address 0, so the host's
    flat words are ``ROW`` accesses with ``row = skew = 0`` and ``q = w`` (a write of one word masks
    every lane but 0).
    """

    ROW = 0
    COLUMN = 1


COUNTERS = 16
"""Saturation counters of the device; counter 0 is "none" and always reads 0."""

COUNT_MAX = (1 << 15) - 1
"""Where a saturation counter stops counting, so that it reads back as a positive word."""


class Epilogue(data.StructLayout):
    """What the vector unit does to each result: see :class:`hw.vector.VectorUnit`.

    ``counter`` (not 0) adds the results written that saturated, and those that use their format's
    top bit, to that saturation counter; with ``read_counter`` the instruction writes the counter
    instead of its results (row 0: saturated, row 1: top bit used, clearing each as it is written).
    """

    def __init__(self):
        super().__init__({
            "op": VecOp, "act": 3, "deriv": 1, "round": Rounding, "shift": 6, "b_shift": 5,
            "counter": (COUNTERS - 1).bit_length(), "read_counter": 1,
        })


class TensorDescriptor(data.StructLayout):
    """What a tensor register holds: a ``rows × cols`` matrix at ``base`` of ``buf``, rows ``pitch`` apart.

    ``TENSOR`` carries these fields after the register number; the controller's registers, the golden
    model's :class:`sim.model.Tensor` and the compiler's regions take them from here.
    """

    def __init__(self):
        super().__init__({"buf": Buf, "base": 16, "rows": 12, "cols": 12, "pitch": 12})


def field_max(layout: data.StructLayout, name: str) -> int:
    """The largest value of the unsigned field ``name`` of ``layout``."""
    return (1 << layout[name].width) - 1


def nbytes(layout: data.Layout) -> int:
    """Bytes of ``layout`` on the wire (its bits rounded up)."""
    return (layout.size + 7) // 8


_T = 4  # bits of a tensor register number
_GEMM = {"a": _T, "ta": 1, "b": _T, "tb": 1, "c": _T, "use_c": 1, "out": _T}
_EPI_SHIFT = sum(_GEMM.values()) + Epilogue()["shift"].offset
"""Where a GEMM keeps its epilogue's ``shift``: a SOFTMAX keeps its input shift there too, so the
controller hands both to their units from the same bits."""

SOFTMAX_SHIFT_MAX = 7
"""Largest input shift of ``SOFTMAX``: logits with ``ACT.frac - 7`` fraction bits and up."""


class Instruction(data.StructLayout):
    """One 64-bit instruction: an opcode and the arguments of that opcode."""

    def __init__(self):
        super().__init__({
            "op": Opcode,
            "args": data.UnionLayout({
                "tensor": data.StructLayout({"t": _T, **TensorDescriptor().members}),
                "gemm": data.StructLayout({**_GEMM, "epi": Epilogue()}),
                "vec": data.StructLayout({
                    "a": _T, "b": _T, "use_b": 1, "out": _T, "epi": Epilogue()}),
                "unary": data.StructLayout({"a": _T, "out": _T}),
                "softmax": data.StructLayout({"a": _T, "out": _T, "_pad": _EPI_SHIFT - 2 * _T,
                                              "shift": SOFTMAX_SHIFT_MAX.bit_length()}),
                "loss": data.StructLayout({"a": _T, "y": _T, "out": _T}),
                "set": data.StructLayout({"reg": Reg, "value": 32}),
                "gather": data.StructLayout({"src": _T, "idx": _T, "out": _T, "mode": GatherMode,
                                             "shift": 4}),
                "loop": data.StructLayout({"target": 16}),
                "advance": data.StructLayout({"t": _T, "delta": signed(16)}),
            }),
            "_pad": 64 - 4 - 58,
        })


INSTRUCTION_BYTES = 8


class Command(enum.IntEnum):
    """Frame types of host commands; a reply carries the command's type, or ``FrameType.ERROR``."""

    INFO = 0x01
    WRITE = 0x02
    READ = 0x03
    PROGRAM = 0x04
    RUN = 0x05


class Status(enum.IntEnum):
    """Result of ``RUN``: the first fault stops the program."""

    OK = 0
    BAD_OPCODE = 1
    BAD_TENSOR = 2      # a tensor runs past its buffer, or register not defined
    BAD_SHAPE = 3       # operand shapes do not agree
    TOO_DEEP = 4        # a GEMM's K exceeds the array's k_max
    NO_END = 5          # ran off the end of the instruction memory


class InfoReply(data.StructLayout):
    """Payload of the ``INFO`` reply: what the host needs to compile for this device."""

    def __init__(self):
        super().__init__({
            "version": 16, "rows": 8, "cols": 8, "banks": 8, "depth": 32, "imem": 16,
            "k_max": 32, "acc_width": 8, "act_frac": 8, "clk_hz": 32, "baud": 32,
            "max_payload": 16, "gateware": 32, "max_rows": 16, "data_depth": 32,
        })


class WriteArgs(data.StructLayout):
    """``WRITE`` payload header; 16-bit little-endian words to flat addresses ``addr, addr+1, …``."""

    def __init__(self):
        super().__init__({"buf": 8, "addr": 32})


class ReadArgs(data.StructLayout):
    """``READ`` payload; the reply is ``count`` 16-bit little-endian words."""

    def __init__(self):
        super().__init__({"buf": 8, "addr": 32, "count": 16})


class ProgramArgs(data.StructLayout):
    """``PROGRAM`` payload header; 8-byte little-endian instructions from ``addr`` on."""

    def __init__(self):
        super().__init__({"addr": 16})


class RunArgs(data.StructLayout):
    """``RUN`` payload: run from ``entry`` to ``END``, then return ``count`` words of ``buf`` at ``addr``."""

    def __init__(self):
        super().__init__({"entry": 16, "buf": 8, "addr": 32, "count": 16})


class RunReply(data.StructLayout):
    """``RUN`` reply header, followed by the ``count`` words asked for."""

    def __init__(self):
        super().__init__({"status": 8, "pc": 16, "cycles": 32})


def info_payload(config) -> bytes:
    """The ``INFO`` reply payload of a device with this :class:`hw.config.DeviceConfig`."""
    return encode(InfoReply(), {
        "version": VERSION, **{name: getattr(config, name) for name, _ in InfoReply() if name != "version"}})


def encode(layout: data.Layout, fields: dict) -> bytes:
    """The little-endian bytes of ``fields`` laid out by ``layout``."""
    return layout.const(fields).as_bits().to_bytes(nbytes(layout), "little")


def decode(layout: data.Layout, raw: bytes) -> data.Const:
    """A view of the first bytes of ``raw`` through ``layout`` (``view.field`` reads a field)."""
    size = nbytes(layout)
    if len(raw) < size:
        raise ValueError(f"{type(layout).__name__} needs {size} bytes, got {len(raw)}")
    return layout.from_bits(int.from_bytes(raw[:size], "little"))


def instruction(op: Opcode, **args) -> int:
    """One instruction word: ``instruction(Opcode.GEMM, gemm={...})``; no arguments for NOP/END."""
    return Instruction().const({"op": op, "args": args}).as_bits()
