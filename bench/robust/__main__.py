"""``python -m bench.robust [--render]``: run the robustness grid (or only render it) and write the page."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import report
from bench.robust import page
from bench.robust.grid import EPOCHS, SEEDS, grid, run_all
from bench.robust.records import Grid, Run

ROOT = Path(__file__).resolve().parent.parent.parent


def _progress(run: Run) -> None:
    print(f"{run.case.label:28} seed {run.case.seed}: device {report.percent(run.device[-1], 2):>8}, "
          f"float32 {report.percent(run.float32[-1], 2):>8}, worst gap {run.worst_gap:5.2f}"
          f"{', COLLAPSED' if run.collapsed else ''} ({run.seconds:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.robust", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per case (1 … 3)")
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--out", default=str(ROOT), help="folder for bench/robust.json and docs/")
    parser.add_argument("--render", action="store_true",
                        help="only write the page and the plot again from bench/robust.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    record = out / "bench" / "robust.json"
    if args.render:
        result = report.read_json(record, Grid)
    else:
        cases = [c for c in grid(SEEDS[:args.seeds]) if not args.only or args.only in c.label]
        began = time.monotonic()
        runs = run_all(cases, args.epochs, progress=_progress)
        result = Grid(time.monotonic() - began, os.cpu_count() or 1, runs)
        report.write_json(record, result)
    print(page.write(result, out).split("![")[0])
    return 1 if result.summary.collapses else 0


if __name__ == "__main__":
    sys.exit(main())
