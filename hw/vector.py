"""The vector unit: elementwise arithmetic, requantisation and activation functions.

The unit post-processes the systolic array's accumulators (``Z = acc + bias``, ``A = g(Z)``) and
runs the elementwise steps of back-propagation (``dZ = dA * g'(Z)``, ``A - Y``, weight updates). Its
arithmetic is :mod:`hw.numerics`; the HDL helpers here (:func:`requantize_hdl`, :func:`pwl_index`,
:func:`serial_product`, :func:`pwl_memory`) are shared with :mod:`hw.softmax` and
:mod:`hw.reduce`.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .isa import Rounding, VecOp
from .numerics import SLOPE, Act, Fixed, PwlTable

__all__ = ["VectorUnit", "requantize_hdl", "pwl_index",
           "serial_product", "pwl_memory", "pwl_samples", "TABLE_ACTS"]


TABLE_ACTS = (Act.SIGMOID, Act.TANH, Act.SWISH)
"""Table-driven activations; table ``2 * k + deriv`` of the unit's ROM is ``TABLE_ACTS[k]``."""


def _clamp(value: Value, lo: int, hi: int) -> Value:
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def _saturate(value: Value, bits: int) -> Value:
    """``value`` clamped to ``signed(bits)``: kept if the bits from ``bits - 1`` up are all equal."""
    top = value[bits - 1:]
    limit = Mux(value[-1], -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return Mux(~top.any() | top.all(), value[:bits].as_signed(), limit)


def requantize_hdl(value: Value, shift: int, bits: int) -> Value:
    """HDL of :func:`numerics.requantize` by a constant ``shift``.

    ``value >> shift`` rounded to nearest-even, then saturated to ``signed(bits)``; a negative
    ``shift`` is a left shift, as in :func:`numerics.shift_round`.
    """
    value = Value.cast(value)
    if shift < 0:
        value, shift = value << -shift, 0
    half = (1 << shift) >> 1
    lsb = (value >> shift)[0]
    nearest = half - 1 + lsb if half else 0  # a tie carries only onto an odd floor
    rounded = (value + nearest) >> shift
    return _clamp(rounded, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)[:bits].as_signed()


def thermometer(m: Module, value: Value, width: int) -> Value:
    """``width`` bits, bit ``i`` set when ``i < value`` (unsigned): ``(1 << value) - 1`` without
    a shifter or an adder."""
    value = Value.cast(value)
    bits, k = Const(0, 1), 0  # bit i is i < value[:k]
    while len(bits) < width and k < len(value):
        wider = Signal(2 * len(bits), name=f"thermometer{k}")
        m.d.comb += wider.eq(Cat(bits | value[k].replicate(len(bits)), bits & value[k].replicate(len(bits))))
        bits, k = wider, k + 1
    if k < len(value):
        bits = bits | value[k:].any().replicate(len(bits))
    return Cat(bits[:width], Const(0, max(width - len(bits), 0)))


def shift_right(m: Module, value: Value, shift: Value, keep: int) -> tuple[Value, Value, Value]:
    """``value >> shift`` (arithmetic) by a logarithmic shifter that keeps only ``keep`` bits.

    Returns the low ``keep`` bits of the shifted value, whether any bit shifted out below was set
    (the *sticky* bit of rounding) and whether the shifted value fits ``signed(keep)`` (every bit
    above those kept is a copy of their sign). The shifter takes the bits of ``shift`` from the
    largest, so each step keeps just the bits that the smaller steps after it can still bring down.
    """
    value, shift = Value.cast(value), Value.cast(shift)
    sign = value[-1]
    window = Cat(value, sign.replicate(max(keep - len(value), 0)))
    sticky, spill = Const(0), Const(0)
    for k in reversed(range(len(shift))):
        step = 1 << k
        moved = Cat(window[step:], sign.replicate(min(step, len(window))))
        sticky = sticky | (shift[k] & window[:step].any())
        after = Signal(len(window), name=f"shifted{k}")
        m.d.comb += after.eq(Mux(shift[k], moved, window))
        kept = keep + step - 1  # the later steps shift by at most step - 1 in all
        if len(after) > kept:
            spill = spill | (after[kept:] != sign.replicate(len(after) - kept))
        window = after[:kept]
    fits = ~spill & (window[keep - 1] == sign)
    return window[:keep], sticky, fits


def round_nearest_even(half: Value, sticky: Value, lsb: Value) -> Value:
    """Whether a right shift rounds up to nearest-even: the first bit shifted out (``half``) is set
    and either another one (``sticky``) is, or the floor is odd (``lsb``)."""
    return half & (sticky | lsb)


def pwl_index(table: PwlTable, x: Value) -> tuple[Value, Value]:
    """Segment number and offset in the segment of raw ``x``, clamped as :class:`PwlTable` does."""
    offset = (_clamp(x, table.lo, table.hi - 1) - table.lo).as_unsigned()
    index_bits = (table.segments - 1).bit_length()
    index = offset[table.seg_shift:table.seg_shift + index_bits]
    frac = offset[:table.seg_shift] if table.seg_shift else Const(0)
    return index, frac


def serial_product(m: Module, a: Value, b: Value, phase: Value, cycles: int, restart: Value) -> Value:
    """``a * b`` by Horner's rule: one shift and add per cycle, from the top bit of ``b`` down.

    ``b`` (at most ``cycles`` bits, or ``cycles - 1`` if unsigned) and ``a`` must hold while ``phase``
    counts ``0 .. cycles - 1``; the product is valid, combinationally, in phase ``cycles - 1`` (where
    the accumulator holds). A cycle with ``restart`` high clears the accumulator, so it must precede
    phase 0. The sign digit of ``b``, first, is subtracted as ``~a + 1`` onto the cleared accumulator.
    Call it outside any ``m.If`` or FSM state.
    """
    a = Value.cast(a)
    wide = Signal(signed(cycles))
    m.d.comb += wide.eq(b)
    digit = Cat(*(wide[k] for k in reversed(range(cycles)))).bit_select(phase, 1)
    first = phase == 0
    acc = Signal(signed(len(a) + cycles))
    total = (acc << 1) + Mux(digit, Mux(first, ~a, a), 0) + (digit & first)
    with m.If(restart):
        m.d.sync += acc.eq(0)
    with m.Elif(phase != cycles - 1):
        m.d.sync += acc.eq(total)
    return total


def _signed_width(values) -> int:
    """The narrowest signed width holding ``values`` (block RAM is counted in bits)."""
    lo, hi = min(values), max(values)
    return max(max(hi, 0).bit_length(), max(-lo - 1, 0).bit_length(), 1) + 1


def pwl_memory(tables: list[PwlTable]) -> memory.Memory:
    """A ROM holding the samples and slopes of ``tables`` one after another (all equally long)."""
    y0 = [v for t in tables for v in t.y0]
    slope = [v for t in tables for v in t.slope]
    layout = data.StructLayout({"y0": signed(_signed_width(y0)),
                                "slope": signed(_signed_width(slope))})
    return memory.Memory(shape=layout, depth=len(y0),
                         init=[{"y0": a, "slope": b} for a, b in zip(y0, slope, strict=True)])


def pwl_samples(tables: list[PwlTable], offset: int = 0) -> memory.Memory:
    """A ROM of the samples of ``tables`` plus ``offset``, each table followed by its end point
    (``segments + 1`` entries apiece): a segment's rise is the next sample less its own."""
    y = [v + offset for t in tables for v in (*t.y0, t.y0[-1] + t.slope[-1])]
    return memory.Memory(shape=signed(_signed_width(y)), depth=len(y), init=y)


class VectorUnit(wiring.Component):
    """Elementwise ``y = g(requantize(a op b))`` on ``lanes`` lanes, one beat per ``lanes / physical_lanes``
    cycles.

    Cycle contract: a pipeline of ``physical_lanes`` lanes that takes a *slice* of that many lanes of
    the beat on ``i`` per cycle: a beat's ``S = lanes / physical_lanes`` slices enter on ``S``
    consecutive cycles while ``i.valid`` is high (so its payload must hold until the transfer, as a
    stream's does), and the beat transfers with its last slice. The whole pipeline advances when
    ``o.ready`` is high or ``o.valid`` is low; ``i.ready`` is that condition (it depends
    combinationally on ``o.ready``) on the cycle of the last slice, and low on the others. A beat
    offered to an idle unit in cycle 0 has its result valid on ``o`` in cycle :attr:`latency`
    (``LATENCY + S - 1``, with :attr:`LATENCY` = 7) when ``o`` is not stalled. With
    ``physical_lanes == lanes`` (the default) the unit takes a beat per cycle. With
    ``serial_multipliers``, every step of the pipeline takes ``max(fmt.bits, 16)`` cycles instead of
    one while ``op`` is ``MUL`` or ``SGD``, ``act`` is leaky ReLU (not ``deriv``) or a table: each
    product is then computed by :func:`serial_product` over those cycles. Beats leave in order; none
    is dropped or duplicated, and ``o.valid`` stays high with a stable payload until the transfer.

    Per lane, with ``fmt`` the format of ``b`` and ``y``::

        t = a + (b << b_shift) | a - (b << b_shift) | a * b | (b << b_shift) - a * scale   (op)
        x = requantize(t, shift, fmt.bits)               (round = NEAREST_EVEN)
          | requantize_stochastic(t, shift, rand, fmt.bits)   (round = STOCHASTIC)
        y = activation(act, deriv, x, slope, fmt, segments)

    ``rand`` is the lane's LFSR state, which every beat rounded in ``STOCHASTIC`` mode advances by
    :func:`numerics.lfsr_advance` after drawing it. The LFSR of lane ``l`` resets to
    ``lfsr_seed(1, l)``; a cycle with ``seed_load`` high (``seed`` need hold in that cycle only)
    sets it to ``lfsr_seed(seed, l)`` over that cycle and the ``S - 1`` after it, in which the
    pipeline holds (``i.ready`` is low). The configuration inputs must be stable, and ``seed_load``
    low, while beats are in the pipeline.

    The stages: (1) a slice enters; (2) ``t``, by one adder and a conditional negation; (3) the
    stochastic bias is added and ``t`` shifted, keeping the bits of ``x`` and the first bit shifted
    out; (4) rounding and saturation; (5) the table read and the functions without a table; (6) the
    interpolation's or the leaky slope's product (one multiplier serves both); (7) its rounding and
    saturation, and the choice of ``y``.

    Parameters
    ----------
    lanes : int
        Elements per beat (>= 1).
    acc_width : int
        Width of operand ``a`` (the array's accumulators), 17..46.
    fmt : Fixed
        Format of ``b``, of the requantised ``x`` and of ``y`` (default :data:`numerics.ACT`).
    segments : int
        Segments of each activation table (a power of two, default 256).
    physical_lanes : int, optional
        Lanes of the pipeline, a divisor of ``lanes`` (default ``lanes``): fewer take less logic and
        process a beat in ``lanes / physical_lanes`` cycles, with the same results.
    serial_multipliers : bool
        Multiply by shift and add over ``max(fmt.bits, 16)`` cycles (no multiplier blocks, little
        logic); the tables then hold samples only (:func:`pwl_samples`), read twice per element.

    Attributes
    ----------
    i : In(stream)
        Payload ``a`` (``lanes`` x ``signed(acc_width)``), ``b`` (``lanes`` x ``signed(fmt.bits)``),
        ``last`` (passed through).
    o : Out(stream)
        Payload ``y`` (``lanes`` x ``signed(fmt.bits)``), ``last``, and per lane (a bit each)
        ``saturated``, whether ``x`` saturated (:func:`numerics.saturates`), and ``high``, whether
        ``x`` uses the top bit of its format (:func:`numerics.uses_top_bit`).
    op : In(VecOp)
    b_shift : In(range(32))
    shift : In(range(63))
    round : In(Rounding)
    act : In(numerics.Act)
    deriv : In(1)
        Compute ``g'`` instead of ``g``.
    slope : In(signed(16))
        Leaky-ReLU slope, raw in :data:`numerics.SLOPE`.
    scale : In(signed(16))
        Multiplier of ``a`` in the SGD step.
    seed : In(32)
    seed_load : In(1)

    Raises
    ------
    ValueError
        If a parameter is out of range, or the tables of ``fmt`` do not share one geometry.
    """

    LATENCY = 7

    @property
    def latency(self) -> int:
        """Cycles from a beat offered to an idle unit to its result on ``o`` (``LATENCY`` plus the
        extra slices)."""
        return self.LATENCY + self.lanes // self.physical_lanes - 1

    def __init__(self, lanes: int = 4, acc_width: int = 40, fmt: Fixed = numerics.ACT,
                 segments: int = 256, physical_lanes: int | None = None, serial_multipliers: bool = False):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be an integer >= 1, not {lanes!r}")
        physical_lanes = lanes if physical_lanes is None else physical_lanes
        if not isinstance(physical_lanes, int) or physical_lanes < 1 or lanes % physical_lanes:
            raise ValueError(f"physical_lanes must be a divisor of lanes={lanes}, not {physical_lanes!r}")
        if not isinstance(acc_width, int) or not 17 <= acc_width <= 46:
            raise ValueError(f"acc_width must be an integer in 17..46, not {acc_width!r}")
        if not isinstance(fmt, Fixed) or fmt.bits > 32:
            raise ValueError(f"fmt must be a Fixed of at most 32 bits, not {fmt!r}")
        if not isinstance(segments, int) or segments < 2 or segments & (segments - 1):
            raise ValueError(f"segments must be a power of two >= 2, not {segments!r}")
        self.lanes, self.acc_width, self.fmt, self.segments = lanes, acc_width, fmt, segments
        self.physical_lanes, self.serial_multipliers = physical_lanes, bool(serial_multipliers)
        self.tables = [numerics.activation_table(act, deriv, fmt, segments)
                       for act in TABLE_ACTS for deriv in (False, True)]
        geometry = {(t.lo, t.seg_shift, t.guard) for t in self.tables}
        if len(geometry) != 1:
            raise ValueError(f"the activation tables of {fmt} differ in (lo, seg_shift, guard): "
                             f"{sorted(geometry)}")
        beat = signed(fmt.bits)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "a": data.ArrayLayout(signed(acc_width), lanes),
                "b": data.ArrayLayout(beat, lanes),
                "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "y": data.ArrayLayout(beat, lanes),
                "saturated": lanes,
                "high": lanes,
                "last": 1}))),
            "op": In(VecOp),
            "b_shift": In(range(32)),
            "shift": In(range(63)),
            "round": In(Rounding),
            "act": In(Shape.cast(Act)),
            "deriv": In(1),
            "slope": In(signed(SLOPE.bits)),
            "scale": In(signed(16)),
            "seed": In(32),
            "seed_load": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, phys, fmt, bits = self.lanes, self.physical_lanes, self.fmt, self.fmt.bits
        slices = lanes // phys
        table = self.tables[0]
        one = min(fmt.one, fmt.max)
        stochastic = self.round == Rounding.STOCHASTIC
        table_no = Mux(self.act == Act.TANH, 1, Mux(self.act == Act.SWISH, 2, 0))
        is_table = (self.act == Act.SIGMOID) | (self.act == Act.TANH) | (self.act == Act.SWISH)

        t_width = self._t_width()

        # With serial multipliers, a step of the pipeline that multiplies takes ``cycles`` cycles.
        # Stage 7 rounds an interpolation and a leaky product by the same ``point`` bits: a table's
        # rise is multiplied by ``frac << frac_up``, a leaky ReLU's input by ``slope << slope_up``.
        total = table.seg_shift + table.guard
        point = max(total, SLOPE.frac)
        frac_up, slope_up = point - total, point - SLOPE.frac
        cycles = max(bits, SLOPE.bits + slope_up, table.seg_shift + frac_up + 2)  # frac's top digits are 0
        phase = Signal(range(cycles))
        if self.serial_multipliers:
            slow = ((self.op == VecOp.MUL) | (self.op == VecOp.SGD) | is_table
                    | ((self.act == Act.LEAKY_RELU) & ~self.deriv))
            with m.If(slow & (phase != cycles - 1)):
                m.d.sync += phase.eq(phase + 1)

            def mul(a, b):
                return serial_product(m, a, b, phase, cycles, restart)
        else:
            slow, mul = Const(0), operator.mul

        def lanes_of(shape, name):
            return Signal(data.ArrayLayout(shape, phys), name=name)

        a1, b1 = lanes_of(signed(self.acc_width), "a1"), lanes_of(signed(bits), "b1")
        t2 = lanes_of(signed(t_width), "t2")
        q3, up3, fits3, sign3 = (lanes_of(signed(bits), "q3"), lanes_of(1, "up3"), lanes_of(1, "fits3"),
                                 lanes_of(1, "sign3"))
        x4, sat4 = lanes_of(signed(bits), "x4"), lanes_of(1, "sat4")
        sat5, high5 = lanes_of(1, "sat5"), lanes_of(1, "high5")
        simple5, frac5 = lanes_of(signed(bits), "simple5"), lanes_of(max(table.seg_shift, 1), "frac5")
        leaky5 = lanes_of(1, "leaky5")
        sat6, high6, scaled6 = lanes_of(1, "sat6"), lanes_of(1, "high6"), lanes_of(1, "scaled6")
        simple6 = lanes_of(signed(bits), "simple6")
        valid = Signal(6)  # stages 2..7; the output is o.valid
        last = Signal(6)
        slot = [Signal(range(slices), name=f"slot{k}") for k in range(7)]  # the slice at stage k + 1

        # The slice entering: slice ``slot[0]`` of the beat on ``i``, which transfers with its last.
        seeding = Signal(range(slices))  # the cycles of a seed load after its first
        adv = (~self.o.valid | self.o.ready) & (~slow | (phase == cycles - 1)) & (seeding == 0)
        restart = adv | ~slow  # the serial products start afresh with the next step
        if self.serial_multipliers:
            with m.If(adv):
                m.d.sync += phase.eq(0)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)  # a transfer while the pipeline holds (serial step, seed load)
        beat, entering = self.i.payload, self.i.valid
        enter = adv & entering
        m.d.comb += self.i.ready.eq(adv & (slot[0] == slices - 1))
        if slices > 1:
            with m.If(enter):
                m.d.sync += slot[0].eq(Mux(slot[0] == slices - 1, 0, slot[0] + 1))

        def sliced(lanes_value, lane):
            """Element ``lane`` of the entering slice."""
            return lanes_value[lane] if slices == 1 else \
                Cat(*(lanes_value[k * phys + lane] for k in range(slices))).word_select(
                    slot[0], len(lanes_value[lane])).as_signed()

        rand = self._lfsrs(m, seeding, adv & valid[1], stochastic)

        # Activation tables: one ROM, one read port per lane, enabled as the pipeline advances.
        serial = self.serial_multipliers
        half = 1 << (table.guard - 1)  # the interpolation's rounding, added to the samples
        m.submodules.tables = rom = pwl_samples(self.tables, half) if serial else pwl_memory(self.tables)
        table_id = Cat(self.deriv, table_no)
        low = point - table.guard  # the bits of the rounding base below the sample's
        leaky_base, fill = ((1 << (point - 1)) - 1) >> low, ~is_table  # its low bits are all ones
        slope_deriv = requantize_hdl(self.slope, SLOPE.frac - fmt.frac, bits)

        final = slot[6] == slices - 1
        with m.If(adv):
            m.d.sync += [
                valid.eq(Value.cast(entering) | (valid << 1)),
                last.eq(beat.last | (last << 1)),
                *(a1[lane].eq(sliced(beat.a, lane)) for lane in range(phys)),
                *(b1[lane].eq(sliced(beat.b, lane)) for lane in range(phys)),
                *(slot[k + 1].eq(slot[k]) for k in range(6)),
                self.o.valid.eq(valid[5] & final),
                self.o.payload.last.eq(last[5]),
            ]
        ones = thermometer(m, self.shift, 32)  # the bits of rand a stochastic rounding adds
        for lane in range(phys):
            t = self._combine(a1[lane], b1[lane], mul)   # stage 2
            # Stages 3 and 4: requantize t (the shift and its rounding), then round and saturate.
            biased, u, up, fits = self._requantize(m, t2[lane], rand[lane] & ones, stochastic, t_width)
            x, saturated = self._saturate(q3[lane], up3[lane], fits3[lane], sign3[lane])
            # Stage 5: table read, and the functions that need no table.
            index, frac = pwl_index(table, x4[lane])
            port = rom.read_port()
            if serial:
                sample, rise = self._serial_read(m, port, table_id, index, adv, phase == 0,
                                                 Mux(is_table, port.data, leaky_base))
            else:
                m.d.comb += [port.en.eq(adv), port.addr.eq(Cat(index, table_id))]
                sample = Mux(is_table, port.data.y0 + half, leaky_base)
                rise = port.data.slope
            xv = x4[lane]
            simple = self._simple(xv, one, slope_deriv)
            leaky = (self.act == Act.LEAKY_RELU) & ~self.deriv & (xv < 0)  # scaled in stage 6
            # Stage 6: a table's interpolation or a leaky slope's product (one multiplier serves both).
            # Stage 7: the product rounded (one adder serves both), saturated and chosen; into the
            # slice's lanes of the output beat. The interpolation is ``(sample + half) << low`` plus
            # the product, floored; the leaky product is rounded to nearest-even by adding
            # ``2**(point - 1) - 1`` and its lsb.
            slope_product = mul(Mux(is_table, rise, simple5[lane]),
                                Mux(is_table, frac5[lane] << frac_up, self.slope << slope_up))
            product6 = Signal.like(slope_product, name=f"product6_{lane}")
            base6 = Signal(signed(low + len(sample)), name=f"base6_{lane}")
            rounded = (base6 + product6 + (fill & product6[point])) >> point
            y = Mux(scaled6[lane], _saturate(rounded, bits), simple6[lane])
            with m.If(adv):
                m.d.sync += [t2[lane].eq(t), q3[lane].eq(u[1:]), up3[lane].eq(up), fits3[lane].eq(fits),
                             sign3[lane].eq(biased[-1]), x4[lane].eq(x), sat4[lane].eq(saturated),
                             sat5[lane].eq(sat4[lane]), high5[lane].eq(x4[lane][-1] ^ x4[lane][-2]),
                             frac5[lane].eq(frac), simple5[lane].eq(simple), leaky5[lane].eq(leaky),
                             product6.eq(slope_product), base6.eq(Cat(fill.replicate(low), sample)),
                             scaled6[lane].eq(is_table | leaky5[lane]), simple6[lane].eq(simple5[lane]),
                             sat6[lane].eq(sat5[lane]), high6[lane].eq(high5[lane])]
            for k in range(slices):
                with m.If(adv & (slot[6] == k)):
                    m.d.sync += [self.o.payload.y[k * phys + lane].eq(y),
                                 self.o.payload.saturated[k * phys + lane].eq(sat6[lane]),
                                 self.o.payload.high[k * phys + lane].eq(high6[lane])]
        return m

    def _requantize(self, m, t, bits, stochastic, t_width):
        """Stage 3: add the stochastic bias (``bits`` of rand), shift keeping the first bit shifted
        out, and decide the rounding. Returns the biased t, the shifted value, the rounding and
        whether the result fits."""
        biased = (t + Mux(stochastic, bits, 0))[:t_width]
        u, sticky, fits = shift_right(m, Cat(Const(0, 1), biased), self.shift, self.fmt.bits + 1)
        up = ~stochastic & round_nearest_even(u[0], sticky, u[1])
        return biased, u, up, fits

    def _saturate(self, q, up, fits, sign):
        """Stage 4: round ``q`` up if ``up``, and saturate; returns the result and whether it saturated."""
        hi = self.fmt.max
        x = Mux(fits, Mux(q == hi, q, q + up), Mux(sign, self.fmt.min, hi))
        return x, ~fits | ((q == hi) & up)

    def _combine(self, a, b, mul):
        """Stage 2: combine the operands, ``t = left + right`` or ``left - right`` with one adder."""
        multiply = (self.op == VecOp.MUL) | (self.op == VecOp.SGD)
        negate = (self.op == VecOp.SUB) | (self.op == VecOp.SGD)
        shifted = b << self.b_shift
        product = mul(a, Mux(self.op == VecOp.SGD, self.scale, b))
        left = Mux(self.op == VecOp.SGD, shifted, Mux(self.op == VecOp.MUL, 0, a))
        right = Mux(multiply, product, shifted)
        return left + Mux(negate, ~right, right) + negate

    def _t_width(self) -> int:
        """The width of t, and of t plus the bias of a stochastic rounding (below 2**32)."""
        fmt = self.fmt
        a_range = (-(1 << (self.acc_width - 1)), (1 << (self.acc_width - 1)) - 1)
        shifted_range = (fmt.min << 31, fmt.max << 31)
        products = [p * q for p in a_range for q in (fmt.min, fmt.max, -(1 << 15), (1 << 15) - 1)]
        t_range = [*(p + q for p in a_range for q in shifted_range),
                   *(p - q for p in a_range for q in shifted_range),
                   *products, *(q - p for q in shifted_range for p in products)]
        return _signed_width([*t_range, max(t_range) + (1 << 32) - 1])

    def _lfsrs(self, m, seeding, turn, stochastic) -> list:
        """The LFSRs, one per lane of the beat; the states of the slice in stage 3, one per physical lane.

        Those of a physical lane form a ring that turns as a slice leaves stage 3 (``turn``), so its
        head is the state of the lanes of the slice in stage 3. A seed load turns every ring once, over
        ``slices`` cycles (``seeding`` counts them; the pipeline holds), shifting in the seeds of its
        lanes in order: each the previous one plus ``phys`` times the seed step.
        """
        phys, slices = self.physical_lanes, self.lanes // self.physical_lanes
        rows = numerics.lfsr_matrix()
        states = [Signal(32, init=numerics.lfsr_seed(1, lane), name=f"lfsr{lane}")
                  for lane in range(self.lanes)]
        seed_step = Value.cast(self.seed_load) | (seeding != 0)
        with m.If(self.seed_load):
            m.d.sync += seeding.eq(slices - 1)
        with m.Elif(seeding != 0):
            m.d.sync += seeding.eq(seeding - 1)
        for lane in range(phys):
            ring = states[lane::phys]
            advanced = Signal(32, name=f"lfsr{lane}_next")
            m.d.comb += [advanced[i].eq((ring[0] & rows[i]).xor()) for i in range(32)]
            chain = Signal(32, name=f"lfsr{lane}_seed")  # the raw seed of the next lane of the ring
            seeded = Mux(self.seed_load, (self.seed + lane * 0x9E3779B9)[:32], chain)
            with m.If(seed_step):
                m.d.sync += chain.eq((seeded + phys * 0x9E3779B9)[:32])
            with m.If(seed_step | turn):
                m.d.sync += [*(ring[k].eq(ring[k + 1]) for k in range(len(ring) - 1)),
                             ring[-1].eq(Mux(seed_step, Mux(seeded == 0, 1, seeded),
                                             Mux(stochastic, advanced, ring[0])))]
        return states[:phys]

    def _serial_read(self, m, port, table_id, index, adv, first, base):
        """The segment's sample (read as the pipeline steps, kept in the first phase, or ``base`` for
        no table), then the next one; their difference is the rise, ready from phase 1, before the
        product needs it. Returns the sample and the rise."""
        address = (table_id << (self.segments.bit_length() - 1)) + table_id + index
        here, sample = Signal.like(port.addr), Signal(signed(len(port.data)))
        with m.If(adv):
            m.d.sync += here.eq(address)
        with m.If(first):
            m.d.sync += sample.eq(base)
        m.d.comb += [port.en.eq(adv | first), port.addr.eq(Mux(first, here + 1, address))]
        return sample, port.data - sample

    def _simple(self, x, one, slope_deriv):
        """The functions that need no table, or their derivatives, of ``x``."""
        positive = Mux(x > 0, one, 0)
        return Mux(self.act == Act.RELU, Mux(self.deriv, positive, Mux(x >= 0, x, 0)),
                   Mux(self.act == Act.LEAKY_RELU,
                       Mux(self.deriv, Mux(x > 0, one, slope_deriv), x),
                       Mux(self.deriv, one, x)))
