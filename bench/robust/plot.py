"""The plot of the robustness grid: gaps per case, and accuracy curves of a few cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.robust.records import Grid

__all__ = ["plot", "CURVES"]

CURVES = ("batch 1, lr 0.03", "batch 8, lr 0.1", "batch 32, lr 0.1", "batch 128, lr 0.3",
          "relu, 4 layers", "sigmoid, 3 layers")
"""The cases whose seed-0 curves are drawn."""


def plot(grid: Grid, path: Path) -> None:
    """Final and worst gap of every case beside the curves of :data:`CURVES`, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, groups = grid.rows(), grid.groups()
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(15, max(5, 0.28 * len(rows))),
                                       gridspec_kw={"width_ratios": [1, 1.3]})
    y = np.arange(len(rows))
    bars.barh(y - 0.2, [r.final_gap for r in rows], 0.4, label="final gap")
    bars.barh(y + 0.2, [r.worst_gap for r in rows], 0.4, label="worst gap, second half")
    bars.axvline(1.5, color="red", lw=0.8, ls="--", label="1.5 points")
    bars.set(yticks=y, yticklabels=[r.label for r in rows],
             xlabel="float32 − device (points of test accuracy)")
    bars.invert_yaxis()
    bars.legend(fontsize=8)
    for label in (label for label in CURVES if label in groups):
        run = groups[label][0]
        line, = curves.plot(run.epochs, [100 * a for a in run.device], label=f"{label}: device")
        curves.plot(run.epochs, [100 * a for a in run.float32], ls=":", color=line.get_color())
    curves.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(80, 100),
               title="device (solid) and float32 (dotted), seed 0")
    if curves.lines:
        curves.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
