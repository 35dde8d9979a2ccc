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
    ``o.ready``); an accepted beat updates each lane's running maximum and its companion value (the
    row number, or the ``a`` of the row with the largest ``y``) in the same cycle. The transfer of
    a group's ``last`` beat in cycle 0 makes its result valid on ``o`` in cycle :attr:`LATENCY`
    (7) when ``o`` is not stalled: the hot value is chosen, normalised by a priority encoder and a
    barrel shift, looked up in the ``ln`` table (its output registered), interpolated and scaled. Groups may
    follow back to back, even of one beat each; results leave in order, one beat per group, and
    ``o.valid`` holds with a stable payload until the transfer.

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

    LATENCY = 7

    def __init__(self, lanes: int = 4, max_rows: int = 16, fmt: Fixed = numerics.ACT):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an integer >= 1, not {lanes!r}")
        if not isinstance(fmt, Fixed) or fmt.bits > MANTISSA.bits:
            raise ValueError(f"fmt must be a Fixed of at most {MANTISSA.bits} bits, not {fmt!r}")
        if not isinstance(max_rows, int) or not 1 <= max_rows <= fmt.max + 1:
            raise ValueError(f"max_rows must be an integer in 1..{fmt.max + 1} (row numbers are "
                             f"outputs in {fmt}), not {max_rows!r}")
        self.lanes, self.max_rows, self.fmt = lanes, max_rows, fmt
        self.table = numerics.ln_table(fmt)
        beat = data.ArrayLayout(signed(fmt.bits), lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": beat, "y": beat, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"y": beat}))),
            "op": In(ReduceOp),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, fmt, bits, table = self.lanes, self.fmt, self.fmt.bits, self.table
        ln2 = round(math.log(2) * fmt.one)

        def lanes_of(shape, name):
            return Signal(data.ArrayLayout(shape, lanes), name=name)

        # Running state of the group being received.
        first = Signal(init=1)  # the next beat starts a group
        row = Signal(range(self.max_rows))
        key, value = lanes_of(signed(bits), "key"), lanes_of(signed(bits), "value")
        # Pipeline registers: stage 1 the group's final key and value, 2 the hot p (LOSS) or row
        # (ARGMAX), 3 its top bit and left shift, 4 the table offset beside the table read, 5 the
        # table's sample and slope, 6 ln m and the exponent's share (frac - top)·ln 2.
        valid, argmax = Signal(6), Signal(6)
        single1 = Signal()
        key1, value1 = lanes_of(signed(bits), "key1"), lanes_of(signed(bits), "value1")
        p2, p3, p4, p5, p6 = (lanes_of(signed(bits), f"p{k}") for k in (2, 3, 4, 5, 6))
        top3, top4, top5 = (lanes_of(range(bits - 1), f"top{k}") for k in (3, 4, 5))
        exponent6 = lanes_of(signed(bits + ln2.bit_length() + 1), "exponent6")
        shift3 = lanes_of(range(MANTISSA.frac + 1), "shift3")
        frac4, frac5 = (lanes_of(max(table.seg_shift, 1), f"frac{k}") for k in (4, 5))

        adv = ~self.o.valid | self.o.ready
        accept = self.i.valid & adv
        is_argmax = self.op == ReduceOp.ARGMAX
        m.d.comb += self.i.ready.eq(adv)

        with m.If(accept):
            m.d.sync += first.eq(self.i.payload.last)
            with m.If(self.i.payload.last):
                m.d.sync += row.eq(0)
            with m.Elif(row != self.max_rows - 1):
                m.d.sync += row.eq(row + 1)
        with m.If(adv):
            m.d.sync += [
                valid.eq(Cat(self.i.valid & self.i.payload.last, valid)),
                argmax.eq(Cat(is_argmax, argmax)),
                single1.eq(first),
                self.o.valid.eq(valid[5]),
            ]

        m.submodules.ln = rom = pwl_memory([table])
        for lane in range(lanes):
            a, y = self.i.payload.a[lane], self.i.payload.y[lane]
            key_in = Mux(is_argmax, a, y)
            value_in = Mux(is_argmax, row, a)
            take = first | (key_in > key[lane])
            key_next = Mux(take, key_in, key[lane])
            value_next = Mux(take, value_in, value[lane])
            with m.If(accept):
                m.d.sync += [key[lane].eq(key_next), value[lane].eq(value_next)]

            # Stage 2: the hot p (binary groups: p or 1 - p by the label), at least one LSB.
            complement = requantize_hdl(fmt.one - value1[lane], 0, bits)
            p = Mux(single1 & (key1[lane] << 1 < fmt.one), complement, value1[lane])
            # Stage 3: p = m * 2**top with m in [1, 2): a priority encoder, then a barrel shift.
            top = _top_bit(p2[lane].as_unsigned()[:bits - 1])
            # Stage 4: read the table of ln(m).
            mantissa = (p3[lane].as_unsigned()[:bits - 1] << shift3[lane])[:MANTISSA.bits - 1]
            index, offset = pwl_index(table, mantissa)
            port = rom.read_port()
            m.d.comb += [port.en.eq(adv), port.addr.eq(index)]
            # Stage 6: interpolate ln(m) from the registered table output.
            y0, slope = Signal.like(port.data.y0), Signal.like(port.data.slope)
            ln_m = pwl_value(table, y0, slope, frac5[lane])
            ln_m6 = Signal(signed(len(ln_m)))
            # Stage 7: -ln p = (frac - top) * ln 2 - ln m, saturated.
            loss = requantize_hdl(exponent6[lane] - ln_m6, 0, bits)
            with m.If(adv):
                m.d.sync += [
                    key1[lane].eq(key_next),
                    value1[lane].eq(value_next),
                    p2[lane].eq(Mux(argmax[0], value1[lane], Mux(p < 1, 1, p))),
                    p3[lane].eq(p2[lane]),
                    top3[lane].eq(top),
                    shift3[lane].eq(MANTISSA.frac - top),
                    p4[lane].eq(p3[lane]),
                    top4[lane].eq(top3[lane]),
                    frac4[lane].eq(offset),
                    p5[lane].eq(p4[lane]),
                    frac5[lane].eq(frac4[lane]),
                    top5[lane].eq(top4[lane]),
                    y0.eq(port.data.y0),
                    slope.eq(port.data.slope),
                    p6[lane].eq(p5[lane]),
                    exponent6[lane].eq((fmt.frac - top5[lane]) * ln2),
                    ln_m6.eq(ln_m),
                    self.o.payload.y[lane].eq(Mux(argmax[5], p6[lane], loss)),
                ]
        return m
