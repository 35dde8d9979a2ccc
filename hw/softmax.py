"""The softmax unit: :func:`numerics.softmax` down the columns of a group of beats."""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .isa import SOFTMAX_SHIFT_MAX
from .numerics import EXP, SOFTMAX_RECIP_BITS, Fixed, PwlTable
from .pipeline import registered
from .vector import pwl_memory

__all__ = ["Softmax"]


def _round(value: Value, shift: int, bits: int, sticky: Value | int = 0) -> Value:
    """:func:`numerics.requantize` of a non-negative ``value`` by a constant ``shift`` >= 1, unsigned:
    an increment of the kept bits; ``sticky`` is set when bits below ``value`` (shifted out) were."""
    value = Value.cast(value).as_unsigned()
    up = value[shift - 1] & (value[:shift - 1].any() | sticky | value[shift])
    rounded = value[shift:] + up
    top = (1 << (bits - 1)) - 1
    return Mux(rounded > top, top, rounded)


def _rounded_table(table: PwlTable) -> PwlTable:
    """``table`` with the half of its rounding added to each sample: its interpolation is then
    ``((y0 << seg_shift) + slope * offset) >> (seg_shift + guard)``, without an adder for the half."""
    return dataclasses.replace(table, y0=tuple(y + (1 << (table.guard - 1)) for y in table.y0))


def _serial_pwl(m: Module, table: PwlTable, y0: Value, slope: Value, frac: Value, phase: Value,
                cycles: int) -> Value:
    """The interpolation of a :func:`_rounded_table` by Horner's rule on the bits of ``frac``, from
    ``y0``, one bit per cycle; the operands hold while ``phase`` counts ``0 .. cycles - 1`` and the
    result is valid, combinationally, in phase ``cycles - 1``, for as long as ``phase`` stays there
    (a stalled pipeline)."""
    if not table.seg_shift:
        final = Value.cast(y0)
    else:
        start = cycles - 1 - table.seg_shift
        bound = (max(map(abs, table.y0)) + max(map(abs, table.slope))) << table.seg_shift
        acc = Signal(range(-bound, bound + 1))
        final = (acc << 1) + Mux(frac.bit_select((cycles - 1 - phase).as_unsigned(), 1), slope, 0)
        with m.If(phase == start):
            m.d.sync += acc.eq(y0)
        with m.Elif((phase > start) & (phase != cycles - 1)):
            m.d.sync += acc.eq(final)
    return final >> (table.seg_shift + table.guard)


def _serial_product(m: Module, a: Value, b: Value, phase: Value, shift: int, bits: int) -> Value:
    """:func:`_round` of the product of unsigned ``a`` and ``b``, by shift and add from the low bit
    of ``b`` up, one bit per phase from 0; valid from phase ``len(b)`` while the operands hold."""
    steps = len(b)
    keep = min(shift - 1, steps)  # product bits below this matter only as a sticky bit
    high = Signal(len(a))  # the product's bits from the step number up
    low = Signal(steps - keep)  # the last bits shifted out of ``high``
    sticky = Signal()
    first = phase == 0
    t = Mux(first, 0, high) + Mux(b.bit_select(phase, 1), a, 0)
    enter = Cat(Mux(first, 0, low)[:len(low)], t[0])
    with m.If(phase < steps):
        m.d.sync += [high.eq(t[1:]), low.eq(enter[1:]), sticky.eq(~first & sticky | enter[0])]
    return _round(Cat(low, high), shift - keep, bits, sticky)


