"""The skewed layout of ``hw/layout.py``: round trips, conflict-free segments, footprints, flat words."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.layout import Layout

BANKS = [1, 2, 4, 8]
shapes = st.tuples(st.sampled_from(BANKS), st.integers(1, 20), st.integers(1, 40), st.integers(0, 50))


@settings(deadline=None)
@given(shapes, st.integers(0, 2**32 - 1))
def test_store_then_load_round_trips_and_touches_only_the_footprint(shape, seed):
    banks, rows, cols, base = shape
    layout = Layout(banks)
    rng = np.random.default_rng(seed)
    matrix = rng.integers(-2**15, 2**15, (rows, cols))
    depth = base + layout.words(rows, cols) + 3
    image = np.full((banks, depth), 99999, dtype=np.int64)
    layout.store(matrix, base, image)
    assert np.array_equal(layout.load(image, base, rows, cols), matrix)
    written = image != 99999
    assert written.sum() == rows * cols                       # no two elements share a word
    used = np.flatnonzero(written.any(axis=0))
    assert used.min() >= base and used.max() < base + layout.words(rows, cols)


@settings(deadline=None)
@given(shapes)
def test_every_row_and_column_segment_hits_every_bank_once(shape):
    banks, rows, cols, base = shape
    layout = Layout(banks)
    pitch = layout.pitch(cols)
    for p in range(rows):
        for q in range(cols):
            for bank, _ in (layout.row(p, q, base, pitch), layout.column(p, q, base, pitch)):
                assert sorted(bank) == list(range(banks))
                first = (p + q) % banks
                assert list(bank) == [(first + lane) % banks for lane in range(banks)]
            # Lanes inside the matrix are the stored elements.
            bank, address = layout.row(p, q, base, pitch)
            for lane in range(min(banks, cols - q)):
                assert (bank[lane], address[lane]) == layout.place(p, q + lane, base, cols)
            bank, address = layout.column(p, q, base, pitch)
            for lane in range(min(banks, rows - p)):
                assert (bank[lane], address[lane]) == layout.place(p + lane, q, base, cols)


def test_place_follows_the_formula():
    layout = Layout(4)
    assert layout.shift == 2
    assert [layout.pitch(c) for c in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]
    assert layout.words(3, 6) == 6
    assert layout.place(0, 0, 10, 6) == (0, 10)
    assert layout.place(1, 2, 10, 6) == (3, 12)
    assert layout.place(2, 5, 10, 6) == (3, 15)
    assert Layout(1).place(3, 7, 2, 9) == (0, 2 + 3 * 9 + 7)


@pytest.mark.parametrize("banks", BANKS)
def test_flat_words_cover_every_bank_and_address_once(banks):
    layout = Layout(banks)
    words = np.arange(banks * 16)
    bank, address = layout.unflat(words)
    assert np.array_equal(bank, words % banks)
    assert np.array_equal(address, words // banks)
    assert np.array_equal(layout.flat(bank, address), words)
    assert layout.unflat(banks + 1) == (1 % banks, 1 + (banks == 1))


@pytest.mark.parametrize("banks", [0, 3, 6, -4, 2.0, "4"])
def test_rejects_banks_that_are_not_a_power_of_two(banks):
    with pytest.raises(ValueError, match=f"banks must be a positive power of two, not {banks!r}"):
        Layout(banks)
