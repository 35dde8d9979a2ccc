"""The plots of ``docs/benchmarks.md``: efficiency against ``K``, and where a training step's cycles go."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench import gemms
from bench.records import Results

__all__ = ["EFFICIENCY", "STEP", "draw"]

EFFICIENCY, STEP = "efficiency.png", "step.png"


def draw(r: Results, folder: Path) -> None:
    """Both plots into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    _efficiency(plt, r, folder / EFFICIENCY)
    _step(plt, r, folder / STEP)


def _step(plt, r: Results, path: Path) -> None:
    """Each profiled step's cycles by instruction kind, with the array-busy share."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = np.zeros(len(r.steps))
    labels = [f"m={p.batch}\n{p.device.split(':')[0]}" for p in r.steps]  # a board's name
    for kind in r.kinds():
        share = np.array([100 * p.kinds.get(kind, 0) / p.cycles for p in r.steps])
        ax.bar(labels, share, bottom=bottom, label=kind)
        bottom += share
    ax.plot(labels, [100 * p.gemm_ideal / p.cycles for p in r.steps], "kD", label="array busy")
    ax.set(ylabel="share of the training step's cycles (%)", ylim=(0, 100))
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _efficiency(plt, r: Results, path: Path) -> None:
    """Efficiency against K, one panel per array: the array alone and the instruction sweep (columns
    filled), and the digits GEMMs as instructions."""
    sizes, eff = r.sizes(), r.efficiency
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 4), sharey=True, squeeze=False)
    digits = [e for e in eff if e.family == "digits"]
    markers = dict(zip(dict.fromkeys(e.kind for e in digits), "^vD", strict=False))
    for ax, (rows, cols) in zip(axes[0], sizes, strict=True):
        mine = [e for e in eff if e.size == (rows, cols)]
        array = [e for e in mine if e.level == "array"]
        array = [e for e in array if e.n == max(x.n for x in array)]
        ax.plot([e.k for e in array], [100 * e.efficiency for e in array], "o-",
                label=f"array alone, M = 2·R, N = {array[0].n}")
        sweep = [e for e in mine if e.family == "sweep"]
        ax.plot([e.k for e in sweep], [100 * e.efficiency for e in sweep], "s--",
                label="instruction, M = 4·R, N = 8·C")
        for kind, marker in markers.items():
            pts = [e for e in mine if e.kind == kind and e.family == "digits"]
            ax.plot([e.k for e in pts], [100 * e.efficiency for e in pts], marker, linestyle="",
                    label=f"digits {kind.removeprefix('GEMM ')}")
        ax.axhline(100 * gemms.TARGET, color="grey", linestyle=":", label="target 90 %")
        ax.axvline(4 * max(rows, cols), color="grey", linestyle="-.", label="K = 4·max(R, C)")
        ax.set(title=f"{rows}×{cols} array", xlabel="K (steps per tile)", ylim=(0, 105))
        ax.set_xscale("log", base=2)
    axes[0][0].set_ylabel("efficiency (% of R·C MACs/cycle)")
    fig.legend(*axes[0][-1].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
