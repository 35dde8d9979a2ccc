"""Parallelism: cycles of a digits training step as the array and the minibatch grow.

The digits MLP (64-32-10, ReLU, softmax) is compiled for square arrays of 1×1 to 8×8 cells, each
device with buffers deep enough for the largest minibatch, and one training step is run and
profiled on the virtual board at every minibatch of :data:`BATCHES`: ``RunReply.cycles`` of the
``train`` entry, split by instruction with :func:`bench.measure.profile_step`, and checked against
real training steps on digits minibatches (cycle counts do not depend on the data). The driver's
byte counters give the link traffic of those steps.

This module measures; :mod:`lab.parallelism_records` holds the figures (:class:`Figures`) and the
arithmetic on them, :mod:`lab.parallelism_findings` the figures the prose quotes,
:mod:`lab.parallelism_plots` the plots, and ``lab/templates/parallelism.md.j2`` the prose.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from bench import report
from bench.measure import DIGITS, UART_BITS, SimStats, profile_step, resident_epoch, train_steps, virtual
from host.compiler import Network, compile_network
from host.data import Dataset, digits
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig
from lab import TEMPLATES
from lab.parallelism_findings import Findings
from lab.parallelism_plots import draw
from lab.parallelism_records import BATCH, ArrayRun, Board, Figures, Resident, Step, board_table

__all__ = ["TITLE", "ARRAYS", "BATCHES", "STEPS", "CMD", "Figures", "device", "measure", "render"]

TITLE = "Parallelism: what a bigger array and a bigger minibatch buy"
ARRAYS = ((1, 1), (2, 2), (4, 4), (8, 8))
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
STEPS = 2
"""Real training steps per (array, minibatch), to check the profiled cycles and count link bytes."""
DATA_DEPTH = 1 << 16
"""The data memory of the resident epochs' devices (the digits training set needs about 44.5 K words)."""
CMD = "python -m lab --only parallelism"


# -- measuring ---------------------------------------------------------------------------------------


def device(rows: int, cols: int, batch: int = max(BATCHES)) -> DeviceConfig:
    """An ``rows × cols`` device with the shallowest power-of-two buffers the digits MLP at ``batch`` fits.

    Raises
    ------
    ValueError
        The compiler's error, if no depth up to 2¹⁶ words per bank fits.
    """
    for shift in range(10, 17):
        config = DeviceConfig(rows=rows, cols=cols, depth=1 << shift)
        try:
            compile_network(Network(DIGITS, batch=batch), config)
        except ValueError as error:
            last = error
            continue
        return config
    raise last


def _step(driver: Driver, batch: int, train: Dataset) -> Step:
    """Profile of the training step at minibatch ``batch``, checked against :data:`STEPS` real ones."""
    trainer = Trainer(driver, Network(DIGITS, batch=batch), seed=0)
    trainer.load(trainer.initial_weights())
    sent, received, cycles = train_steps(driver, trainer, train, STEPS)
    profile = profile_step(driver, trainer.program)
    if set(cycles) != {profile.cycles}:
        raise RuntimeError(f"{profile.rows}×{profile.cols}, minibatch {batch}: training steps took {cycles} "
                           f"cycles, the profiled step {profile.cycles}: cycle counts depend on the data")
    return Step(**vars(profile), bytes_in=sent, bytes_out=received)


def _resident(rows: int, cols: int, train: Dataset) -> Resident:
    """The second resident digits epoch at :data:`BATCH` on the ``rows × cols`` device with a data memory."""
    config = dataclasses.replace(device(rows, cols, BATCH), data_depth=DATA_DEPTH)
    with virtual(config) as driver:
        samples, link, cycles, _ = resident_epoch(driver, Network(DIGITS, batch=BATCH), train)
    return Resident(rows, cols, samples, link, cycles)


def measure() -> Figures:
    """Every (array, minibatch) step, each array's device, timings and resident epoch, and the boards'
    clocks."""
    from hw.boards import BOARDS

    train, _ = digits(seed=0)
    steps, arrays = [], []
    for rows, cols in ARRAYS:
        config = device(rows, cols)
        began = time.monotonic()
        stats: list[SimStats] = []
        with virtual(config, stats) as driver:
            started = time.monotonic() - began
            steps += [_step(driver, m, train) for m in BATCHES]
        arrays.append(ArrayRun(rows, cols, config.depth, started, time.monotonic() - began, stats[0]))
    return Figures(steps, arrays, [Board(name, b.config.rows, b.config.cols, b.config.clk_hz, b.config.baud)
                                   for name, b in BOARDS.items()],
                   [_resident(rows, cols, train) for rows, cols in ARRAYS])


# -- the section -------------------------------------------------------------------------------------


def render(r: Figures, plots: Path) -> str:
    """The section's Markdown from :func:`measure`'s figures; plots go to ``plots``."""
    return report.render(TEMPLATES, "parallelism.md.j2", r=r, f=Findings.of(r),
                         plots=draw(r.steps, plots, CMD), cmd=CMD, steps_checked=STEPS, batch=BATCH,
                         uart_bits=UART_BITS, classes=DIGITS[-1], net="-".join(map(str, DIGITS)),
                         nan=math.nan, resident=sorted(r.resident, key=lambda e: e.rows * e.cols),
                         boards=board_table(r), data_depth=DATA_DEPTH)
