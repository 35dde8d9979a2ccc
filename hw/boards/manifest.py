"""Prebuilt bitstreams: ``bitstreams/`` and its ``manifest.json``.

``python -m hw.boards.manifest record BOARD`` copies the bitstream that ``make bitstream BOARD=…``
left in ``build/boards/BOARD`` to ``bitstreams/BOARD.bin`` (iCE40) or ``.bit`` (ECP5) and records it
in the manifest: the board, its device configuration, clock and baud, the resource use and fmax
nextpnr reported, the build time, the versions of the tools, the git commit of the gateware and the
file's sha256. Only a build of committed gateware that fits and meets timing is recorded.
``python -m hw.boards.manifest check`` verifies every entry against its file, against the board table
(:data:`hw.boards.BOARDS`) and that its gateware was committed. The manifest is written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from . import BOARDS, board
from .build import ROOT

__all__ = ["BITSTREAMS", "MANIFEST", "sha256", "entry", "record", "check", "main"]

BITSTREAMS = ROOT / "bitstreams"
MANIFEST = BITSTREAMS / "manifest.json"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entry(name: str, build: dict, bitstream: Path) -> dict:
    """The manifest entry of ``bitstream``, built for board ``name`` with the report ``build`` (the
    ``report.json`` of :mod:`hw.boards.build`)."""
    target = board(name)
    return {"board": name, "file": bitstream.name, "config": asdict(target.config),
            "rows": target.config.rows, "cols": target.config.cols, "clk_hz": target.config.clk_hz,
            "baud": target.config.baud, "resources": build["resources"], "fmax": build["fmax"],
            "build_seconds": build["seconds"], "tools": build["tools"],
            "commit": build["commit"], "sha256": sha256(bitstream)}


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(path: Path, manifest: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(dict(sorted(manifest.items())), f, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record(name: str, build_dir: Path, folder: Path = BITSTREAMS) -> dict:
    """Copy ``build_dir``'s bitstream of board ``name`` into ``folder`` and record it in its manifest.

    Raises
    ------
    ValueError
        If there is no finished build in ``build_dir``, it does not fit or misses timing, or its
        gateware was not committed.
    """
    target = board(name)
    report_path, bitstream = build_dir / "report.json", build_dir / f"top.{target.bitstream}"
    if not report_path.exists() or not bitstream.exists():
        raise ValueError(f"no finished build in {build_dir}: run make bitstream BOARD={name} first")
    build = json.loads(report_path.read_text())
    if build["config"] != asdict(target.config):
        raise ValueError(f"{build_dir} was built with another configuration than the board table's: "
                         f"build it again")
    if not build["fits"] or not build["timing_met"]:
        raise ValueError(f"the build in {build_dir} does not fit or misses timing: not recorded")
    if build["commit"].endswith("+dirty"):
        raise ValueError(f"the build in {build_dir} is of uncommitted gateware: commit hw/, then build "
                         "it again")
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{name}.{target.bitstream}"
    shutil.copyfile(bitstream, copy)
    manifest = _load(folder / "manifest.json")
    manifest[name] = entry(name, build, copy)
    _write(folder / "manifest.json", manifest)
    return manifest[name]


def check(folder: Path = BITSTREAMS) -> list[str]:
    """Every disagreement between ``folder``'s manifest, its files and the board table, and every
    entry of uncommitted gateware (none: ``[]``)."""
    problems = []
    for name, item in _load(folder / "manifest.json").items():
        path = folder / item["file"]
        if name not in BOARDS:
            problems.append(f"{name}: no such board in hw.boards.BOARDS")
            continue
        if not path.exists():
            problems.append(f"{name}: {path.name} is missing")
        elif sha256(path) != item["sha256"]:
            problems.append(f"{name}: {path.name} does not match its sha256")
        if item["config"] != asdict(BOARDS[name].config):
            problems.append(f"{name}: built with {item['config']}, the board table now says "
                            f"{asdict(BOARDS[name].config)}: rebuild and record it")
        if item["commit"].endswith("+dirty"):
            problems.append(f"{name}: built from uncommitted gateware ({item['commit']}): rebuild and "
                            "record it")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw.boards.manifest", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="copy a finished build into bitstreams/ and record it")
    rec.add_argument("board", choices=list(BOARDS), metavar="BOARD", help=", ".join(BOARDS))
    rec.add_argument("--build-dir", type=Path, help="default: build/boards/BOARD")
    sub.add_parser("check", help="verify bitstreams/manifest.json against its files and the board table")
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{len(_load(MANIFEST))} bitstreams, {len(problems)} problems")
        return 1 if problems else 0
    try:
        item = record(args.board, args.build_dir or ROOT / "build" / "boards" / args.board)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"bitstreams/{item['file']} recorded (sha256 {item['sha256'][:16]}…, commit {item['commit'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
