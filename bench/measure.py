"""The measurements: cocotb efficiency testbenches, training steps on the virtual board, the golden model.

Every figure here comes from running something in this process's session; nothing is read from an
earlier run. Cycle counts come from the gateware (``RunReply.cycles`` of the virtual board, or the
testbenches' own counters); the golden model reports no cycles and serves for accuracy and speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.gemms import (
    CONTROLLERS,
    DIGITS,
    TARGET,
    digits,
    gemm_kind,
    occupancy,
    program_gemms,
    setup_words,
    standalone,
    sweep,
    tiles,
)
from host.compiler import Network, Program
from host.data import Dataset, minibatches
from host.driver import Driver
from host.reference import Reference
from host.train import Trainer
from hw.config import DeviceConfig
from hw.isa import Instruction, Opcode, decode, instruction

__all__ = ["DIGITS", "UART_BITS", "SimStats", "GemmRun", "GemmProfile", "StepProfile", "LinkBytes",
           "TrainRun", "quiet", "virtual", "array_efficiency", "gemm_runs", "profile_step", "train_steps",
           "link_bytes", "step_macs", "resident_epoch", "train_run", "reference_accuracy", "gemm_kind"]

UART_BITS = 10
"""Bits on the line per byte: 8N1 is a start bit, 8 data bits and a stop bit."""


@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """Send this process's and its simulators' output (file descriptors 1 and 2) to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


@dataclass(frozen=True)
class SimStats:
    """How fast a virtual board simulated: cycles in seconds."""

    cycles: int
    seconds: float
    cycles_per_second: float


@contextlib.contextmanager
def virtual(config: DeviceConfig, stats: list[SimStats] | None = None) -> Iterator[Driver]:
    """A driver on a virtual board of ``config``; its statistics are appended to ``stats`` when it stops."""
    from sim.virtual import VirtualBoard

    board = VirtualBoard(config)
    with board as url, Driver.open(url, timeout=60.0) as driver:
        yield driver
    if stats is not None:
        stats.append(SimStats(**board.stats))


