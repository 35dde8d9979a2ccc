"""The reduction unit: ARGMAX and LOSS down the columns of a group of beats."""

from __future__ import annotations

import dataclasses
import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .isa import ReduceOp
from .numerics import MANTISSA, Fixed
from .pipeline import plain_word, registered
from .vector import pwl_memory, requantize_hdl

__all__ = ["Reduce"]


class Reduce(wiring.Component):
    """One result beat per group of input beats; lane ``j`` across a group is the column of sample ``j``.

    A group is the beats up to and including one with ``last``; its rows are the classes. Per lane,
    with ``n`` the group's beats and ``fmt`` the format of ``a``, ``y`` and the loss::

        ARGMAX:  numerics.argmax(a), at most max_rows - 1                 (y is ignored)
        LOSS:    numerics.cross_entropy(a[h], fmt), h = numerics.argmax(y)     (n > 1)
                 numerics.cross_entropy(a if 2 * y >= fmt.one else sat(fmt.one - a), fmt)   (n = 1)

    Cycle contract: a beat on ``i`` is registered first (``i.ready`` is high while that register is
    empty or its beat leaves), and the unit picks a *slice* of ``physical_lanes`` lanes of the
    registered beat per cycle into a register: a beat's ``S = lanes / physical_lanes`` slices are
    compared with each lane's running maximum on ``S`` consecutive cycles, and the beat leaves the
    register with its last slice; the maximum and its companion value (the row number, or the ``a`` of
    the row with the largest ``y``) take the outcome a cycle later. A slice of a group's ``last`` beat
    then goes on to the back end, or waits for it in one of two registers (the front end stops while
    both hold one); the back end computes that slice's results: in one cycle for ARGMAX, in
    :attr:`loss_cycles` (``fmt.bits + 15``) for LOSS, where ``p`` is normalised by left shifts, its
    ``ln`` table segment read and interpolated by Horner's rule, a bit per cycle. The back end passes a
    slice's results into ``o`` when ``o`` is not stalled, and ``o.valid`` rises with the last slice's:
    one-beat ARGMAX groups offered to an idle unit transfer in cycles ``0, S, 2S, …``, each result valid
    in cycle ``S - 1 +`` :attr:`LATENCY` (5) after its transfer; a LOSS group's result is valid
    ``S * loss_cycles + 4`` cycles after its last beat is taken. Groups may follow back to back; results
    leave in order, one beat per group, and ``o.valid`` holds with a stable payload until the transfer.
    No enable of the front end waits on ``o.ready``.

    ``op`` is sampled with every beat and must be the same for all beats of a group; it may change
    as soon as a group's ``last`` beat is transferred. Groups have no length limit: the row number
    saturates at ``max_rows - 1``, so a longer group's ARGMAX is ``min(argmax(a), max_rows - 1)``
    and its LOSS is exact.

    Parameters
    ----------
    lanes : int
        Samples per beat (>= 1).
    max_rows : int
        Rows an ARGMAX counts exactly (>= 1, at most ``fmt.max + 1``).
    fmt : Fixed
        Format of ``a``, ``y`` and the loss, at most 17 bits (default :data:`numerics.ACT`).
    physical_lanes : int, optional
        Lanes computed at a time, a divisor of ``lanes`` (default ``lanes``).

    Attributes
    ----------
    i : In(stream)
        Payload ``a`` and ``y`` (each ``lanes`` x ``signed(fmt.bits)``), ``last``.
    o : Out(stream)
        Payload ``y`` (``lanes`` x ``signed(fmt.bits)``): the row numbers or the losses.
    op : In(ReduceOp)

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    LATENCY = 5

    def __init__(self, lanes: int = 4, max_rows: int = 16, fmt: Fixed = numerics.ACT,
                 physical_lanes: int | None = None):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an integer >= 1, not {lanes!r}")
        physical_lanes = lanes if physical_lanes is None else physical_lanes
        if not isinstance(physical_lanes, int) or physical_lanes < 1 or lanes % physical_lanes:
            raise ValueError(f"physical_lanes must be a divisor of lanes={lanes}, not {physical_lanes!r}")
        if not isinstance(fmt, Fixed) or fmt.bits > MANTISSA.bits:
            raise ValueError(f"fmt must be a Fixed of at most {MANTISSA.bits} bits, not {fmt!r}")
        if not isinstance(max_rows, int) or not 1 <= max_rows <= fmt.max + 1:
            raise ValueError(f"max_rows must be an integer in 1..{fmt.max + 1} (row numbers are "
                             f"outputs in {fmt}), not {max_rows!r}")
        self.lanes, self.max_rows, self.fmt, self.physical_lanes = lanes, max_rows, fmt, physical_lanes
        self.table = numerics.ln_table(fmt)
        beat = data.ArrayLayout(signed(fmt.bits), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": beat, "y": beat, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"y": beat}))),
            "op": In(ReduceOp),
        })

    @property
    def loss_cycles(self) -> int:
        """Cycles the back end takes per slice of a LOSS group: a normalising shift per bit of ``p``
        but its sign and top, a table read and the interpolation."""
        return self.fmt.bits - 2 + MANTISSA.bits

    def elaborate(self, platform):
        m = Module()
        lanes, phys, fmt, bits, table = self.lanes, self.physical_lanes, self.fmt, self.fmt.bits, self.table
        slices = lanes // phys
        ln2 = round(math.log(2) * fmt.one)
        norm = bits - 2                                   # shifts that bring p's top bit to bit bits - 2
        horner = MANTISSA.bits - 1 - table.seg_shift      # shifts from there to the offset's top bit
        last = self.loss_cycles                           # the phase that writes the result
        rounding = table.seg_shift + table.guard
        # The table's samples carry the half of the interpolation's rounding (``rounding`` bits).
        rounded = dataclasses.replace(table, y0=tuple(y + (1 << (table.guard - 1)) for y in table.y0))
        bound = (max(map(abs, rounded.y0)) + max(map(abs, rounded.slope))) << table.seg_shift

        def lanes_of(shape, name):
            return plain_word(data.ArrayLayout(shape, phys), name)

        def clamped(v):
            # A p below one LSB counts as one LSB: a negative p enters as 0, which normalises as 1
            # does (the bits below the top stay 0).
            return Mux(v[-1], 0, v)[:bits - 1]

        # The beat on ``i`` is registered first (the buffers' lanes start from a register); its slice
        # ``slot`` is picked into ``part`` (its ``a`` and the key its op compares) per cycle, and the
        # beat leaves with its last.
        beat_in = registered(m, self.i, "beat")
        beat, full = beat_in.payload, beat_in.valid
        op = Signal(ReduceOp)  # the beat's op, registered with it
        slot = Signal(range(slices))
        part = lanes_of(data.StructLayout({"a": signed(bits), "key": signed(bits)}), "part")
        part_valid = Signal()
        # Of the slice in ``part``: its beat's ``last``, its beat's last slice, an ARGMAX.
        part_last, part_end, is_argmax = (Signal(reset_less=True) for _ in range(3))

        def pick(lanes_value, lane):
            """Lane ``lane`` of slice ``slot`` of a beat-wide value."""
            if slices == 1:
                return lanes_value[lane]
            width = len(lanes_value[lane])
            parts = Cat(*(lanes_value[k * phys + lane] for k in range(slices)))
            return parts.word_select(slot, width).as_signed()

        # Front end: each lane's key (the largest a or y so far) and value (its row, or its a), kept
        # as a ring of slices that turns once per slice step: the slice compared is always ring 0.
        # The ring's last slice is the one compared before, kept as ``chosen``: the comparison's
        # outcome and both candidates, the choice made as it moves on (a register's time later).
        first = Signal(init=1)  # the slice in ``part`` starts a group
        row = Signal(range(self.max_rows))
        keys = [lanes_of(signed(bits), f"key{k}") for k in range(slices - 1)]
        values = [lanes_of(signed(bits), f"value{k}") for k in range(slices - 1)]
        chosen = plain_word(data.ArrayLayout(data.StructLayout({
            "take": 1, "key": signed(bits), "old_key": signed(bits), "value": signed(bits),
            "old_value": signed(bits), "p": bits - 1}), phys), "chosen")
        # ``chosen`` holds a final slice the back end has not taken (``waiting``), its op and end.
        waiting = Signal()
        chosen_argmax, chosen_end = Signal(reset_less=True), Signal(reset_less=True)
        # Back end, all physical lanes in step: while ``busy``, ``phase`` counts the cycles of a final
        # slice from 1 (ARGMAX: from ``last``); ``final`` is ``busy & (phase == last)``, registered.
        phase = Signal(range(last + 1))
        busy, final = Signal(), Signal()
        argmax, end = Signal(), Signal()  # the slice in the back end is an ARGMAX; the beat's last
        mant = lanes_of(bits - 1, "mant")  # p, shifted left until its top bit is set (ARGMAX: the row)
        scaled = lanes_of(range(min(fmt.frac - norm, 0) * ln2, fmt.frac * ln2 + 1), "scaled")
        ln_m = lanes_of(range(-bound, bound + 1), "ln_m")  # ln(m), with the half of its rounding
        out = [Cat(*(self.o.payload.y[k * phys + lane] for lane in range(phys))) for k in range(slices)]
        # A waiting final slice the busy back end cannot take moves on to ``held`` (its p, op and
        # end); the front end stops while both hold one, so that none of its enables waits on
        # ``o.ready``.
        held = Signal()
        held_argmax, held_end = Signal(reset_less=True), Signal(reset_less=True)
        held_p = lanes_of(bits - 1, "held_p")

        done = final & (~self.o.valid | self.o.ready)  # the back end's slice enters ``o``
        free = ~busy | done  # the back end takes the held slice, or else the waiting one
        step = part_valid & ~(waiting & held)  # the slice in ``part`` is compared
        picks = full & (~part_valid | step)  # a slice of ``beat`` moves into ``part``
        m.d.comb += beat_in.ready.eq(picks & (slot == slices - 1))
        with m.If(self.i.ready):
            m.d.sync += op.eq(self.op)
        with m.If(~part_valid | step):
            m.d.sync += [part_valid.eq(full), part_last.eq(beat.last), part_end.eq(slot == slices - 1),
                         is_argmax.eq(op == ReduceOp.ARGMAX)]
            for lane in range(phys):
                a, y = pick(beat.a, lane), pick(beat.y, lane)
                m.d.sync += [part[lane].a.eq(a), part[lane].key.eq(Mux(op == ReduceOp.ARGMAX, a, y))]
        with m.If(picks):
            m.d.sync += slot.eq(Mux(slot == slices - 1, 0, slot + 1))
        with m.If(step):
            m.d.sync += [chosen_argmax.eq(is_argmax), chosen_end.eq(part_end)]
            m.d.sync += [r[k].eq(r[k + 1]) for r in (keys, values) for k in range(slices - 2)]
            with m.If(part_end):
                m.d.sync += first.eq(part_last)
                with m.If(part_last):
                    m.d.sync += row.eq(0)
                with m.Elif(row != self.max_rows - 1):
                    m.d.sync += row.eq(row + 1)

        # The waiting slice goes to the back end when it is free and holds none, else to ``held``
        # when that is empty or being emptied; ``held`` follows it until then.
        m.d.sync += [waiting.eq(step & part_last | waiting & held & ~free),
                     held.eq(Mux(free, held & waiting, held | waiting))]
        with m.If(~held | free):
            m.d.sync += [held_argmax.eq(chosen_argmax), held_end.eq(chosen_end)]
        next_argmax = Mux(held, held_argmax, chosen_argmax)
        with m.If(free):
            # The back end's registers follow the slice it would take; it starts if there is one.
            starts = held | waiting
            m.d.sync += [busy.eq(starts), final.eq(starts & next_argmax), phase.eq(Mux(next_argmax, last, 1)),
                         argmax.eq(next_argmax), end.eq(Mux(held, held_end, chosen_end))]
        with m.Elif(~final):
            m.d.sync += [phase.eq(phase + 1), final.eq(phase == last - 1)]

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(done):
            m.d.sync += self.o.valid.eq(end)
            m.d.sync += [out[k].eq(out[k + 1]) for k in range(slices - 1)]

        m.submodules.ln = rom = pwl_memory([rounded])
        for lane in range(phys):
            # Compare the slice with the running state, ring 0; a final slice's hot p (binary
            # groups: p or 1 - p by the label) goes on to the back end.
            a, key_in, c = part[lane].a, part[lane].key, chosen[lane]
            key = Mux(c.take, c.key, c.old_key)  # the chosen slice's, as it enters the ring
            value = Mux(c.take, c.value, c.old_value)
            if slices > 1:
                with m.If(step):
                    m.d.sync += [keys[-1][lane].eq(key), values[-1][lane].eq(value)]
                key, value = keys[0][lane], values[0][lane]
            take = first | (key_in > key)
            # A one-beat group's p comes from its own a and y (LOSS: the key), beside the comparison.
            binary = Mux(key_in << 1 < fmt.one, requantize_hdl(fmt.one - a, 0, bits), a)
            new_value = Mux(is_argmax, row, a)
            with m.If(step):
                m.d.sync += [c.take.eq(take), c.key.eq(key_in), c.old_key.eq(key), c.value.eq(new_value),
                             c.old_value.eq(value),
                             c.p.eq(Mux(first & ~is_argmax, clamped(binary), clamped(new_value)))]
            p = Mux(c.take, c.p, clamped(c.old_value))  # ARGMAX: the row
            with m.If(~held | free):
                m.d.sync += held_p[lane].eq(p)

            # Back end: -ln p = (frac - top) * ln 2 - ln m for p = m * 2**top, m in [1, 2). Phases
            # 1..norm normalise p, adding ln 2 per shift; the next reads the table at m's segment;
            # then ln m = y0 * 2**seg_shift + slope * offset by Horner's rule on the offset's bits as
            # they leave the top of ``mant``; the last phase rounds, subtracts and saturates.
            mant_l = mant[lane]
            port = rom.read_port()
            index = Cat(Const(0, MANTISSA.bits - bits), mant_l)[table.seg_shift:-1]  # below m's top bit
            m.d.comb += [port.en.eq(phase == norm + 1), port.addr.eq(index)]
            with m.If(free):
                m.d.sync += [mant_l.eq(Mux(held, held_p[lane], p)), scaled[lane].eq((fmt.frac - norm) * ln2)]
            with m.Elif((phase >= 1) & (phase <= norm)):
                with m.If(~mant_l[-1]):
                    m.d.sync += [mant_l.eq(mant_l << 1), scaled[lane].eq(scaled[lane] + ln2)]
            with m.Elif((phase > norm) & (phase < last)):
                m.d.sync += mant_l.eq(mant_l << 1)
            with m.If(phase == norm + horner):
                m.d.sync += ln_m[lane].eq(port.data.y0)
            with m.Elif((phase > norm + horner) & (phase < last)):
                m.d.sync += ln_m[lane].eq((ln_m[lane] << 1) + Mux(mant_l[-1], port.data.slope, 0))
            loss = scaled[lane] - (ln_m[lane] >> rounding)
            with m.If(done):
                m.d.sync += out[-1][lane * bits:(lane + 1) * bits].eq(
                    Mux(argmax, mant_l, requantize_hdl(loss, 0, bits)))
        return m
