"""Formats that follow training: a tensor's exponent moves when the device's counts say so.

While ``train`` runs, the device counts for each tensor of :attr:`host.compiler.Program.counted` the
results that saturated and those that use their format's top bit (``hw/counters.py``). After each
epoch the host reads the counts and moves each of those formats by at most one bit:

- one bit more range (a fraction bit fewer) when more than :data:`SATURATED` of its results saturated;
- one bit more precision when none used the top bit, so that none would have saturated with it, and
  the format is below the least range :meth:`host.compiler.Formats.bounds` leaves.

A move that the program cannot follow (an SGD step below what the multiplier holds) is not made.

This is dynamic fixed point (Courbariaux, Bengio and David, 2014), with the statistics counted by the
device as it computes: no pass over the tensors, no tensor read back. Weights change format on the
device by a rounding shift (:func:`rescale`); the other tensors live within a step, so a new program
is all they need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from host.compiler import compile_network
from hw import numerics

__all__ = ["SATURATED", "Move", "counts", "follow", "rescale"]

SATURATED = 1e-4
"""The share of a tensor's results that may saturate in an epoch before its range grows."""


@dataclass(frozen=True)
class Move:
    """One format moved after an epoch: fraction bits ``old`` to ``new``, and the counts that said so."""

    name: str
    old: int
    new: int
    saturated: int
    high: int
    results: int

    def __str__(self) -> str:
        why = (f"{self.saturated} of {self.results} results saturated" if self.new < self.old
               else f"none of {self.results} results used the top bit")
        return f"{self.name}: {self.old} → {self.new} fraction bits ({why})"


def counts(program, read) -> dict[str, tuple[int, int]]:
    """``{name: (saturated, top bit used)}`` of the counted tensors, after a ``RUN`` of
    ``program.count``: their regions are read at once by ``read(buf, first word, count)``."""
    if not program.counted:
        return {}
    first, last = program.counted[0].region, program.counted[-1].region
    words = np.asarray(read(first.buf, first.first, last.first + last.words - first.first), dtype=np.int64)
    out = {}
    for c in program.counted:
        r = c.region
        saturated, high = r.unpack(words[r.first - first.first:r.first - first.first + r.words])[:, 0]
        out[c.name] = int(saturated), int(high)
    return out


def follow(program, tally: dict[str, tuple[int, int]], steps: int) -> tuple[object, list[Move]]:
    """The formats after an epoch of ``steps`` training steps with the counts ``tally``
    (:func:`counts`), and the moves that lead there."""
    formats, moves = program.formats, []
    for c in program.counted:
        saturated, high = tally[c.name]
        results = c.elements * steps
        old = formats.of(c.field, c.index)
        lo, hi = formats.bounds(program.network, c.field)
        new = old
        if saturated > SATURATED * results:
            new = max(old - 1, lo)
        elif high == 0 and old < hi:
            new = old + 1
        candidate = formats.moved(c.field, c.index, new)
        if new != old and _compiles(program, candidate):
            formats = candidate
            moves.append(Move(c.name, old, new, saturated, high, results))
    return formats, moves


def _compiles(program, formats) -> bool:
    try:
        compile_network(program.network, program.config, formats=formats)
    except ValueError:
        return False
    return True


def rescale(raw, old: int, new: int) -> np.ndarray:
    """Raw 16-bit values at ``old`` fraction bits as ``new`` ones, rounded to nearest even."""
    return numerics.requantize(raw, old - new)
