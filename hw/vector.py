"""The vector unit: elementwise arithmetic, requantisation and activation functions.

The unit post-processes the systolic array's accumulators (``Z = acc + bias``, ``A = g(Z)``) and
runs the elementwise steps of back-propagation (``dZ = dA * g'(Z)``, ``A - Y``, weight updates). Its
arithmetic is :mod:`hw.numerics`; the HDL helpers here (:func:`requantize_hdl`, :func:`pwl_index`,
:func:`serial_product`, :func:`pwl_memory`) are shared with :mod:`hw.softmax` and
:mod:`hw.reduce`.
"""

from __future__ import annotations

import operator
from types import SimpleNamespace

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


def shift_steps(m: Module, window: Value, sign: Value, shift: Value, steps, keep: int,
                sticky: Value | int = 0, spill: Value | int = 0) -> tuple[Value, Value, Value]:
    """Some steps of :func:`shift_right`: shift ``window`` right by the bits ``steps`` of ``shift``.

    ``steps`` are bit numbers of ``shift``, all above those any later call will take (so a shift runs
    its high bits first, possibly in one pipeline stage, and the rest in the next); ``sign`` is the
    sign of the value being shifted, and ``sticky`` and ``spill`` are those of the earlier steps. Each
    step keeps just the bits that the steps below it can still bring down (``keep`` plus the largest
    of those, less one). Returns the window, whether a set bit was shifted out below it (the sticky
    bit of rounding) and whether one that is not a copy of ``sign`` was dropped above it (a spill).
    """
    window, shift, sticky, spill = (Value.cast(v) for v in (window, shift, sticky, spill))
    for k in sorted(steps, reverse=True):
        step = 1 << k
        moved = Cat(window[step:], sign.replicate(min(step, len(window))))
        sticky = sticky | (shift[k] & window[:step].any())
        after = Signal(len(window), name=f"shifted{k}")
        m.d.comb += after.eq(Mux(shift[k], moved, window))
        kept = keep + step - 1  # the later steps shift by at most step - 1 in all
        if len(after) > kept:
            spill = spill | (after[kept:] != sign.replicate(len(after) - kept))
        window = after[:kept]
    return window, sticky, spill


def shift_window(value: Value, keep: int) -> tuple[Value, Value]:
    """The window :func:`shift_steps` starts from for ``value`` (at least ``keep`` bits), and its sign."""
    value = Value.cast(value)
    sign = value[-1]
    return Cat(value, sign.replicate(max(keep - len(value), 0))), sign


def shift_fits(window: Value, sign: Value, spill: Value, keep: int) -> Value:
    """Whether the value shifted by all of :func:`shift_steps` fits ``signed(keep)``."""
    return ~spill & (window[keep - 1] == sign)


def shift_right(m: Module, value: Value, shift: Value, keep: int) -> tuple[Value, Value, Value]:
    """``value >> shift`` (arithmetic) by a logarithmic shifter that keeps only ``keep`` bits.

    Returns the low ``keep`` bits of the shifted value, whether any bit shifted out below was set
    (the *sticky* bit of rounding) and whether the shifted value fits ``signed(keep)`` (every bit
    above those kept is a copy of their sign). The shifter takes the bits of ``shift`` from the
    largest, so each step keeps just the bits that the smaller steps after it can still bring down
    (:func:`shift_steps` runs some of them, for a shifter split between pipeline stages).
    """
    shift = Value.cast(shift)
    window, sign = shift_window(value, keep)
    window, sticky, spill = shift_steps(m, window, sign, shift, range(len(shift)), keep)
    return window[:keep], sticky, shift_fits(window, sign, spill, keep)


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


