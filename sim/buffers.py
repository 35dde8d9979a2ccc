"""Golden model of a buffer (:class:`hw.buffers.Buffer`): a NumPy image of its banks.

Addresses come from :class:`hw.layout.Layout` alone, so the model and the gateware share one
definition of the skewed layout.
"""

from __future__ import annotations

import numpy as np
from amaranth.utils import ceil_log2

from hw.buffers import Mode
from hw.layout import Layout

__all__ = ["BufferModel"]


class BufferModel:
    """The contents of ``banks`` banks of ``depth`` words and the accesses of :class:`hw.buffers.Buffer`.

    Parameters
    ----------
    banks : int
        Number of banks, a power of two.
    depth : int
        Words per bank.

    Attributes
    ----------
    image : numpy.ndarray
        ``(banks, depth)`` signed words, zero at first.
    layout : Layout
        The mapping of matrices to banks.
    """

    def __init__(self, banks: int, depth: int):
        self.layout = Layout(banks)
        self.depth = depth
        self.image = np.zeros((banks, depth), dtype=np.int64)

    def lanes(self, mode, base: int, pitch: int, p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
        """``(bank, address)`` of each lane of an access, addresses wrapped as the hardware wraps them.

        Raises ``IndexError`` if an address is past ``depth`` (undefined in the hardware).
        """
        mode = Mode(mode)
        if mode is Mode.ROW:
            bank, address = self.layout.row(p, q, base, pitch)
        elif mode is Mode.COLUMN:
            bank, address = self.layout.column(p, q, base, pitch)
        else:
            bank, address = self.layout.unflat(base + np.arange(self.layout.banks))
        address = address & ((1 << ceil_log2(self.depth)) - 1)
        if (address >= self.depth).any():
            raise IndexError(f"{mode.name} access at base={base} pitch={pitch} p={p} q={q} "
                             f"reaches address {address.max()} of a buffer of depth {self.depth}")
        return bank, address

    def read(self, mode, base: int, pitch: int, p: int, q: int) -> np.ndarray:
        """The lanes of a read: lane ``l`` is element ``l`` of the access."""
        return self.image[self.lanes(mode, base, pitch, p, q)]

    def write(self, mode, base: int, pitch: int, p: int, q: int, data, mask) -> None:
        """Write lane ``l`` of ``data`` where ``mask[l]`` is set (``FLAT``: lane 0 only, to word ``base``)."""
        bank, address = self.lanes(mode, base, pitch, p, q)
        mask = np.array(mask, dtype=bool)
        if Mode(mode) is Mode.FLAT:
            mask[1:] = False
        self.image[bank[mask], address[mask]] = np.asarray(data, dtype=np.int64)[mask]
