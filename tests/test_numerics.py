"""hw.numerics against exact integer and rational arithmetic (Python ints and Fractions)."""

from __future__ import annotations

import math
from fractions import Fraction
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.isa import SOFTMAX_SHIFT_MAX
from hw.numerics import (
    ACT,
    EXP,
    LFSR_STEPS,
    LFSR_TAPS,
    LFSR_WIDTH,
    SLOPE,
    TABLE_RANGE,
    Act,
    Fixed,
    PwlTable,
    acc_bits,
    activation,
    activation_float,
    activation_table,
    argmax,
    cross_entropy,
    exp_table,
    lfsr_advance,
    lfsr_matrix,
    lfsr_seed,
    lfsr_sequence,
    lfsr_step,
    pwl_table,
    requantize,
    requantize_stochastic,
    shift_round,
    shift_stochastic,
    softmax,
    softmax_float,
)
from sim.activation_errors import activation_rows, softmax_row

PROPS = settings(max_examples=300, deadline=None)
X_ALL = np.arange(ACT.min, ACT.max + 1, dtype=np.int64)
"""Every raw input of ACT."""

INT62 = st.integers(-(1 << 62) + 1, (1 << 62) - 1)
FORMATS = st.builds(Fixed, st.integers(2, 40), st.integers(0, 30))
SLOPES_RAW = [int(SLOPE.quantize(0.01)), int(SLOPE.quantize(0.3)), 1, -5000, SLOPE.min, SLOPE.max]


def rne(q: Fraction) -> int:
    """Nearest integer, ties to even (Python's ``round`` on a Fraction)."""
    return round(q)


