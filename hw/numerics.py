"""The arithmetic of Systolic, defined once.

Everything that decides a bit of a result lives here: fixed-point formats, rounding and saturation,
the stochastic-rounding LFSR, the accumulator width a GEMM needs, and the activation functions with
their derivatives. The golden model (``sim/model.py``) evaluates these functions on NumPy integer
arrays; the HDL generators (``hw/*.py``) build their tables and shifts from the same functions, so the
two cannot drift apart. This module imports NumPy only.

All integer arrays are ``int64``; a value ``q`` in format ``Fixed(bits, frac)`` stands for the real
number ``q / 2**frac``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "Fixed", "DATA", "ACT", "SLOPE", "EXP", "saturate", "shift_round", "requantize",
    "shift_stochastic", "requantize_stochastic", "saturates", "uses_top_bit", "LFSR_WIDTH", "LFSR_TAPS",
    "LFSR_STEPS",
    "lfsr_seed", "lfsr_step", "lfsr_advance", "lfsr_sequence", "lfsr_matrix", "product_bits", "acc_bits",
    "Act", "PwlTable", "pwl_table", "activation", "activation_float", "softmax",
    "softmax_float", "SOFTMAX_RECIP_BITS", "TABLE_RANGE", "activation_table", "exp_table",
    "ln_table", "cross_entropy", "argmax", "MANTISSA",
]


# -- formats ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fixed:
    """Signed two's-complement fixed point: ``bits`` in all, ``frac`` of them after the point."""

    bits: int = 16
    frac: int = 8

    def __post_init__(self):
        if not 2 <= self.bits <= 62:
            raise ValueError(f"Fixed.bits must be in 2..62, not {self.bits}")
        if not 0 <= self.frac < 64:
            raise ValueError(f"Fixed.frac must be in 0..63, not {self.frac}")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def one(self) -> int:
        """The raw value of 1.0 (which may itself be out of range)."""
        return 1 << self.frac

    def quantize(self, x) -> np.ndarray:
        """Nearest representable raw values (ties to even), saturated; NaN is an error."""
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError("cannot quantize NaN: clean the data first")
        with np.errstate(over="ignore"):  # huge inputs overflow to inf, which saturates
            q = np.rint(np.clip(x * self.one, self.min, self.max))
        return q.astype(np.int64)

    def dequantize(self, q) -> np.ndarray:
        return np.asarray(q, dtype=np.float64) / self.one


DATA = Fixed(16, 8)
"""Default format of operands in the buffers (the compiler may choose another ``frac`` per tensor)."""

ACT = Fixed(16, 12)
"""Input and output format of the table-driven activation functions: range [-8, 8), LSB 2**-12."""

SLOPE = Fixed(16, 14)
"""Format of the leaky-ReLU / PReLU slope: range [-2, 2)."""

EXP = Fixed(17, 15)
"""Format of the softmax numerators ``exp(z - max z)``, which lie in (0, 1]."""


# -- rounding and saturation -------------------------------------------------------------------------

