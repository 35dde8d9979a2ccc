"""The data memory ``D``: resident training data, written and read by the host, read by ``GATHER``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import DeviceConfig
from .gather import data_address_bits
from .host_port import HostRead, HostWrite

__all__ = ["DataMemory"]


class DataMemory(wiring.Component):
    """``data_depth`` signed words in one memory with a read and a write port.

    Cycle contract: while not ``busy``, a ``write`` (always ready) changes its word at the end of the
    cycle, and a ``read`` is taken when no response is on its way or waits; its word is on
    ``read_data`` from the second cycle after until taken (from a register: the memory's output runs
    to no other logic). While ``busy`` the gather unit reads: ``gather_en`` with ``gather_addr``, the
    word on ``gather_data`` the next cycle (and until the next read).

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        super().__init__({
            "busy": In(1), "write": In(stream.Signature(HostWrite)), "read": In(stream.Signature(HostRead)),
            "read_data": Out(stream.Signature(signed(16))),
            "gather_addr": In(data_address_bits(config)), "gather_en": In(1), "gather_data": Out(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = Memory(shape=signed(16), depth=self.config.data_depth, init=[])
        wr, rd = memory.write_port(), memory.read_port()
        write, read, busy = self.write, self.read, self.busy
        reading, waiting = Signal(), Signal()  # the memory reads a host word; the word waits
        word = Signal(signed(16), reset_less=True)
        take = read.valid & read.ready
        m.d.comb += [
            write.ready.eq(~busy), wr.addr.eq(write.payload.addr), wr.data.eq(write.payload.data),
            wr.en.eq(write.valid & ~busy),
            read.ready.eq(~busy & ~reading & ~waiting),
            rd.addr.eq(Mux(busy, self.gather_addr, read.payload.addr)),
            rd.en.eq(Mux(busy, self.gather_en, take)),
            self.read_data.valid.eq(waiting), self.read_data.payload.eq(word),
            self.gather_data.eq(rd.data),
        ]
        m.d.sync += reading.eq(take)
        with m.If(reading):
            m.d.sync += [word.eq(rd.data), waiting.eq(1)]
        with m.Elif(self.read_data.ready):
            m.d.sync += waiting.eq(0)
        return m