def clamp(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


# -- quantize / dequantize -------------------------------------------------------------------------

@PROPS
@given(FORMATS, st.floats(allow_nan=False, width=64))
def test_quantize_is_saturated_nearest_even(fmt: Fixed, x: float):
    if math.isinf(x):
        want = fmt.max if x > 0 else fmt.min
    else:
        want = max(fmt.min, min(fmt.max, rne(Fraction(x) * fmt.one)))
    with np.errstate(over="ignore"):  # x * 2**frac may overflow to inf, which saturates
        assert int(fmt.quantize(x)) == want


@PROPS
@given(FORMATS, st.integers(-(1 << 45), 1 << 45))
def test_quantize_ties_to_even(fmt: Fixed, m: int):
    x = (m + 0.5) / fmt.one  # exactly halfway between raw m and m + 1
    want = m if m % 2 == 0 else m + 1
    assert int(fmt.quantize(x)) == clamp(want, fmt.bits)


def test_quantize_saturates_and_keeps_shape():
    q = ACT.quantize([[-1e300, -8.0, -8.0001, 7.9999, 8.0, np.inf, -np.inf]])
    assert q.dtype == np.int64 and q.shape == (1, 7)
    assert q.tolist() == [[ACT.min, ACT.min, ACT.min, ACT.max, ACT.max, ACT.max, ACT.min]]
    assert ACT.quantize([0.5 / ACT.one, 1.5 / ACT.one, -0.5 / ACT.one, -1.5 / ACT.one]).tolist() \
        == [0, 2, 0, -2]


def test_quantize_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        Fixed(16, 8).quantize([1.0, float("nan")])


@pytest.mark.parametrize("fmt", [Fixed(2, 0), Fixed(8, 3), Fixed(12, 11), ACT, EXP])
def test_dequantize_round_trip(fmt: Fixed):
    q = np.arange(fmt.min, fmt.max + 1, dtype=np.int64)
    real = fmt.dequantize(q)
    pairs = zip(real[::97].tolist(), q[::97].tolist(), strict=True)
    assert all(Fraction(r) == Fraction(v, fmt.one) for r, v in pairs)
    np.testing.assert_array_equal(fmt.quantize(real), q)


def test_fixed_rejects_bad_formats():
    for bits, frac in [(1, 0), (63, 0), (16, -1), (16, 64)]:
        with pytest.raises(ValueError):
            Fixed(bits, frac)


# -- shift_round / requantize ----------------------------------------------------------------------

@PROPS
@given(INT62, st.integers(0, 62))
def test_shift_round_is_exact_nearest_even(x: int, s: int):
    assert int(shift_round(x, s)) == rne(Fraction(x, 1 << s))


def test_shift_round_extremes_and_ties():
    edge = [0, 1, -1, 2, -2, 3, -3, (1 << 62) - 1, -(1 << 62), -(1 << 62) + 1, (1 << 61),
            -(1 << 61), (1 << 61) - 1, -(1 << 61) - 1]
    for s in range(63):
        near = [sign * ((k << s) + d) for sign in (1, -1) for k in (0, 1, 2, 3, 5)
                for d in (-1, 0, 1, (1 << s) >> 1, ((1 << s) >> 1) - 1)]
        xs = [x for x in edge + near if abs(x) < (1 << 62) or x == -(1 << 62)]
        got = shift_round(np.array(xs, dtype=np.int64), s)
        assert got.tolist() == [rne(Fraction(x, 1 << s)) for x in xs], s


def test_shift_round_ties_go_to_even():
    for s in range(1, 63):
        odd = np.arange(-41, 42, 2, dtype=np.int64)
        odd = odd[np.abs(odd) < (1 << (63 - s))]  # ties stay within |x| < 2**62
        ties = odd << (s - 1)  # exactly (odd / 2) * 2**s
        want = [rne(Fraction(int(o), 2)) for o in odd]
        assert shift_round(ties, s).tolist() == want
        assert all(w % 2 == 0 for w in want)


@PROPS
@given(st.integers(-(1 << 40), 1 << 40), st.integers(1, 20))
def test_negative_shift_is_exact_left_shift(x: int, k: int):
    assert int(shift_round(x, -k)) == x * (1 << k)
    assert int(requantize(x, -k, 62)) == clamp(x * (1 << k), 62)


@PROPS
@given(INT62, st.integers(0, 62), st.integers(2, 40))
def test_requantize_saturates(x: int, s: int, bits: int):
    assert int(requantize(x, s, bits)) == clamp(rne(Fraction(x, 1 << s)), bits)


def test_requantize_saturates_at_both_ends():
    x = np.array([1 << 40, -(1 << 40), 32767 << 4, (32767 << 4) + 8, -(32768 << 4) - 8])
    assert requantize(x, 4).tolist() == [32767, -32768, 32767, 32767, -32768]


# -- stochastic rounding ---------------------------------------------------------------------------

@PROPS
@given(st.integers(-(1 << 48), 1 << 48), st.integers(0, 32), st.integers(0, (1 << 32) - 1))
def test_shift_stochastic_is_floor_of_x_plus_r(x: int, s: int, rand: int):
    r = rand % (1 << s)
    assert int(shift_stochastic(x, s, rand)) == (x + r) // (1 << s)
    assert int(requantize_stochastic(x, s, rand, 16)) == clamp((x + r) // (1 << s), 16)


@settings(max_examples=100, deadline=None)
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 12), st.integers(0, 15))
def test_shift_stochastic_is_unbiased(x: int, s: int, high: int):
    rand = np.arange(1 << s, dtype=np.int64) + (high << s)  # every value of the low s bits
    total = int(shift_stochastic(np.int64(x), s, rand).sum())
    assert Fraction(total, 1 << s) == Fraction(x, 1 << s)


def test_shift_stochastic_negative_shift_is_left_shift():
    assert shift_stochastic(np.array([3, -3]), -2, 12345).tolist() == [12, -12]


# -- the LFSR --------------------------------------------------------------------------------------

Matrix = tuple[int, ...]
"""A square GF(2) matrix; row ``i`` is an int whose bit ``j`` is entry ``(i, j)``."""

IDENTITY = tuple(1 << i for i in range(LFSR_WIDTH))
PERIOD = (1 << LFSR_WIDTH) - 1
PERIOD_PRIMES = (3, 5, 17, 257, 65537)


def mat_mul(a: Matrix, b: Matrix) -> Matrix:
    return tuple(reduce(lambda acc, j: acc ^ b[j], (j for j in range(len(b)) if row >> j & 1), 0)
                 for row in a)


def mat_pow(m: Matrix, n: int) -> Matrix:
    result = IDENTITY
    while n:
        if n & 1:
            result = mat_mul(result, m)
        m = mat_mul(m, m)
        n >>= 1
    return result


def mat_apply(m: Matrix, state: int) -> int:
    return sum((bin(row & state).count("1") & 1) << i for i, row in enumerate(m))


