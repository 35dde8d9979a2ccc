"""The softmax unit: :func:`numerics.softmax` down the columns of a group of beats."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .numerics import EXP, SOFTMAX_RECIP_BITS, Fixed
from .vector import pwl_index, pwl_memory, pwl_value, requantize_hdl

__all__ = ["Softmax"]


class Softmax(wiring.Component):
    """Softmax of each group of beats; lane ``j`` across a group's beats is the column of sample ``j``.

    A group is the beats up to and including one with ``last``; its rows are the classes. The output
    group has as many beats, ``last`` on the final one, and equals ``numerics.softmax`` of the input
    group bit for bit.

    Cycle contract: the unit works on one group at a time, in four phases. *Load* accepts beats at
    one per cycle (``i.ready`` high), storing them and tracking each lane's maximum. *Exp* computes
    ``e = exp_table(x - max)`` for the ``n`` stored rows and sums them per lane (``n + 6`` cycles).
    *Reciprocal* divides ``2**(EXP.frac + SOFTMAX_RECIP_BITS)`` by each lane's sum with an exact
    restoring divider (32 cycles). *Output* emits ``requantize(e * r)`` at one beat per cycle under
    back-pressure (``o.valid`` holds until the transfer), three cycles after the reciprocal; after the
    transfer of the final beat the unit loads again. ``i.ready`` is low outside *load*.

    A group longer than ``max_rows`` is consumed to its ``last`` beat and dropped: it produces no
    output, and ``overflow`` is high for the one cycle after its ``last`` beat is accepted.

    Parameters
    ----------
    lanes : int
        Samples per beat (>= 1).
    max_rows : int
        Most beats (classes) in a group (>= 1); the buffer holds this many beats.
    fmt : Fixed
        Format of ``x`` and ``y`` (default :data:`numerics.ACT`).

    Attributes
    ----------
    i : In(stream)
        Payload ``x`` (``lanes`` x ``signed(fmt.bits)``), ``last``.
    o : Out(stream)
        Payload ``y`` (``lanes`` x ``signed(fmt.bits)``), ``last``.
    overflow : Out(1)
        One-cycle pulse: a group longer than ``max_rows`` was dropped.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    def __init__(self, lanes: int = 4, max_rows: int = 16, fmt: Fixed = numerics.ACT):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an integer >= 1, not {lanes!r}")
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be an integer >= 1, not {max_rows!r}")
        if not isinstance(fmt, Fixed) or fmt.bits > 32:
            raise ValueError(f"fmt must be a Fixed of at most 32 bits, not {fmt!r}")
        self.lanes, self.max_rows, self.fmt = lanes, max_rows, fmt
        self.table = numerics.exp_table(fmt)
        beat = data.ArrayLayout(signed(fmt.bits), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"x": beat, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"y": beat, "last": 1}))),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, bits, table = self.lanes, self.fmt.bits, self.table
        numerator = 1 << (EXP.frac + SOFTMAX_RECIP_BITS)
        e_max = int(table(np.arange(table.lo, 1)).max())  # exp(0) = 1.0: d = x - max <= 0
        e_bits = e_max.bit_length()
        sum_bits = (self.max_rows * e_max).bit_length()
        recip_bits = (numerator // e_max).bit_length()  # every lane's sum includes its max's e_max
        out_shift = EXP.frac + SOFTMAX_RECIP_BITS - self.fmt.frac

        m.submodules.buffer = buf = memory.Memory(
            shape=data.ArrayLayout(signed(max(bits, e_bits + 1)), lanes), depth=self.max_rows,
            init=[])
        m.submodules.exp = rom = pwl_memory([table])
        rd, wr = buf.read_port(), buf.write_port()

        count = Signal(range(self.max_rows + 1))  # rows stored (load), rows of the group (later)
        read, written = Signal.like(count), Signal.like(count)
        # Valid bits of the buffer read, the table index, the table read, its registered output and
        # the interpolated e (exp), or of the buffer read and the product e·r (output).
        issued, indexed, looked_up, fetched, valued = (Signal() for _ in range(5))
        issued_last, multiplied_last = Signal(), Signal()
        maximum = Signal(data.ArrayLayout(signed(bits), lanes))
        total = Signal(data.ArrayLayout(sum_bits, lanes))
        remainder = Signal(data.ArrayLayout(sum_bits + 1, lanes))
        recip = Signal(data.ArrayLayout(32, lanes))
        step = Signal(range(32))  # the quotient bit being found
        frac_i, frac, frac_r = (Signal(data.ArrayLayout(max(table.seg_shift, 1), lanes)) for _ in range(3))
        index_i = Signal(data.ArrayLayout(max((table.segments - 1).bit_length(), 1), lanes))
        e_reg = Signal(data.ArrayLayout(e_bits + 1, lanes))
        product = Signal(data.ArrayLayout(e_bits + recip_bits, lanes))

        transfer = self.i.valid & self.i.ready
        adv = ~self.o.valid | self.o.ready
        m.d.sync += self.overflow.eq(0)
        m.d.comb += wr.addr.eq(count)

        with m.FSM():
            with m.State("load"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(transfer):
                    with m.If(count == self.max_rows):
                        with m.If(self.i.payload.last):
                            m.d.sync += [self.overflow.eq(1), count.eq(0)]
                        with m.Else():
                            m.next = "drain"
                    with m.Else():
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += count.eq(count + 1)
                        for lane in range(lanes):
                            x = self.i.payload.x[lane]
                            m.d.comb += wr.data[lane].eq(x)
                            with m.If((count == 0) | (x > maximum[lane])):
                                m.d.sync += maximum[lane].eq(x)
                        with m.If(self.i.payload.last):
                            m.d.sync += [read.eq(0), written.eq(0), issued.eq(0), indexed.eq(0),
                                         looked_up.eq(0), fetched.eq(0), valued.eq(0), total.eq(0)]
                            m.next = "exp"

            with m.State("drain"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(transfer & self.i.payload.last):
                    m.d.sync += [self.overflow.eq(1), count.eq(0)]
                    m.next = "load"

            with m.State("exp"):
                # Read x, find the table segment of x - max, look it up, register the table's
                # output, interpolate e, then store e in place of x and add it to the sum.
                m.d.comb += rd.addr.eq(read)
                m.d.sync += [issued.eq(read < count), indexed.eq(issued), looked_up.eq(indexed),
                             fetched.eq(looked_up), valued.eq(fetched)]
                with m.If(read < count):
                    m.d.sync += read.eq(read + 1)
                m.d.comb += [wr.addr.eq(written), wr.en.eq(valued)]
                for lane in range(lanes):
                    index, offset = pwl_index(table, rd.data[lane] - maximum[lane])
                    port = rom.read_port()
                    y0, slope = Signal.like(port.data.y0), Signal.like(port.data.slope)
                    m.d.comb += [port.addr.eq(index_i[lane]), wr.data[lane].eq(e_reg[lane])]
                    m.d.sync += [index_i[lane].eq(index), frac_i[lane].eq(offset),
                                 frac[lane].eq(frac_i[lane]), frac_r[lane].eq(frac[lane]),
                                 y0.eq(port.data.y0), slope.eq(port.data.slope),
                                 e_reg[lane].eq(pwl_value(table, y0, slope, frac_r[lane]))]
                    with m.If(valued):
                        m.d.sync += total[lane].eq(total[lane] + e_reg[lane])
                with m.If(valued):
                    m.d.sync += written.eq(written + 1)
                with m.If(written == count):
                    m.d.sync += [remainder.eq(0), step.eq(31)]
                    m.next = "reciprocal"

            with m.State("reciprocal"):
                # Restoring division, one quotient bit per cycle from the numerator's MSB down.
                m.d.sync += step.eq(step - 1)
                for lane in range(lanes):
                    partial = Cat(Const(numerator, 32).bit_select(step, 1), remainder[lane])
                    fits = partial >= total[lane]
                    m.d.sync += [
                        remainder[lane].eq(Mux(fits, partial - total[lane], partial)),
                        recip[lane].eq(Cat(fits, recip[lane])),
                    ]
                with m.If(step == 0):
                    m.d.sync += [read.eq(0), issued.eq(0), looked_up.eq(0)]
                    m.next = "output"

            with m.State("output"):
                # Read e, multiply by r, requantise: one pipeline that advances when o can.
                m.d.comb += [rd.addr.eq(read), rd.en.eq(adv)]
                with m.If(adv):
                    m.d.sync += [issued.eq(read < count), issued_last.eq(read + 1 == count),
                                 looked_up.eq(issued), multiplied_last.eq(issued_last),
                                 self.o.valid.eq(looked_up), self.o.payload.last.eq(multiplied_last)]
                    with m.If(read < count):
                        m.d.sync += read.eq(read + 1)
                    for lane in range(lanes):
                        e = rd.data[lane].as_unsigned()[:e_bits]
                        m.d.sync += [product[lane].eq(e * recip[lane][:recip_bits]),
                                     self.o.payload.y[lane].eq(
                                         requantize_hdl(product[lane], out_shift, bits))]
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.d.sync += count.eq(0)
                    m.next = "load"
        return m

