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
from .pipeline import plain_word
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
    ``y0``, one bit per cycle, the top bit first: ``frac``, a register that holds otherwise, shifts
    left as its bits are used. The operands hold while ``phase`` counts ``0 .. cycles - 1`` and the
    result is valid, combinationally, in phase ``cycles - 1``, for as long as ``phase`` stays there
    (a stalled pipeline)."""
    if not table.seg_shift:
        final = Value.cast(y0)
    else:
        start = cycles - 1 - table.seg_shift
        bound = (max(map(abs, table.y0)) + max(map(abs, table.slope))) << table.seg_shift
        acc = Signal(range(-bound, bound + 1))
        final = (acc << 1) + Mux(frac[-1], slope, 0)
        with m.If(phase == start):
            m.d.sync += acc.eq(y0)
        with m.Elif((phase > start) & (phase != cycles - 1)):
            m.d.sync += [acc.eq(final), frac.eq(frac << 1)]
    return final >> (table.seg_shift + table.guard)


def _serial_product(m: Module, a: Value, b: Value, phase: Value, first: Value, shift: int,
                    bits: int) -> Value:
    """:func:`_round` of the product of unsigned ``a`` and ``b``, by shift and add from the low bit
    of ``b`` up, one bit per phase from 0 (``first``, a register, is high in phase 0); valid from
    phase ``len(b)`` while the operands hold."""
    steps = len(b)
    keep = min(shift - 1, steps)  # product bits below this matter only as a sticky bit
    high = Signal(len(a))  # the product's bits from the step number up
    low = Signal(steps - keep)  # the last bits shifted out of ``high``
    rest = Signal(steps - 1)  # the bits of ``b`` still to come, from the next
    sticky = Signal()
    t = Mux(first, 0, high) + Mux(Mux(first, b[0], rest[0]), a, 0)
    enter = Cat(Mux(first, 0, low)[:len(low)], t[0])
    with m.If(phase < steps):
        m.d.sync += [high.eq(t[1:]), low.eq(enter[1:]), sticky.eq(~first & sticky | enter[0]),
                     rest.eq(Mux(first, b[1:], rest[1:]))]
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
    leaves) and picks it a slice per cycle into a register, the beat leaving with its last slice, and
    each slice is stored and each lane's maximum tracked a cycle later. *Exp* computes ``e =
    exp_table((x - max) << shift)`` for the ``n`` stored rows, a slice per cycle through a pipeline that
    registers the outputs of the buffer and of the table, and sums them per lane (``n·S + 6`` cycles,
    the first storing the last slice). *Reciprocal* divides ``2**(EXP.frac + SOFTMAX_RECIP_BITS)``
    by each lane's sum with an exact non-restoring divider, a bit of the 17-bit quotient per cycle
    (``17·S`` cycles). *Output* computes ``e`` again, a slice per cycle, and emits ``requantize(e * r)``,
    the product registered, at one beat per ``S`` cycles under back-pressure (``o.valid`` holds until the
    transfer), the first ``S + 6`` cycles after the reciprocal; after the transfer of the final beat the
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
        18 cycles (the bits of the reciprocal and one) instead of every cycle, while ``o`` is empty,
        and the product takes no step of its own (the first beat ``S + 5`` steps after the
        reciprocal).

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

        # The stored group: slice k of row r at address ``Cat(k, r)``, as plain words (see
        # :func:`hw.pipeline.plain_word`).
        slot_bits = (slices - 1).bit_length()
        slice_layout = data.ArrayLayout(signed(bits), phys)
        m.submodules.buffer = buf = memory.Memory(shape=slice_layout.size, depth=self.max_rows << slot_bits,
                                                  init=[])
        rounded = _rounded_table(table)
        m.submodules.exp = rom = pwl_memory([rounded])
        rd, wr = buf.read_port(), buf.write_port()

        count = Signal(range(self.max_rows + 1))  # rows stored (load), rows of the group (later)
        maximum = _ring(signed(bits), "maximum", phys, slices)
        total = _ring(max(sum_bits, recip_bits), "total", phys, slices)  # the sum of e, then its reciprocal
        out_word = Signal(lanes * bits, reset_less=True)  # ``o``'s lanes, a ring of slices (a plain word)
        out = [out_word[k * phys * bits:(k + 1) * phys * bits] for k in range(slices)]
        m.d.comb += self.o.payload.y.eq(out_word)
        remainder = plain_word(data.ArrayLayout(signed(sum_bits + 1), phys), "remainder")
        # The quotient's bits found before the last.
        quotient = plain_word(data.ArrayLayout(recip_bits - 1, phys), "quotient")
        step = Signal(range(recip_bits))  # the quotient bit being found
        div_slot = Signal(range(slices))

        # Load: the beat on ``i`` is registered (the buffers' lanes start from a register); its slice
        # ``slot`` is picked into ``written`` per cycle, with the slice's address, and written to the
        # buffer in the next; the beat leaves with its last slice, or at once past ``max_rows`` rows.
        beat = plain_word(self.i.payload.shape(), "beat")
        full = Signal()  # ``beat`` holds a beat
        slot = Signal(slot_bits)
        loading = Signal()  # the FSM is in load
        picks = full & loading & (count != self.max_rows)
        leaves = full & loading & ((slot == slices - 1) | (count == self.max_rows))
        m.d.comb += self.i.ready.eq(~full | leaves)
        with m.If(self.i.ready):
            m.d.sync += [full.eq(self.i.valid), beat.eq(self.i.payload)]
        written = plain_word(slice_layout, "written")
        w_addr = Signal.like(wr.addr, reset_less=True)
        w_first, w_last = Signal(reset_less=True), Signal(reset_less=True)  # count == 0; the group's last
        m.d.sync += [wr.en.eq(picks), w_addr.eq(Cat(slot, count)), w_first.eq(count == 0),
                     w_last.eq(beat.last & (slot == slices - 1)),
                     *(written[p].eq(_pick(beat.x, slot, p, phys)) for p in range(phys))]
        m.d.comb += [wr.addr.eq(w_addr), wr.data.eq(written)]

        # Exp and output: a pipeline that steps on ``adv`` reads a slice (stage 1), registers x - max
        # (2), looks up exp(x - max) (3), registers the table's sample and slope (4) and interpolates
        # e (5); the output multiplies e by the reciprocal (6: into a register, or by shift and add
        # within stage 5) and rounds it into ``o``. It steps when ``o`` is not stalled; with serial
        # multipliers once per ``cycles`` cycles, the products' time, when ``o`` is empty: ``o``
        # empties only between steps, so that whether it steps is known, and registered, a cycle
        # ahead.
        if self.serial_multipliers:
            cycles = max(recip_bits + 1, table.seg_shift + 2)
            phase = Signal(range(cycles))
            tick, first = Signal(), Signal(init=1)  # phase == cycles - 1 and phase == 0, registered
            adv = Signal()
            m.d.sync += [adv.eq(~adv & (tick | (phase == cycles - 2)) & (~self.o.valid | self.o.ready)),
                         first.eq(adv)]
            with m.If(adv):
                m.d.sync += [phase.eq(0), tick.eq(0)]
            with m.Elif(~tick):
                m.d.sync += [phase.eq(phase + 1), tick.eq(phase == cycles - 2)]
        else:
            adv = ~self.o.valid | self.o.ready
        stages = 5 if self.serial_multipliers else 6

        reading = Signal()  # slices are read: from the start of exp and of output to the group's last
        rslot, rrow = Signal(slot_bits), Signal.like(count)
        last_read = (rrow == count - 1) & (rslot == slices - 1)
        valid = [Signal(name=f"valid{k}") for k in range(1, stages + 1)]
        last = [Signal(name=f"last{k}") for k in range(1, stages + 1)]  # the group's last slice
        end = [Signal(name=f"end{k}") for k in range(1, stages + 1)]  # a beat's last slice
        m.d.comb += [rd.addr.eq(Cat(rslot, rrow)), rd.en.eq(adv)]
        with m.If(adv):
            m.d.sync += [valid[0].eq(reading), last[0].eq(last_read), end[0].eq(rslot == slices - 1)]
            m.d.sync += [r[k].eq(r[k - 1]) for r in (valid, last, end) for k in range(1, stages)]
            with m.If(reading):
                m.d.sync += [rslot.eq(rslot + 1), reading.eq(~last_read)]
                with m.If(rslot == slices - 1):
                    m.d.sync += [rslot.eq(0), rrow.eq(rrow + 1)]
        with m.If(~reading):
            m.d.sync += [rslot.eq(0), rrow.eq(0)]
        with m.If(wr.en & w_last):  # exp reads once the group is written
            m.d.sync += reading.eq(1)
        # Each lane's maximum turns as a slice is written (keeping the larger) and as its x - max is
        # found (stage 1; the pipeline is empty while slices are written).
        with m.If(wr.en | adv & valid[0]):
            m.d.sync += _turn(maximum, [Mux(~valid[0] & (w_first | (x > top)), x, top)
                                       for x, top in zip(written, maximum[0], strict=True)])
        e = plain_word(data.ArrayLayout(e_bits, phys), "e")
        self._exp(m, rom, rounded, slice_layout(rd.data), maximum[0], e, adv,
                  *((phase, cycles) if self.serial_multipliers else (None, None)))

        # The outputs ``e·r``, built outside the FSM: a serial product works on every cycle.
        if self.serial_multipliers:
            outputs = [_serial_product(m, e[p], total[0][p][:recip_bits], phase, first, out_shift, bits)
                       for p in range(phys)]
        else:
            product = plain_word(data.ArrayLayout(e_bits + recip_bits, phys), "product")
            with m.If(adv):
                m.d.sync += [product[p].eq(e[p] * total[0][p][:recip_bits]) for p in range(phys)]
            outputs = [_round(product[p], out_shift, bits) for p in range(phys)]

        # The ring of sums and reciprocals turns under one enable, ``head`` entering: as each slice
        # passes stage 5 (which holds slices only in exp and output) and in reciprocal.
        turn_total = Signal()
        head = [Signal.like(total[0][p], name=f"head{p}") for p in range(phys)]
        m.d.comb += [turn_total.eq(adv & valid[4]), *(h.eq(t) for h, t in zip(head, total[0], strict=True))]
        with m.If(turn_total):
            m.d.sync += _turn(total, head)

        # Reciprocal: non-restoring division, one quotient bit per cycle from the MSB down: the
        # remainder keeps each trial 2·r + bit - total, and a negative one adds the total back in
        # the next. The numerator's bits above the quotient's are ``remainder``'s start; the total
        # turns into its reciprocal as each slice's last bit is found. The divider runs on every
        # cycle, from its start in exp; the reciprocal state takes its results.
        low = Const(numerator % (1 << recip_bits), recip_bits).bit_select(step, 1)
        fits = [_divide_step(m, low, remainder[p], quotient[p], total[0][p]) for p in range(phys)]
        m.d.sync += step.eq(step - 1)
        with m.If(step == 0):
            m.d.sync += [*(r.eq(numerator >> recip_bits) for r in remainder), step.eq(recip_bits - 1),
                         div_slot.eq(div_slot + 1)]

        m.d.sync += self.overflow.eq(0)
        with m.FSM():
            with m.State("load"):
                m.d.comb += loading.eq(1)
                m.d.sync += [t.eq(0) for t in total]  # for the sums
                self._load(m, beat, full, count, slot)
            with m.State("exp"):
                m.d.comb += [h.eq(t + x) for h, t, x in zip(head, total[0], e, strict=True)]
                m.d.sync += [*(r.eq(numerator >> recip_bits) for r in remainder),  # for the division
                             step.eq(recip_bits - 1), div_slot.eq(0)]
                with m.If(adv & valid[4] & last[4]):
                    m.next = "reciprocal"

            with m.State("reciprocal"):
                m.d.comb += [turn_total.eq(step == 0),
                             *(h.eq(Cat(f, q)) for h, f, q in zip(head, fits, quotient, strict=True))]
                with m.If((step == 0) & (div_slot == slices - 1)):
                    m.d.sync += reading.eq(1)
                    m.next = "output"

            with m.State("output"):
                if self.serial_multipliers:
                    with m.If(self.o.ready):
                        m.d.sync += self.o.valid.eq(0)  # a transfer between steps
                with m.If(adv):
                    m.d.sync += [self.o.valid.eq(valid[-1] & end[-1]), self.o.payload.last.eq(last[-1])]
                    with m.If(valid[-1]):
                        m.d.sync += [*(out[k].eq(out[k + 1]) for k in range(slices - 1)),
                                     *(out[-1][p * bits:(p + 1) * bits].eq(y) for p, y in enumerate(outputs))]
                with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                    m.d.sync += count.eq(0)
                    m.next = "load"
        return m

    def _load(self, m, beat, full, count, slot):
        """State ``load``: each slice of the registered ``beat`` picked for the buffer; after the
        group's last beat, ``exp``. The beats of a group past ``max_rows`` rows are dropped, and its
        last flagged."""
        with m.If(full & (count == self.max_rows)):
            with m.If(beat.last):
                m.d.sync += [self.overflow.eq(1), count.eq(0)]
        with m.Elif(full):
            m.d.sync += slot.eq(slot + 1)
            with m.If(slot == self.lanes // self.physical_lanes - 1):
                m.d.sync += [slot.eq(0), count.eq(count + 1)]
                with m.If(beat.last):
                    m.next = "exp"

    def _exp(self, m, rom, rounded, x, maximum, e, adv, phase, cycles):
        """Stages 1 to 4 of the pipeline, every physical lane: ``e = exp(x − max)`` of the buffer's
        read data ``x`` and the ring's ``maximum``, into ``e``.

        The lookup of d = (x - max) << shift <= 0 < table.hi: only the table's low end, a whole
        segment, clamps. d < lo exactly when x - max < ceil(lo / 2**shift), a bound shared by the
        lanes and picked from constants; the lookup then needs only d's low bits, the segment and
        the offset in it, as x - max shifted: nothing wider than x - max is built.
        """
        table, phys = self.table, self.physical_lanes
        bounds = [-(-table.lo >> s) for s in range(SOFTMAX_SHIFT_MAX + 1)]
        bound_shape = signed(self.fmt.bits + 1)  # the shape of x - max; lo fits it
        # The shift and its bound, registered: the shift holds while a group is read.
        shift, bound = Signal.like(self.shift, reset_less=True), Signal(bound_shape, reset_less=True)
        bound_now = Cat(*(Const(b, bound_shape) for b in bounds)).word_select(self.shift, bound_shape.width)
        m.d.sync += [shift.eq(self.shift), bound.eq(bound_now.as_signed())]
        index_bits = (table.segments - 1).bit_length()
        frac_bits = max(table.seg_shift, 1)
        diff = plain_word(data.ArrayLayout(signed(self.fmt.bits + 1), phys), "diff")  # stage 2: x - max
        frac3 = plain_word(data.ArrayLayout(frac_bits, phys), "frac3")
        sample = plain_word(data.ArrayLayout(rom.shape, phys), "sample")  # stage 4: y0 and slope
        frac4 = plain_word(data.ArrayLayout(frac_bits, phys), "frac4")
        with m.If(adv):
            m.d.sync += [*(diff[p].eq(x[p] - maximum[p]) for p in range(phys)), frac4.eq(frac3)]
        for p in range(phys):
            port = rom.read_port()
            below = diff[p] < bound
            d = (diff[p] << shift)[:table.seg_shift + index_bits]
            index = Mux(below, 0, d[table.seg_shift:] - (table.lo >> table.seg_shift))[:index_bits]
            m.d.comb += [port.addr.eq(index), port.en.eq(adv)]
            if self.serial_multipliers:
                value = _serial_pwl(m, rounded, sample[p].y0, sample[p].slope, frac4[p], phase, cycles)
            else:
                value = (((sample[p].y0 << table.seg_shift) + sample[p].slope * frac4[p])
                         >> (table.seg_shift + table.guard))
            with m.If(adv):
                m.d.sync += [frac3[p].eq(Mux(below, 0, d[:table.seg_shift])), sample[p].eq(port.data),
                             e[p].eq(value)]


def _ring(shape, name: str, phys: int, slices: int) -> list:
    """Per-lane registers as a ring of slices: element 0 is the slice in use."""
    return [plain_word(data.ArrayLayout(shape, phys), f"{name}{k}") for k in range(slices)]


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
