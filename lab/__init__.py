"""``python -m lab`` (``make lab``): how is a neural net parallelised on a chip? Measured, not asserted.

Every figure of ``docs/lab.md`` comes from runs on the device: the virtual board (the real gateware
under Verilator, which counts cycles) or the golden model (``--target model``, bit-identical, no
cycle counts). The lab is a list of sections, one module each, named in :data:`SECTIONS`. A section
module provides

- ``TITLE: str``, the heading of its section;
- ``Figures``, the dataclass of its figures (with a ``seconds`` field, the wall time of measuring);
- ``measure() -> Figures``: run the experiment and return its figures;
- ``render(figures: Figures, plots: pathlib.Path) -> str``: its Markdown section (without the heading)
  from ``templates/NAME.md.j2``, drawing its plots into ``plots`` and linking them as ``lab/<file>``.

:mod:`lab.__main__` measures the selected sections, keeps every section's figures in
``lab/results.json`` (a section not measured in this run keeps its earlier figures), writes
``docs/lab.md`` with the plots in ``docs/lab/``, and the simulators' output in ``build/lab/NAME.log``.
"""

from pathlib import Path

__all__ = ["SECTIONS", "ROOT", "DOCS", "PLOTS", "RESULTS", "LOGS", "TEMPLATES"]

SECTIONS = ("parallelism", "activations", "neurons", "rounding", "cluster")
"""The section modules of :mod:`lab`, in the order of ``docs/lab.md``."""

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "lab.md"
PLOTS = ROOT / "docs" / "lab"
RESULTS = ROOT / "lab" / "results.json"
LOGS = ROOT / "build" / "lab"
"""Simulator output of each section, in ``NAME.log``."""
TEMPLATES = ROOT / "lab" / "templates"
"""The page's template (``lab.md.j2``) and each section's (``NAME.md.j2``)."""
