"""``python -m lab [--only SECTION …] [--render]``: measure the lab's sections and write ``docs/lab.md``."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import report
from bench.measure import quiet
from lab import DOCS, LOGS, PLOTS, RESULTS, ROOT, SECTIONS, TEMPLATES

CMD = "python -m lab"


def sections(names: tuple[str, ...] = SECTIONS) -> dict[str, ModuleType]:
    """The section modules by name, in the order of :data:`lab.SECTIONS`."""
    return {name: importlib.import_module(f"lab.{name}") for name in SECTIONS if name in names}


def read(path: Path = RESULTS) -> dict[str, Any]:
    """Each section's figures in ``path`` (a section's ``Figures``), by name."""
    raw = json.loads(path.read_text()) if path.exists() else {}
    return {name: report.from_dict(module.Figures, raw[name]) for name, module in sections().items()
            if name in raw}


def document(results: dict[str, Any], plots: Path = PLOTS) -> str:
    """``docs/lab.md`` from every section's figures (sections without figures are left out), drawing
    the plots into ``plots``."""
    return report.render(TEMPLATES, "lab.md.j2", sections=[
        (module.TITLE, module.render(results[name], plots)) for name, module in sections().items()
        if name in results])


def _measure(name: str, module: ModuleType) -> Any:
    """One section's figures, the simulators' output in ``build/lab/NAME.log``, with its wall time."""
    log = LOGS / f"{name}.log"
    print(f"{name}: measuring (simulator output in {log.relative_to(ROOT)})", flush=True)
    began = time.monotonic()
    try:
        with quiet(log):
            figures = module.measure()
    except Exception:
        print(f"{name} failed; the simulators' output is in {log.relative_to(ROOT)}", file=sys.stderr)
        raise
    figures = dataclasses.replace(figures, seconds=time.monotonic() - began)
    print(f"{name}: {report.minutes(figures.seconds)}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=CMD, description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"measure only this section (repeatable; default all: {', '.join(SECTIONS)})")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite docs/lab.md and its plots from lab/results.json")
    args = parser.parse_args(argv)
    results = read()
    for name, module in sections(() if args.render else tuple(args.only or SECTIONS)).items():
        results[name] = _measure(name, module)
        report.write_json(RESULTS, results)
    DOCS.write_text(document(results))
    print(f"{DOCS.relative_to(ROOT)} and {PLOTS.relative_to(ROOT)}/ written from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
