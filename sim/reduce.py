"""Golden model of the reduction unit (:mod:`hw.reduce`): ARGMAX and LOSS of groups of beats.

Bit-exact and vectorised over lanes; every number comes from :mod:`hw.numerics`. A group is a
``(rows, lanes)`` int64 matrix: row ``k`` is the ``k``-th beat, column ``l`` its lane ``l``.
"""

from __future__ import annotations

import numpy as np

from hw import numerics
from hw.isa import ReduceOp
from hw.numerics import ACT, Fixed

__all__ = ["reduce_group", "reduce_groups"]


def reduce_group(op: ReduceOp, a, y, fmt: Fixed = ACT, max_rows: int | None = None) -> np.ndarray:
    """The result beat (``(lanes,)``) of one group ``a``, ``y`` (each ``(rows, lanes)``).

    ARGMAX: :func:`numerics.argmax` of ``a``, at most ``max_rows - 1`` when ``max_rows`` is given.
    LOSS: :func:`numerics.cross_entropy` of ``a`` in the row of the largest ``y`` (the first one on
    ties); for a one-row (binary) group, of ``a`` where ``2 * y >= fmt.one`` and of
    ``saturate(fmt.one - a)`` elsewhere.
    """
    a, y = np.asarray(a, dtype=np.int64), np.asarray(y, dtype=np.int64)
    if a.ndim != 2 or a.shape != y.shape or not len(a):
        raise ValueError(f"a group needs a and y of one (rows >= 1, lanes) shape, not {a.shape} "
                         f"and {y.shape}")
    if op == ReduceOp.ARGMAX:
        rows = numerics.argmax(a)
        return rows if max_rows is None else np.minimum(rows, max_rows - 1)
    if len(a) == 1:
        p = np.where(2 * y[0] >= fmt.one, a[0], numerics.saturate(fmt.one - a[0], fmt.bits))
    else:
        p = np.take_along_axis(a, numerics.argmax(y)[None, :], axis=0)[0]
    return numerics.cross_entropy(p, fmt)


def reduce_groups(op: ReduceOp, groups_a, groups_y, fmt: Fixed = ACT,
                  max_rows: int | None = None) -> np.ndarray:
    """The unit's output beats (``(groups, lanes)``) for a sequence of groups with one ``op``.

    ``op`` may also be a sequence, one operation per group.
    """
    ops = [op] * len(groups_a) if isinstance(op, ReduceOp) else list(op)
    if not len(ops) == len(groups_a) == len(groups_y):
        raise ValueError(f"{len(ops)} ops, {len(groups_a)} groups of a and {len(groups_y)} of y "
                         "do not match")
    return np.array([reduce_group(o, a, y, fmt, max_rows)
                     for o, a, y in zip(ops, groups_a, groups_y, strict=True)], dtype=np.int64)
