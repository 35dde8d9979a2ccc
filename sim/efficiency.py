"""Print the array efficiency tables from the figures the testbenches recorded.

``make sim`` runs the cocotb suite. The array testbench counts the cycles of each GEMM shape on each
array size (no stalls, from the first step in to the last row out) into ``build/efficiency/RxC.json``;
the controller testbench counts whole GEMM instructions, operands streaming from the buffers and
results written back, into ``build/efficiency/program-RxC.json``. This module prints both against
the ideal of ``R·C`` MACs per cycle.
"""

from __future__ import annotations

import json
import sys

from sim.runner import BUILD

__all__ = ["load", "table"]

TARGET = 0.90


def load(pattern: str = "[0-9]*x[0-9]*.json") -> list[dict]:
    rows = []
    for path in sorted(BUILD.glob(f"efficiency/{pattern}")):
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
    array, program = load(), load("program-*.json")
    if not array and not program:
        print("no efficiency figures yet: run `make sim` first", file=sys.stderr)
        return 1
    print("The systolic array alone:\n")
    print(table(array))
    print("\nGEMM instructions of a program (operands from the buffers, results written back):\n")
    print(table(program))
    short = [r for r in array + program if r["k"] >= 4 * max(r["rows"], r["cols"])
             and r["n"] >= 4 * r["cols"] and r["efficiency"] < TARGET]
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
