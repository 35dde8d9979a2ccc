"""The operand walk: the read requests of the running instruction, and the host's reads while idle."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .buffer_set import Steps
from .buffers import ReadRequest, flat_word, times
from .config import DeviceConfig
from .host_port import HostRead
from .isa import Mode
from .job import Tag, dim_bits, row_bits, run_members

__all__ = ["OperandWalk"]


class OperandWalk(wiring.Component):
    """Issues the X, Y and Z read requests of an instruction, one step per cycle the buffers take.

    A GEMM's steps walk the output tiles ``(i0, j0)``, row tiles outermost, and ``k`` inside: X reads
    column ``k`` of the tile of ``a`` (row ``k`` of ``aᵀ``), Y row ``k`` of the tile of ``b`` (column
    ``k`` of ``bᵀ``); Z walks the tiles of ``c`` a row at a time. A pass's steps walk the column
    blocks, rows inside, Y and Z together. The requests are registered; the start of each row they
    name (``base + p·pitch``) is kept by additions.

    Cycle contract:

    - ``go`` (one cycle, busy) loads the first requests; from the next cycle, while ``running``, the
      walk advances on each cycle a request is taken, and drops ``valid`` after the last.
    - While not ``busy``, ``host`` reads are X requests of ``x_buf`` (a ROW access of row 0 at the
      flat word, answered in lane 0). A read of another buffer than the last waits until no X request
      or response (``x_pending``) is outstanding.

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        request = ReadRequest(config.banks, config.depth, Tag().size)
        super().__init__({
            "busy": In(1), **run_members(config),
            "steps": Out(stream.Signature(Steps(config))), "z": Out(stream.Signature(request)),
            "x_buf": Out(2), "host": In(stream.Signature(HostRead)), "x_pending": In(1),
        })
        dim = dim_bits(config)
        self._x, self._y, self._z = (Signal(request, name=f"{n}_req") for n in "xyz")
        self._tag = Signal(Tag())
        self._z_band = Signal(row_bits(config))           # the first row of Z's tile (a pass: its base)
        self._step = [Signal(dim, name=n) for n in ("i0", "j0", "k")]   # a pass: k is the row
        self._c = [Signal(dim, name="c_i0"), Signal(dim, name="c_j0"), Signal(range(config.rows), name="c_r")]
        # What the walks compare with and add, from the instruction's operands (registered: they
        # hold while it runs): the last k (a pass: row) and the strides of a row tile and a block.
        self._k_last, self._m_last = Signal(dim), Signal(dim)
        self._x_band = Signal(row_bits(config))
        self._y_block = Signal(row_bits(config))

    def elaborate(self, platform):
        m = Module()
        job, steps, z = self.job, self.steps, self.z
        for port, req, operand in ((steps.payload.x, self._x, job.x), (steps.payload.y, self._y, job.y),
                                   (z.payload, self._z, job.z)):
            m.d.comb += [port.eq(req), port.pitch.eq(operand.pitch), port.tag.eq(self._tag)]
        x_take, z_take = steps.valid & steps.ready, z.valid & z.ready
        bits = len(self._x.row)
        m.d.sync += [self._k_last.eq(job.k - 1), self._m_last.eq(job.m - 1),
                     self._x_band.eq(times(job.x.pitch, self.config.rows, bits)),
                     self._y_block.eq(times(job.y.pitch, self.config.cols, bits))]
        _, s_j0, s_k = self._step
        with m.If(self.go):
            m.d.sync += [
                *(counter.eq(0) for counter in (*self._step, *self._c)),
                steps.valid.eq(1), z.valid.eq(job.use_z), self.x_buf.eq(job.x.buf),
                self._z_band.eq(job.z.base), *_access(self._z, 0, 0, 0, job.z.base),
            ]
            with m.If(job.gemm):
                m.d.sync += self._gemm_steps(0, 0, 0, "start")
            with m.Else():
                m.d.sync += self._pass_beat(0, 0, "start")
        with m.If(self.running & x_take):
            with m.If(job.gemm):
                self._tile_walk(m, self._step, self._k_last, steps.valid, self._gemm_steps)
            with m.Else():
                with m.If(s_k == self._m_last):
                    m.d.sync += s_k.eq(0)
                    with m.If(s_j0 == self.tiles.last_j0):
                        m.d.sync += [steps.valid.eq(0), z.valid.eq(0)]
                    with m.Else():
                        next_j0 = s_j0 + self.config.cols
                        m.d.sync += [s_j0.eq(next_j0), *self._pass_beat(0, next_j0, "block")]
                with m.Else():
                    m.d.sync += [s_k.eq(s_k + 1), *self._pass_beat(s_k + 1, s_j0, "inner")]
        with m.If(job.gemm & z_take):
            self._tile_walk(m, self._c, self.config.rows - 1, z.valid, self._c_rows)

        host = self.host
        switching = (host.payload.buf != self.x_buf) & (steps.valid | self.x_pending)
        m.d.comb += host.ready.eq(~self.busy & (~steps.valid | x_take) & ~switching)
        with m.If(host.ready):
            m.d.sync += [steps.valid.eq(host.valid), *flat_word(self._x, host.payload.addr)]
            with m.If(host.valid):
                m.d.sync += self.x_buf.eq(host.payload.buf)
        return m

    # The walks below load the request of the next step; ``event`` says how the walk moved, and so
    # how the start of the request's row follows: "start" (the first step), "inner" (the next step
    # of a tile or row of a block), "block" (the next column block, the inner walk from 0) or "band"
    # (the next row tile, from its first block and step).
    def _gemm_steps(self, i0, j0, k, event):
        """X and Y requests of step ``k`` of tile ``(i0, j0)``.

        A is read at ``(i0, k)`` (column k of the tile) or, if ``ta``, at ``(k, i0)`` (row k of aᵀ);
        B at ``(k, j0)`` (row k of the tile) or, if ``tb``, at ``(j0, k)`` (column k of bᵀ).
        """
        job, x, y = self.job, self._x, self._y
        x_next = {"start": job.x.base,
                  "inner": Mux(job.ta, x.row + job.x.pitch, x.row),
                  "block": Mux(job.ta, job.x.base, x.row),
                  "band": Mux(job.ta, job.x.base, x.row + self._x_band)}[event]
        y_next = {"start": job.y.base,
                  "inner": Mux(job.tb, y.row, y.row + job.y.pitch),
                  "block": Mux(job.tb, y.row + self._y_block, job.y.base),
                  "band": job.y.base}[event]
        return [
            *_access(x, ~job.ta, Mux(job.ta, k, i0), Mux(job.ta, i0, k), x_next),
            *_access(y, job.tb, Mux(job.tb, j0, k), Mux(job.tb, k, j0), y_next),
            self._tag.first.eq(k == 0), self._tag.last.eq(k == self._k_last),
        ]

    def _pass_beat(self, i, j0, event):
        """Y and Z requests of row ``i`` of column block ``j0``."""
        job, y, z = self.job, self._y, self._z
        rows = {"start": (job.y.base, job.z.base),
                "inner": (y.row + job.y.pitch, z.row + job.z.pitch),
                "block": (job.y.base, self._z_band)}[event]
        return [
            *_access(y, 0, i, j0, rows[0]),
            *_access(z, 0, i, j0, rows[1]),
            self._tag.first.eq(i == 0), self._tag.last.eq(i == self._m_last),
        ]

    def _c_rows(self, i0, j0, r, event):
        """Z request of row ``r`` of tile ``(i0, j0)`` of c, keeping the start of the tile's first row."""
        z, band = self._z, self._z_band
        row = {"inner": z.row + self.job.z.pitch, "block": band, "band": z.row + self.job.z.pitch}[event]
        return [*_access(z, 0, i0 + r, j0, row), *([band.eq(row)] if event == "band" else [])]

    def _tile_walk(self, m, counters, inner_last, valid, request):
        """Advance the inner counter within tile ``(i0, j0)``, then the tiles, row tiles outermost;
        load the next ``request(i0, j0, inner, event)`` and drop ``valid`` after the last."""
        cfg, tiles = self.config, self.tiles
        i0, j0, inner = counters
        with m.If(inner == inner_last):
            m.d.sync += inner.eq(0)
            with m.If(j0 == tiles.last_j0):
                m.d.sync += j0.eq(0)
                with m.If(i0 == tiles.last_i0):
                    m.d.sync += valid.eq(0)
                with m.Else():
                    m.d.sync += [i0.eq(i0 + cfg.rows), *request(i0 + cfg.rows, 0, 0, "band")]
            with m.Else():
                m.d.sync += [j0.eq(j0 + cfg.cols), *request(i0, j0 + cfg.cols, 0, "block")]
        with m.Else():
            m.d.sync += [inner.eq(inner + 1), *request(i0, j0, inner + 1, "inner")]


def _access(req, column, p, q, row):
    """The ROW access at ``(p, q)`` of the matrix whose row ``p`` starts at ``row``, or if ``column``
    the COLUMN one (the request's pitch is the matrix's)."""
    return [req.mode.eq(Mux(column, Mode.COLUMN, Mode.ROW)), req.row.eq(row), req.skew.eq(p), req.q.eq(q)]
