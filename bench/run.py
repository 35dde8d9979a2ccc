"""``python -m bench [--render]``: measure every target of the brief that exists today and write the table.

Order of work (about 5–10 minutes on 2 cores once the simulators are built; building them the first
time adds a few minutes):

1. the array and GEMM-instruction efficiency testbenches on every distinct board array (2×4, 4×4,
   8×8; cocotb, Verilator): a K sweep, and the GEMMs of the digits training step one by one;
2. the virtual board with the default device (4×4): a training step at minibatch 1, 8 and 32, each
   profiled instruction by instruction, link bytes of training and inference, then one whole
   ``systolic train`` run (seed 0) for the epoch time, the simulation speed and the identity check;
3. the virtual board with a deeper 4×4 device for minibatch 128, and each board's own device (its
   array, vector lanes, multipliers and data memory) at minibatch 32, for the boards the digits MLP
   fits: a streamed step, and an epoch with the training set resident where it fits the data memory
   (as on the default device with a data memory for it);
4. the golden model (``--target model``, bit-identical): the same run for the epoch-time ratio, and
   three seeds against the float32 reference for accuracy;
5. none: the bitstreams are judged as ``bitstreams/manifest.json`` records them when the table is
   written, so that ``--render`` shows the bitstreams of the day.

The figures go to ``bench/results.json`` (:class:`~bench.records.Results`); :mod:`bench.judge` sets them
against the targets, and the table goes to standard output and, through :mod:`bench.page` and
:mod:`bench.plots`, to ``docs/benchmarks.md`` and ``docs/bench/``. ``--render`` measures nothing and
writes the table, the page and the plots again from ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import judge, measure, page, report
from bench.records import (
    BOARD_BATCH,
    Accuracy,
    BoardModel,
    DeviceStep,
    EpochTimes,
    Identity,
    ResidentEpoch,
    Results,
    SeedAccuracy,
    manifest,
)
from bench.table import text
from host.compiler import Network, compile_network
from host.data import digits
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig

__all__ = ["main", "measure_all"]

ROOT = Path(__file__).resolve().parent.parent
DOCS, PLOTS = ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "bench"
RESULTS = ROOT / "bench" / "results.json"
MANIFEST = ROOT / "bitstreams" / "manifest.json"
LOG = ROOT / "build" / "bench.log"
BATCHES = (1, 8, 32, 128)
DEEP = DeviceConfig(depth=8192)
"""The default device with buffers deep enough for minibatch 128 (the default holds up to 32)."""
RESIDENT = DeviceConfig(data_depth=1 << 16)
"""The default device with a data memory for the digits training set."""
JITTER = 0.001
"""How far a training step's cycles may stray from its profile (a share of them)."""


def _boards() -> list[tuple[str, DeviceConfig]]:
    """The boards of ``hw.boards`` (iCEBreaker at 12 MHz, ULX3S from its 25 MHz oscillator)."""
    from hw.boards import BOARDS

    return [(name, b.config) for name, b in BOARDS.items()]


def _device(name: str, config: DeviceConfig) -> str:
    """How the step tables name a device: ``4×4``, or a board and how its units are built."""
    parts = [f"{config.rows}×{config.cols}"]
    if config.vector_lanes not in (None, config.cols):
        parts.append(f"{config.vector_lanes} vector lane{'s' * (config.vector_lanes != 1)}")
    if config.serial_multipliers:
        parts.append("serial multipliers")
    described = ", ".join(parts)
    return f"{name}: {described}" if name else described


def _fitting_boards() -> dict[str, DeviceConfig | str]:
    """Each board's device, or why the digits MLP at minibatch :data:`BOARD_BATCH` does not fit it."""
    out: dict[str, DeviceConfig | str] = {}
    for name, config in _boards():
        try:
            compile_network(Network(measure.DIGITS, batch=BOARD_BATCH), config)
        except ValueError as error:
            out[name] = f"the digits MLP at minibatch {BOARD_BATCH} does not fit: {str(error).split(':')[0]}"
        else:
            out[name] = config
    return out


def _board_models(fitting: dict[str, DeviceConfig | str], profiles: dict[str, measure.StepProfile],
                  bytes_per_step: float) -> list[BoardModel]:
    """Samples/s of a training step on each board from its clock, baud and the measured cycles
    (``fitting`` from :func:`_fitting_boards`, ``profiles`` of the boards that fit).

    The link protocol is request–reply: the ``WRITE`` frames, the ``RUN`` and every reply follow one
    another, and the array computes only between the ``RUN`` frame and its reply. So a step takes
    ``bytes · 10 / baud`` on the line plus ``cycles / f_clk`` on the array (USB latency excluded), and
    the line is in use for the first share of it.
    """
    out = []
    for name, config in _boards():
        if name not in profiles:
            out.append(BoardModel(name, config.rows, config.cols, config.clk_hz, config.baud, fitting[name]))
            continue
        line_s = bytes_per_step * measure.UART_BITS / config.baud
        out.append(BoardModel(name, config.rows, config.cols, config.clk_hz, config.baud, "", line_s,
                              profiles[name].cycles / config.clk_hz))
    return out


