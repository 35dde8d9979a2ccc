"""A compile cache for the Verilator runtime, whose objects are the same in every model build.

Every Verilator build compiles the runtime (``verilated.cpp``, ``verilated_vpi.cpp``, …) again, about
ten seconds of a build that compiles the model itself in one or two. Verilator's makefile runs each
compile as ``$(OBJCACHE) $(CXX) … -c -o NAME.o SOURCE``; :mod:`sim.runner` sets ``OBJCACHE`` to
this script. A compile of a runtime file (an absolute ``verilated*.cpp``) is kept in ``cache`` under
a hash of its command line and of the stamps of its source and compiler, with the dependency file
``NAME.d`` the compiler writes beside it; the next build with the same command copies both. Every
other compile (the model's) runs as it is.

Usage: ``objcache.py CACHE COMPILER ARGS…``
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _stamp(path: str) -> list[int]:
    status = os.stat(path)
    return [status.st_mtime_ns, status.st_size]


def key(command: list[str]) -> str | None:
    """The cache key of a runtime compile, or ``None`` for a compile that is not cached."""
    source = command[-1]
    if "-c" not in command or "-o" not in command or not os.path.isabs(source) \
            or not os.path.basename(source).startswith("verilated"):
        return None
    compiler = shutil.which(command[0]) or command[0]
    return hashlib.sha256(json.dumps([command, _stamp(source), _stamp(compiler)]).encode()).hexdigest()[:24]


def compile_cached(cache: Path, command: list[str]) -> int:
    """Run ``command`` (a compile), or copy its outputs from ``cache``; the compiler's exit status."""
    found = key(command)
    if found is None:
        return subprocess.run(command).returncode
    output = Path(command[command.index("-o") + 1])
    outputs = [output, output.with_suffix(".d")]
    entry = cache / found
    if entry.is_dir():
        for path in outputs:
            shutil.copyfile(entry / path.name, path)
        return 0
    status = subprocess.run(command).returncode
    if status == 0 and all(path.exists() for path in outputs):
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache))
        for path in outputs:
            shutil.copyfile(path, staging / path.name)
        try:
            staging.rename(entry)            # atomic; a parallel build may have stored it first
        except OSError:
            shutil.rmtree(staging)
    return status


if __name__ == "__main__":
    sys.exit(compile_cached(Path(sys.argv[1]), sys.argv[2:]))
