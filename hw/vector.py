"""The vector unit: elementwise arithmetic, requantisation and activation functions.

The unit post-processes the systolic array's accumulators (``Z = acc + bias``, ``A = g(Z)``) and
runs the elementwise steps of back-propagation (``dZ = dA * g'(Z)``, ``A - Y``, weight updates). Its
arithmetic is :mod:`hw.numerics`; the HDL helpers here (:func:`requantize_hdl`, :func:`pwl_index`,
:func:`pwl_value`, :func:`pwl_memory`) are shared with :mod:`hw.softmax`.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from . import numerics
from .numerics import SLOPE, Act, Fixed, PwlTable

__all__ = ["VecOp", "Rounding", "VectorUnit", "requantize_hdl", "pwl_index", "pwl_value",
           "serial_product", "pwl_memory", "pwl_samples", "TABLE_ACTS"]


class VecOp(enum.Enum, shape=2):
    """How the operands combine: ``a + (b << b_shift)``, ``a - (b << b_shift)``, ``a * b``, or the
    SGD step ``(b << b_shift) - a * scale`` (``b`` a weight, ``a`` its gradient, ``scale`` the
    learning rate)."""

    ADD = 0
    SUB = 1
    MUL = 2
    SGD = 3


class Rounding(enum.Enum, shape=1):
    """Rounding of the requantising shift (both saturate)."""

    NEAREST_EVEN = 0
    STOCHASTIC = 1


TABLE_ACTS = (Act.SIGMOID, Act.TANH, Act.SWISH)
"""Table-driven activations; table ``2 * k + deriv`` of the unit's ROM is ``TABLE_ACTS[k]``."""


def _clamp(value: Value, lo: int, hi: int) -> Value:
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def requantize_hdl(value: Value, shift: Value | int, bits: int, *, stochastic: Value | int = 0,
                   rand: Value | int = 0) -> Value:
    """HDL of :func:`numerics.requantize` and :func:`numerics.requantize_stochastic`.

    ``value >> shift`` rounded to nearest-even, or (when ``stochastic``) with the low ``shift`` bits
    of ``rand`` added before the floor, then saturated to ``signed(bits)``. A constant ``shift`` may
    be negative (a left shift, as in :func:`numerics.shift_round`).
    """
    value = Value.cast(value)
    if isinstance(shift, int):
        if shift < 0:
            value, shift = value << -shift, 0
        ones, half = Const((1 << shift) - 1), Const((1 << shift) >> 1)
    else:
        ones = (Const(1) << shift) - 1
        half = (Const(1) << shift) >> 1
    lsb = (value >> shift)[0]
    nearest = Mux(half == 0, 0, half - 1 + lsb)  # a tie carries only onto an odd floor
    bias = Mux(stochastic, Value.cast(rand) & ones, nearest)
    rounded = (value + bias) >> shift
    return _clamp(rounded, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)[:bits].as_signed()


def pwl_index(table: PwlTable, x: Value) -> tuple[Value, Value]:
    """Segment number and offset in the segment of raw ``x``, clamped as :class:`PwlTable` does."""
    offset = (_clamp(x, table.lo, table.hi - 1) - table.lo).as_unsigned()
    index_bits = (table.segments - 1).bit_length()
    index = offset[table.seg_shift:table.seg_shift + index_bits]
    frac = offset[:table.seg_shift] if table.seg_shift else Const(0)
    return index, frac


def pwl_value(table: PwlTable, y0: Value, slope: Value, frac: Value, mul=operator.mul) -> Value:
    """The interpolation of :meth:`PwlTable.__call__` from a segment's sample, slope and offset;
    ``mul(slope, frac)`` builds the product."""
    total = table.seg_shift + table.guard
    return ((y0 << table.seg_shift) + mul(slope, frac) + (1 << (total - 1))) >> total