def _resident(name: str, config: DeviceConfig, train) -> ResidentEpoch:
    """A resident digits epoch on the virtual board of ``config`` (``name``: the board, or the default
    device), or why it cannot be one."""
    from host.train import resident_problem, starting_formats

    network = Network(measure.DIGITS, batch=BOARD_BATCH)
    epoch = functools.partial(ResidentEpoch, name or _device("", config), config.rows, config.cols,
                              config.clk_hz, config.baud)
    try:
        compile_network(network, config)
    except ValueError as error:
        return epoch(f"the digits MLP does not fit: {str(error).split(':')[0]}")
    problem = (resident_problem(network, starting_formats(network, train.x, 0), train, config)
               if config.data_depth else "no data memory")
    if problem:
        return epoch(problem)
    with measure.virtual(config) as driver:
        return epoch("", *measure.resident_epoch(driver, network, train))


def _steps(driver: Driver, batches: tuple[int, ...], train, test) -> tuple[
        dict[int, measure.StepProfile], dict[int, measure.LinkBytes]]:
    """Profile and link bytes of the training step at each minibatch size on one device.

    A step's cycles do not depend on the data, which the profile (:func:`measure.profile_step`)
    relies on; with serial multipliers they vary by a few cycles with where the multipliers' cycle
    counter stands when an instruction starts, which :data:`JITTER` bounds.
    """
    profiles, links = {}, {}
    for m in batches:
        trainer = Trainer(driver, Network(measure.DIGITS, batch=m), seed=0)
        trainer.load(trainer.initial_weights())
        links[m], cycles = measure.link_bytes(driver, trainer, train, test, steps=4)
        profile = measure.profile_step(driver, trainer.program)
        if max(abs(c - profile.cycles) for c in cycles) > JITTER * profile.cycles:
            raise RuntimeError(f"minibatch {m}: training steps took {cycles} cycles, the profiled step "
                               f"{profile.cycles}: cycle counts depend on the data")
        profiles[m] = profile
    return profiles, links


def _on(device: str, profile: measure.StepProfile) -> DeviceStep:
    return DeviceStep(**vars(profile), device=device)


def _accuracy(epochs: int, seeds: int) -> tuple[Accuracy, measure.TrainRun]:
    """Device (golden model) and float32 accuracy at each seed, and the seed-0 run on the model."""
    runs = []
    for seed in range(seeds):
        train, test = digits(seed=seed)
        with Driver.open("model", config=DeviceConfig()) as driver:
            run = measure.train_run(driver, Network(measure.DIGITS), train, test, seed, epochs)
        float32 = measure.reference_accuracy(Network(measure.DIGITS), run.start, train, test, seed, epochs)
        runs.append((run, SeedAccuracy(seed, run.accuracy, float32)))
    return Accuracy(epochs, [a for _, a in runs]), runs[0][0]


def measure_all(epochs: int, seeds: int) -> Results:
    """Every measurement, in the order of the module docstring."""
    train, test = digits(seed=0)
    efficiency = measure.array_efficiency()
    stats: list[measure.SimStats] = []
    with measure.virtual(DeviceConfig(), stats) as driver:
        profiles, links = _steps(driver, tuple(m for m in BATCHES if m <= 32), train, test)
        virtual_run = measure.train_run(driver, Network(measure.DIGITS), train, test, 0, epochs)
    with measure.virtual(DEEP) as driver:
        more, _ = _steps(driver, tuple(m for m in BATCHES if m > 32), train, test)
    default = _device("", DeviceConfig())
    steps = [_on(default, p) for p in (*profiles.values(), *more.values())]
    board_profiles: dict[str, measure.StepProfile] = {}
    fitting = _fitting_boards()
    for name, config in fitting.items():
        if isinstance(config, DeviceConfig):
            with measure.virtual(config) as driver:
                board_profiles[name] = _steps(driver, (BOARD_BATCH,), train, test)[0][BOARD_BATCH]
            steps.append(_on(_device(name, config), board_profiles[name]))
    link = links[BOARD_BATCH]
    boards = _board_models(fitting, board_profiles, (link.train_in + link.train_out) * BOARD_BATCH)
    resident = [_resident(name, config, train) for name, config in [("", RESIDENT), *_boards()]]
    accuracy, model_run = _accuracy(epochs, seeds)
    same = all(np.array_equal(a, b) for a, b in zip(virtual_run.weights, model_run.weights, strict=True))
    return Results(efficiency, stats[0], steps, links, boards, resident, accuracy,
                   Identity(same, virtual_run.accuracy, model_run.accuracy),
                   EpochTimes(float(np.median(virtual_run.epoch_seconds)),
                              float(np.median(model_run.epoch_seconds))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=judge.CMD, description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of each training run (default 20)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the mean accuracy (default 3)")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write the table, docs/benchmarks.md and its plots from "
                             "bench/results.json")
    args = parser.parse_args(argv)
    if args.render:
        r = report.read_json(RESULTS, Results)
    else:
        began = time.monotonic()
        try:
            with measure.quiet(LOG):
                r = measure_all(args.epochs, args.seeds)
        except Exception:
            print(f"make bench failed; the simulators' output is in {LOG.relative_to(ROOT)}", file=sys.stderr)
            raise
        r = replace(r, seconds=time.monotonic() - began)
        report.write_json(RESULTS, r)
    bitstreams = manifest(MANIFEST)
    rows = judge.rows(r, bitstreams)
    print(text(rows))
    page.write(r, rows, bitstreams, DOCS, PLOTS)
    docs, plots, results = (path.relative_to(ROOT) for path in (DOCS, PLOTS, RESULTS))
    log = "" if args.render else f"; simulator output in {LOG.relative_to(ROOT)}"
    print(f"\n{docs} and {plots}/ written from {results} ({report.minutes(r.seconds)} of measuring){log}")
    return 0