def test_period_primes_factor_the_period():
    assert math.prod(PERIOD_PRIMES) == PERIOD
    assert all(all(q % d for d in range(2, math.isqrt(q) + 1)) for q in PERIOD_PRIMES)


def test_lfsr_polynomial_is_primitive():
    m = lfsr_matrix(1)
    assert mat_pow(m, PERIOD) == IDENTITY
    for q in PERIOD_PRIMES:
        assert mat_pow(m, PERIOD // q) != IDENTITY, q


def test_lfsr_taps_encode_the_documented_polynomial():
    # Right-shift Galois convention: tap bit k is the term x^(k+1) of the feedback polynomial
    # x^32 + x^22 + x^2 + x + 1. The one-step matrix satisfies its reciprocal, the characteristic
    # polynomial x^32 + x^31 + x^30 + x^10 + 1 (primitive exactly when the feedback one is).
    exponents = {k + 1 for k in range(LFSR_WIDTH) if LFSR_TAPS >> k & 1} | {0}
    assert exponents == {32, 22, 2, 1, 0}
    m = lfsr_matrix(1)
    total = reduce(lambda a, b: tuple(x ^ y for x, y in zip(a, b, strict=True)),
                   (mat_pow(m, LFSR_WIDTH - e) for e in exponents))
    assert total == (0,) * LFSR_WIDTH


def test_lfsr_matrix_is_the_power_of_one_step():
    assert lfsr_matrix() == mat_pow(lfsr_matrix(1), LFSR_STEPS)


@PROPS
@given(st.integers(1, PERIOD))
def test_lfsr_matrix_equals_advance(state: int):
    assert mat_apply(lfsr_matrix(), state) == lfsr_advance(state)
    assert mat_apply(lfsr_matrix(1), state) == lfsr_step(state)
    stepped = state
    for _ in range(LFSR_STEPS):
        stepped = lfsr_step(stepped)
    assert lfsr_advance(state) == stepped


@PROPS
@given(st.integers(-(1 << 40), 1 << 40), st.integers(0, 1 << 20))
def test_lfsr_seed_is_never_zero(seed: int, lane: int):
    s = lfsr_seed(seed, lane)
    assert 0 < s <= PERIOD
    zero_seed = -lane * 0x9E3779B9  # the one seed that would make this lane's state zero
    assert lfsr_seed(zero_seed, lane) != 0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, PERIOD), st.integers(0, 1023))
def test_lfsr_seed_differs_across_lanes(seed: int, zero_lane: int):
    for base in (seed, -zero_lane * 0x9E3779B9):
        states = [lfsr_seed(base, lane) for lane in range(1024)]
        assert len(set(states)) == len(states)


def test_lfsr_step_same_on_ints_and_arrays():
    states = [int(v) for v in np.random.default_rng(1).integers(1, PERIOD, 200)] + [1, PERIOD]
    as_u64 = np.array(states, dtype=np.uint64)
    as_i64 = np.array(states, dtype=np.int64)
    for _ in range(3 * LFSR_STEPS):
        states = [lfsr_step(s) for s in states]
        as_u64, as_i64 = lfsr_step(as_u64), lfsr_step(as_i64)
        assert as_u64.dtype == np.uint64 and as_i64.dtype == np.int64
        assert as_u64.tolist() == states and as_i64.tolist() == states
    assert lfsr_step(np.uint64(1)) == lfsr_step(1) == LFSR_TAPS
    assert lfsr_advance(np.array(states, dtype=np.int64)).tolist() == \
        [lfsr_advance(s) for s in states]


# -- accumulator width -----------------------------------------------------------------------------

def reachable_sums(a_bits: int, b_bits: int, k: int) -> set[int]:
    """Every sum of ``k`` products of an ``a_bits`` and a ``b_bits`` operand (brute force)."""
    products = {a * b for a in range(-(1 << (a_bits - 1)), 1 << (a_bits - 1))
                for b in range(-(1 << (b_bits - 1)), 1 << (b_bits - 1))}
    sums = {0}
    for _ in range(k):
        sums = {s + p for s in sums for p in products}
    return sums


