"""The reduction unit: ARGMAX and LOSS down the columns of a group of beats."""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .numerics import MANTISSA, Fixed
from .vector import pwl_index, pwl_memory, pwl_value, requantize_hdl

__all__ = ["ReduceOp", "Reduce"]


class ReduceOp(enum.Enum, shape=1):
    """What a group reduces to: the row of each column's largest ``a``, or the cross-entropy loss."""

    ARGMAX = 0
    LOSS = 1


def _top_bit(value: Value) -> Value:
    """Priority encoder: the position of the highest set bit of unsigned ``value`` (0 for 0)."""
    top = Value.cast(0)
    for bit in range(1, len(value)):
        top = Mux(value[bit], bit, top)
    return top


class Reduce(wiring.Component):
    """One result beat per group of input beats; lane ``j`` across a group is the column of sample ``j``.

    A group is the beats up to and including one with ``last``; its rows are the classes. Per lane,
    with ``n`` the group's beats and ``fmt`` the format of ``a``, ``y`` and the loss::

        ARGMAX:  numerics.argmax(a), at most max_rows - 1                 (y is ignored)
        LOSS:    numerics.cross_entropy(a[h], fmt), h = numerics.argmax(y)     (n > 1)
                 numerics.cross_entropy(a if 2 * y >= fmt.one else sat(fmt.one - a), fmt)   (n = 1)

    Cycle contract: fully pipelined. ``i.ready`` is high whenever ``o.valid`` is low or ``o.ready``
    is high (the whole pipeline advances together, so ``i.ready`` depends combinationally on
    ``o.ready``), except on the ``S - 1`` cycles after the transfer of a group's ``last`` beat, with
    ``S = lanes / physical_lanes``; an accepted beat updates each lane's running maximum and its
    companion value (the row number, or the ``a`` of the row with the largest ``y``) in the same
    cycle. The transfer of a group's ``last`` beat in cycle 0 makes its result valid on ``o`` in cycle
    :attr:`LATENCY` (5) ``+ S - 1`` when ``o`` is not stalled: a slice of ``physical_lanes`` lanes
    per cycle, the hot value is chosen, normalised by a priority encoder and a barrel shift, looked up
    in the ``ln`` table and scaled. Groups may follow back to back, even of one beat each (one group
    per ``S`` cycles); results leave in order, one beat per group, and ``o.valid`` holds with a
    stable payload until the transfer.

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
        Lanes computed at a time after a group ends, a divisor of ``lanes`` (default ``lanes``).

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

    def elaborate(self, platform):
        m = Module()
        lanes, phys, fmt, bits, table = self.lanes, self.physical_lanes, self.fmt, self.fmt.bits, self.table
        slices = lanes // phys
        ln2 = round(math.log(2) * fmt.one)

        def lanes_of(shape, name, count=phys):
            return Signal(data.ArrayLayout(shape, count), name=name)

        def pick(lanes_value, slot, lane):
            """Lane ``lane`` of slice ``slot`` of a beat-wide value."""
            if slices == 1:
                return lanes_value[lane]
            width = len(lanes_value[lane])
            parts = Cat(*(lanes_value[k * phys + lane] for k in range(slices)))
            return parts.word_select(slot, width).as_signed()

        # Running state of the group being received.
        first = Signal(init=1)  # the next beat starts a group
        row = Signal(range(self.max_rows))
        key, value = lanes_of(signed(bits), "key", lanes), lanes_of(signed(bits), "value", lanes)
        # Pipeline registers: stage 1 the group's final keys and values, passed on a slice per cycle
        # (``slot1`` the next one); per physical lane, 2 the hot p (LOSS) or row (ARGMAX), 3 its top
        # bit and left shift, 4 the table offset beside the table read.
        valid, argmax = Signal(4), Signal(4)
        single1 = Signal()
        key1, value1 = lanes_of(signed(bits), "key1", lanes), lanes_of(signed(bits), "value1", lanes)
        slot1, slot2, slot3, slot4 = (Signal(range(slices), name=f"slot{k}") for k in (1, 2, 3, 4))
        p2, p3, p4 = (lanes_of(signed(bits), f"p{k}") for k in (2, 3, 4))
        top3, top4 = lanes_of(range(bits - 1), "top3"), lanes_of(range(bits - 1), "top4")
        shift3 = lanes_of(range(MANTISSA.frac + 1), "shift3")
        frac4 = lanes_of(max(table.seg_shift, 1), "frac4")

        adv = ~self.o.valid | self.o.ready
        pending = valid[0] & (slot1 != slices - 1)  # stage 1 keeps its group for another cycle
        accept = self.i.valid & self.i.ready
        is_argmax = self.op == ReduceOp.ARGMAX
        m.d.comb += self.i.ready.eq(adv & ~pending)

        with m.If(accept):
            m.d.sync += first.eq(self.i.payload.last)
            with m.If(self.i.payload.last):
                m.d.sync += row.eq(0)
            with m.Elif(row != self.max_rows - 1):
                m.d.sync += row.eq(row + 1)
        with m.If(adv):
            m.d.sync += [
                valid.eq(Cat(pending | (self.i.valid & self.i.payload.last), valid)),
                argmax.eq(Cat(Mux(pending, argmax[0], is_argmax), argmax)),
                slot1.eq(Mux(pending, slot1 + 1, 0)), slot2.eq(slot1), slot3.eq(slot2), slot4.eq(slot3),
                self.o.valid.eq(valid[3] & (slot4 == slices - 1)),
            ]
            with m.If(~pending):
                m.d.sync += single1.eq(first)

        for lane in range(lanes):
            a, y = self.i.payload.a[lane], self.i.payload.y[lane]
            key_in = Mux(is_argmax, a, y)
            value_in = Mux(is_argmax, row, a)
            take = first | (key_in > key[lane])
            key_next = Mux(take, key_in, key[lane])
            value_next = Mux(take, value_in, value[lane])
            with m.If(accept):
                m.d.sync += [key[lane].eq(key_next), value[lane].eq(value_next)]
            with m.If(adv & ~pending):
                m.d.sync += [key1[lane].eq(key_next), value1[lane].eq(value_next)]

        m.submodules.ln = rom = pwl_memory([table])
        for lane in range(phys):
            # Stage 2: the hot p (binary groups: p or 1 - p by the label), at least one LSB.
            key1_s, value1_s = pick(key1, slot1, lane), pick(value1, slot1, lane)
            complement = requantize_hdl(fmt.one - value1_s, 0, bits)
            p = Mux(single1 & (key1_s << 1 < fmt.one), complement, value1_s)
            # Stage 3: p = m * 2**top with m in [1, 2): a priority encoder, then a barrel shift.
            top = _top_bit(p2[lane].as_unsigned()[:bits - 1])
            # Stage 4: read the table of ln(m).
            mantissa = (p3[lane].as_unsigned()[:bits - 1] << shift3[lane])[:MANTISSA.bits - 1]
            index, offset = pwl_index(table, mantissa)
            port = rom.read_port()
            m.d.comb += [port.en.eq(adv), port.addr.eq(index)]
            # Stage 5: -ln p = (frac - top) * ln 2 - ln m, saturated; into the slice's lanes.
            ln_m = pwl_value(table, port.data.y0, port.data.slope, frac4[lane])
            loss = requantize_hdl((fmt.frac - top4[lane]) * ln2 - ln_m, 0, bits)
            with m.If(adv):
                m.d.sync += [
                    p2[lane].eq(Mux(argmax[0], value1_s, Mux(p < 1, 1, p))),
                    p3[lane].eq(p2[lane]),
                    top3[lane].eq(top),
                    shift3[lane].eq(MANTISSA.frac - top),
                    p4[lane].eq(p3[lane]),
                    top4[lane].eq(top3[lane]),
                    frac4[lane].eq(offset),
                ]
            for k in range(slices):
                with m.If(adv & (slot4 == k)):
                    m.d.sync += self.o.payload.y[k * phys + lane].eq(Mux(argmax[3], p4[lane], loss))
        return m
