"""The reduction unit: ARGMAX and LOSS down the columns of a group of beats."""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .isa import ReduceOp
from .numerics import MANTISSA, Fixed
from .pipeline import registered
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
    empty or its beat leaves), and the unit takes a *slice* of ``physical_lanes`` lanes of the
    registered beat per cycle: a beat's ``S = lanes / physical_lanes`` slices update each lane's
    running maximum and its companion value (the row number, or the ``a`` of the row with the
    largest ``y``) on ``S`` consecutive cycles, and the beat leaves the register with its last slice.
    A slice of a group's ``last`` beat also waits for the back end to be free, which then computes
    that slice's results: in one cycle for ARGMAX, in :attr:`loss_cycles` (``fmt.bits + 15``) for
    LOSS, where ``p`` is normalised by left shifts, its ``ln`` table segment read and interpolated by
    Horner's rule, a bit per cycle. The back end passes a slice's results into ``o`` when ``o`` is
    not stalled, and ``o.valid`` rises with the last slice's: one-beat ARGMAX groups offered to an
    idle unit transfer in cycles ``0, S, 2S, …``, each result valid in cycle ``S - 1 +``
    :attr:`LATENCY` (3) after its transfer; a LOSS group's result is valid ``S * loss_cycles + 2``
    cycles after its last beat is taken. Groups may follow back to back; results leave in order, one
    beat per group, and ``o.valid`` holds with a stable payload until the transfer.

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

    LATENCY = 3

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
        bound = (max(map(abs, table.y0)) + max(map(abs, table.slope))) << table.seg_shift

        def lanes_of(shape, name):
            return Signal(data.ArrayLayout(shape, phys), name=name)

        beat = registered(m, self.i, "beat")  # the buffers' lanes start from a register
        op = Signal(ReduceOp)                  # the beat's op, registered with it
        with m.If(self.i.ready):
            m.d.sync += op.eq(self.op)

        def pick(lanes_value, lane):
            """Lane ``lane`` of slice ``slot`` of a beat-wide value."""
            if slices == 1:
                return lanes_value[lane]
            width = len(lanes_value[lane])
            parts = Cat(*(lanes_value[k * phys + lane] for k in range(slices)))
            return parts.word_select(slot, width).as_signed()

        # Front end: each lane's key (the largest a or y so far) and value (its row, or its a), kept
        # as a ring of slices that turns once per slice step: the slice worked on is always ring 0.
        first = Signal(init=1)  # the beat on ``i`` starts a group
        row = Signal(range(self.max_rows))
        slot = Signal(range(slices))
        keys = [lanes_of(signed(bits), f"key{k}") for k in range(slices)]
        values = [lanes_of(signed(bits), f"value{k}") for k in range(slices)]
        # Back end, all physical lanes in step: ``phase`` counts the cycles of a final slice (0 idle).
        phase = Signal(range(last + 1))
        argmax, end = Signal(), Signal()  # the slice in the back end is an ARGMAX; the beat's last
        mant = lanes_of(bits - 1, "mant")  # p, shifted left until its top bit is set (ARGMAX: the row)
        scaled = lanes_of(range(min(fmt.frac - norm, 0) * ln2, fmt.frac * ln2 + 1), "scaled")
        ln_m = lanes_of(range(-bound, bound + 1), "ln_m")  # ln(m) before rounding
        out = [Cat(*(self.o.payload.y[k * phys + lane] for lane in range(phys))) for k in range(slices)]

        done = (phase == last) & (~self.o.valid | self.o.ready)
        free = (phase == 0) | done
        go = ~beat.payload.last | free  # a slice of the beat on ``i`` may be taken
        step = beat.valid & go
        start = step & beat.payload.last
        is_argmax = op == ReduceOp.ARGMAX
        m.d.comb += beat.ready.eq(go & (slot == slices - 1))

        with m.If(step):
            m.d.sync += slot.eq(Mux(slot == slices - 1, 0, slot + 1))
            m.d.sync += [keys[k].eq(keys[k + 1]) for k in range(slices - 1)]
            m.d.sync += [values[k].eq(values[k + 1]) for k in range(slices - 1)]
        with m.If(beat.valid & beat.ready):
            m.d.sync += first.eq(beat.payload.last)
            with m.If(beat.payload.last):
                m.d.sync += row.eq(0)
            with m.Elif(row != self.max_rows - 1):
                m.d.sync += row.eq(row + 1)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If((phase != 0) & (phase != last)):
            m.d.sync += phase.eq(phase + 1)
        with m.If(done):
            m.d.sync += [phase.eq(0), self.o.valid.eq(end)]
            m.d.sync += [out[k].eq(out[k + 1]) for k in range(slices - 1)]
        with m.If(start):
            m.d.sync += [phase.eq(Mux(is_argmax, last, 1)), argmax.eq(is_argmax),
                         end.eq(slot == slices - 1)]

        m.submodules.ln = rom = pwl_memory([table])
        for lane in range(phys):
            # Fold the slice into the running state; a final slice starts the back end on its hot p
            # (binary groups: p or 1 - p by the label), at least one LSB.
            a, y = pick(beat.payload.a, lane), pick(beat.payload.y, lane)
            key, value = keys[0][lane], values[0][lane]
            key_in = Mux(is_argmax, a, y)
            take = first | (key_in > key)
            key_next = Mux(take, key_in, key)
            value_next = Mux(take, Mux(is_argmax, row, a), value)
            # A one-beat group's p comes from its own a and y, beside the comparison, not after it.
            binary = Mux(y << 1 < fmt.one, requantize_hdl(fmt.one - a, 0, bits), a)
            p = Mux(first, binary, value_next)
            with m.If(step):
                m.d.sync += [keys[-1][lane].eq(key_next), values[-1][lane].eq(value_next)]
            with m.If(start):
                m.d.sync += [mant[lane].eq(Mux(is_argmax, value_next, Mux(p[-1] | ~p.any(), 1, p))),
                             scaled[lane].eq((fmt.frac - norm) * ln2)]

            # Back end: -ln p = (frac - top) * ln 2 - ln m for p = m * 2**top, m in [1, 2). Phases
            # 1..norm normalise p, adding ln 2 per shift; the next reads the table at m's segment;
            # then ln m = y0 * 2**seg_shift + slope * offset by Horner's rule on the offset's bits as
            # they leave the top of ``mant``; the last phase rounds, subtracts and saturates.
            mant_l = mant[lane]
            port = rom.read_port()
            index = Cat(Const(0, MANTISSA.bits - bits), mant_l)[table.seg_shift:-1]  # below m's top bit
            m.d.comb += [port.en.eq(phase == norm + 1), port.addr.eq(index)]
            with m.If((phase >= 1) & (phase <= norm)):
                with m.If(~mant_l[-1]):
                    m.d.sync += [mant_l.eq(mant_l << 1), scaled[lane].eq(scaled[lane] + ln2)]
            with m.Elif((phase > norm) & (phase < last)):
                m.d.sync += mant_l.eq(mant_l << 1)
            with m.If(phase == norm + horner):
                m.d.sync += ln_m[lane].eq(port.data.y0)
            with m.Elif((phase > norm + horner) & (phase < last)):
                m.d.sync += ln_m[lane].eq((ln_m[lane] << 1) + Mux(mant_l[-1], port.data.slope, 0))
            loss = scaled[lane] - ((ln_m[lane] + (1 << (rounding - 1))) >> rounding)
            with m.If(done):
                m.d.sync += out[-1][lane * bits:(lane + 1) * bits].eq(
                    Mux(argmax, mant_l, requantize_hdl(loss, 0, bits)))
        return m
