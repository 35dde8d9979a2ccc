"""The plots of the parallelism section: speed-up against cells, cycles per sample against the
minibatch, and where a step's cycles go."""

from __future__ import annotations

from pathlib import Path

from lab.parallelism_records import BATCH, Step, arrays, batches, index, speedups
from lab.plots import figure, save

__all__ = ["draw"]


def draw(steps: list[Step], plots: Path, command: str) -> dict[str, str]:
    """Every plot into ``plots``, each naming ``command``; their file names by what they show."""
    plots.mkdir(parents=True, exist_ok=True)
    return {"speedup": _speedup(steps, plots, command), "per_sample": _per_sample(steps, plots, command),
            "breakdown": _breakdown(steps, plots, command)}


def _speedup(steps: list[Step], plots: Path, command: str) -> str:
    """Speed-up per sample against the number of cells, one line per minibatch, with the ideal R·C."""
    up, sizes = speedups(steps), arrays(steps)
    cells = [r * c for r, c in sizes]
    fig, ax = figure()
    ax.plot(cells, cells, "k:", label="ideal: R·C")
    for m in (m for m in batches(steps) if m in (1, 8, BATCH, max(batches(steps)))):
        pts = [(r * c, up[r, c, m]) for r, c in sizes if (r, c, m) in up]
        ax.plot(*zip(*pts, strict=True), "o-", label=f"minibatch {m}")
    ax.set(xscale="log", yscale="log", xlabel="cells R·C (1×1, 2×2, 4×4, 8×8)",
           ylabel="speed-up per sample vs 1×1")
    ax.set_xticks(cells, [f"{r}×{c}" for r, c in sizes])
    ax.set_yticks(cells, [str(n) for n in cells])
    ax.minorticks_off()
    ax.legend(fontsize=8)
    return save(fig, plots / "speedup.png", command)


def _per_sample(steps: list[Step], plots: Path, command: str) -> str:
    """Cycles per sample against the minibatch, one line per array."""
    at, ms = index(steps), batches(steps)
    fig, ax = figure()
    for r, c in arrays(steps):
        pts = [(m, at[r, c, m].per_sample) for m in ms if (r, c, m) in at]
        ax.plot(*zip(*pts, strict=True), "o-", label=f"{r}×{c} array")
    ax.set(xscale="log", yscale="log", xlabel="minibatch m", ylabel="cycles per sample")
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.legend(fontsize=8)
    return save(fig, plots / "per_sample.png", command)


def _breakdown(steps: list[Step], plots: Path, command: str) -> str:
    """Share of the step's cycles by instruction kind, per array at the smallest, usual and largest
    minibatch, with the array-busy fraction."""
    at = index(steps)
    chosen = [at[r, c, m] for r, c in arrays(steps) for m in sorted({1, BATCH, max(batches(steps))})
              if (r, c, m) in at]
    kinds = list(dict.fromkeys(k for s in chosen for k in s.kinds))
    labels = [f"{s.name}\nm={s.batch}" for s in chosen]
    fig, ax = figure(width=9, height=4.5)
    bottom = [0.0] * len(chosen)
    for kind in kinds:
        part = [100 * s.kinds.get(kind, 0) / s.cycles for s in chosen]
        ax.bar(labels, part, bottom=bottom, label=kind)
        bottom = [b + p for b, p in zip(bottom, part, strict=True)]
    ax.plot(labels, [100 * s.gemm_ideal / s.cycles for s in chosen], "kD", label="array busy")
    ax.set(ylabel="share of the training step's cycles (%)", ylim=(0, 100))
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return save(fig, plots / "breakdown.png", command)
