"""The softmax unit: :func:`numerics.softmax` down the columns of a group of beats."""

from __future__ import annotations

import operator

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .numerics import EXP, SOFTMAX_RECIP_BITS, Fixed
from .vector import pwl_index, pwl_memory, pwl_value, requantize_hdl, serial_product

__all__ = ["Softmax"]


class Softmax(wiring.Component):
    """Softmax of each group of beats; lane ``j`` across a group's beats is the column of sample ``j``.

    A group is the beats up to and including one with ``last``; its rows are the classes. The output
    group has as many beats, ``last`` on the final one, and equals ``numerics.softmax`` of the input
    group bit for bit.

    The unit computes ``physical_lanes`` lanes at a time: a beat is ``S = lanes / physical_lanes``
    slices, handled on consecutive cycles. Cycle contract: the unit works on one group at a time, in
    four phases. *Load* stores the beat on ``i`` a slice per cycle, so its payload must hold until the
    transfer, as a stream's does (``i.ready`` is high on the cycle of its last slice), and tracks each
    lane's maximum. *Exp* computes ``e = exp_table(x - max)`` for the ``n`` stored rows, a slice per
    cycle, and sums them per lane (``n·S + 3`` cycles). *Reciprocal* divides
    ``2**(EXP.frac + SOFTMAX_RECIP_BITS)`` by each lane's sum with an exact restoring divider
    (``32·S`` cycles). *Output* computes ``e`` again, a slice per cycle, and emits
    ``requantize(e * r)`` at one beat per ``S`` cycles under back-pressure (``o.valid`` holds until
    the transfer), the first ``S + 3`` cycles after the reciprocal; after the transfer of the final
    beat the unit loads again. ``i.ready`` is low outside *load*.

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
    physical_lanes : int, optional
        Lanes computed at a time, a divisor of ``lanes`` (default ``lanes``).
    serial_multipliers : bool
        Multiply by shift and add (:func:`hw.vector.serial_product`): the *exp* and *output* phases
        then step once per 18 cycles (the bits of the reciprocal and a sign) instead of every cycle.

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

    def __init__(self, lanes: int = 4, max_rows: int = 16, fmt: Fixed = numerics.ACT,
                 physical_lanes: int | None = None, serial_multipliers: bool = False):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an integer >= 1, not {lanes!r}")
        if not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be an integer >= 1, not {max_rows!r}")
        if not isinstance(fmt, Fixed) or fmt.bits > 32:
            raise ValueError(f"fmt must be a Fixed of at most 32 bits, not {fmt!r}")
        physical_lanes = lanes if physical_lanes is None else physical_lanes
        if not isinstance(physical_lanes, int) or physical_lanes < 1 or lanes % physical_lanes:
            raise ValueError(f"physical_lanes must be a divisor of lanes={lanes}, not {physical_lanes!r}")
        self.lanes, self.max_rows, self.fmt, self.physical_lanes = lanes, max_rows, fmt, physical_lanes
        self.serial_multipliers = bool(serial_multipliers)
        self.table = numerics.exp_table(fmt)
        beat = data.ArrayLayout(signed(fmt.bits), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"x": beat, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"y": beat, "last": 1}))),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, phys, bits, table = self.lanes, self.physical_lanes, self.fmt.bits, self.table
        slices = lanes // phys
        numerator = 1 << (EXP.frac + SOFTMAX_RECIP_BITS)
        e_max = int(table(np.arange(table.lo, 1)).max())  # exp(0) = 1.0: d = x - max <= 0
        e_bits = e_max.bit_length()
        sum_bits = (self.max_rows * e_max).bit_length()
        recip_bits = (numerator // e_max).bit_length()  # every lane's sum includes its max's e_max
        out_shift = EXP.frac + SOFTMAX_RECIP_BITS - self.fmt.frac

        def lanes_of(shape, count=lanes):
            return data.ArrayLayout(shape, count)

        def pick(lanes_value, slot, lane):
            """Lane ``lane`` of slice ``slot`` of a beat-wide value."""
            if slices == 1:
                return lanes_value[lane]
            width = len(lanes_value[lane])
            return Cat(*(lanes_value[k * phys + lane] for k in range(slices))).word_select(slot, width)

        # The stored group: slice k of row r at address r·S + k.
        m.submodules.buffer = buf = memory.Memory(shape=lanes_of(signed(bits), phys),
                                                  depth=self.max_rows * slices, init=[])
        m.submodules.exp = rom = pwl_memory([table])
        rd, wr = buf.read_port(), buf.write_port()

        count = Signal(range(self.max_rows + 1))  # rows stored (load), rows of the group (later)
        maximum = Signal(lanes_of(signed(bits)))
        total = Signal(lanes_of(sum_bits))
        recip = Signal(lanes_of(recip_bits))
        remainder = Signal(lanes_of(sum_bits + 1, phys))
        step = Signal(range(32))  # the quotient bit being found
        div_slot = Signal(range(slices))

        # Load: slice ``slot`` of the beat on ``i`` is written each cycle; the beat transfers with the last.
        slot, wptr = Signal(range(slices)), Signal.like(rd.addr)
        transfer = self.i.valid & self.i.ready
        m.d.comb += [wr.addr.eq(wptr), *(wr.data[p].eq(pick(self.i.payload.x, slot, p)) for p in range(phys))]

        # Exp and output: read a slice (1), look up exp(x - max) (2), interpolate e (3), use e. With
        # serial multipliers the pipeline steps once per ``cycles`` cycles, the products' time.
        adv = ~self.o.valid | self.o.ready
        if self.serial_multipliers:
            cycles = max(recip_bits + 1, table.seg_shift + 2)
            phase = Signal(range(cycles))
            adv &= phase == cycles - 1
            with m.If(phase != cycles - 1):
                m.d.sync += phase.eq(phase + 1)
            with m.If(adv):
                m.d.sync += phase.eq(0)

            def mul(a, b):
                return serial_product(m, a, b, phase, cycles)
        else:
            mul = operator.mul
        reading = Signal()
        rptr, rslot, rrow = Signal.like(rd.addr), Signal(range(slices)), Signal.like(count)
        issue = reading & (rrow < count)
        v1, v2, v3 = Signal(), Signal(), Signal()
        slot1, slot2, slot3 = (Signal(range(slices), name=f"slot{k}") for k in (1, 2, 3))
        last1, last2, last3 = Signal(), Signal(), Signal()
        frac2 = Signal(lanes_of(max(table.seg_shift, 1), phys))
        e3 = Signal(lanes_of(e_bits, phys))
        m.d.comb += [rd.addr.eq(rptr), rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [v1.eq(issue), v2.eq(v1), v3.eq(v2), slot1.eq(rslot), slot2.eq(slot1),
                         slot3.eq(slot2), last1.eq((rrow == count - 1) & (rslot == slices - 1)),
                         last2.eq(last1), last3.eq(last2)]
            with m.If(issue):
                m.d.sync += [rptr.eq(rptr + 1), rslot.eq(rslot + 1)]
                with m.If(rslot == slices - 1):
                    m.d.sync += [rslot.eq(0), rrow.eq(rrow + 1)]
        for p in range(phys):
            port = rom.read_port()
            index, offset = pwl_index(table, rd.data[p] - pick(maximum, slot1, p).as_signed())
            e = pwl_value(table, port.data.y0, port.data.slope, frac2[p], mul)
            m.d.comb += [port.addr.eq(index), port.en.eq(adv)]
            with m.If(adv):
                m.d.sync += [frac2[p].eq(offset), e3[p].eq(e)]

        # The outputs ``e·r``, built outside the FSM: a serial product works on every cycle.
        outputs = [requantize_hdl(mul(e3[p], pick(recip, slot3, p)), out_shift, bits) for p in range(phys)]

        m.d.sync += self.overflow.eq(0)
        with m.FSM():
            with m.State("load"):
                full = count == self.max_rows
                m.d.comb += self.i.ready.eq(full | (slot == slices - 1))
                with m.If(self.i.valid & full):
                    with m.If(self.i.payload.last):
                        m.d.sync += [self.overflow.eq(1), count.eq(0), wptr.eq(0)]
                    with m.Else():
                        m.next = "drain"
                with m.Elif(self.i.valid):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += [wptr.eq(wptr + 1), slot.eq(slot + 1)]
                    with m.If(transfer):
                        m.d.sync += [slot.eq(0), count.eq(count + 1)]
                        for lane in range(lanes):
                            x = self.i.payload.x[lane]
                            with m.If((count == 0) | (x > maximum[lane])):
                                m.d.sync += maximum[lane].eq(x)
                        with m.If(self.i.payload.last):
                            m.d.sync += [rptr.eq(0), rslot.eq(0), rrow.eq(0), total.eq(0)]
                            m.next = "exp"

            with m.State("drain"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(transfer & self.i.payload.last):
                    m.d.sync += [self.overflow.eq(1), count.eq(0), wptr.eq(0)]
                    m.next = "load"

            with m.State("exp"):
                m.d.comb += reading.eq(1)
                with m.If(adv & v3):
                    for k in range(slices):
                        with m.If(slot3 == k):
                            m.d.sync += [total[k * phys + p].eq(total[k * phys + p] + e3[p])
                                         for p in range(phys)]
                    with m.If(last3):
                        m.d.sync += [remainder.eq(0), step.eq(31), div_slot.eq(0)]
                        m.next = "reciprocal"

            with m.State("reciprocal"):
                # Restoring division, one quotient bit per cycle from the numerator's MSB down.
                m.d.sync += step.eq(step - 1)
                for p in range(phys):
                    partial = Cat(Const(numerator, 32).bit_select(step, 1), remainder[p])
                    fits = partial >= pick(total, div_slot, p)
                    m.d.sync += remainder[p].eq(Mux(fits, partial - pick(total, div_slot, p), partial))
                    for k in range(slices):
                        with m.If(div_slot == k):
                            m.d.sync += recip[k * phys + p].eq(Cat(fits, recip[k * phys + p]))
                with m.If(step == 0):
                    m.d.sync += [remainder.eq(0), div_slot.eq(div_slot + 1)]
                    with m.If(div_slot == slices - 1):
                        m.d.sync += [rptr.eq(0), rslot.eq(0), rrow.eq(0)]
                        m.next = "output"

            with m.State("output"):
                m.d.comb += reading.eq(1)
                if self.serial_multipliers:
                    with m.If(self.o.ready):
                        m.d.sync += self.o.valid.eq(0)  # a transfer between steps
                with m.If(adv):
                    m.d.sync += [self.o.valid.eq(v3 & (slot3 == slices - 1)),
                                 self.o.payload.last.eq(last3)]
                    for p, y in enumerate(outputs):
                        for k in range(slices):
                            with m.If(v3 & (slot3 == k)):
                                m.d.sync += self.o.payload.y[k * phys + p].eq(y)
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.d.sync += [count.eq(0), wptr.eq(0)]
                    m.next = "load"
        return m
