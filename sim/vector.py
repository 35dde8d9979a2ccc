"""Golden model of the vector unit (:mod:`hw.vector`) and of the softmax unit (:mod:`hw.softmax`).

Bit-exact and vectorised over lanes; every number comes from :mod:`hw.numerics`. Arrays of beats
are ``(beats, lanes)`` int64 matrices: row ``k`` is the ``k``-th beat, column ``l`` its lane ``l``.
"""

from __future__ import annotations

import numpy as np

from hw import numerics
from hw.isa import Rounding, VecOp
from hw.numerics import ACT, Act, Fixed

__all__ = ["VectorModel", "softmax_groups"]


class VectorModel:
    """The vector unit beat by beat, including each lane's stochastic-rounding LFSR.

    Parameters
    ----------
    lanes : int
    fmt : Fixed
    segments : int
        As for :class:`hw.vector.VectorUnit`.

    Attributes
    ----------
    state : numpy.ndarray
        The LFSR state of each lane; at reset ``lfsr_seed(1, lane)``.
    """

    def __init__(self, lanes: int, fmt: Fixed = ACT, segments: int = 256):
        self.lanes, self.fmt, self.segments = lanes, fmt, segments
        self.seed(1)

    def seed(self, seed: int) -> None:
        """What a ``seed_load`` strobe does."""
        self.state = np.array([numerics.lfsr_seed(seed, lane) for lane in range(self.lanes)],
                              dtype=np.int64)

    @staticmethod
    def combine(a, b, op: VecOp, b_shift: int = 0, scale: int = 0) -> np.ndarray:
        """``t``: the operands combined at full precision."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if op == VecOp.MUL:
            return a * b
        if op == VecOp.SGD:
            return (b << b_shift) - a * scale
        return a + (b << b_shift) if op == VecOp.ADD else a - (b << b_shift)

    def __call__(self, a, b, **epilogue) -> np.ndarray:
        """The outputs ``y`` of the beats ``a``, ``b`` (``(beats, lanes)``), advancing the LFSRs."""
        return self.run(a, b, **epilogue)[0]

    def run(self, a, b, *, op: VecOp = VecOp.ADD, b_shift: int = 0, shift: int = 0,
            round: Rounding = Rounding.NEAREST_EVEN, act: Act = Act.IDENTITY,
            deriv: bool = False, slope: int = 0, scale: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``y`` as :meth:`__call__` does, with the unit's flags ``saturated`` and ``high`` per element."""
        t = self.combine(a, b, op, b_shift, scale)
        bits = self.fmt.bits
        rand = None
        if round == Rounding.STOCHASTIC:
            rand, self.state = numerics.lfsr_sequence(self.state, len(t))
            x = numerics.requantize_stochastic(t, shift, rand, bits)
        else:
            x = numerics.requantize(t, shift, bits)
        y = numerics.activation(act, deriv, x, slope, self.fmt, self.segments)
        return y, numerics.saturates(t, shift, bits, rand), numerics.uses_top_bit(x, bits)


def softmax_groups(groups, max_rows: int, fmt: Fixed = ACT, shift: int = 0) -> tuple[list[np.ndarray], int]:
    """The softmax unit on a sequence of groups (each ``(rows, lanes)``, lanes are samples), all with
    the input shift ``shift`` (see :func:`numerics.softmax`).

    Returns the output groups, in order, and the number of groups longer than ``max_rows``, which
    the unit consumes and drops (pulsing ``overflow``) instead of answering.
    """
    out = [numerics.softmax(np.asarray(g), fmt, shift) for g in groups if len(g) <= max_rows]
    return out, sum(len(g) > max_rows for g in groups)
