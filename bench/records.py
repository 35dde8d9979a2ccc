"""The records of ``make bench``: what :mod:`bench.run` measures, kept in ``bench/results.json``, and the
bitstreams of ``bitstreams/manifest.json`` it judges the board targets on.

Figures that follow from others are properties; those a reader of the JSON wants are named in a
class's ``DERIVED`` and written beside the fields (never read back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import report
from bench.measure import UART_BITS, GemmRun, LinkBytes, SimStats, StepProfile
from hw.boards.build import Resource

__all__ = ["BOARD_BATCH", "DeviceStep", "BoardModel", "ResidentEpoch", "SeedAccuracy", "Accuracy", "Identity",
           "EpochTimes", "Results", "Clock", "Bitstream", "manifest"]

BOARD_BATCH = 32
"""The minibatch of the board models and the link figures."""


@dataclass(frozen=True)
class DeviceStep(StepProfile):
    """A profiled training step and the device it ran on (``4×4``, or a board and its units)."""

    device: str


@dataclass(frozen=True)
class BoardModel:
    """Modelled training throughput on one board: line and array time of a step at
    :data:`BOARD_BATCH`, or why the digits MLP does not fit the board (``fits``)."""

    DERIVED = ("samples_per_s", "line_use")

    name: str
    rows: int
    cols: int
    clk_hz: int
    baud: int
    fits: str
    link_s: float = math.nan
    compute_s: float = math.nan

    @property
    def samples_per_s(self) -> float:
        return BOARD_BATCH / (self.link_s + self.compute_s)

    @property
    def line_use(self) -> float:
        return self.link_s / (self.link_s + self.compute_s)

    @property
    def link_bound(self) -> bool:
        return self.link_s >= self.compute_s


@dataclass(frozen=True)
class ResidentEpoch:
    """A digits epoch at :data:`BOARD_BATCH` with the training set resident on a device (``device``: a
    board, or the default 4×4 device): the samples trained, the link bytes and ``RUN`` cycles of the
    epoch, the MACs its GEMMs did, and the board's clock, baud and array; or why the set does not fit
    (``fits``). Samples/s model the board: the bytes at its baud, then the cycles at its clock."""

    DERIVED = ("samples_per_s", "bytes_per_sample", "line_share", "efficiency")

    device: str
    rows: int
    cols: int
    clk_hz: int
    baud: int
    fits: str
    samples: int = 0
    bytes: int = 0
    cycles: int = 0
    macs: int = 0

    @property
    def line_s(self) -> float:
        return self.bytes * UART_BITS / self.baud

    @property
    def compute_s(self) -> float:
        return self.cycles / self.clk_hz

    @property
    def samples_per_s(self) -> float:
        return self.samples / (self.line_s + self.compute_s) if self.samples else math.nan

    @property
    def bytes_per_sample(self) -> float:
        return self.bytes / self.samples if self.samples else math.nan

    @property
    def line_share(self) -> float:
        return self.line_s / (self.line_s + self.compute_s) if self.samples else math.nan

    @property
    def efficiency(self) -> float:
        """MACs per cycle of the epoch's ``RUN``s against the array's ``R·C``."""
        return self.macs / (self.cycles * self.rows * self.cols) if self.cycles else math.nan


@dataclass(frozen=True)
class SeedAccuracy:
    seed: int
    device: float
    float32: float


@dataclass(frozen=True)
class Accuracy:
    """Test accuracy of the device (golden model) and float32 after ``epochs``, per seed."""

    DERIVED = ("mean_device", "mean_float32")

    epochs: int
    runs: list[SeedAccuracy]

    @property
    def mean_device(self) -> float:
        return float(np.mean([r.device for r in self.runs]))

    @property
    def mean_float32(self) -> float:
        return float(np.mean([r.float32 for r in self.runs]))

    @property
    def gap(self) -> float:
        """Mean float32 − mean device, a fraction."""
        return self.mean_float32 - self.mean_device


@dataclass(frozen=True)
class Identity:
    """The seed-0 run on the virtual board against the golden model: same final weights, accuracies."""

    weights: bool
    virtual: float
    model: float


@dataclass(frozen=True)
class EpochTimes:
    """Median wall time of an epoch on each target, in seconds."""

    virtual: float
    model: float


@dataclass(frozen=True)
class Results:
    """``bench/results.json``: every figure ``make bench`` measured, and its wall time."""

    efficiency: list[GemmRun]
    virtual: SimStats
    steps: list[DeviceStep]
    link: dict[int, LinkBytes]
    boards: list[BoardModel]
    resident: list[ResidentEpoch]
    accuracy: Accuracy
    identity: Identity
    epoch: EpochTimes
    seconds: float = 0.0

    def board_arrays(self) -> dict[tuple[int, int], list[str]]:
        """Each distinct array of the boards and the boards that have it."""
        arrays: dict[tuple[int, int], list[str]] = {}
        for b in self.boards:
            arrays.setdefault((b.rows, b.cols), []).append(b.name)
        return arrays

    def sizes(self) -> list[tuple[int, int]]:
        """The arrays of the efficiency runs, smallest first."""
        return sorted({e.size for e in self.efficiency}, key=lambda s: (s[0] * s[1], s))

    def digits_gemms(self) -> list[GemmRun]:
        """The digits GEMMs run one by one as instructions, smallest array first."""
        return sorted((e for e in self.efficiency if e.family == "digits"), key=lambda e: e.rows * e.cols)

    def tile_floor(self) -> list[GemmRun]:
        """The ``K = 1`` GEMM of the sweep on each array, smallest first: the cost of a tile at any
        shorter ``K`` than its cycles per tile."""
        ones = [e for e in self.efficiency if e.family == "sweep" and e.k == 1]
        return sorted(ones, key=lambda e: e.rows * e.cols)

    def kinds(self) -> list[str]:
        """The instruction kinds of the profiled steps, in their first order."""
        return list(dict.fromkeys(k for p in self.steps for k in p.kinds))


@dataclass(frozen=True)
class Clock:
    achieved: float
    target: float


@dataclass(frozen=True)
class Bitstream:
    """An entry of ``bitstreams/manifest.json`` (:mod:`hw.boards.manifest`)."""

    board: str
    file: str
    config: dict
    rows: int
    cols: int
    clk_hz: int
    baud: int
    resources: list[Resource]
    fmax: dict[str, Clock]
    build_seconds: float
    tools: dict
    commit: str
    sha256: str

    @property
    def used(self) -> dict[str, Resource]:
        """The resources by name, I/O left out."""
        return {r.name: r for r in self.resources if r.name != "IO"}

    @property
    def slowest(self) -> float:
        """The lowest fmax of any clock, in MHz."""
        return min(clock.achieved for clock in self.fmax.values())


def manifest(path: Path) -> dict[str, Bitstream]:
    """The bitstreams recorded in ``path`` by board (none if there is no such file)."""
    return report.read_json(path, dict[str, Bitstream]) if path.exists() else {}