class Softmax(wiring.Component):
    """Softmax of each group of beats; lane ``j`` across a group's beats is the column of sample ``j``.

    A group is the beats up to and including one with ``last``; its rows are the classes. The output
    group has as many beats, ``last`` on the final one, and equals ``numerics.softmax(x, fmt, shift)``
    of the input group bit for bit: the inputs have ``fmt.frac - shift`` fraction bits, and the unit
    looks up ``exp_table((x - max) << shift)``.

    The unit computes ``physical_lanes`` lanes at a time: a beat is ``S = lanes / physical_lanes`` slices,
    handled on consecutive cycles. Cycle contract: the unit works on one group at a time, in four phases.
    *Load* registers the beat on ``i`` (``i.ready`` is high while that register is empty or its beat
    leaves), stores it a slice per cycle, the beat leaving the register with its last slice, and tracks
    each lane's maximum. *Exp* computes ``e = exp_table((x - max) << shift)`` for the ``n`` stored rows, a
    slice per cycle, and sums them per lane (``n·S + 3`` cycles). *Reciprocal* divides ``2**(EXP.frac +
    SOFTMAX_RECIP_BITS)`` by each lane's sum with an exact non-restoring divider, a bit of the 17-bit
    quotient per cycle (``17·S`` cycles). *Output* computes ``e`` again, a slice per cycle, and emits
    ``requantize(e * r)`` at one beat per ``S`` cycles under back-pressure (``o.valid`` holds until the
    transfer), the first ``S + 3`` cycles after the reciprocal; after the transfer of the final beat the
    unit loads again. Outside *load* ``i.ready`` is low once the register holds a beat. Each lane's
    maximum, sum and reciprocal live in rings of slices that turn as the slices go by.

    A group longer than ``max_rows`` is consumed to its ``last`` beat and dropped: it produces no
    output, and ``overflow`` is high for the one cycle after its ``last`` beat is accepted.

    Parameters
    ----------
    lanes : int
        Samples per beat (>= 1).
    max_rows : int
        Most beats (classes) in a group (>= 1); the buffer holds this many beats.
    fmt : Fixed
        Format of ``x`` and ``y``, at most 32 bits with at most 30 fractional (default
        :data:`numerics.ACT`).
    physical_lanes : int, optional
        Lanes computed at a time, a divisor of ``lanes`` (default ``lanes``).
    serial_multipliers : bool
        Multiply by shift and add, a bit per cycle: the *exp* and *output* phases then step once per
        18 cycles (the bits of the reciprocal and one) instead of every cycle.

    Attributes
    ----------
    i : In(stream)
        Payload ``x`` (``lanes`` x ``signed(fmt.bits)``), ``last``.
    o : Out(stream)
        Payload ``y`` (``lanes`` x ``signed(fmt.bits)``), ``last``.
    shift : In(range(SOFTMAX_SHIFT_MAX + 1))
        Input shift: ``x`` has ``fmt.frac - shift`` fraction bits (a wider range than ``fmt``). A
        configuration input like the vector unit's: it must hold from a group's first beat on ``i``
        to its last on ``o``, and may change only while the unit is idle in *load* between groups.
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
        if not isinstance(fmt, Fixed) or fmt.bits > 32 or fmt.frac >= EXP.frac + SOFTMAX_RECIP_BITS:
            raise ValueError(f"fmt must be a Fixed of at most 32 bits and "
                             f"{EXP.frac + SOFTMAX_RECIP_BITS - 1} fractional bits, not {fmt!r}")
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
            "shift": In(range(SOFTMAX_SHIFT_MAX + 1)),
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

        # The stored group: slice k of row r at address ``Cat(k, r)``.
        slot_bits = (slices - 1).bit_length()
        m.submodules.buffer = buf = memory.Memory(shape=data.ArrayLayout(signed(bits), phys),
                                                  depth=self.max_rows << slot_bits, init=[])
        rounded = _rounded_table(table)
        m.submodules.exp = rom = pwl_memory([rounded])
        rd, wr = buf.read_port(), buf.write_port()

        count = Signal(range(self.max_rows + 1))  # rows stored (load), rows of the group (later)
        maximum = _ring(signed(bits), "maximum", phys, slices)
        total = _ring(max(sum_bits, recip_bits), "total", phys, slices)  # the sum of e, then its reciprocal
        out = [Cat(*(self.o.payload.y[k * phys + p] for p in range(phys))) for k in range(slices)]
        remainder = Signal(data.ArrayLayout(signed(sum_bits + 1), phys))
        quotient = Signal(data.ArrayLayout(recip_bits - 1, phys))  # the bits found before the last
        step = Signal(range(recip_bits))  # the quotient bit being found
        div_slot = Signal(range(slices))

        # Load: slice ``slot`` of the registered beat is written each cycle; it leaves with the last.
        beat = registered(m, self.i, "beat")  # the buffers' lanes start from a register
        slot = Signal(slot_bits)
        transfer = beat.valid & beat.ready
        m.d.comb += [wr.addr.eq(Cat(slot, count)),
                     *(wr.data[p].eq(_pick(beat.payload.x, slot, p, phys)) for p in range(phys))]

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

        reading = Signal()
        rslot, rrow = Signal(slot_bits), Signal.like(count)
        issue = reading & (rrow < count)
        v1, v2, v3 = Signal(), Signal(), Signal()
        last1, last2, last3 = Signal(), Signal(), Signal()  # the group's last slice
        end1, end2, end3 = Signal(), Signal(), Signal()  # a beat's last slice
        frac2 = Signal(data.ArrayLayout(max(table.seg_shift, 1), phys))
        e3 = Signal(data.ArrayLayout(e_bits, phys))
        m.d.comb += [rd.addr.eq(Cat(rslot, rrow)), rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [v1.eq(issue), v2.eq(v1), v3.eq(v2),
                         last1.eq((rrow == count - 1) & (rslot == slices - 1)), last2.eq(last1),
                         last3.eq(last2), end1.eq(rslot == slices - 1), end2.eq(end1), end3.eq(end2)]
            with m.If(issue):
                m.d.sync += rslot.eq(rslot + 1)
                with m.If(rslot == slices - 1):
                    m.d.sync += [rslot.eq(0), rrow.eq(rrow + 1)]
            with m.If(v1):
                m.d.sync += _turn(maximum, [maximum[0][p] for p in range(phys)])
        for p in range(phys):
            self._exp(m, rom, rounded, rd.data[p] - maximum[0][p], frac2[p], e3[p], adv,
                      *((phase, cycles) if self.serial_multipliers else (None, None)))

        # The outputs ``e·r``, built outside the FSM: a serial product works on every cycle.
        if self.serial_multipliers:
            outputs = [_serial_product(m, e3[p], total[0][p][:recip_bits], phase, out_shift, bits)
                       for p in range(phys)]
        else:
            outputs = [_round(e3[p] * total[0][p][:recip_bits], out_shift, bits) for p in range(phys)]

        m.d.sync += self.overflow.eq(0)
        with m.FSM():
            with m.State("load"):
                self._load(m, beat, count, slot, wr, maximum,
                           [rslot.eq(0), rrow.eq(0), *(t.eq(0) for t in total)])
            with m.State("drain"):
                m.d.comb += beat.ready.eq(1)
                with m.If(transfer & beat.payload.last):
                    m.d.sync += [self.overflow.eq(1), count.eq(0)]
                    m.next = "load"

            with m.State("exp"):
                m.d.comb += reading.eq(1)
                with m.If(adv & v3):
                    m.d.sync += _turn(total, [total[0][p] + e3[p] for p in range(phys)])
                    with m.If(last3):
                        m.d.sync += [*(r.eq(numerator >> recip_bits) for r in remainder),
                                     step.eq(recip_bits - 1), div_slot.eq(0)]
                        m.next = "reciprocal"

            with m.State("reciprocal"):
                # Non-restoring division, one quotient bit per cycle from the MSB down: the
                # remainder keeps each trial 2·r + bit - total, and a negative one adds the total
                # back in the next. The numerator's bits above the quotient's are ``remainder``'s
                # start; the total turns into its reciprocal as each slice's last bit is found.
                m.d.sync += step.eq(step - 1)
                low = Const(numerator % (1 << recip_bits), recip_bits).bit_select(step, 1)
                fits = [_divide_step(m, low, remainder[p], quotient[p], total[0][p]) for p in range(phys)]
                with m.If(step == 0):
                    m.d.sync += [*(r.eq(numerator >> recip_bits) for r in remainder),
                                 step.eq(recip_bits - 1), div_slot.eq(div_slot + 1)]
                    m.d.sync += _turn(total, [Cat(fits[p], quotient[p]) for p in range(phys)])
                    with m.If(div_slot == slices - 1):
                        m.d.sync += [rslot.eq(0), rrow.eq(0)]
                        m.next = "output"

            with m.State("output"):
                m.d.comb += reading.eq(1)
                if self.serial_multipliers:
                    with m.If(self.o.ready):
                        m.d.sync += self.o.valid.eq(0)  # a transfer between steps
                with m.If(adv):
                    m.d.sync += [self.o.valid.eq(v3 & end3),
                                 self.o.payload.last.eq(last3)]
                    with m.If(v3):
                        m.d.sync += _turn(total, [total[0][p] for p in range(phys)])
                        m.d.sync += [*(out[k].eq(out[k + 1]) for k in range(slices - 1)),
                                     *(out[-1][p * bits:(p + 1) * bits].eq(y) for p, y in enumerate(outputs))]
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.d.sync += count.eq(0)
                    m.next = "load"
        return m

    def _load(self, m, beat, count, slot, wr, maximum, restart):
        """State ``load``: each slice of the registered ``beat`` into the buffer, each lane's maximum
        kept; after the group's last beat ``restart`` (the reads and sums from the start), then
        ``exp``. A group past ``max_rows`` rows is drained and flagged."""
        full = count == self.max_rows
        m.d.comb += beat.ready.eq(full | (slot == self.lanes // self.physical_lanes - 1))
        with m.If(beat.valid & full):
            with m.If(beat.payload.last):
                m.d.sync += [self.overflow.eq(1), count.eq(0)]
            with m.Else():
                m.next = "drain"
        with m.Elif(beat.valid):
            m.d.comb += wr.en.eq(1)
            m.d.sync += slot.eq(slot + 1)
            m.d.sync += _turn(maximum, [Mux((count == 0) | (x > top), x, top)
                                       for x, top in zip(wr.data, maximum[0], strict=True)])
            with m.If(beat.valid & beat.ready):
                m.d.sync += [slot.eq(0), count.eq(count + 1)]
                with m.If(beat.payload.last):
                    m.d.sync += restart
                    m.next = "exp"

    def _exp(self, m, rom, rounded, diff, frac2, e3, adv, phase, cycles):
        """One lane's lookup of ``e = exp(x − max)`` (``diff`` is ``x − max``), into ``e3``.

        The lookup of d = (x - max) << shift <= 0 < table.hi: only the table's low end, a whole
        segment, clamps. d < lo exactly when x - max < ceil(lo / 2**shift), a bound shared by the
        lanes and picked from constants; the lookup then needs only d's low bits, the segment and
        the offset in it, as x - max shifted: nothing wider than x - max is built.
        """
        table = self.table
        bounds = [-(-table.lo >> s) for s in range(SOFTMAX_SHIFT_MAX + 1)]
        bound_shape = signed(self.fmt.bits + 1)  # the shape of x - max; lo fits it
        bound = Cat(*(Const(b, bound_shape) for b in bounds)).word_select(
            self.shift, bound_shape.width).as_signed()
        index_bits = (table.segments - 1).bit_length()
        port = rom.read_port()
        below = diff < bound
        d = (diff << self.shift)[:table.seg_shift + index_bits]
        index = Mux(below, 0, d[table.seg_shift:] - (table.lo >> table.seg_shift))[:index_bits]
        offset = Mux(below, 0, d[:table.seg_shift])
        if self.serial_multipliers:
            e = _serial_pwl(m, rounded, port.data.y0, port.data.slope, frac2, phase, cycles)
        else:
            e = (((port.data.y0 << table.seg_shift) + port.data.slope * frac2)
                 >> (table.seg_shift + table.guard))
        m.d.comb += [port.addr.eq(index), port.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [frac2.eq(offset), e3.eq(e)]


def _ring(shape, name: str, phys: int, slices: int) -> list:
    """Per-lane registers as a ring of slices: element 0 is the slice in use."""
    return [Signal(data.ArrayLayout(shape, phys), name=f"{name}{k}") for k in range(slices)]


def _turn(regs, head):
    """Turn the ring ``regs`` by a slice, ``head`` (one value per physical lane) entering at the back."""
    return [*(regs[k].eq(regs[k + 1]) for k in range(len(regs) - 1)),
            *(regs[-1][p].eq(value) for p, value in enumerate(head))]


def _pick(lanes_value, slot, lane, phys: int):
    """Lane ``lane`` of slice ``slot`` of a beat-wide value of ``phys`` lanes per slice."""
    slices = len(lanes_value) // phys
    if slices == 1:
        return lanes_value[lane]
    width = len(lanes_value[lane])
    return Cat(*(lanes_value[k * phys + lane] for k in range(slices))).word_select(slot, width)


def _divide_step(m, low, remainder, quotient, total):
    """One step of the non-restoring division: the next numerator bit ``low`` in; the quotient bit
    found (``fits``) is returned and shifted into ``quotient``."""
    width = len(remainder) + 1
    partial = Cat(low, remainder)
    sub = ~remainder[-1]
    addend = Cat(total, Const(0, width - len(total))) ^ sub.replicate(width)
    trial = (Cat(1, partial) + Cat(sub, addend))[1:width + 1]  # sub is the carry in
    fits = ~trial[-1]
    m.d.sync += [remainder.eq(trial), quotient.eq(Cat(fits, quotient))]
    return fits