# -- 1. array efficiency -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GemmRun:
    """One GEMM of the efficiency testbenches: the array alone (``level="array"``) or a GEMM instruction
    through the controller (``"instruction"``, of ``family`` ``"sweep"`` or ``"digits"``)."""

    rows: int
    cols: int
    m: int
    k: int
    n: int
    cycles: int
    ideal: float
    efficiency: float
    level: str
    family: str | None = None
    kind: str | None = None
    ta: bool | None = None
    tb: bool | None = None

    @classmethod
    def of(cls, row: dict, level: str) -> GemmRun:
        """A row of a testbench's results file."""
        return cls(**row, level=level)

    @property
    def size(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def applies(self) -> bool:
        """The target's shapes: ``K ≥ 4·max(R, C)`` for the fill and drain, ``N ≥ 4·C`` for enough tiles."""
        return self.k >= 4 * max(self.rows, self.cols) and self.n >= 4 * self.cols

    @property
    def filled(self) -> bool:
        """``M`` and ``N`` are multiples of ``R`` and ``C``: no output tile is part-empty."""
        return self.m % self.rows == 0 and self.n % self.cols == 0

    @property
    def occupancy(self) -> float:
        """The share of the array's cells the output tiles keep busy."""
        return occupancy(self.m, self.n, self.rows, self.cols)

    @property
    def tile_cycles(self) -> float:
        """Cycles per output tile."""
        return self.cycles / tiles(self.m, self.n, self.rows, self.cols)

    @property
    def in_busy_cells(self) -> float:
        """The efficiency over the cells the output tiles keep busy."""
        return self.efficiency / self.occupancy

    @property
    def passes(self) -> bool:
        """At least :data:`~bench.gemms.TARGET` of ``R·C`` MACs per cycle."""
        return self.efficiency >= TARGET


def array_efficiency(arrays: tuple[tuple[int, int], ...] = tuple(CONTROLLERS)) -> list[GemmRun]:
    """GEMM cycles of each array size: the array alone and GEMM instructions through the controller.

    Runs the ``efficiency`` test of ``sim/tb_array.py`` (every shape of its M, K, N sweep streamed with
    no stalls) and the ``gemm_efficiency`` test of ``sim/tb_controller.py`` on the controller of
    :data:`~bench.gemms.CONTROLLERS` for each ``(rows, cols)``, with the GEMMs of :func:`gemm_runs`;
    both compare every result with the golden model.
    """
    from hw.array import SystolicArray
    from hw.controller import Controller
    from sim.runner import run

    rows: list[GemmRun] = []
    with tempfile.TemporaryDirectory(prefix="systolic-bench-") as tmp:
        for r, c in arrays:
            k_max = 8 * max(r, c)
            dut = SystolicArray(r, c, width=16, k_max=k_max)
            out = Path(tmp) / f"array-{r}x{c}.json"
            run(dut, f"array_{r}x{c}", "sim.tb_array",
                {"rows": r, "cols": c, "width": 16, "k_max": k_max, "acc_width": dut.acc_width,
                 "m_tiles": 2, "results": str(out)}, testcase="efficiency")
            rows += [GemmRun.of(row, "array") for row in json.loads(out.read_text())]
            config = CONTROLLERS[r, c]
            out = Path(tmp) / f"program-{r}x{c}.json"
            run(Controller(config), f"controller_{r}x{c}", "sim.tb_controller",
                {**asdict(config), "gemms": gemm_runs(config), "results": str(out)},
                testcase="gemm_efficiency")
            rows += [GemmRun.of(row, "instruction") for row in json.loads(out.read_text())]
    return rows


def gemm_runs(config: DeviceConfig) -> list[dict]:
    """The ``gemms`` parameter of ``gemm_efficiency``: the sweep, then the digits GEMMs, each a program."""
    program, gemms = digits(config.rows, config.cols)
    runs = [(g, "sweep", "A·B", ()) for g in sweep(config)]
    runs += [(g, "digits", g.kind, setup_words(program)) for g in gemms]
    return [{"family": family, "kind": kind, "m": g.m, "k": g.k, "n": g.n, "ta": g.ta, "tb": g.tb,
             "words": standalone(g, config.depth, prefix)} for g, family, kind, prefix in runs]


# -- 2. the training step, instruction by instruction ------------------------------------------------


@dataclass(frozen=True)
class GemmProfile:
    """A GEMM of a profiled step: its role, shape, cycles and the cycles it needs at ``R·C`` MACs/cycle."""

    kind: str
    m: int
    k: int
    n: int
    cycles: int
    ideal: float

    @property
    def efficiency(self) -> float:
        return self.ideal / self.cycles


@dataclass(frozen=True)
class StepProfile:
    """Cycles of one training step and where they go.

    Attributes
    ----------
    batch, rows, cols : int
    cycles : int
        RTL cycles of the ``train`` entry (``RUN`` to ``END``).
    gemm_ideal : float
        Cycles the step's GEMMs need at ``R·C`` MACs per cycle.
    kinds : dict[str, int]
        Cycles by instruction kind (:func:`gemm_kind`), ``"RUN + END"`` for the fixed cost.
    gemms : list[GemmProfile]
        Each GEMM of the step.
    """

    batch: int
    rows: int
    cols: int
    cycles: int
    gemm_ideal: float
    kinds: dict[str, int]
    gemms: list[GemmProfile]

    @property
    def busy(self) -> float:
        """Fraction of the step's cycles the array does useful MACs: GEMM MACs / (R·C) / cycles."""
        return self.gemm_ideal / self.cycles

    @property
    def per_sample(self) -> float:
        """Cycles per sample."""
        return self.cycles / self.batch

    def share(self, *kinds: str) -> float:
        """Fraction of the step's cycles spent in instructions of ``kinds``."""
        return sum(self.kinds.get(k, 0) for k in kinds) / self.cycles


def _opcode(word: int) -> Opcode:
    return Opcode(decode(Instruction(), word.to_bytes(8, "little")).op)


def profile_step(driver: Driver, program: Program) -> StepProfile:
    """Cycles of each instruction of the ``train`` entry, by running every prefix of it.

    The program is loaded; for each instruction ``i`` of the entry an ``END`` temporarily replaces it
    and the entry runs, so run ``i`` costs the first ``i`` instructions plus the fixed cost of ``RUN``
    and ``END`` (run 0). Instruction ``i`` costs the difference of runs ``i + 1`` and ``i``: its own
    cycles and whatever it fails to overlap with its predecessor. Cycle counts do not depend on the
    data, so the state the partial steps leave behind does not matter.
    """
    config = program.config
    end = program.words.index(instruction(Opcode.END), program.train)
    prefix = []
    for pc in range(program.train, end + 1):
        if pc < end:
            driver.program([instruction(Opcode.END)], pc)
        prefix.append(driver.run(program.train).cycles)
        if pc < end:
            driver.program([program.words[pc]], pc)
    kinds: dict[str, int] = defaultdict(int)
    kinds["RUN + END"] = prefix[0]
    found = program_gemms(program)
    gemms = []
    for pc in range(program.train, end):
        cost = prefix[pc - program.train + 1] - prefix[pc - program.train]
        if pc in found:
            g = found[pc]
            kinds[g.kind] += cost
            ideal = g.m * g.k * g.n / (config.rows * config.cols)
            gemms.append(GemmProfile(g.kind, g.m, g.k, g.n, cost, ideal))
        else:
            kinds[_opcode(program.words[pc]).name] += cost
    return StepProfile(program.network.batch, config.rows, config.cols, prefix[-1],
                       sum(g.ideal for g in gemms), dict(kinds), gemms)


@dataclass(frozen=True)
class LinkBytes:
    """Wire bytes per sample each way (frames, delimiters and replies included)."""

    train_in: float
    train_out: float
    infer_in: float
    infer_out: float


def train_steps(driver: Driver, trainer: Trainer, train: Dataset, steps: int) -> tuple[
        float, float, list[int]]:
    """Bytes per sample each way of ``steps`` training steps on ``train``, and each step's cycles.

    Counted by the driver: one ``WRITE`` of the inputs, one of the labels and one ``RUN`` per step,
    replies included.
    """
    m = trainer.network.batch
    driver.reset_stats()
    cycles = []
    batches = minibatches(train, m, np.random.default_rng(0))
    for _, (x, y) in zip(range(steps), batches, strict=False):
        trainer.write(trainer.program.batch_writes(x, y))
        cycles.append(driver.run(trainer.program.train, trainer.program.output).cycles)
    return driver.bytes_sent / (steps * m), driver.bytes_received / (steps * m), cycles


def link_bytes(driver: Driver, trainer: Trainer, train: Dataset, test: Dataset, steps: int) -> tuple[
        LinkBytes, list[int]]:
    """Bytes per sample of ``steps`` training steps and of inference over ``test``, and the steps' cycles.

    Training is counted by :func:`train_steps`; inference writes no labels. The test set's last
    minibatch is padded, so inference is counted per sample actually sent.
    """
    sent, received, cycles = train_steps(driver, trainer, train, steps)
    m = trainer.network.batch
    driver.reset_stats()
    sent_samples = -(-len(test) // m) * m
    trainer.predict(test.x)
    return LinkBytes(sent, received, driver.bytes_sent / sent_samples,
                     driver.bytes_received / sent_samples), cycles


def step_macs(network: Network) -> int:
    """Multiply-accumulates of a training step's GEMMs: ``Z = W·[A; 1]`` and ``W −= α/m·dZ·[A; 1]ᵀ``
    per layer, ``Wᵀ·dZ`` below the first."""
    m, sizes = network.batch, network.sizes
    weights = sum(n * (n_in + 1) for n_in, n in zip(sizes[:-1], sizes[1:], strict=True))
    return m * (2 * weights + sum(n_in * n for n_in, n in zip(sizes[1:-1], sizes[2:], strict=True)))


def resident_epoch(driver: Driver, network: Network, train: Dataset) -> tuple[int, int, int, int]:
    """The second digits epoch with the training set resident (the first moves formats): samples
    trained, link bytes both ways, ``RUN`` cycles and the MACs of its steps."""
    trainer = Trainer(driver, network, 0, x=train.x, resident=train)
    trainer.load(trainer.initial_weights())
    rng = np.random.default_rng(0)
    trainer.train_epoch(train, rng, 1)
    driver.reset_stats()
    trainer.train_epoch(train, rng, 2)
    steps = len(train) // network.batch
    return (steps * network.batch, driver.bytes_sent + driver.bytes_received, driver.stats.cycles,
            steps * step_macs(network))


# -- 4 and 5. whole training runs ---------------------------------------------------------------------


@dataclass
class TrainRun:
    """A training run of the digits MLP: test accuracy, wall time per epoch, initial and final raw weights,
    and the initial weights in real units (``start``)."""

    seed: int
    accuracy: float
    epoch_seconds: list[float]
    initial: list[np.ndarray] = field(repr=False)
    weights: list[np.ndarray] = field(repr=False)
    start: list[np.ndarray] = field(repr=False)


def train_run(driver: Driver, network: Network, train: Dataset, test: Dataset, seed: int,
              epochs: int) -> TrainRun:
    """``systolic train`` without the printing: each epoch's wall time covers its test-set inference."""
    trainer = Trainer(driver, network, seed, x=train.x)
    initial = trainer.initial_weights()
    trainer.load(initial)
    rng, seconds = np.random.default_rng(seed), []
    for epoch in range(1, epochs + 1):
        began = time.perf_counter()
        trainer.train_epoch(train, rng, epoch)
        trainer.predict(test.x)
        seconds.append(time.perf_counter() - began)
    accuracy = float(np.mean(trainer.predict(test.x) == test.y))
    return TrainRun(seed, accuracy, seconds, initial, trainer.weights(), trainer.program.dequantize(initial))


def reference_accuracy(network: Network, start: list[np.ndarray], train: Dataset, test: Dataset,
                       seed: int, epochs: int) -> float:
    """Test accuracy of the float32 reference from the same initial weights (``start``, real), in the
    same data order."""
    ref = Reference(network, start)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        ref.train_epoch(train, rng)
    return float(np.mean(ref.predict(test.x) == test.y))