def serial_product(m: Module, a: Value, b: Value, phase: Value, cycles: int) -> Value:
    """``a * b`` by Horner's rule: one shift and add per cycle, from the top bit of ``b`` down.

    ``b`` (at most ``cycles`` bits, or ``cycles - 1`` if unsigned) and ``a`` must hold while ``phase``
    counts ``0 .. cycles - 1``; the product is valid, combinationally, in phase ``cycles - 1``. Call it
    outside any ``m.If`` or FSM state: its accumulator must step on every cycle.
    """
    a = Value.cast(a)
    wide = Signal(signed(cycles))
    m.d.comb += wide.eq(b)
    digit = Cat(*(wide[k] for k in reversed(range(cycles)))).bit_select(phase, 1)
    addend = Mux(digit, a, 0)
    acc = Signal(signed(len(a) + cycles))
    with m.If(phase == 0):
        m.d.sync += acc.eq(-addend)  # the sign bit weighs -2**(cycles - 1)
    with m.Elif(phase != cycles - 1):
        m.d.sync += acc.eq((acc << 1) + addend)
    return (acc << 1) + addend


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


def pwl_samples(tables: list[PwlTable]) -> memory.Memory:
    """A ROM of the samples of ``tables``, each table followed by its end point (``segments + 1``
    entries apiece): a segment's rise is the next sample less its own."""
    y = [v for t in tables for v in (*t.y0, t.y0[-1] + t.slope[-1])]
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
    (``LATENCY + S - 1``, with :attr:`LATENCY` = 5) when ``o`` is not stalled. With
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

    ``rand`` is the lane's LFSR state when the beat is accepted; in ``STOCHASTIC`` mode every
    accepted beat then advances each lane's LFSR by :func:`numerics.lfsr_advance`. The LFSR of lane
    ``l`` resets to ``lfsr_seed(1, l)``; a cycle with ``seed_load`` high sets it to
    ``lfsr_seed(seed, l)`` (a slice entering in that cycle still draws and does not advance the old
    state; with ``S > 1``, pulse ``seed_load`` only between beats). The configuration
    inputs must be stable while beats are in the pipeline.

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
        Payload ``y`` (``lanes`` x ``signed(fmt.bits)``), ``last``.
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

    LATENCY = 5

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
        lo, hi = fmt.min, fmt.max
        one = min(fmt.one, hi)
        t_width = max(self.acc_width + 16, self.acc_width, bits + 31) + 1
        stochastic = self.round == Rounding.STOCHASTIC
        table_no = Mux(self.act == Act.TANH, 1, Mux(self.act == Act.SWISH, 2, 0))
        is_table = (self.act == Act.SIGMOID) | (self.act == Act.TANH) | (self.act == Act.SWISH)

        # With serial multipliers, a step of the pipeline that multiplies takes ``cycles`` cycles.
        cycles = max(bits, SLOPE.bits, table.seg_shift + 2)  # the top two digits of frac are zero
        phase = Signal(range(cycles))
        if self.serial_multipliers:
            slow = ((self.op == VecOp.MUL) | (self.op == VecOp.SGD) | is_table
                    | ((self.act == Act.LEAKY_RELU) & ~self.deriv))
            with m.If(slow & (phase != cycles - 1)):
                m.d.sync += phase.eq(phase + 1)

            def mul(a, b):
                return serial_product(m, a, b, phase, cycles)
        else:
            slow, mul = Const(0), operator.mul

        def lanes_of(shape, name):
            return Signal(data.ArrayLayout(shape, phys), name=name)

        a1, b1 = lanes_of(signed(self.acc_width), "a1"), lanes_of(signed(bits), "b1")
        rand1, rand2 = lanes_of(32, "rand1"), lanes_of(32, "rand2")
        t2, x3 = lanes_of(signed(t_width), "t2"), lanes_of(signed(bits), "x3")
        simple4, frac4 = lanes_of(signed(bits), "simple4"), lanes_of(max(table.seg_shift, 1), "frac4")
        valid = Signal(4)  # stages 1..4; stage 5 is o.valid
        last = Signal(4)
        slot = [Signal(range(slices), name=f"slot{k}") for k in range(5)]  # the slice at stage k

        # The slice entering: slice ``slot[0]`` of the beat on ``i``, which transfers with its last.
        adv = (~self.o.valid | self.o.ready) & (~slow | (phase == cycles - 1))
        if self.serial_multipliers:
            with m.If(adv):
                m.d.sync += phase.eq(0)
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)  # a transfer between steps
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

        # LFSRs, one per lane of the beat; a slice draws and advances those of its lanes.
        rows = numerics.lfsr_matrix()
        states = [Signal(32, init=numerics.lfsr_seed(1, lane), name=f"lfsr{lane}") for lane in range(lanes)]
        for lane in range(phys):
            drawn = Cat(*states[lane::phys]).word_select(slot[0], 32) if slices > 1 else states[lane]
            advanced = Signal(32, name=f"lfsr{lane}_next")
            m.d.comb += [advanced[i].eq((drawn & rows[i]).xor()) for i in range(32)]
            for k, state in enumerate(states[lane::phys]):
                with m.If(~self.seed_load & enter & stochastic & (slot[0] == k)):
                    m.d.sync += state.eq(advanced)
            with m.If(adv):
                m.d.sync += rand1[lane].eq(drawn)
        for lane, state in enumerate(states):
            seeded = (self.seed + lane * 0x9E3779B9)[:32]
            with m.If(self.seed_load):
                m.d.sync += state.eq(Mux(seeded == 0, 1, seeded))

        # Activation tables: one ROM, one read port per lane, enabled as the pipeline advances.
        serial = self.serial_multipliers
        m.submodules.tables = rom = pwl_samples(self.tables) if serial else pwl_memory(self.tables)
        table_id = Cat(self.deriv, table_no)
        slope_deriv = requantize_hdl(self.slope, SLOPE.frac - fmt.frac, bits)

        final = slot[4] == slices - 1
        with m.If(adv):
            m.d.sync += [
                valid.eq(Value.cast(entering) | (valid << 1)),
                last.eq(beat.last | (last << 1)),
                *(a1[lane].eq(sliced(beat.a, lane)) for lane in range(phys)),
                *(b1[lane].eq(sliced(beat.b, lane)) for lane in range(phys)),
                rand2.eq(rand1),
                *(slot[k + 1].eq(slot[k]) for k in range(4)),
                self.o.valid.eq(valid[3] & final),
                self.o.payload.last.eq(last[3]),
            ]
        for lane in range(phys):
            # Stage 2: combine the operands.
            a, b = a1[lane], b1[lane]
            shifted = b << self.b_shift
            product = mul(a, Mux(self.op == VecOp.SGD, self.scale, b))
            t = Mux(self.op == VecOp.MUL, product,
                    Mux(self.op == VecOp.SGD, shifted - product,
                        Mux(self.op == VecOp.SUB, a - shifted, a + shifted)))
            # Stage 3: requantise. Stage 4: table read, and the functions that need no table.
            x = requantize_hdl(t2[lane], self.shift, bits, stochastic=stochastic,
                               rand=rand2[lane])
            index, frac = pwl_index(table, x3[lane])
            port = rom.read_port()
            if serial:
                # The segment's sample (read as the pipeline steps, kept in phase 0), then the next
                # one; their difference is the rise, ready from phase 1, before the product needs it.
                address = (table_id << (self.segments.bit_length() - 1)) + table_id + index
                here, sample = Signal.like(port.addr), Signal(signed(len(port.data)))
                with m.If(adv):
                    m.d.sync += here.eq(address)
                with m.If(phase == 0):
                    m.d.sync += sample.eq(port.data)
                m.d.comb += [port.en.eq(adv | (phase == 0)), port.addr.eq(Mux(phase == 0, here + 1, address))]
                rise = port.data - sample
            else:
                m.d.comb += [port.en.eq(adv), port.addr.eq(Cat(index, table_id))]
                sample, rise = port.data.y0, port.data.slope
            xv = x3[lane]
            leaky = requantize_hdl(mul(xv, self.slope), SLOPE.frac, bits)
            positive = Mux(xv > 0, one, 0)
            simple = Mux(self.act == Act.RELU, Mux(self.deriv, positive, Mux(xv >= 0, xv, 0)),
                         Mux(self.act == Act.LEAKY_RELU,
                             Mux(self.deriv, Mux(xv > 0, one, slope_deriv),
                                 Mux(xv >= 0, xv, leaky)),
                             Mux(self.deriv, one, xv)))
            # Stage 5: interpolate, choose, saturate; into the slice's lanes of the output beat.
            interp = _clamp(pwl_value(table, sample, rise, frac4[lane], mul), lo, hi)
            with m.If(adv):
                m.d.sync += [
                    t2[lane].eq(t),
                    x3[lane].eq(x),
                    frac4[lane].eq(frac),
                    simple4[lane].eq(simple),
                ]
            for k in range(slices):
                with m.If(adv & (slot[4] == k)):
                    m.d.sync += self.o.payload.y[k * phys + lane].eq(Mux(is_table, interp, simple4[lane]))
        return m
