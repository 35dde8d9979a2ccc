"""``docs/benchmarks.md`` from :class:`~bench.records.Results`, the judged table and
``templates/benchmarks.md.j2``; the plots go to ``docs/bench/``."""

from __future__ import annotations

from pathlib import Path

from bench import gemms, plots, report
from bench.judge import gemm_target
from bench.records import BOARD_BATCH, Bitstream, Results
from bench.table import Row, markdown

__all__ = ["render", "write"]

TEMPLATES = Path(__file__).resolve().parent / "templates"


def render(r: Results, rows: list[Row], bitstreams: dict[str, Bitstream]) -> str:
    """The page's Markdown."""
    resources = list(dict.fromkeys(name for b in bitstreams.values() for name in b.used))
    return report.render(TEMPLATES, "benchmarks.md.j2", r=r, table=markdown(rows), bitstreams=bitstreams,
                         resources=resources, target=gemm_target, batch=gemms.BATCH, board_batch=BOARD_BATCH,
                         efficiency_png=plots.EFFICIENCY, step_png=plots.STEP,
                         streamed={b.name: f"{b.samples_per_s:,.0f}" for b in r.boards if not b.fits})


def write(r: Results, rows: list[Row], bitstreams: dict[str, Bitstream], page: Path, folder: Path) -> None:
    """Write the page to ``page`` and its plots into ``folder``."""
    plots.draw(r, folder)
    page.write_text(render(r, rows, bitstreams))
