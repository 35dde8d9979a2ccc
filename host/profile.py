"""The profiler: every training step beside a float64 shadow of itself.

A profiling :class:`host.train.Trainer` compiles its program with ``keep`` (each ``dZ[k]`` in a region
of its own, so nothing of a step is overwritten), and after every step reads back each tensor of the
step and the parameters. The shadow is the same step in float64 (:func:`host.reference.trace`) from
the parameters and the minibatch the device started from, so it never drifts from the device. Per
tensor, :func:`compare` records

- the format (fraction bits of a 16-bit word),
- the share of values at the edge of the format (*saturated*),
- the share of values that are zero on the device but not in the shadow (*flushed*),
- the relative error ``‖device − shadow‖ / ‖shadow‖``.

Tensors: ``X``, then per layer ``Z``, ``A`` and ``g'`` (hidden layers), ``P`` (the probabilities),
``dZ``, and per parameter the values after the step (``W1`` …, ``S1`` … for PReLU slopes) and the
update itself (``ΔW1`` …: the device's change against the shadow's ``−α·∂loss/∂W``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from host.compiler import Program, Region
from host.reference import trace
from hw.numerics import ACT, Fixed

__all__ = ["TensorStats", "compare", "step_stats", "mean_stats", "table"]

_WORD = Fixed(16, 0)


@dataclass(frozen=True)
class TensorStats:
    """How one tensor of a step compares with its float64 shadow (shares are fractions)."""

    frac: int
    saturated: float
    flushed: float
    error: float


def compare(raw, frac: int, shadow, edge=None) -> TensorStats:
    """Raw device values ``raw`` with ``frac`` fraction bits against the real ``shadow``; ``edge`` (raw,
    by default ``raw`` itself) is what counts as saturated."""
    raw, shadow = np.asarray(raw, dtype=np.int64), np.asarray(shadow, dtype=np.float64)
    edge = raw if edge is None else np.asarray(edge, dtype=np.int64)
    real = raw / 2.0 ** frac
    nonzero = shadow != 0
    norm = np.linalg.norm(shadow)
    return TensorStats(
        frac=frac,
        saturated=float(np.mean((edge == _WORD.max) | (edge == _WORD.min))),
        flushed=float(np.sum((raw == 0) & nonzero) / max(np.sum(nonzero), 1)),
        error=float(np.linalg.norm(real - shadow) / norm) if norm else float(np.any(real != 0)))


def step_stats(program: Program, read: Callable[[Region], np.ndarray], before: list[np.ndarray],
               x, y) -> tuple[dict[str, TensorStats], list[np.ndarray]]:
    """The stats of the step that just ran on minibatch ``x``, ``y`` from raw parameters ``before``.

    ``read`` returns a region's matrix from the device; ``program`` must be compiled with ``keep``.
    Returns the stats by tensor name and the raw parameters after the step.
    """
    net, fmt, regions = program.network, program.formats, program.regions
    if "dZ1" not in regions:
        raise ValueError("profiling needs a program compiled with keep=True")
    x_format = Fixed(16, fmt.x)
    raw_x = x_format.quantize(np.asarray(x).T)
    t = trace(net, program.dequantize(before), x_format.dequantize(raw_x).T, y)
    last = net.layers
    prelu = net.learn_slope and last > 1   # Z[k] of PReLU's hidden layers is overwritten in the step
    out = {"X": compare(raw_x, fmt.x, t.inputs[0][:-1])}
    for k in range(1, last + 1):
        if k == last or not prelu:
            out[f"Z{k}"] = compare(read(regions[f"Z{k}"]), fmt.z(k), t.zs[k - 1])
        if k < last:
            out[f"A{k}"] = compare(read(program.inputs[k])[:-1], fmt.act(k), t.inputs[k][:-1])
            if not prelu:
                out[f"g'{k}"] = compare(read(regions[f"D{k}"]), ACT.frac, t.derivatives[k - 1])
    out["P"] = compare(read(regions[f"A{last}"]), ACT.frac, t.probabilities)
    for k in range(last, 0, -1):
        out[f"dZ{k}"] = compare(read(regions[f"dZ{k}"]), fmt.grad(k), t.dzs[k - 1])
    after = [read(r) for r in program.parameters]
    names = [f"W{k}" for k in range(1, last + 1)] + [f"S{k}" for k in range(1, len(before) - last + 1)]
    rate = net.learning_rate
    for name, f, b, a, g in zip(names, program.parameter_formats, before, after, t.gradients, strict=True):
        out[name] = compare(a, f.frac, f.dequantize(b) - rate * g)
        out[f"Δ{name}"] = compare(a - b, f.frac, -rate * g, edge=a)
    return out, after


def mean_stats(steps: list[dict[str, TensorStats]]) -> dict[str, TensorStats]:
    """The mean of each tensor's stats over ``steps`` (the format of the first)."""
    return {name: TensorStats(steps[0][name].frac,
                              *(float(np.mean([getattr(s[name], f) for s in steps]))
                                for f in ("saturated", "flushed", "error")))
            for name in steps[0]}


def table(stats: dict[str, TensorStats]) -> str:
    """A text table of ``stats``, a tensor per line."""
    lines = [f"  {'tensor':8} {'frac':>4} {'saturated':>10} {'flushed':>9} {'error':>9}"]
    lines += [f"  {name:8} {s.frac:4d} {100 * s.saturated:9.3f}% {100 * s.flushed:8.2f}% "
              f"{100 * s.error:8.3f}%" for name, s in stats.items()]
    return "\n".join(lines)
