"""Skewed storage of matrices in banked buffers: any row or column segment of ``banks`` elements in one cycle.

A buffer has ``B = banks`` memory banks (a power of two) of ``depth`` words. A ``P×Q`` matrix stored
at ``base`` puts element ``(p, q)`` in::

    bank    = (p + q) mod B
    address = base + p·pitch + (q >> log2 B)        pitch = ceil(Q / B)

Each row takes ``pitch`` addresses in every bank, rotated by one bank per row, so ``B`` consecutive
elements of a row (``p`` fixed, ``q = q0 … q0+B−1``) or of a column (``q`` fixed, ``p = p0 … p0+B−1``)
sit in ``B`` distinct banks: lane ``l`` of the access is served by bank ``(p0 + q0 + l) mod B``, which
computes its own address. A 3×6 matrix at base 0 in 4 banks (pitch 2), cells showing ``(p, q)``::

               bank 0   bank 1   bank 2   bank 3
    address 0   (0,0)    (0,1)    (0,2)    (0,3)
    address 1   (0,4)    (0,5)      ·        ·
    address 2   (1,3)    (1,0)    (1,1)    (1,2)
    address 3     ·      (1,4)    (1,5)      ·
    address 4   (2,2)    (2,3)    (2,0)    (2,1)
    address 5     ·        ·      (2,4)    (2,5)

Row 1 from ``q = 2`` reads banks 3, 0, 1, 2 at addresses 2, 2, 3, 3; column 0 from ``p = 0`` reads
banks 0, 1, 2 at addresses 0, 2, 4. The host sees the buffer as flat words: word ``w`` is bank
``w mod B``, address ``w >> log2 B``.

Everything here is plain Python and NumPy: the golden model and the gateware generator
(:mod:`hw.buffers`) both use it, so the mapping is defined once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Layout"]


@dataclass(frozen=True)
class Layout:
    """The skewed layout of a buffer with ``banks`` banks.

    Coordinates and addresses may be Python integers or NumPy integer arrays (broadcast together).

    Parameters
    ----------
    banks : int
        Number of banks ``B``, a power of two (1 is a plain memory).

    Raises
    ------
    ValueError
        If ``banks`` is not a positive power of two.
    """

    banks: int

    def __post_init__(self):
        if not isinstance(self.banks, int) or self.banks < 1 or self.banks & (self.banks - 1):
            raise ValueError(f"banks must be a positive power of two, not {self.banks!r}")

    @property
    def shift(self) -> int:
        """``log2(banks)``."""
        return self.banks.bit_length() - 1

    def pitch(self, cols: int) -> int:
        """Addresses per bank taken by one row of ``cols`` elements: ``ceil(cols / banks)``."""
        return -(-cols // self.banks)

    def words(self, rows: int, cols: int) -> int:
        """Footprint of a ``rows × cols`` matrix: addresses used in every bank."""
        return rows * self.pitch(cols)

    def locate(self, p, q, base, pitch):
        """``(bank, address)`` of element ``(p, q)`` of a matrix at ``base`` with rows ``pitch`` apart."""
        return (p + q) & (self.banks - 1), base + p * pitch + (q >> self.shift)

    def place(self, p, q, base: int, cols: int):
        """``(bank, address)`` of element ``(p, q)`` of a matrix of ``cols`` columns at ``base``."""
        return self.locate(p, q, base, self.pitch(cols))

    def row(self, p, q, base, pitch):
        """Lane ``l`` of a row access: ``(bank, address)`` arrays of elements ``(p, q + l)``."""
        return self.locate(p, q + np.arange(self.banks), base, pitch)

    def column(self, p, q, base, pitch):
        """Lane ``l`` of a column access: ``(bank, address)`` arrays of elements ``(p + l, q)``."""
        return self.locate(p + np.arange(self.banks), q, base, pitch)

    def flat(self, bank, address):
        """The host's word number of ``address`` in ``bank``."""
        return (address << self.shift) | bank

    def unflat(self, word):
        """``(bank, address)`` of the host's word number ``word``."""
        return word & (self.banks - 1), word >> self.shift

    def store(self, matrix: np.ndarray, base: int, image: np.ndarray) -> None:
        """Write ``matrix`` (2-D) at ``base`` into ``image``, a ``(banks, depth)`` array, in place."""
        matrix = np.asarray(matrix)
        p, q = np.indices(matrix.shape)
        bank, address = self.place(p, q, base, matrix.shape[1])
        image[bank, address] = matrix

    def load(self, image: np.ndarray, base: int, rows: int, cols: int) -> np.ndarray:
        """Read the ``rows × cols`` matrix at ``base`` out of ``image``, a ``(banks, depth)`` array."""
        p, q = np.indices((rows, cols))
        bank, address = self.place(p, q, base, cols)
        return image[bank, address]
