"""Print the array efficiency table from the figures the array testbench recorded.

``make sim`` runs the cocotb suite, whose ``efficiency`` test counts the cycles of each GEMM shape
on each array size (no stalls, from the first step in to the last row out) into
``build/efficiency/RxC.json``; this module prints them against the ideal of ``R·C`` MACs per cycle.
"""

from __future__ import annotations

import json
import sys

from sim.runner import BUILD

__all__ = ["load", "table"]

TARGET = 0.90


def load() -> list[dict]:
    rows = []
    for path in sorted(BUILD.glob("efficiency/*.json")):
        rows += json.loads(path.read_text())
    return sorted(rows, key=lambda r: (r["rows"] * r["cols"], r["rows"], r["k"], r["n"]))


def table(rows: list[dict]) -> str:
    """Markdown table; the target (>= 90 %) applies where K >= 4·max(R, C) and N fills the columns."""
    lines = ["| array | M | K | N | cycles | ideal | efficiency | target |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        applies = r["k"] >= 4 * max(r["rows"], r["cols"]) and r["n"] >= 4 * r["cols"]
        verdict = ("pass" if r["efficiency"] >= TARGET else "SHORT") if applies else ""
        lines.append(f"| {r['rows']}×{r['cols']} | {r['m']} | {r['k']} | {r['n']} | {r['cycles']} "
                     f"| {r['ideal']:.1f} | {100 * r['efficiency']:.1f} % | {verdict} |")
    return "\n".join(lines)


def main() -> int:
    rows = load()
    if not rows:
        print("no efficiency figures yet: run `make sim` first", file=sys.stderr)
        return 1
    print(table(rows))
    short = [r for r in rows if r["k"] >= 4 * max(r["rows"], r["cols"])
             and r["n"] >= 4 * r["cols"] and r["efficiency"] < TARGET]
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
