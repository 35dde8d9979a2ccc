"""Golden model of the whole device: buffers, controller, array, vector unit and command layer.

:class:`Device` executes the instruction set and the host commands of ``docs/isa.md`` bit-exactly,
from wire bytes in to wire bytes out. It is the scoreboard of the controller's tests, the host's
``--target model`` and the executable definition of the instruction set. Every number comes from
:mod:`hw.numerics` (through :class:`sim.vector.VectorModel`), every bit of an instruction or a
command from :mod:`hw.isa`, and every address from :class:`hw.layout.Layout`.

Semantics that the prose of ``docs/isa.md`` leaves to the model:

- ``TENSOR`` checks its register when it runs: a buffer number that is not a :class:`Buf`, zero rows
  or columns, ``pitch·banks < cols`` or ``base + rows·pitch > depth`` is ``BAD_TENSOR`` at that
  ``TENSOR``. Using a register never defined is ``BAD_TENSOR`` at the instruction using it.
- Checks of one instruction, first failing wins: undefined registers (``BAD_TENSOR``), shapes and
  operand buffers (``BAD_SHAPE``), then ``K > k_max`` (``TOO_DEEP``). An activation code that is not
  a :class:`numerics.Act` and a ``SET`` of an unknown register are ``BAD_OPCODE``.
- An instruction reads all its operands before it writes ``out``. A GEMM whose ``out`` overlaps ``a``
  or ``b`` is outside what the hardware promises (``out`` may be ``c``, as in the SGD step); the
  compiler never emits one.
- ``NO_END`` reports ``pc = imem``, the address it failed to fetch; ``OK`` reports the ``END``'s pc.
- ``SET SLOPE`` and ``SET SCALE`` keep the low 16 bits of ``value`` as a signed number (the vector
  unit's ports); ``SET SEED`` uses all 32 bits. At reset ``SLOPE = SCALE = 0`` and ``SEED = 1``.
- ``BAD_ARGUMENT`` also rejects a ``READ`` or ``RUN`` whose reply would exceed ``max_payload`` and
  a ``RUN`` whose ``entry`` is past the instruction memory. A rejected command is not executed and
  not remembered for duplicate detection.
- The data memory ``D`` is one bank: element ``(p, q)`` of a ``D`` tensor is word
  ``base + p·pitch + q``, and its host words are its addresses. Only ``GATHER`` takes ``D``
  operands (any other instruction given one is ``BAD_SHAPE``), and a sample number in its list past
  the ``src`` tensor's rows is ``BAD_TENSOR`` once the columns before it are written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from hw import numerics
from hw.config import DeviceConfig
from hw.frame import ErrorCode, encode_error
from hw.isa import (
    COUNT_MAX,
    COUNTERS,
    INSTRUCTION_BYTES,
    OPERAND_BUFFERS,
    TENSORS,
    Buf,
    Command,
    GatherMode,
    Instruction,
    Opcode,
    ProgramArgs,
    ReadArgs,
    ReduceOp,
    Reg,
    Rounding,
    RunArgs,
    RunReply,
    Status,
    VecOp,
    WriteArgs,
    decode,
    encode,
    info_payload,
    nbytes,
)
from hw.layout import Layout
from sim.link import ErrorReply, LinkModel
from sim.reduce import reduce_group
from sim.vector import VectorModel

__all__ = ["Tensor", "Device"]

WORD_BITS = 16


@dataclass(frozen=True)
class Tensor:
    """What a tensor register holds: the fields of :class:`hw.isa.TensorDescriptor`."""

    buf: Buf
    base: int
    rows: int
    cols: int
    pitch: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def end(self) -> int:
        """The first address past the matrix."""
        return self.base + self.rows * self.pitch


class _Fault(Exception):
    """Stops ``run`` with ``status``."""

    def __init__(self, status: Status):
        super().__init__(status.name)
        self.status = status


class _BadArgument(Exception):
    """A command the controller rejects with ``ErrorCode.BAD_ARGUMENT``."""


def _fields(layout: data.Layout, bits: int) -> dict:
    """The raw integer fields of ``bits`` viewed through a struct ``layout``, nested structs as dicts.

    Raw integers, unlike a ``data.Const`` view, let out-of-range enum codes reach the fault checks.
    """
    out = {}
    for name, field in layout:
        if name.startswith("_"):   # padding
            continue
        width = Shape.cast(field.shape).width
        value = (bits >> field.offset) & ((1 << width) - 1)
        out[name] = _fields(field.shape, value) if isinstance(field.shape, data.StructLayout) else value
    return out


_ARGS = {name: field.shape for name, field in Instruction()["args"].shape}
_OPCODE_BITS = Shape.cast(Opcode).width
_SIDE_EFFECTS = (Command.WRITE, Command.PROGRAM, Command.RUN)
_ARG_NAME = {Opcode.TENSOR: "tensor", Opcode.GEMM: "gemm", Opcode.VEC: "vec", Opcode.SOFTMAX: "softmax",
             Opcode.ARGMAX: "unary", Opcode.LOSS: "loss", Opcode.SET: "set", Opcode.GATHER: "gather",
             Opcode.LOOP: "loop", Opcode.ADVANCE: "advance"}
_GATHER_SHIFT_MAX = 8    # a byte shifted up by at most 8 bits still fits a word


class Device:
    """The device as the host sees it, bit-exact with the gateware except for ``RunReply.cycles``.

    ``cycles`` is the one field a functional model cannot predict: :meth:`feed` reports 0, and a
    scoreboard comparing this model with the gateware must compare every other field and word but
    not that one.

    Parameters
    ----------
    config : DeviceConfig
        Array size, buffer depth, instruction memory and link limits.

    Attributes
    ----------
    buffers : dict[Buf, numpy.ndarray]
        The three buffers, each a ``(banks, depth)`` image of signed 16-bit words, and ``D``, a
        ``(1, data_depth)`` one.
    imem : list[int]
        The instruction memory, ``config.imem`` 64-bit words (0 is ``NOP``).
    tensors : list[Tensor | None]
        The 16 tensor registers (``None`` until defined).
    registers : dict[Reg, int]
        ``SLOPE``, ``SCALE``, ``SEED`` and ``STEPS``.
    vector : VectorModel
        The vector unit with its ``cols`` lane LFSRs.
    counters : numpy.ndarray
        The saturation counters, ``(COUNTERS, 2)``: per counter the results that saturated and those
        that use their format's top bit.
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        self.layout = Layout(config.banks)
        self.buffers = {buf: np.zeros((config.banks, config.depth), dtype=np.int64)
                        for buf in OPERAND_BUFFERS}
        self.buffers[Buf.D] = np.zeros((1, config.data_depth), dtype=np.int64)
        self.imem = [0] * config.imem
        self.tensors: list[Tensor | None] = [None] * TENSORS
        self.registers = {Reg.SLOPE: 0, Reg.SCALE: 0, Reg.SEED: 1, Reg.STEPS: 0}
        self.vector = VectorModel(lanes=config.cols)
        self.counters = np.zeros((COUNTERS, 2), dtype=np.int64)
        self.link = LinkModel(config.max_payload)
        self._last: tuple[int, int] | None = None   # (seq, type) of the last executed command
        self._last_run: tuple[bytes, int, int, int] | None = None  # reply header, buf, addr, count

    # -- matrices -------------------------------------------------------------------------------

    def _locate(self, t: Tensor, p, q):
        if t.buf == Buf.D:
            return np.zeros_like(p), t.base + p * t.pitch + q
        return self.layout.locate(p, q, t.base, t.pitch)

    def load(self, t: Tensor) -> np.ndarray:
        """The matrix a tensor register describes."""
        p, q = np.indices(t.shape)
        return self.buffers[t.buf][self._locate(t, p, q)]

    def store(self, t: Tensor, matrix: np.ndarray) -> None:
        """Write ``matrix`` (of ``t``'s shape, 16-bit values) where ``t`` says."""
        p, q = np.indices(t.shape)
        self.buffers[t.buf][self._locate(t, p, q)] = matrix

    def write_matrix(self, buf: Buf, base: int, pitch: int, matrix) -> None:
        """Store a matrix of signed 16-bit values at ``base`` of ``buf`` with rows ``pitch`` apart.

        Raises
        ------
        ValueError
            If a value does not fit 16 bits or the matrix does not fit the buffer at that pitch.
        """
        matrix = np.atleast_2d(np.asarray(matrix, dtype=np.int64))
        lo, hi = -(1 << (WORD_BITS - 1)), (1 << (WORD_BITS - 1)) - 1
        if matrix.size and (matrix.min() < lo or matrix.max() > hi):
            raise ValueError(f"matrix values must be 16-bit signed words in [{lo}, {hi}]: quantize first")
        t = Tensor(Buf(buf), base, *matrix.shape, pitch)
        if self._check(t) is not None:
            raise ValueError(f"a {matrix.shape[0]}×{matrix.shape[1]} matrix at base {base} with pitch "
                             f"{pitch} does not fit {self.config.banks} banks of {self.config.depth} words")
        self.store(t, matrix)

    def read_matrix(self, buf: Buf, base: int, pitch: int, rows: int, cols: int) -> np.ndarray:
        """The ``rows × cols`` matrix at ``base`` of ``buf`` with rows ``pitch`` apart."""
        return self.load(Tensor(Buf(buf), base, rows, cols, pitch))

    def write_words(self, buf: Buf, addr: int, words) -> None:
        """Store 16-bit words at flat addresses ``addr, addr + 1, …`` of ``buf`` (what ``WRITE`` does)."""
        words = np.asarray(words, dtype=np.int64)
        self.buffers[Buf(buf)][self._unflat(Buf(buf), np.arange(addr, addr + len(words)))] = words

    def read_words(self, buf: Buf, addr: int, count: int) -> np.ndarray:
        """``count`` signed words from flat address ``addr`` of ``buf`` on (what ``READ`` returns)."""
        return self.buffers[Buf(buf)][self._unflat(Buf(buf), np.arange(addr, addr + count))]

    def _unflat(self, buf: Buf, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.zeros_like(words), words) if buf == Buf.D else self.layout.unflat(words)

    def _size(self, buf: Buf) -> int:
        """Words of ``buf``: ``banks·depth``, or ``data_depth`` for ``D``."""
        return self.config.data_depth if buf == Buf.D else self.config.banks * self.config.depth

    def _check(self, t: Tensor) -> Status | None:
        data = t.buf == Buf.D
        narrowest = t.cols if data else self.layout.pitch(t.cols)
        if t.rows < 1 or t.cols < 1 or t.base < 0 or t.pitch < narrowest:
            return Status.BAD_TENSOR
        depth = self.config.data_depth if data else self.config.depth
        return Status.BAD_TENSOR if t.base + t.rows * t.pitch > depth else None

    # -- instructions ---------------------------------------------------------------------------

    def run(self, entry: int) -> tuple[Status, int]:
        """Execute from ``entry`` until ``END`` or the first fault: ``(status, pc)``."""
        pc = entry
        while pc < self.config.imem:
            word = self.imem[pc]
            code = word & ((1 << _OPCODE_BITS) - 1)
            if code not in Opcode._value2member_map_:
                return Status.BAD_OPCODE, pc
            op = Opcode(code)
            if op == Opcode.END:
                return Status.OK, pc
            try:
                jump = self._execute(op, word >> _OPCODE_BITS)
            except _Fault as fault:
                return fault.status, pc
            pc = pc + 1 if jump is None else jump
        return Status.NO_END, pc

    def _execute(self, op: Opcode, bits: int) -> int | None:
        """Run one instruction; a ``LOOP`` that jumps returns its target."""
        if op == Opcode.NOP:
            return None
        args = _fields(_ARGS[_ARG_NAME[op]], bits)
        if op == Opcode.LOOP:
            return self._loop(**args)
        if op == Opcode.TENSOR:
            self._tensor(**args)
        elif op == Opcode.GEMM:
            self._gemm(**args)
        elif op == Opcode.VEC:
            self._vec(**args)
        elif op == Opcode.SOFTMAX:
            self._softmax(**args)
        elif op == Opcode.ARGMAX:
            self._argmax(**args)
        elif op == Opcode.LOSS:
            self._loss(**args)
        elif op == Opcode.GATHER:
            self._gather(**args)
        elif op == Opcode.ADVANCE:
            self._advance(**args)
        else:
            self._set(**args)
        return None

    def _reg(self, t: int) -> Tensor:
        tensor = self.tensors[t]
        if tensor is None:
            raise _Fault(Status.BAD_TENSOR)
        return tensor

    def _operands(self, *regs: int) -> list[Tensor]:
        """The tensors of registers ``regs``, checked defined, then checked to be in the buffers (not
        ``D``, which only ``GATHER`` reads)."""
        tensors = [self._reg(t) for t in regs]
        self._require(all(t.buf != Buf.D for t in tensors))
        return tensors

    @staticmethod
    def _distinct(*tensors: Tensor) -> None:
        """Operands read by one instruction come from different buffers (one read port each)."""
        if len({t.buf for t in tensors}) != len(tensors):
            raise _Fault(Status.BAD_SHAPE)

    @staticmethod
    def _require(ok: bool) -> None:
        if not ok:
            raise _Fault(Status.BAD_SHAPE)

    def _tensor(self, t: int, **descriptor: int) -> None:
        if descriptor["buf"] not in Buf._value2member_map_:
            raise _Fault(Status.BAD_TENSOR)
        tensor = Tensor(**{**descriptor, "buf": Buf(descriptor["buf"])})
        if self._check(tensor) is not None:
            raise _Fault(Status.BAD_TENSOR)
        self.tensors[t] = tensor

    def _epilogue(self, a: np.ndarray, b: np.ndarray, epi: dict) -> tuple[np.ndarray, ...]:
        """The vector unit on beats ``a``, ``b`` (``(beats, lanes)``), in order: ``y`` and its flags."""
        if epi["act"] not in numerics.Act._value2member_map_:
            raise _Fault(Status.BAD_OPCODE)
        return self.vector.run(a, b, op=VecOp(epi["op"]), b_shift=epi["b_shift"], shift=epi["shift"],
                           round=Rounding(epi["round"]), act=numerics.Act(epi["act"]),
                           deriv=bool(epi["deriv"]), slope=self.registers[Reg.SLOPE],
                           scale=self.registers[Reg.SCALE])

    def _beats(self, a: np.ndarray, b: np.ndarray, order: list[tuple[int, int]], epi: dict) -> np.ndarray:
        """Run M×N matrices ``a``, ``b`` through the vector unit as beats ``(row, first column)``.

        Each beat is ``cols`` lanes wide; lanes past ``N`` carry zeros, are computed (they advance
        nothing but their own LFSR, as every lane does) and are not written back or counted. The
        epilogue's saturation counter counts the beats, or with ``read_counter`` replaces them.
        """
        n = a.shape[1]
        rows = np.array([i for i, _ in order], dtype=np.int64)[:, None]
        cols = np.array([j for _, j in order], dtype=np.int64)[:, None] + np.arange(self.config.cols)
        valid = cols < n
        clipped = np.minimum(cols, n - 1)
        y, saturated, high = self._epilogue(np.where(valid, a[rows, clipped], 0),
                                            np.where(valid, b[rows, clipped], 0), epi)
        counts = self.counters[epi["counter"]]   # counter 0 is never written: it stays 0
        if epi["read_counter"]:
            for beat, (row, _) in enumerate(order):
                y[beat] = 0
                if row < 2:
                    y[beat], counts[row] = counts[row], 0
        elif epi["counter"]:
            counts += [saturated[valid].sum(), high[valid].sum()]
            np.minimum(counts, COUNT_MAX, out=counts)
        out = np.empty_like(a)
        out[np.broadcast_to(rows, cols.shape)[valid], cols[valid]] = y[valid]
        return out

    def _gemm(self, a: int, ta: int, b: int, tb: int, c: int, use_c: int, out: int, epi: dict) -> None:
        ta_, tb_, to, *rest = self._operands(a, b, out, *([c] if use_c else []))
        tc = rest[0] if rest else None
        operands = (ta_, tb_) if tc is None else (ta_, tb_, tc)
        m, k = ta_.shape[::-1] if ta else ta_.shape
        k_b, n = tb_.shape[::-1] if tb else tb_.shape
        self._require(k == k_b and to.shape == (m, n) and (tc is None or tc.shape == (m, n)))
        self._distinct(*operands)
        if k > self.config.k_max:
            raise _Fault(Status.TOO_DEEP)
        lhs, rhs = self.load(ta_), self.load(tb_)
        acc = (lhs.T if ta else lhs) @ (rhs.T if tb else rhs)   # exact int64 sums of the array
        addend = self.load(tc) if tc is not None else np.zeros_like(acc)
        r, cl = self.config.rows, self.config.cols
        order = [(i, j0) for i0 in range(0, m, r) for j0 in range(0, n, cl)
                 for i in range(i0, min(i0 + r, m))]
        self.store(to, self._beats(acc, addend, order, epi))

    def _vec(self, a: int, b: int, use_b: int, out: int, epi: dict) -> None:
        ta_, to, *rest = self._operands(a, out, *([b] if use_b else []))
        tb_ = rest[0] if rest else None
        self._require(to.shape == ta_.shape and (tb_ is None or tb_.shape == ta_.shape))
        if tb_ is not None:
            self._distinct(ta_, tb_)
        lhs = self.load(ta_)
        rhs = self.load(tb_) if tb_ is not None else np.zeros_like(lhs)
        m, n = ta_.shape
        order = [(i, j0) for j0 in range(0, n, self.config.cols) for i in range(m)]
        self.store(to, self._beats(lhs, rhs, order, epi))

    def _reduction(self, a: Tensor, out: Tensor) -> None:
        """Shape rules of SOFTMAX/ARGMAX/LOSS: columns reduce in the softmax unit of ``max_rows``."""
        self._require(a.rows <= self.config.max_rows and out.cols == a.cols)

    def _softmax(self, a: int, out: int, shift: int) -> None:
        ta_, to = self._operands(a, out)
        self._reduction(ta_, to)
        self._require(to.shape == ta_.shape)
        self.store(to, numerics.softmax(self.load(ta_), shift=shift))

    def _argmax(self, a: int, out: int) -> None:
        ta_, to = self._operands(a, out)
        self._reduction(ta_, to)
        self._require(to.rows == 1)
        z = self.load(ta_)
        self.store(to, reduce_group(ReduceOp.ARGMAX, z, np.zeros_like(z))[None, :])

    def _loss(self, a: int, y: int, out: int) -> None:
        ta_, ty, to = self._operands(a, y, out)
        self._reduction(ta_, to)
        self._require(ty.shape == ta_.shape and to.rows == 1)
        self._distinct(ta_, ty)
        self.store(to, reduce_group(ReduceOp.LOSS, self.load(ta_), self.load(ty))[None, :])

    def _gather(self, src: int, idx: int, out: int, mode: int, shift: int) -> None:
        ts, ti, to = self._reg(src), self._reg(idx), self._reg(out)
        one_hot = mode == GatherMode.ONEHOT.value
        rows = ts.cols * (2 if mode == GatherMode.BYTES.value else 1)
        self._require(ts.buf == ti.buf == Buf.D != to.buf and ti.rows == 1 and ti.cols == to.cols
                      and (ts.cols == 1 if one_hot else to.rows <= rows))
        if mode not in GatherMode._value2member_map_ or shift > _GATHER_SHIFT_MAX:
            raise _Fault(Status.BAD_OPCODE)
        memory = self.buffers[Buf.D][0]
        samples = memory[ti.base:ti.base + ti.cols] & 0xFFFF
        bad = np.flatnonzero(samples >= ts.rows)
        samples = samples[:bad[0]] if len(bad) else samples          # the columns before it are written
        words = memory[ts.base + samples[:, None] * ts.pitch + np.arange(ts.cols)]   # a sample per row
        if mode == GatherMode.WORDS.value:
            columns = words[:, :to.rows].T
        elif mode == GatherMode.BYTES.value:
            halves = [(((words >> s) & 0xFF) ^ 0x80) - 0x80 for s in (0, 8)]      # low byte first
            columns = np.stack(halves, axis=2).reshape(len(samples), 2 * ts.cols)[:, :to.rows].T << shift
        else:
            classes = words[:, 0] & 0xFFFF
            hot = (classes != 0)[None, :] if to.rows == 1 else np.arange(to.rows)[:, None] == classes
            columns = hot.astype(np.int64) * numerics.ACT.one
        if len(samples):
            self.store(dataclasses.replace(to, cols=len(samples)), columns)
        if len(bad):
            raise _Fault(Status.BAD_TENSOR)

    def _loop(self, target: int) -> int | None:
        self.registers[Reg.STEPS] = max(self.registers[Reg.STEPS] - 1, 0)
        return target if self.registers[Reg.STEPS] else None

    def _advance(self, t: int, delta: int) -> None:
        moved = Tensor(**{**vars(self._reg(t)), "base": self._reg(t).base + ((delta ^ 0x8000) - 0x8000)})
        if self._check(moved) is not None:
            raise _Fault(Status.BAD_TENSOR)
        self.tensors[t] = moved

    def _set(self, reg: int, value: int) -> None:
        if reg not in Reg._value2member_map_:
            raise _Fault(Status.BAD_OPCODE)
        reg = Reg(reg)
        if reg == Reg.SEED:
            self.vector.seed(value)
        elif reg == Reg.STEPS:
            value &= 0xFFFF
        else:
            value = ((value & 0xFFFF) ^ 0x8000) - 0x8000
        self.registers[reg] = value

    # -- host commands ------------------------------------------------------------------------------

    def program(self, words, addr: int = 0) -> None:
        """Write instruction words from ``addr`` on (what ``PROGRAM`` does)."""
        words = [int(w) for w in words]
        if addr < 0 or addr + len(words) > self.config.imem:
            raise ValueError(f"{len(words)} instructions at {addr} overrun the instruction memory of "
                             f"{self.config.imem}: shorten the program")
        self.imem[addr:addr + len(words)] = words

    def feed(self, wire: bytes) -> bytes:
        """Consume wire bytes, execute the commands they complete, return the reply wire bytes."""
        replies = bytearray()
        for event in self.link.feed(wire):
            replies += event.wire if isinstance(event, ErrorReply) else self._command(event)
        return bytes(replies)

    def _command(self, frame) -> bytes:
        if frame.type not in Command._value2member_map_:
            return encode_error(ErrorCode.UNKNOWN_TYPE, frame.seq)
        command = Command(frame.type)
        if (frame.seq, frame.type) == self._last and command in _SIDE_EFFECTS:
            payload = self._replay(command)
        else:
            try:
                payload = self._HANDLERS[command](self, frame.payload)
            except _BadArgument:
                return encode_error(ErrorCode.BAD_ARGUMENT, frame.seq)
            self._last = frame.seq, frame.type
        return self.link.reply(frame.type, frame.seq, payload)

    def _replay(self, command: Command) -> bytes:
        """The reply to a retransmission of the last WRITE, PROGRAM or RUN, which does not run again.

        ``INFO`` and ``READ`` have no side effects: their retransmissions simply execute again.
        """
        if command == Command.RUN:
            header, buf, addr, count = self._last_run
            return header + self._words(buf, addr, count)
        return b""

    def _buffer_range(self, buf: int, addr: int, count: int, reply_bytes: int = 0) -> Buf:
        if buf not in Buf._value2member_map_ or addr + count > self._size(Buf(buf)) or (
                buf == Buf.D and not self.config.data_depth):
            raise _BadArgument
        if reply_bytes > self.config.max_payload:
            raise _BadArgument
        return Buf(buf)

    def _words(self, buf: Buf, addr: int, count: int) -> bytes:
        return self.read_words(buf, addr, count).astype("<i2").tobytes()

    @staticmethod
    def _args(layout: data.Layout, payload: bytes, exact: bool = True) -> tuple[data.Const, bytes]:
        size = nbytes(layout)
        if len(payload) < size or (exact and len(payload) != size):
            raise _BadArgument
        return decode(layout, payload), payload[size:]

    def _info(self, payload: bytes) -> bytes:
        if payload:
            raise _BadArgument
        return info_payload(self.config)

    def _write(self, payload: bytes) -> bytes:
        args, rest = self._args(WriteArgs(), payload, exact=False)
        if len(rest) % 2:
            raise _BadArgument
        words = np.frombuffer(rest, dtype="<i2")
        self.write_words(self._buffer_range(args.buf, args.addr, len(words)), args.addr, words)
        return b""

    def _read(self, payload: bytes) -> bytes:
        args, _ = self._args(ReadArgs(), payload)
        buf = self._buffer_range(args.buf, args.addr, args.count, 2 * args.count)
        return self._words(buf, args.addr, args.count)

    def _program(self, payload: bytes) -> bytes:
        args, rest = self._args(ProgramArgs(), payload, exact=False)
        if len(rest) % INSTRUCTION_BYTES or args.addr + len(rest) // INSTRUCTION_BYTES > self.config.imem:
            raise _BadArgument
        self.program([int.from_bytes(rest[i:i + INSTRUCTION_BYTES], "little")
                      for i in range(0, len(rest), INSTRUCTION_BYTES)], args.addr)
        return b""

    def _run(self, payload: bytes) -> bytes:
        args, _ = self._args(RunArgs(), payload)
        header_bytes = nbytes(RunReply())
        buf = self._buffer_range(args.buf, args.addr, args.count, header_bytes + 2 * args.count)
        if args.entry >= self.config.imem:
            raise _BadArgument
        status, pc = self.run(args.entry)
        header = encode(RunReply(), {"status": status, "pc": pc, "cycles": 0})
        self._last_run = header, buf, args.addr, args.count
        return header + self._words(buf, args.addr, args.count)

    _HANDLERS = {Command.INFO: _info, Command.WRITE: _write, Command.READ: _read,
                 Command.PROGRAM: _program, Command.RUN: _run}
