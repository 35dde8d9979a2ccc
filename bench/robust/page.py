"""``docs/robustness.md`` from a :class:`~bench.robust.records.Grid` and ``templates/robustness.md.j2``."""

from __future__ import annotations

from pathlib import Path

from bench import report
from bench.robust.grid import EVERY, SEEDS
from bench.robust.plot import plot
from bench.robust.records import COLLAPSE_FAR, COLLAPSE_NEAR, Grid

__all__ = ["render", "write"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def render(grid: Grid) -> str:
    """The page's Markdown."""
    return report.render(TEMPLATES, "robustness.md.j2", grid=grid, summary=grid.summary, rows=grid.rows(),
                         every=EVERY, all_seeds=len(SEEDS), near=COLLAPSE_NEAR, far=COLLAPSE_FAR)


def write(grid: Grid, out: Path) -> str:
    """Write ``docs/robustness.md`` and ``docs/robust/gaps.png`` under ``out``; returns the page."""
    plot(grid, out / "docs" / "robust" / "gaps.png")
    page = render(grid)
    (out / "docs" / "robustness.md").write_text(page)
    return page
