"""Measured error of every activation function and its derivative against float64.

``python -m sim.activation_errors`` prints the Markdown table kept in the documentation; the
numbers come from evaluating :func:`hw.numerics.activation` on all 65536 raw inputs of
:data:`hw.numerics.ACT` (and :func:`hw.numerics.softmax` on random columns of logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.numerics import (
    ACT,
    SLOPE,
    TABLE_RANGE,
    Act,
    activation,
    activation_float,
    activation_table,
    exp_table,
    softmax,
    softmax_float,
)

LEAKY_SLOPES = (0.01, 0.3)
"""Leaky-ReLU slopes measured; the hardware uses them rounded to :data:`hw.numerics.SLOPE`."""


@dataclass(frozen=True)
class ErrorRow:
    """Error of one function against its float64 reference, in real units of the output."""

    name: str
    max_abs: float
    mean_abs: float
    segments: int | None = None

    @property
    def max_lsb(self) -> float:
        """Maximum absolute error in LSBs of :data:`hw.numerics.ACT`."""
        return self.max_abs * ACT.one


def _row(name: str, got: np.ndarray, ref: np.ndarray, segments: int | None = None) -> ErrorRow:
    err = np.abs(ACT.dequantize(got) - ref)
    return ErrorRow(name, float(err.max()), float(err.mean()), segments)


def activation_rows() -> list[ErrorRow]:
    """One row per activation and derivative, over every raw input of :data:`ACT`."""
    x = np.arange(ACT.min, ACT.max + 1, dtype=np.int64)
    real = ACT.dequantize(x)
    rows = []
    for act in Act:
        slopes = LEAKY_SLOPES if act == Act.LEAKY_RELU else (0.0,)
        for slope in slopes:
            label = act.name.lower().replace("_", " ")
            if act == Act.LEAKY_RELU:
                label += f" ({slope})"
            for deriv in (False, True):
                got = activation(act, deriv, x, slope=int(SLOPE.quantize(slope)))
                ref = activation_float(act, deriv, real, slope)
                segments = activation_table(act, deriv).segments if act in TABLE_RANGE else None
                rows.append(_row(f"{label} {'g′' if deriv else 'g'}", got, ref, segments))
    return rows


def softmax_row(classes: int = 10, columns: int = 10_000, sigma: float = 2.0,
                seed: int = 0) -> ErrorRow:
    """Softmax error on ``columns`` random columns of ``classes`` logits drawn from N(0, sigma²)."""
    z = ACT.quantize(np.random.default_rng(seed).normal(0.0, sigma, (classes, columns)))
    return _row(f"softmax ({classes} classes)", softmax(z), softmax_float(ACT.dequantize(z)),
                exp_table(ACT).segments)


def error_rows() -> list[ErrorRow]:
    """Every row of the table: the activations, their derivatives, then softmax."""
    return [*activation_rows(), softmax_row()]


def markdown(rows: list[ErrorRow]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| function | max abs error | max error (LSB) | mean abs error (LSB) | segments |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        segments = "–" if r.segments is None else str(r.segments)
        lines.append(f"| {r.name} | {r.max_abs:.3g} | {r.max_lsb:.3f} | "
                     f"{r.mean_abs * ACT.one:.3f} | {segments} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(error_rows()))
