"""Golden model of a buffer (:class:`hw.buffers.Buffer`): a NumPy image of its banks.

Addresses come from :class:`hw.layout.Layout` alone, so the model and the gateware share one
definition of the skewed layout.
"""

from __future__ import annotations

import numpy as np
from amaranth.utils import ceil_log2

from hw.isa import Mode
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

        The access is given by the matrix (``base``, ``pitch``) and its start ``(p, q)``; the
        hardware's request carries ``row = base + p·pitch`` and ``skew = p mod banks`` instead. Host
        words ``w … w+B−1`` are the ``ROW`` access ``(base, pitch, p, q) = (0, any, 0, w)``.
        Raises ``IndexError`` if an address is past ``depth`` (undefined in the hardware).
        """
        mode = Mode(mode)
        if mode is Mode.ROW:
            bank, address = self.layout.row(p, q, base, pitch)
        else:
            bank, address = self.layout.column(p, q, base, pitch)
        address = address & ((1 << ceil_log2(self.depth)) - 1)
        if (address >= self.depth).any():
            raise IndexError(f"{mode.name} access at base={base} pitch={pitch} p={p} q={q} "
                             f"reaches address {address.max()} of a buffer of depth {self.depth}")
        return bank, address

    def read(self, mode, base: int, pitch: int, p: int, q: int) -> np.ndarray:
        """The lanes of a read: lane ``l`` is element ``l`` of the access."""
        return self.image[self.lanes(mode, base, pitch, p, q)]

    def write(self, mode, base: int, pitch: int, p: int, q: int, data, mask) -> None:
        """Write lane ``l`` of ``data`` where ``mask[l]`` is set."""
        bank, address = self.lanes(mode, base, pitch, p, q)
        mask = np.array(mask, dtype=bool)
        self.image[bank[mask], address[mask]] = np.asarray(data, dtype=np.int64)[mask]
