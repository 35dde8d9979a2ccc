"""Saturation counters: how many results of an instruction saturated, for the host to move formats.

Each of :data:`hw.isa.COUNTERS` counters holds two counts of the results written through the vector
unit by instructions that name it: those that saturated and those that use their format's top bit
(so would saturate with one integer bit fewer). Counter 0 is never written and reads 0.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .isa import COUNT_MAX, COUNTERS

__all__ = ["SaturationCounters"]


def _popcount(bits):
    return sum(bits[k] for k in range(len(bits)))


def _add(count, bits):
    """``count`` plus the bits set in ``bits``, stopping at ``COUNT_MAX``."""
    total = count + _popcount(bits)
    return Mux(total > COUNT_MAX, COUNT_MAX, total)[:len(count)]


class SaturationCounters(wiring.Component):
    """The saturation counters, read and written once per result beat.

    Each cycle with ``valid`` (a beat written), counter ``select``, unless 0, either counts the beat,
    adding the set bits of ``saturated`` and of ``high`` (lanes outside the matrix cleared) to its two
    counts, or with ``read`` is read: ``value`` is its saturated count when ``row`` is 0 or its
    top-bit count when ``row`` is 1 (else 0), and that count is cleared. ``value`` is combinational.

    Parameters
    ----------
    lanes : int
        Lanes of a beat.
    """

    def __init__(self, lanes: int):
        self.lanes = lanes
        width = COUNT_MAX.bit_length()
        super().__init__({
            "valid": In(1),
            "select": In(range(COUNTERS)),
            "read": In(1),
            "row": In(2),
            "saturated": In(lanes),
            "high": In(lanes),
            "value": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        width = COUNT_MAX.bit_length()
        counts = data.StructLayout({"saturated": width, "high": width})
        m.submodules.counts = memory = Memory(shape=counts, depth=COUNTERS, init=[])
        rd, wr = memory.read_port(domain="comb"), memory.write_port()
        saturated, high = rd.data.saturated, rd.data.high
        first, second = self.row == 0, self.row == 1
        m.d.comb += [
            rd.addr.eq(self.select),
            wr.addr.eq(self.select),
            wr.en.eq(self.valid & (self.select != 0)),
            wr.data.saturated.eq(Mux(self.read, Mux(first, 0, saturated), _add(saturated, self.saturated))),
            wr.data.high.eq(Mux(self.read, Mux(second, 0, high), _add(high, self.high))),
            self.value.eq(Mux(first, saturated, Mux(second, high, 0))),
        ]
        return m
