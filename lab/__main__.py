"""``python -m lab [--only SECTION …] [--render]``: measure the lab's sections and write ``docs/lab.md``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from types import ModuleType

from bench.measure import quiet
from lab import DOCS, LOGS, PLOTS, RESULTS, ROOT, SECTIONS

CMD = "python -m lab"

INTRO = """# The lab: how is a neural net parallelised on a chip?

Written by `make lab` (`python -m lab`); the raw figures are in `lab/results.json`. Each section
asks one question about training a network on the device and answers it with figures measured on
the device itself: cycle counts from the virtual board (the real gateware simulated by Verilator,
reporting the cycles of every `RUN`) and accuracies from the golden model (`--target model`,
bit-identical to the gateware). Every table and plot names the command that made it;
`python -m lab --only SECTION` measures one section again and rewrites this page with the other
sections' earlier figures.
"""


def sections(names: tuple[str, ...] = SECTIONS) -> dict[str, ModuleType]:
    """The section modules by name, in the order of :data:`lab.SECTIONS`."""
    return {name: importlib.import_module(f"lab.{name}") for name in SECTIONS if name in names}


def document(results: dict, plots: Path = PLOTS) -> str:
    """``docs/lab.md`` from every section's figures (sections without figures are left out), drawing
    the plots into ``plots``."""
    parts = [INTRO]
    for name, module in sections().items():
        if name in results:
            parts.append(f"## {module.TITLE}\n\n{module.render(results[name], plots)}")
    return "\n".join(parts)


def _measure(name: str, module: ModuleType) -> dict:
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
    figures["seconds"] = time.monotonic() - began
    print(f"{name}: {figures['seconds'] / 60:.1f} min", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=CMD, description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"measure only this section (repeatable; default all: {', '.join(SECTIONS)})")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: rewrite docs/lab.md and its plots from lab/results.json")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name, module in sections(() if args.render else tuple(args.only or SECTIONS)).items():
        results[name] = _measure(name, module)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    DOCS.write_text(document(results))
    print(f"{DOCS.relative_to(ROOT)} and {PLOTS.relative_to(ROOT)}/ written from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
