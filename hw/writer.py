"""The writer: result beats back into the output buffer, counted by the saturation counters."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .buffers import WriteRequest, flat_word
from .config import DeviceConfig
from .counters import SaturationCounters
from .datapath import Result
from .host_port import HostWrite
from .isa import Mode, Opcode
from .job import block_cols, dim_bits, row_bits, run_members

__all__ = ["Writer"]


class Writer(wiring.Component):
    """Writes each result beat of the running instruction to its place in ``out``, and the host's words.

    A GEMM's beats come a tile at a time, rows inside (only rows below ``m``); a pass's a column block
    at a time, rows inside; a reduction's one per block. Each beat is one masked ROW write of the
    columns inside the matrix. A beat through the vector unit is counted by (or, with
    ``read_counter``, written as) the saturation counter its epilogue names.

    Cycle contract: ``go`` (one cycle) resets the walk; then each ``result`` beat while ``running``
    is registered and becomes a write on ``write`` the cycle after, until the last; ``done`` is
    high once that write has gone. While not ``busy``, each ``host`` word (always ready) is written
    the next cycle, to buffer ``out_buf``, lane 0 of a ROW access of row 0.

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        super().__init__({
            "busy": In(1), **run_members(config),
            "result": In(stream.Signature(Result(config), always_ready=True)),
            "host": In(stream.Signature(HostWrite)),
            "write": Out(stream.Signature(WriteRequest(config.banks, config.depth, 16), always_ready=True)),
            "out_buf": Out(2), "done": Out(1),
        })
        dim = dim_bits(config)
        self._i0, self._j0, self._r = Signal(dim), Signal(dim), Signal(dim)  # tile (GEMM) or block; row
        self._row, self._band = Signal(row_bits(config)), Signal(row_bits(config))  # row r; first of tile
        self._finished = Signal()                                            # the last beat is written
        self._mask = Signal(config.banks)                                    # block j0's columns

    def elaborate(self, platform):
        cfg, job, tiles = self.config, self.job, self.tiles
        m = Module()
        m.submodules.counters = counters = SaturationCounters(cfg.cols)
        i0, j0, r, write, req = self._i0, self._j0, self._r, self.write, self.write.payload
        p = Mux(job.gemm, i0 + r, r)
        last = Mux(job.gemm, (i0 == tiles.last_i0) & (r == tiles.last_rows - 1), r == job.m - 1)  # row m − 1
        mask = self._mask
        result, arrived = Signal(Result(cfg)), Signal()      # the result beat, registered
        m.d.sync += [arrived.eq(self.result.valid), result.eq(self.result.payload)]
        beat = self.running & arrived & ~self._finished
        counted = job.gemm | (job.op == Opcode.VEC)          # a beat through the vector unit
        m.d.comb += [
            self.done.eq(self._finished & ~write.valid),
            counters.valid.eq(beat & counted),
            counters.select.eq(job.epi.counter),
            counters.read.eq(job.epi.read_counter),
            counters.row.eq(Mux(p < 2, p, 2)),
            counters.saturated.eq(result.saturated & mask),
            counters.high.eq(result.high & mask),
        ]
        with m.If(self.go):
            m.d.sync += [i0.eq(0), j0.eq(0), r.eq(0), self._finished.eq(0), self.out_buf.eq(job.out.buf),
                         self._row.eq(job.out.base), self._band.eq(job.out.base),
                         self._mask.eq(self._columns(0))]
        m.d.sync += write.valid.eq(0)
        with m.If(beat):
            m.d.sync += [write.valid.eq(1), req.mode.eq(Mode.ROW), req.row.eq(self._row), req.skew.eq(p),
                         req.q.eq(j0), req.mask.eq(mask)]
            m.d.sync += [req.data[j].eq(Mux(counted & job.epi.read_counter, counters.value, result.y[j]))
                         for j in range(cfg.cols)]
            self._advance(m, last)
        self._host(m)
        return m

    def _advance(self, m, last):
        """After a beat: the next row, column block or (a GEMM) row tile."""
        cfg, job = self.config, self.job
        i0, j0, r, row, band, pitch = self._i0, self._j0, self._r, self._row, self._band, job.out.pitch
        reduces = (job.op == Opcode.ARGMAX) | (job.op == Opcode.LOSS)
        with m.If(last | Mux(job.gemm, r == cfg.rows - 1, reduces)):
            m.d.sync += r.eq(0)
            with m.If(j0 == self.tiles.last_j0):
                m.d.sync += [j0.eq(0), self._mask.eq(self._columns(0))]
                with m.If(~job.gemm | last):
                    m.d.sync += self._finished.eq(1)
                with m.Else():       # the next tile's first row follows the last one written
                    m.d.sync += [i0.eq(i0 + cfg.rows), row.eq(row + pitch), band.eq(row + pitch)]
            with m.Else():
                m.d.sync += [j0.eq(j0 + cfg.cols), row.eq(band), self._mask.eq(self._columns(j0 + cfg.cols))]
        with m.Else():
            m.d.sync += [r.eq(r + 1), row.eq(row + pitch)]

    def _columns(self, j0):
        """The lanes of column block ``j0`` inside the matrix, a bit each."""
        cols = block_cols(self.tiles, j0, self.config.cols)
        return Cat(*(Const(lane) < cols for lane in range(self.config.banks)))

    def _host(self, m):
        """The host's words while idle: a ROW access of row 0 at address 0, lane 0 written."""
        host, req = self.host, self.write.payload
        m.d.comb += host.ready.eq(~self.busy)
        with m.If(~self.busy):
            m.d.sync += [self.write.valid.eq(host.valid), *flat_word(req, host.payload.addr),
                         req.data[0].eq(host.payload.data), req.mask.eq(1)]
            with m.If(host.valid):
                m.d.sync += self.out_buf.eq(host.payload.buf)