def serial_product(m: Module, a: Value, b: Value, cycles: int, first: Value, ready: Value) -> Value:
    """``a * b`` by Horner's rule: one shift and add per cycle, from the top bit of ``b`` down.

    ``a`` and ``b`` (at most ``cycles`` bits, or ``cycles - 1`` if unsigned) must hold over ``cycles``
    cycles, the first of them with ``first`` high and the last with ``ready`` high; the product is then
    valid, combinationally, for as long as ``ready`` stays high (the accumulator holds). The sign digit
    of ``b``, first, is subtracted as ``~a + 1``, its ``+ 1`` in the bit that shifting the accumulator
    leaves free, so that a cycle takes one adder. Call it outside any ``m.If`` or FSM state.
    """
    a = Value.cast(a)
    wide = Signal(signed(cycles))
    m.d.comb += wide.eq(b)
    digits = Signal(cycles - 1)  # the digits of b after the sign digit still to take, the next on top
    acc = Signal(signed(len(a) + cycles))
    digit = Mux(first, wide[-1], digits[-1])
    total = Cat(digit & first, Mux(first, 0, acc)).as_signed() + Mux(digit, Mux(first, ~a, a), 0)
    with m.If(~ready):
        m.d.sync += [acc.eq(total), digits.eq(Mux(first, wide, digits << 1))]
    return total[:len(acc)].as_signed()


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
    (``LATENCY + S - 1``, with :attr:`LATENCY` = 10) when ``o`` is not stalled. With
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
    sets it to ``lfsr_seed(seed, l)`` over the ``S`` cycles after it, in the last ``S - 1`` of which
    the pipeline holds (``i.ready`` is low). The configuration inputs (``op``, ``b_shift``,
    ``shift``, ``round``, ``act``, ``deriv``, ``slope``, ``scale``) must be stable from the cycle a
    beat is offered on ``i`` until its result has left ``o``, and ``seed_load`` low while beats are
    in the pipeline: stage 1 reads ``op`` and ``scale`` as they come, the later stages registered
    copies of the configuration, a cycle late.

    The stages: (1) a slice enters, with the multiplier of ``a`` (``b``, or ``scale`` in ``SGD``);
    (2) the operands of ``t``: ``b << b_shift`` and the product of ``a``, in pieces of one
    multiplier block each (or by :func:`serial_product`); (3) ``t`` and the stochastic bias, by one
    adder; (4) the requantising shift by the high bits of ``shift``, keeping the bits of ``x`` and
    the first bit shifted out, then (5) by the low bits, and the rounding decision; (6) rounding
    and saturation; (7) the table read and the functions without a table; (8) the table's words
    (with serial multipliers, the segment's two samples) and the factors of (9) the
    interpolation's or the leaky slope's product (one multiplier serves both); (10) its rounding
    and saturation, and the choice of ``y``.

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

    LATENCY = 10

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
        slices, stages = lanes // phys, self.LATENCY
        table = self.tables[0]
        one = min(fmt.one, fmt.max)
        cfg = self._settle(m)
        stochastic, is_table = cfg.stochastic, cfg.is_table
        t_width = self._t_width()

        # With serial multipliers, a step of the pipeline that multiplies takes ``cycles`` cycles.
        # Stage 10 rounds an interpolation and a leaky product by the same ``point`` bits: a table's
        # rise is multiplied by ``frac << frac_up``, a leaky ReLU's input by ``slope << slope_up``.
        total = table.seg_shift + table.guard
        point = max(total, SLOPE.frac)
        frac_up, slope_up = point - total, point - SLOPE.frac
        multiplier_width = max(SLOPE.bits + slope_up, table.seg_shift + frac_up + 1)
        cycles = max(bits, multiplier_width, table.seg_shift + frac_up + 2)  # frac's top digits are 0
        phase = Signal(range(cycles))
        ripe = Signal()  # phase == cycles - 1: the products of a step are ready
        first = Signal(init=1)  # phase == 0
        if self.serial_multipliers:
            slow = cfg.slow

            def mul(a, b):
                return serial_product(m, a, b, cycles, first, ripe)
        else:
            slow, mul = Const(0), operator.mul

        def lanes_of(shape, name):
            return Signal(data.ArrayLayout(shape, phys), name=name, reset_less=True)

        a1, b1 = lanes_of(signed(self.acc_width), "a1"), lanes_of(signed(bits), "b1")
        m1 = lanes_of(signed(max(bits, self.scale.shape().width)), "m1")  # the multiplier of a
        valid = Signal(stages - 1)  # stages 2..LATENCY; the output is o.valid
        last = Signal(stages - 1)
        slot = [Signal(range(slices), name=f"slot{k}") for k in range(stages)]  # the slice at stage k + 1

        # The pipeline advances (adv) when o can take a beat and neither a serial step nor a seed load
        # holds it: ``free`` says the latter, from a register. A seed load (registered: ``seed_load``)
        # turns the LFSR rings over ``slices`` cycles, the pipeline holding in all but the first (which
        # ``seeding`` counts down).
        seed, seed_load = Signal(32, reset_less=True), Signal()
        m.d.sync += [seed.eq(self.seed), seed_load.eq(self.seed_load)]
        seeding = Signal(range(slices))
        seeding_next = Mux(seed_load, slices - 1, Mux(seeding != 0, seeding - 1, 0))
        free = Signal(init=1)  # (~slow | ripe) & (seeding == 0)
        adv = (~self.o.valid | self.o.ready) & free
        m.d.sync += seeding.eq(seeding_next)
        if self.serial_multipliers:
            ripe_next = Mux(adv, 0, Mux(slow & ~ripe, phase == cycles - 2, ripe))  # cycles > 1
            m.d.sync += [ripe.eq(ripe_next), free.eq((~cfg.slow_next | ripe_next) & (seeding_next == 0))]
            with m.If(adv):
                m.d.sync += [phase.eq(0), first.eq(1)]
            with m.Elif(slow & ~ripe):
                m.d.sync += [phase.eq(phase + 1), first.eq(0)]
        else:
            m.d.sync += free.eq(seeding_next == 0)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)  # a transfer while the pipeline holds (serial step, seed load)
        # The slice entering: slice ``slot[0]`` of the beat on ``i``, which transfers with its last.
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

        def reg(value, name):
            """``value`` in a register that takes it as the pipeline advances (no reset: ``valid``
            says which registers hold a beat)."""
            register = Signal.like(value, name=name, reset_less=True)
            with m.If(adv):
                m.d.sync += register.eq(value)
            return register

        rand = self._lfsrs(m, seed, seed_load, seeding, adv & valid[1], stochastic)

        # Activation tables: one ROM, one read port per lane, enabled as the pipeline advances.
        serial = self.serial_multipliers
        half = 1 << (table.guard - 1)  # the interpolation's rounding, added to the samples
        m.submodules.tables = rom = pwl_samples(self.tables, half) if serial else pwl_memory(self.tables)
        table_id = Cat(cfg.deriv, cfg.table_no)
        low = point - table.guard  # the bits of the rounding base below the sample's
        leaky_base = half  # the leaky product's rounding base, 2**(point - 1), is half << low
        slope_deriv = requantize_hdl(cfg.slope, SLOPE.frac - fmt.frac, bits)

        final = slot[stages - 1] == slices - 1
        with m.If(adv):
            m.d.sync += [
                valid.eq(Value.cast(entering) | (valid << 1)),
                last.eq(beat.last | (last << 1)),
                *(a1[lane].eq(sliced(beat.a, lane)) for lane in range(phys)),
                *(b1[lane].eq(sliced(beat.b, lane)) for lane in range(phys)),
                *(m1[lane].eq(Mux(self.op == VecOp.SGD, self.scale, sliced(beat.b, lane)))
                  for lane in range(phys)),
                *(slot[k + 1].eq(slot[k]) for k in range(stages - 1)),
                self.o.valid.eq(valid[stages - 2] & final),
                self.o.payload.last.eq(last[stages - 2]),
            ]
        for lane in range(phys):
            # Stage 2: the operands of t, with the products of a (none of them added up yet).
            product = self._product(a1[lane], m1[lane], mul)
            left, terms, carries = self._terms(cfg, a1[lane], b1[lane], product)
            left2, carries2 = reg(left, f"left2_{lane}"), reg(carries, f"carries2_{lane}")
            terms2 = [(offset, reg(term, f"term2_{lane}_{k}")) for k, (offset, term) in enumerate(terms)]
            # Stage 3: t plus the stochastic bias, in one adder.
            biased = self._sum(left2, terms2, carries2, rand[lane] & cfg.bias, t_width)
            biased3 = reg(biased, f"biased3_{lane}")
            # Stages 4 and 5: the shift (its high bits, then the low ones and the rounding decision).
            window4, sticky4, spill4, sign4 = (reg(v, f"{name}4_{lane}") for v, name in zip(
                self._shift_high(m, cfg, biased3), ("window", "sticky", "spill", "sign"), strict=True))
            q5, up5, fits5 = (reg(v, f"{name}5_{lane}") for v, name in zip(
                self._shift_low(m, cfg, window4, sticky4, spill4, sign4), ("q", "up", "fits"),
                strict=True))
            sign5 = reg(sign4, f"sign5_{lane}")
            # Stage 6: rounding and saturation.
            x, saturated = self._saturate(q5, up5, fits5, sign5)
            x6, sat6 = reg(x, f"x6_{lane}"), reg(saturated, f"sat6_{lane}")
            # Stage 7: the table read (its address), and the functions that need no table.
            index, frac = pwl_index(table, x6)
            port = rom.read_port()
            simple7 = reg(self._simple(cfg, x6, one, slope_deriv), f"simple7_{lane}")
            leaky7 = reg(cfg.leaky & (x6 < 0), f"leaky7_{lane}")
            frac7, sat7 = reg(frac, f"frac7_{lane}"), reg(sat6, f"sat7_{lane}")
            high7 = reg(x6[-1] ^ x6[-2], f"high7_{lane}")
            # Stage 8: the table's words (with serial multipliers: the segment's two samples), and the
            # factors of stage 9's product: the segment's rise and x's offset in it, or x and the slope.
            if serial:
                sample, rise = self._serial_read(m, port, table_id, index, adv, first,
                                                 Mux(is_table, port.data, leaky_base))
            else:
                m.d.comb += [port.en.eq(adv), port.addr.eq(Cat(index, table_id))]
                sample, rise = port.data.y0, port.data.slope
            sample8 = reg(sample, f"sample8_{lane}")
            factor8 = reg(Mux(is_table, rise, simple7), f"factor8_{lane}")
            # The multiplier is no wider than its values (16 bits), so that the product fits an iCE40
            # multiplier block's 32-bit output: yosys (0.70) registers the bits of a wider product
            # above 32 a cycle late.
            multiplier = Mux(is_table, frac7 << frac_up, cfg.slope << slope_up)
            multiplier8 = reg(multiplier[:multiplier_width].as_signed(), f"multiplier8_{lane}")
            simple8, leaky8 = reg(simple7, f"simple8_{lane}"), reg(leaky7, f"leaky8_{lane}")
            sat8, high8 = reg(sat7, f"sat8_{lane}"), reg(high7, f"high8_{lane}")
            # Stage 9: a table's interpolation or a leaky slope's product (one multiplier serves both).
            # Stage 10: the product rounded (one adder serves both), saturated and chosen; into the
            # slice's lanes of the output beat. The interpolation is ``(sample + half) << low`` plus
            # the product, floored; the leaky product is rounded to nearest-even: ``2**(point - 1)``
            # added, floored, and the lsb cleared on a tie (where adding ``2**(point - 1) - 1`` and
            # the product's lsb would have kept it even).
            sample = sample8 if serial else Mux(is_table, sample8 + half, leaky_base)
            product9 = reg(mul(factor8, multiplier8), f"product9_{lane}")
            base9, nearest9 = reg(sample << low, f"base9_{lane}"), reg(~is_table, f"nearest9_{lane}")
            scaled9, simple9 = reg(is_table | leaky8, f"scaled9_{lane}"), reg(simple8, f"simple9_{lane}")
            sat9, high9 = reg(sat8, f"sat9_{lane}"), reg(high8, f"high9_{lane}")
            floor = (base9 + product9) >> point
            tie = nearest9 & (product9[:point] == 1 << (point - 1))
            y = Mux(scaled9, _saturate(Cat(floor[0] & ~tie, floor[1:]).as_signed(), bits), simple9)
            for k in range(slices):
                with m.If(adv & (slot[stages - 1] == k)):
                    m.d.sync += [self.o.payload.y[k * phys + lane].eq(y),
                                 self.o.payload.saturated[k * phys + lane].eq(sat9),
                                 self.o.payload.high[k * phys + lane].eq(high9)]
        return m

    def _settle(self, m) -> SimpleNamespace:
        """The configuration as stages 2 on read it: in registers, a cycle late (it holds from the cycle
        a beat is offered until its result leaves), with what is decoded from it, so that no path
        starts at the configuration inputs but stage 1's (which reads ``op`` and ``scale``)."""
        def settled(value, name):
            register = Signal.like(value, name=f"{name}_q", reset_less=True)
            m.d.sync += register.eq(value)
            return register

        op, act, deriv = self.op, self.act, self.deriv
        is_table = (act == Act.SIGMOID) | (act == Act.TANH) | (act == Act.SWISH)
        leaky = (act == Act.LEAKY_RELU) & ~deriv
        multiply = (op == VecOp.MUL) | (op == VecOp.SGD)
        stochastic = self.round == Rounding.STOCHASTIC
        slow = multiply | is_table | leaky
        return SimpleNamespace(
            op=settled(op, "op"), b_shift=settled(self.b_shift, "b_shift"),
            shift=settled(self.shift, "shift"), multiply=settled(multiply, "multiply"),
            negate=settled((op == VecOp.SUB) | (op == VecOp.SGD), "negate"),
            stochastic=settled(stochastic, "stochastic"),
            bias=settled(Mux(stochastic, thermometer(m, self.shift, 32), 0), "bias"),  # rand's bits added
            act=settled(act, "act"), deriv=settled(deriv, "deriv"), slope=settled(self.slope, "slope"),
            is_table=settled(is_table, "is_table"), leaky=settled(leaky, "leaky"),
            table_no=settled(Mux(act == Act.TANH, 1, Mux(act == Act.SWISH, 2, 0)), "table_no"),
            slow=settled(slow, "slow"), slow_next=slow)  # a step takes cycles with serial multipliers

    _SHIFT_SPLIT = 4
    """Stage 4 shifts by the bits of ``shift`` from this one up, stage 5 by those below."""

    def _product(self, a, multiplier, mul):
        """Stage 2's product ``a * multiplier`` as ``(offset, value)`` pieces that add up to it, each
        shifted by its offset: one with serial multipliers, else one per piece of ``a`` (17 bits
        unsigned, the top one up to 18 signed), so that each maps to a multiplier block and nothing is
        added after one in this stage."""
        if self.serial_multipliers:
            return [(0, mul(a, multiplier))]
        pieces, offset = [], 0
        while len(a) - offset > 18:
            pieces.append((offset, a[offset:offset + 17] * multiplier))
            offset += 17
        return [*pieces, (offset, a[offset:].as_signed() * multiplier)]

    def _terms(self, cfg, a, b, product):
        """Stage 2: ``t = left + right`` or ``left - right`` as ``left``, terms ``(offset, value)`` and
        ``carries`` that add up (each term shifted by its offset) to ``t``.

        ``right`` is ``b << b_shift`` or ``a`` times the multiplier, ``product`` (:meth:`_product`'s
        pieces). A negated term is complemented, and its ``+ 1`` (``-x`` is ``~x + 1``) is in
        ``carries``.
        """
        multiply, negate = cfg.multiply, cfg.negate
        shifted = b << cfg.b_shift
        left = Mux(cfg.op == VecOp.SGD, shifted, Mux(cfg.op == VecOp.MUL, 0, a))
        terms = []
        for k, (offset, piece) in enumerate(product):
            if k == 0:
                right = Mux(multiply, piece, shifted)
                terms.append((offset, Mux(negate, ~right, right)))
            else:
                terms.append((offset, Mux(multiply, Mux(negate, ~piece, piece), 0)))
        carries = Mux(negate, Mux(multiply, sum(1 << offset for offset, _ in terms), 1), 0)
        return left, terms, carries

    def _sum(self, left, terms, carries, bias, t_width):
        """Stage 3: ``t`` plus the stochastic ``bias``, from stage 2's addends."""
        total = left + carries + bias
        for offset, term in terms:
            total = total + (term << offset)
        return total[:t_width]

    def _shift_high(self, m, cfg, biased):
        """Stage 4: the steps of the requantising shift by the high bits of ``shift``, keeping the
        first bit shifted out below ``x``. Returns the window, the sticky and spill bits, the sign."""
        keep = self.fmt.bits + 1
        window, sign = shift_window(Cat(Const(0, 1), biased), keep)
        steps = range(self._SHIFT_SPLIT, len(cfg.shift))
        return (*shift_steps(m, window, sign, cfg.shift, steps, keep), sign)

    def _shift_low(self, m, cfg, window, sticky, spill, sign):
        """Stage 5: the rest of the shift, and the rounding decision. Returns the shifted value, whether
        nearest-even rounding raises it, and whether it fits."""
        keep = self.fmt.bits + 1
        window, sticky, spill = shift_steps(m, window, sign, cfg.shift, range(self._SHIFT_SPLIT), keep,
                                            sticky, spill)
        u = window[:keep]
        up = ~cfg.stochastic & round_nearest_even(u[0], sticky, u[1])
        return u[1:].as_signed(), up, shift_fits(window, sign, spill, keep)

    def _saturate(self, q, up, fits, sign):
        """Stage 6: round ``q`` up if ``up``, and saturate; returns the result and whether it saturated."""
        hi = self.fmt.max
        x = Mux(fits, Mux(q == hi, q, q + up), Mux(sign, self.fmt.min, hi))
        return x[:self.fmt.bits].as_signed(), ~fits | ((q == hi) & up)

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

    def _lfsrs(self, m, seed, seed_load, seeding, turn, stochastic) -> list:
        """The LFSRs, one per lane of the beat; the states of the slice in stage 3, one per physical lane.

        Those of a physical lane form a ring that turns as a slice leaves stage 3 (``turn``), so its
        head is the state of the lanes of the slice in stage 3. A seed load (``seed_load``, with
        ``seed``, then ``seeding`` counting down the cycles after it; the pipeline holds) turns every
        ring once, over ``slices`` cycles, shifting in the seeds of its lanes in order: each the
        previous one plus ``phys`` times the seed step.
        """
        phys = self.physical_lanes
        seed_step = seed_load | (seeding != 0)
        rows = numerics.lfsr_matrix()
        states = [Signal(32, init=numerics.lfsr_seed(1, lane), name=f"lfsr{lane}")
                  for lane in range(self.lanes)]
        for lane in range(phys):
            ring = states[lane::phys]
            advanced = Signal(32, name=f"lfsr{lane}_next")
            m.d.comb += [advanced[i].eq((ring[0] & rows[i]).xor()) for i in range(32)]
            chain = Signal(32, name=f"lfsr{lane}_seed")  # the raw seed of the next lane of the ring
            seeded = Mux(seed_load, (seed + lane * 0x9E3779B9)[:32], chain)
            with m.If(seed_step):
                m.d.sync += chain.eq((seeded + phys * 0x9E3779B9)[:32])
            with m.If(seed_step | turn):
                m.d.sync += [*(ring[k].eq(ring[k + 1]) for k in range(len(ring) - 1)),
                             ring[-1].eq(Mux(seed_step, Mux(seeded == 0, 1, seeded),
                                             Mux(stochastic, advanced, ring[0])))]
        return states[:phys]

    def _serial_read(self, m, port, table_id, index, adv, first, base):
        """The segment's sample (read as the pipeline steps, kept in the first phase, or ``base`` for
        no table), then the next one; their difference is the rise, ready from phase 1 (a slope of the
        tables, so it is kept in their width). Returns the sample and the rise."""
        address = (table_id << (self.segments.bit_length() - 1)) + table_id + index
        here, sample = Signal.like(port.addr), Signal(signed(len(port.data)))
        with m.If(adv):
            m.d.sync += here.eq(address)
        with m.If(first):
            m.d.sync += sample.eq(base)
        m.d.comb += [port.en.eq(adv | first), port.addr.eq(Mux(first, here + 1, address))]
        rise_width = _signed_width([v for t in self.tables for v in t.slope])
        return sample, (port.data - sample)[:rise_width].as_signed()

    def _simple(self, cfg, x, one, slope_deriv):
        """The functions that need no table, or their derivatives, of ``x``."""
        positive = Mux(x > 0, one, 0)
        return Mux(cfg.act == Act.RELU, Mux(cfg.deriv, positive, Mux(x >= 0, x, 0)),
                   Mux(cfg.act == Act.LEAKY_RELU,
                       Mux(cfg.deriv, Mux(x > 0, one, slope_deriv), x),
                       Mux(cfg.deriv, one, x)))