@pytest.mark.parametrize("a_bits", range(2, 6))
@pytest.mark.parametrize("b_bits", range(2, 6))
def test_acc_bits_is_minimal(a_bits: int, b_bits: int):
    for k in range(1, 7):
        sums = reachable_sums(a_bits, b_bits, k)
        lo, hi = min(sums), max(sums)
        fits = [w for w in range(1, 64) if -(1 << (w - 1)) <= lo and hi < (1 << (w - 1))]
        width = acc_bits(a_bits, b_bits, k)
        assert width == fits[0], (a_bits, b_bits, k)
        assert lo < -(1 << (width - 2)) or hi >= (1 << (width - 2))  # one bit fewer overflows


def test_acc_bits_monotone_and_bounded():
    for a_bits, b_bits in [(2, 2), (8, 8), (16, 16), (16, 8), (18, 25)]:
        widths = [acc_bits(a_bits, b_bits, k) for k in range(1, 5000)]
        assert widths == sorted(widths)
        assert all(w <= a_bits + b_bits + (k - 1).bit_length() for k, w in enumerate(widths, 1))
    assert acc_bits(16, 16, 1) == 32  # (-2**15)**2 = 2**30 needs 32 signed bits


@pytest.mark.parametrize("k", [0, -1, -100])
def test_acc_bits_rejects_empty_sums(k: int):
    with pytest.raises(ValueError, match="k >= 1"):
        acc_bits(16, 16, k)


# -- activations -----------------------------------------------------------------------------------

ALL_ACTS = [(act, deriv, slope) for act in Act for deriv in (False, True)
            for slope in (SLOPES_RAW if act == Act.LEAKY_RELU else [0])]
TABLE_ACTS = [(act, deriv) for act in TABLE_RANGE for deriv in (False, True)]


@pytest.mark.parametrize(("act", "deriv", "slope"), ALL_ACTS)
def test_activation_stays_in_format(act: Act, deriv: bool, slope: int):
    y = activation(act, deriv, X_ALL, slope)
    assert y.dtype == np.int64 and y.shape == X_ALL.shape
    assert ACT.min <= y.min() and y.max() <= ACT.max


def test_identity_and_relu_are_exact():
    np.testing.assert_array_equal(activation(Act.IDENTITY, False, X_ALL), X_ALL)
    np.testing.assert_array_equal(activation(Act.IDENTITY, True, X_ALL), ACT.one)
    np.testing.assert_array_equal(activation(Act.RELU, False, X_ALL), np.maximum(X_ALL, 0))
    np.testing.assert_array_equal(activation(Act.RELU, True, X_ALL),
                                  np.where(X_ALL > 0, ACT.one, 0))


@pytest.mark.parametrize("slope", SLOPES_RAW)
def test_leaky_relu_is_rounded_exact_product(slope: int):
    want = [x if x >= 0 else clamp(rne(Fraction(x * slope, SLOPE.one)), ACT.bits)
            for x in X_ALL.tolist()]
    assert activation(Act.LEAKY_RELU, False, X_ALL, slope).tolist() == want
    neg = clamp(rne(Fraction(slope * ACT.one, SLOPE.one)), ACT.bits)
    np.testing.assert_array_equal(activation(Act.LEAKY_RELU, True, X_ALL, slope),
                                  np.where(X_ALL > 0, ACT.one, neg))


def pwl_exact(table: PwlTable, x: int) -> int:
    """The interpolated value at raw ``x`` in exact rationals, rounded half up."""
    x = min(max(x, table.lo), table.hi - 1) - table.lo
    i, f = x >> table.seg_shift, x & ((1 << table.seg_shift) - 1)
    y = Fraction(table.y0[i]) + Fraction(table.slope[i] * f, 1 << table.seg_shift)
    return math.floor(y / (1 << table.guard) + Fraction(1, 2))


ALL_TABLES = [activation_table(act, deriv) for act, deriv in TABLE_ACTS] + [exp_table()]


@pytest.mark.parametrize("table", ALL_TABLES)
def test_pwl_evaluation_is_exact_interpolation(table: PwlTable):
    rng = np.random.default_rng(2)
    span = table.hi - table.lo
    xs = np.concatenate([rng.integers(table.lo - 100, table.hi + 100, 3000),
                         table.lo + (np.arange(table.segments) << table.seg_shift),
                         [table.lo - 1, table.lo, table.hi - 1, table.hi, table.lo - span]])
    assert table(xs).tolist() == [pwl_exact(table, int(x)) for x in xs]


