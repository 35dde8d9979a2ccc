"""The gather unit: listed samples out of the data memory ``D`` into the columns of a matrix (``GATHER``)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .buffers import WriteRequest
from .config import DeviceConfig
from .isa import GatherMode, Mode
from .job import dim_bits, row_bits, run_members
from .numerics import ACT

__all__ = ["GatherJob", "Gather", "data_address_bits"]


def data_address_bits(config: DeviceConfig) -> int:
    """Bits of an address of the data memory."""
    return max(1, ceil_log2(config.data_depth))


class GatherJob(data.StructLayout):
    """What ``GATHER`` needs besides ``out``: the samples (``src``: rows, the address of row 0 and the
    words between rows), where the sample list starts, the mode and the byte shift."""

    def __init__(self):
        super().__init__({"src_base": 16, "src_pitch": 12, "src_rows": 12, "idx_base": 16,
                          "mode": GatherMode, "shift": 4})


class Gather(wiring.Component):
    """Writes column ``j`` of ``out`` from the sample the ``j``-th word of the list names, for every
    column: the sample's words, its signed bytes (low byte first) shifted up, or its class number as
    a one-hot column in ``ACT`` (one row: ``ACT.one`` if the class is not 0).

    Cycle contract: ``go`` (one cycle) starts it with ``job`` and ``gather`` set; it reads ``D``
    through ``read`` (address and enable, the word one cycle later, registered the cycle after) and
    writes one element a cycle on ``write`` (a ROW access of lane 0), column by column, ``m + 5``
    cycles a column. ``done`` is
    high once the last write has gone, or at once with ``fault`` for a sample number past ``src``'s
    rows (the columns before it written).

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        address = data_address_bits(config)
        super().__init__({
            **run_members(config), "gather": In(GatherJob()),
            "read_addr": Out(address), "read_en": Out(1), "read_data": In(signed(16)),
            "write": Out(stream.Signature(WriteRequest(config.banks, config.depth, 16), always_ready=True)),
            "done": Out(1), "fault": Out(1),
        })
        dim = dim_bits(config)
        self._j, self._p = Signal(dim), Signal(dim + 1)      # column; row whose word is read
        self._index = Signal(16)                              # the column's sample number
        self._sample = Signal(address)                        # ... and the address of its first word
        self._word = Signal(16, reset_less=True)              # the word read two cycles before
        self._arriving = Signal(2)                            # a word read one (two) cycles before
        self._row = Signal(row_bits(config))                  # base + p·pitch of the row written
        self._written = Signal(dim + 1)                       # rows of the column written

    def elaborate(self, platform):
        job, g = self.job, self.gather
        m = Module()
        j, p, written, write, req = self._j, self._p, self._written, self.write, self.write.payload
        last_column = j == job.n - 1
        word, arriving = self._word, self._arriving
        byte = Mux(written[0], word[8:], word[:8]).as_signed()
        hot = Mux(job.m == 1, word != 0, word == written)
        value = Mux(g.mode == GatherMode.WORDS, word,
                    Mux(g.mode == GatherMode.BYTES, byte << g.shift, Mux(hot, ACT.one, 0)))
        m.d.sync += [write.valid.eq(0), word.eq(self.read_data), arriving.eq(arriving << 1)]
        m.d.comb += self.done.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [j.eq(0), self.fault.eq(0)]
                    m.next = "INDEX"
            with m.State("INDEX"):
                m.d.comb += [self.read_addr.eq(g.idx_base + j), self.read_en.eq(1)]
                m.next = "SAMPLE"
            with m.State("SAMPLE"):                           # a register between memory and check
                m.d.sync += self._index.eq(self.read_data.as_unsigned())
                m.next = "ADDRESS"
            with m.State("ADDRESS"):
                m.d.sync += [self._sample.eq(g.src_base + self._index * g.src_pitch),
                             p.eq(0), written.eq(0), self._row.eq(job.out.base)]
                m.next = "ROWS"
                with m.If(self._index >= g.src_rows):
                    m.d.sync += self.fault.eq(1)
                    m.next = "FINISH"
            with m.State("ROWS"):
                offset = Mux(g.mode == GatherMode.BYTES, p >> 1, Mux(g.mode == GatherMode.WORDS, p, 0))
                with m.If(p < job.m):
                    m.d.comb += [self.read_addr.eq(self._sample + offset), self.read_en.eq(1)]
                    m.d.sync += [p.eq(p + 1), arriving[0].eq(1)]
                with m.If(arriving[1]):                       # the word of row ``written`` is here
                    m.d.sync += [write.valid.eq(1), req.mode.eq(Mode.ROW), req.row.eq(self._row),
                                 req.skew.eq(written), req.q.eq(j), req.mask.eq(1), req.data[0].eq(value),
                                 written.eq(written + 1), self._row.eq(self._row + job.out.pitch)]
                    with m.If(written == job.m - 1):
                        m.d.sync += j.eq(j + 1)
                        m.next = "INDEX"
                        with m.If(last_column):
                            m.next = "FINISH"
            with m.State("FINISH"):
                with m.If(~write.valid):
                    m.d.comb += self.done.eq(1)
                    with m.If(~self.running):
                        m.next = "IDLE"
        return m
