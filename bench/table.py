"""The benchmark table: one row per target of the brief, formatted for the terminal and for Markdown."""

from __future__ import annotations

from dataclasses import dataclass

from bench.report import table

__all__ = ["Row", "verdict", "markdown", "text"]

PASS, SHORT, INFO, MISSING = "pass", "SHORT", "—", "not measured"


@dataclass(frozen=True)
class Row:
    """One figure: what it is, its target, the measured value, the verdict and how it was measured."""

    what: str
    target: str
    measured: str
    verdict: str
    command: str


def verdict(ok: bool | None) -> str:
    """``pass`` or ``SHORT``; ``None`` (no target applies) gives a dash."""
    return INFO if ok is None else PASS if ok else SHORT


_HEAD = ("what", "target", "measured", "verdict", "command")


def _cells(row: Row) -> tuple[str, ...]:
    return row.what, row.target, row.measured, row.verdict, row.command


def markdown(rows: list[Row]) -> str:
    """A Markdown table; ``|`` inside cells is escaped and commands are shown as code."""
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    cells = [[*map(esc, _cells(row)[:-1]), f"`{esc(row.command)}`" if row.command else ""] for row in rows]
    return table(list(_HEAD), cells, left=len(_HEAD))


def text(rows: list[Row]) -> str:
    """A plain table with aligned columns, for the terminal."""
    table = [_HEAD, *map(_cells, rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(_HEAD))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