@pytest.mark.parametrize(("act", "deriv"), TABLE_ACTS)
def test_activation_table_samples_the_float_function(act: Act, deriv: bool):
    table = activation_table(act, deriv)
    scale = 1 << (ACT.frac + table.guard)
    lo = TABLE_RANGE[act][0]
    assert table.lo == max(ACT.min, math.floor(lo * ACT.one)) and table.hi >= ACT.max + 1
    samples = (table.lo + (np.arange(table.segments + 1) << table.seg_shift)) / ACT.one
    want = np.rint(activation_float(act, deriv, samples) * scale).astype(np.int64)
    assert list(table.y0) == want[:-1].tolist()
    assert list(table.slope) == np.diff(want).tolist()  # continuous at segment ends
    np.testing.assert_array_equal(table(table.lo + (np.arange(table.segments) << table.seg_shift)),
                                  (want[:-1] + (1 << (table.guard - 1))) >> table.guard)


def test_exp_table_hits_one_and_zero():
    t = exp_table()
    assert t(np.array([0])).tolist() == [EXP.one]
    assert t(np.array([-16 * ACT.one, -(1 << 16) + 1])).tolist() == [0, 0]
    d = np.arange(-(1 << 16) + 1, 1, dtype=np.int64)
    err = np.abs(t(d) / EXP.one - np.exp(d / ACT.one))
    assert err.max() * EXP.one <= 4.6  # measured 4.38 LSB of EXP (about 0.55 LSB of ACT)


def test_pwl_table_rejects_non_power_of_two_segments():
    with pytest.raises(ValueError, match="power of two"):
        pwl_table(np.tanh, -8.0, 8.0, ACT, ACT, segments=100)


@pytest.mark.parametrize(("act", "deriv", "slope"), [
    (Act.SIGMOID, False, 0), (Act.TANH, False, 0), (Act.IDENTITY, False, 0),
    (Act.RELU, False, 0), (Act.RELU, True, 0), (Act.LEAKY_RELU, False, SLOPES_RAW[0]),
    (Act.LEAKY_RELU, False, SLOPES_RAW[1]), (Act.LEAKY_RELU, True, SLOPES_RAW[1]),
])
def test_monotone_where_the_function_is(act: Act, deriv: bool, slope: int):
    assert np.all(np.diff(activation(act, deriv, X_ALL, slope)) >= 0)


def test_exp_table_is_monotone():
    t = exp_table()
    assert np.all(np.diff(t(np.arange(-(1 << 16) + 1, 1, dtype=np.int64))) >= 0)
    assert all(s >= 0 for s in t.slope)


MAX_ERROR_LSB = {
    "identity g": 0.0, "identity g′": 0.0, "relu g": 0.0, "relu g′": 0.0,
    "leaky relu (0.01) g": 0.85, "leaky relu (0.01) g′": 0.05,
    "leaky relu (0.3) g": 0.85, "leaky relu (0.3) g′": 0.25,
    "sigmoid g": 0.75, "sigmoid g′": 0.8, "tanh g": 2.1, "tanh g′": 4.5,
    "swish g": 1.55, "swish g′": 1.2,
}
"""Measured maximum errors (LSBs of ACT, all 65536 inputs) with a small margin."""


def test_activation_error_bounds():
    rows = activation_rows()
    assert {r.name for r in rows} == set(MAX_ERROR_LSB)
    for r in rows:
        assert r.max_lsb <= MAX_ERROR_LSB[r.name], r
        assert r.mean_abs * ACT.one <= 0.4, r
        assert (r.segments is not None) == any(r.name.startswith(a.name.lower())
                                               for a in TABLE_RANGE)


# -- softmax ---------------------------------------------------------------------------------------