def saturate(x, bits: int) -> np.ndarray:
    """Clamp to the signed range of ``bits`` bits."""
    return np.clip(np.asarray(x, dtype=np.int64), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def shift_round(x, shift: int) -> np.ndarray:
    """``x / 2**shift`` rounded to the nearest integer, ties to even (``shift < 0`` shifts left)."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << -shift
    floor = x >> shift
    rem = x & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    up = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    return floor + up


def requantize(x, shift: int, bits: int = 16) -> np.ndarray:
    """Arithmetic shift right with round-to-nearest-even, then saturation to ``bits``."""
    return saturate(shift_round(x, shift), bits)


def shift_stochastic(x, shift: int, rand) -> np.ndarray:
    """``floor((x + r) / 2**shift)`` with ``r`` the low ``shift`` bits of ``rand``: unbiased rounding."""
    x = np.asarray(x, dtype=np.int64)
    if shift <= 0:
        return x << -shift
    r = np.asarray(rand, dtype=np.int64) & ((1 << shift) - 1)
    return (x + r) >> shift


def requantize_stochastic(x, shift: int, rand, bits: int = 16) -> np.ndarray:
    return saturate(shift_stochastic(x, shift, rand), bits)


def saturates(x, shift: int, bits: int = 16, rand=None) -> np.ndarray:
    """Where requantising ``x`` (stochastically if ``rand`` is given) saturates: the floor of the
    shift is below the range of ``bits`` or its rounding above it."""
    if rand is None:
        rounded = shift_round(x, shift)
        floor = np.asarray(x, dtype=np.int64) >> shift if shift > 0 else rounded
    else:
        floor = rounded = shift_stochastic(x, shift, rand)
    return (floor < -(1 << (bits - 1))) | (rounded > (1 << (bits - 1)) - 1)


def uses_top_bit(x, bits: int = 16) -> np.ndarray:
    """Where ``x`` needs all of its ``bits``: it would saturate with one integer bit fewer."""
    x = np.asarray(x, dtype=np.int64)
    return (x >= 1 << (bits - 2)) | (x < -(1 << (bits - 2)))


# -- the stochastic-rounding LFSR ----------------------------------------------------------------------

LFSR_WIDTH = 32
LFSR_TAPS = 0x80200003
"""Galois toggle mask of x^32 + x^22 + x^2 + x + 1, a primitive polynomial (period 2**32 - 1)."""

LFSR_STEPS = 16
"""Shifts per rounded element, so each element draws 16 fresh bits from its lane's LFSR."""


def lfsr_seed(seed: int, lane: int) -> int:
    """The start state of ``lane``'s LFSR for a device seed; never zero (zero is a fixed point)."""
    state = (seed + lane * 0x9E3779B9) & 0xFFFFFFFF
    return state or 1


def lfsr_step(state):
    """One right shift of the Galois LFSR; works on ints and on NumPy arrays of states."""
    lsb = state & 1
    return (state >> 1) ^ (lsb * LFSR_TAPS)


@cache
def _advance_tables() -> np.ndarray:
    """``t[j, b]``: byte ``b`` of the state at bit ``8·j`` advanced :data:`LFSR_STEPS` steps (the
    advance is linear over GF(2), so a state's advance is the XOR of its four bytes')."""
    tables = np.zeros((4, 256), dtype=np.int64)
    for j in range(4):
        for b in range(256):
            state = b << (8 * j)
            for _ in range(LFSR_STEPS):
                state = lfsr_step(state)
            tables[j, b] = state
    return tables


def _apply(tables: np.ndarray, state):
    """The linear map whose byte tables are ``tables`` (as :func:`_advance_tables`) applied to ``state``."""
    t = tables
    return t[0][state & 255] ^ t[1][(state >> 8) & 255] ^ t[2][(state >> 16) & 255] ^ t[3][state >> 24 & 255]


def lfsr_advance(state):
    """The state after :data:`LFSR_STEPS` steps (:func:`lfsr_step`): what the hardware computes in one
    cycle. Works on ints and on NumPy arrays of states."""
    out = _apply(_advance_tables(), state)
    return int(out) if isinstance(state, int) else out


@cache
def _jump_tables(j: int) -> np.ndarray:
    """Byte tables of :func:`lfsr_advance` applied ``2**j`` times."""
    if j == 0:
        return _advance_tables()
    half = _jump_tables(j - 1)
    return np.array([[_apply(half, _apply(half, b << (8 * i))) for b in range(256)] for i in range(4)],
                    dtype=np.int64)


def lfsr_sequence(state, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` successive states from ``state`` on (an array of lane states) and the state after them:
    what ``n`` calls of :func:`lfsr_advance` give, computed in ``log2(n)`` vector steps."""
    state = np.asarray(state, dtype=np.int64)
    seq = state[None, :]
    j = 0
    while len(seq) < n:
        seq = np.concatenate([seq, _apply(_jump_tables(j), seq)])
        j += 1
    after = _apply(_jump_tables(j), state) if len(seq) == n else seq[n]
    return seq[:n], after


@cache
def lfsr_matrix(steps: int = LFSR_STEPS) -> tuple[int, ...]:
    """Row ``i`` is the mask of current-state bits whose XOR is bit ``i`` after ``steps`` steps.

    The advance is linear over GF(2), so the hardware builds it as one XOR per output bit.
    """
    columns = []
    for j in range(LFSR_WIDTH):
        s = 1 << j
        for _ in range(steps):
            s = lfsr_step(s)
        columns.append(s)
    return tuple(sum(((columns[j] >> i) & 1) << j for j in range(LFSR_WIDTH))
                 for i in range(LFSR_WIDTH))


# -- accumulator width ---------------------------------------------------------------------------------

def product_bits(a_bits: int, b_bits: int) -> int:
    """Bits of the exact signed product of an ``a_bits`` and a ``b_bits`` operand."""
    return a_bits + b_bits


def acc_bits(a_bits: int, b_bits: int, k: int) -> int:
    """Smallest signed width that holds any sum of ``k`` products without overflow."""
    if k < 1:
        raise ValueError(f"a GEMM needs depth k >= 1, not {k}")
    lo_a, hi_a = -(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1
    lo_b, hi_b = -(1 << (b_bits - 1)), (1 << (b_bits - 1)) - 1
    products = [lo_a * lo_b, lo_a * hi_b, hi_a * lo_b, hi_a * hi_b]
    hi, lo = k * max(products), k * min(products)
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


# -- activation functions --------------------------------------------------------------------------

class Act(enum.IntEnum):
    """Activation functions of the vector unit; the value is the hardware encoding."""

    IDENTITY = 0
    RELU = 1
    LEAKY_RELU = 2
    SIGMOID = 3
    TANH = 4
    SWISH = 5


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


_FLOAT = {
    (Act.SIGMOID, False): _sigmoid,
    (Act.SIGMOID, True): lambda x: _sigmoid(x) * (1.0 - _sigmoid(x)),
    (Act.TANH, False): np.tanh,
    (Act.TANH, True): lambda x: 1.0 - np.tanh(x) ** 2,
    (Act.SWISH, False): lambda x: x * _sigmoid(x),
    (Act.SWISH, True): lambda x: _sigmoid(x) * (1.0 + x * (1.0 - _sigmoid(x))),
}


def activation_float(act: Act, deriv: bool, x, slope: float = 0.0) -> np.ndarray:
    """The float64 function that :func:`activation` approximates (the error reference)."""
    x = np.asarray(x, dtype=np.float64)
    if act == Act.IDENTITY:
        return np.ones_like(x) if deriv else x
    if act in (Act.RELU, Act.LEAKY_RELU):
        neg = slope if act == Act.LEAKY_RELU else 0.0
        return np.where(x > 0, 1.0, neg) if deriv else np.where(x >= 0, x, neg * x)
    return _FLOAT[act, deriv](x)


@dataclass(frozen=True)
class PwlTable:
    """Piecewise-linear interpolation between samples of a function on uniform segments.

    Inputs are clamped to ``[lo, lo + segments << seg_shift)``; segment ``i = (x - lo) >> seg_shift``
    starts at sample ``y0[i]`` and rises by ``slope[i]`` over the segment. Samples carry ``guard``
    extra fractional bits. Evaluation is pure integer arithmetic, ``(y0 << seg_shift) + slope * f``
    rounded (half up) by ``seg_shift + guard`` bits, which the hardware reproduces exactly.
    """

    lo: int
    seg_shift: int
    guard: int
    y0: tuple[int, ...]
    slope: tuple[int, ...]

    @property
    def segments(self) -> int:
        return len(self.y0)

    @property
    def hi(self) -> int:
        """First raw input past the table."""
        return self.lo + (self.segments << self.seg_shift)

    def __call__(self, x) -> np.ndarray:
        x = np.clip(np.asarray(x, dtype=np.int64), self.lo, self.hi - 1) - self.lo
        i = x >> self.seg_shift
        f = x & ((1 << self.seg_shift) - 1)
        y0 = np.asarray(self.y0, dtype=np.int64)[i]
        slope = np.asarray(self.slope, dtype=np.int64)[i]
        total = self.seg_shift + self.guard
        return ((y0 << self.seg_shift) + slope * f + (1 << (total - 1))) >> total


def pwl_table(fn, lo: float, hi: float, fmt_in: Fixed, fmt_out: Fixed,
              segments: int = 256, guard: int = 4) -> PwlTable:
    """Sample ``fn`` on ``segments`` uniform segments of ``[lo, hi)`` (clipped to ``fmt_in``)."""
    if segments & (segments - 1):
        raise ValueError(f"segments must be a power of two, not {segments}")
    lo_raw = max(math.floor(lo * fmt_in.one), fmt_in.min)
    hi_raw = min(math.ceil(hi * fmt_in.one), fmt_in.max + 1)
    seg_shift = max(0, math.ceil(math.log2((hi_raw - lo_raw) / segments)))
    x = (lo_raw + (np.arange(segments + 1) << seg_shift)) / fmt_in.one
    y = np.rint(fn(x) * (1 << (fmt_out.frac + guard))).astype(np.int64)
    return PwlTable(lo_raw, seg_shift, guard, tuple(int(v) for v in y[:-1]),
                    tuple(int(v) for v in np.diff(y)))


TABLE_RANGE = {Act.SIGMOID: (-8.0, 8.0), Act.TANH: (-8.0, 8.0), Act.SWISH: (-8.0, 8.0)}
"""Input interval of each table-driven function; outside it the function is flat to an LSB."""


@cache
def activation_table(act: Act, deriv: bool, fmt: Fixed = ACT, segments: int = 256) -> PwlTable:
    """The table of a table-driven activation (sigmoid, tanh, swish) or its derivative."""
    lo, hi = TABLE_RANGE[act]
    return pwl_table(_FLOAT[act, deriv], lo, hi, fmt, fmt, segments)


def activation(act: Act, deriv: bool, x, slope: int = 0, fmt: Fixed = ACT,
               segments: int = 256) -> np.ndarray:
    """``g(x)`` or ``g'(x)`` on raw values ``x`` in ``fmt``; ``slope`` is raw in :data:`SLOPE`.

    Identity, ReLU and leaky ReLU are exact (up to rounding of ``slope * x``, nearest-even);
    sigmoid, tanh and swish are :class:`PwlTable` interpolations. Results saturate to ``fmt``.
    """
    x = np.asarray(x, dtype=np.int64)
    if act == Act.IDENTITY:
        y = np.full_like(x, fmt.one) if deriv else x
    elif act == Act.RELU:
        y = np.where(x > 0, fmt.one, 0) if deriv else np.maximum(x, 0)
    elif act == Act.LEAKY_RELU:
        if deriv:
            y = np.where(x > 0, fmt.one, shift_round(np.int64(slope), SLOPE.frac - fmt.frac))
        else:
            y = np.where(x >= 0, x, shift_round(x * slope, SLOPE.frac))
    else:
        y = activation_table(Act(act), bool(deriv), fmt, segments)(x)
    return saturate(y, fmt.bits)


# -- softmax -----------------------------------------------------------------------------------------

SOFTMAX_RECIP_BITS = 16
"""Fractional bits of the reciprocal ``1 / sum(exp)``, computed by exact integer division."""


@cache
def exp_table(fmt: Fixed = ACT, segments: int = 512) -> PwlTable:
    """``exp(d)`` for ``d = z - max(z) <= 0`` with ``fmt.frac`` input bits, out in :data:`EXP`.

    The table spans ``[-16, 0]`` shifted up by one segment, so ``d = 0`` is a sample (exactly 1.0)
    and everything below ``-16`` reads ``exp(-16)``, which rounds to zero.
    """
    step = 16.0 / segments
    return pwl_table(np.exp, -16.0 + step, step, Fixed(fmt.bits + 1, fmt.frac), EXP, segments)


def softmax(z, fmt: Fixed = ACT, shift: int = 0) -> np.ndarray:
    """Softmax down each column of the raw matrix ``z`` (rows are classes, columns samples).

    ``z`` has ``fmt.frac - shift`` fraction bits (logits wider than ``fmt``); ``d = (z - max) << shift``
    is in ``fmt``, and ``e = exp_table(d)`` in :data:`EXP` (``d`` below the table reads its first
    sample); ``r = floor(2**(EXP.frac + R) / sum(e))`` with ``R =`` :data:`SOFTMAX_RECIP_BITS`; the
    result ``e * r`` is rounded to nearest-even into ``fmt``.
    """
    z = np.asarray(z, dtype=np.int64)
    d = (z - z.max(axis=0, keepdims=True)) << shift
    e = exp_table(fmt)(d)
    r = (1 << (EXP.frac + SOFTMAX_RECIP_BITS)) // e.sum(axis=0, keepdims=True)
    return requantize(e * r, EXP.frac + SOFTMAX_RECIP_BITS - fmt.frac, fmt.bits)


def softmax_float(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


# -- loss and predictions ----------------------------------------------------------------------------

MANTISSA = Fixed(17, 15)
"""A positive value normalised into [1, 2) by a left shift: the input of :func:`ln_table`."""


@cache
def ln_table(fmt: Fixed = ACT, segments: int = 64) -> PwlTable:
    """``ln(m)`` for a mantissa ``m`` in [1, 2) (raw in :data:`MANTISSA`), out in ``fmt``."""
    return pwl_table(np.log, 1.0, 2.0, MANTISSA, fmt, segments)


def cross_entropy(p, fmt: Fixed = ACT) -> np.ndarray:
    """``-ln(p)`` of raw probabilities ``p`` in ``fmt``, saturated; ``p`` below one LSB counts as one LSB.

    ``p = m · 2**e`` with ``e`` the position of its top bit and ``m`` in [1, 2) (a left shift), so
    ``-ln(p) = (fmt.frac - e)·ln 2 - ln(m)``: an integer times the constant ``round(ln 2 · 2**frac)``
    minus a table read.
    """
    p = np.maximum(np.asarray(p, dtype=np.int64), 1)
    e = np.frexp(p)[1].astype(np.int64) - 1  # exact for integers below 2**53
    m = p << (MANTISSA.frac - e)
    ln2 = round(math.log(2) * fmt.one)
    return saturate((fmt.frac - e) * ln2 - ln_table(fmt)(m), fmt.bits)


def argmax(z) -> np.ndarray:
    """Row index of the largest value of each column (the first one on ties)."""
    return np.argmax(np.asarray(z, dtype=np.int64), axis=0)