@PROPS
@given(st.integers(1, 32), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_softmax_columns_sum_to_one(rows: int, cols: int, seed: int):
    z = np.random.default_rng(seed).integers(ACT.min, ACT.max + 1, (rows, cols))
    y = softmax(z)
    assert y.shape == z.shape and y.min() >= 0 and y.max() <= ACT.one
    # each output rounds by <= 1/2 LSB; the floored reciprocal loses < rows/16 LSB in all
    assert np.all(np.abs(y.sum(axis=0) - ACT.one) <= rows * 9 // 16)


@PROPS
@given(st.integers(2, 32), st.integers(0, 2**32 - 1), st.floats(1.0, 4.0))
def test_softmax_preserves_argmax_when_separated(rows: int, seed: int, margin: float):
    rng = np.random.default_rng(seed)
    z = rng.integers(ACT.min, ACT.quantize(7.99 - margin) + 1, (rows, 4))
    top = rng.integers(0, rows, 4)
    z[top, np.arange(4)] = z.max(axis=0) + ACT.quantize(margin)
    y = softmax(z)
    assert y.argmax(axis=0).tolist() == top.tolist()
    assert np.all(np.sort(y, axis=0)[-2] < y.max(axis=0))  # the winner is unique


def test_softmax_error_bound():
    assert softmax_row().max_lsb <= 0.85  # measured 0.745 LSB on N(0, 2) logits
    z = np.random.default_rng(3).integers(ACT.min, ACT.max + 1, (10, 5000))
    err = np.abs(ACT.dequantize(softmax(z)) - softmax_float(ACT.dequantize(z)))
    assert err.max() * ACT.one <= 0.85  # measured 0.74 LSB on uniform logits


@PROPS
@given(st.integers(1, 16), st.integers(0, 2**32 - 1), st.integers(-(1 << 15), 1 << 15))
def test_softmax_is_shift_invariant(rows: int, seed: int, c: int):
    z = np.random.default_rng(seed).integers(ACT.min, ACT.max + 1, (rows, 6))
    z = np.clip(z, ACT.min - min(c, 0), ACT.max - max(c, 0))  # z + c stays in ACT
    np.testing.assert_array_equal(softmax(z + c), softmax(z))


@PROPS
@given(st.integers(1, 16), st.integers(0, 2**32 - 1), st.integers(0, SOFTMAX_SHIFT_MAX))
def test_softmax_shift_reads_logits_with_fewer_fraction_bits(rows: int, seed: int, shift: int):
    # logits z with ACT.frac - shift fraction bits are the ACT values z << shift, when those fit
    z = np.random.default_rng(seed).integers(ACT.min >> shift, (ACT.max >> shift) + 1, (rows, 6))
    np.testing.assert_array_equal(softmax(z, shift=shift), softmax(z << shift))


def test_softmax_extremes():
    assert softmax(np.array([[5]])).tolist() == [[ACT.one]]
    z = np.array([[ACT.max, ACT.min], [ACT.min, ACT.max]])
    assert softmax(z).tolist() == [[ACT.one, 0], [0, ACT.one]]
    assert softmax(np.zeros((4, 1), dtype=np.int64)).tolist() == [[ACT.one // 4]] * 4


# -- loss and predictions ----------------------------------------------------------------------------

def test_cross_entropy_within_two_lsb_of_float64_and_saturates():
    p = np.arange(1, ACT.one + 1)
    exact = -np.log(ACT.dequantize(p))
    got = ACT.dequantize(cross_entropy(p))
    unsaturated = exact < ACT.max / ACT.one
    assert np.abs(got - exact)[unsaturated].max() <= 2 / ACT.one
    assert (cross_entropy(p[~unsaturated]) == ACT.max).all()
    assert cross_entropy(ACT.one) == 0
    assert cross_entropy(0) == cross_entropy(-5) == cross_entropy(1)
    assert (np.diff(cross_entropy(p)) <= 0).all(), "-ln must not rise with p"


def test_argmax_takes_the_first_of_equal_maxima():
    z = np.array([[1, 5, 7], [3, 5, 7], [2, 0, 7]])
    assert argmax(z).tolist() == [1, 0, 0]


@pytest.mark.parametrize("n", [0, 1, 2, 5, 8, 33, 300])
def test_lfsr_sequence_is_repeated_advance(n: int):
    state = np.array([lfsr_seed(7, lane) for lane in range(4)], dtype=np.int64)
    expected = []
    for _ in range(n):
        expected.append(state)
        state = lfsr_advance(state)
    got, after = lfsr_sequence(np.array([lfsr_seed(7, lane) for lane in range(4)]), n)
    assert got.shape == (n, 4) and np.array_equal(after, state)
    assert np.array_equal(got, np.array(expected).reshape(n, 4))
