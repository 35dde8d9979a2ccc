"""The figures of the parallelism section (:mod:`lab.parallelism`) and the arithmetic on them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.measure import UART_BITS, GemmProfile, SimStats, StepProfile, gemm_kind

__all__ = ["BATCH", "FORWARD", "BACKWARD", "UPDATE", "VECTOR_KINDS", "Step", "ArrayRun", "Board", "Resident",
           "Figures", "LinkRow", "BoardRow", "index", "arrays", "batches", "at_batch", "speedups",
           "tile_fill", "drain_cap", "perfect_gemms", "settled", "link_table", "board_table"]

BATCH = 32
"""The minibatch of the array sweep (that of ``systolic train``)."""
FORWARD, BACKWARD, UPDATE = gemm_kind(False, False), gemm_kind(True, False), gemm_kind(False, True)
VECTOR_KINDS = ("VEC", "SOFTMAX", "ARGMAX", "LOSS")
"""The instructions of the vector and softmax units."""


# -- the figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step(StepProfile):
    """A profiled step and the link bytes per sample each way of the real steps beside it."""

    bytes_in: float
    bytes_out: float

    @property
    def key(self) -> tuple[int, int, int]:
        return self.rows, self.cols, self.batch

    @property
    def name(self) -> str:
        return f"{self.rows}×{self.cols}"

    @property
    def cells(self) -> int:
        return self.rows * self.cols

    @property
    def link_bytes(self) -> float:
        """Link bytes per sample, both ways."""
        return self.bytes_in + self.bytes_out

    def kind_per_sample(self, kind: str) -> float:
        """Cycles per sample in instructions of ``kind``."""
        return self.kinds.get(kind, 0) / self.batch

    def gemm(self, kind: str, m: int | None = None, k: int | None = None) -> GemmProfile:
        """The step's first GEMM of ``kind`` with ``M = m`` and ``K = k`` (either may be left open)."""
        return next(g for g in self.gemms if g.kind == kind and m in (None, g.m) and k in (None, g.k))


@dataclass(frozen=True)
class ArrayRun:
    """One array's device (buffer ``depth``), the time to start its virtual board (its Verilator build
    included unless cached), the wall time of all its steps, and the simulator's speed."""

    rows: int
    cols: int
    depth: int
    start_seconds: float
    wall_seconds: float
    simulator: SimStats


@dataclass(frozen=True)
class Board:
    """A board's array, clock and baud (``hw.boards``)."""

    name: str
    rows: int
    cols: int
    clk_hz: int
    baud: int


@dataclass(frozen=True)
class Resident:
    """A digits epoch at :data:`BATCH` with the training set resident on one array's device: the
    samples trained, the link bytes both ways and the ``RUN`` cycles."""

    rows: int
    cols: int
    samples: int
    bytes: int
    cycles: int

    @property
    def name(self) -> str:
        return f"{self.rows}×{self.cols}"

    def samples_per_s(self, clk_hz: int, baud: int) -> float:
        """Samples per second at ``clk_hz`` and ``baud``: the bytes on the line, then the cycles."""
        return self.samples / (self.bytes * UART_BITS / baud + self.cycles / clk_hz)


@dataclass(frozen=True)
class Figures:
    """The section's figures: every (array, minibatch) step, each array's run, the boards, and each
    array's resident epoch."""

    steps: list[Step]
    arrays: list[ArrayRun]
    boards: list[Board]
    resident: list[Resident] = field(default_factory=list)
    seconds: float = 0.0


# -- arithmetic on the figures ----------------------------------------------------------------------


def index(steps: list[Step]) -> dict[tuple[int, int, int], Step]:
    """The steps by ``(rows, cols, batch)``."""
    return {s.key: s for s in steps}


def arrays(steps: list[Step]) -> list[tuple[int, int]]:
    """The measured arrays, smallest first."""
    return sorted({(s.rows, s.cols) for s in steps}, key=lambda a: a[0] * a[1])


def batches(steps: list[Step]) -> list[int]:
    return sorted({s.batch for s in steps})


def at_batch(steps: list[Step], batch: int) -> list[Step]:
    """The steps of one minibatch, smallest array first."""
    return sorted((s for s in steps if s.batch == batch), key=lambda s: s.cells)


def speedups(steps: list[Step]) -> dict[tuple[int, int, int], float]:
    """Speed-up per sample of each step against the 1×1 array at the same minibatch (where measured)."""
    at = index(steps)
    return {key: at[1, 1, key[2]].cycles / s.cycles for key, s in at.items() if (1, 1, key[2]) in at}


def tile_fill(gemm: GemmProfile, rows: int, cols: int) -> float:
    """Share of the cells the GEMM's output tiles use: ``M`` rows over ``R``, ``N`` columns over ``C``."""
    return gemm.m / (math.ceil(gemm.m / rows) * rows) * gemm.n / (math.ceil(gemm.n / cols) * cols)


def drain_cap(gemm: GemmProfile, rows: int, cols: int) -> float:
    """Highest efficiency a tile of ``K`` steps reaches when the array drains one tile per ``2R + C + 1``
    cycles (``docs/architecture.md``)."""
    return min(1.0, gemm.k / (2 * rows + cols + 1))


def perfect_gemms(step: Step) -> float:
    """Cycles of the step if every GEMM ran at ``R·C`` MACs per cycle and the rest took its measured
    cycles."""
    return step.cycles - sum(g.cycles for g in step.gemms) + step.gemm_ideal


def settled(steps: list[Step], rows: int, cols: int, within: float = 0.1) -> int:
    """The smallest minibatch from which the array's cycles per sample stay within ``within`` of
    those at its largest minibatch."""
    mine = sorted((s for s in steps if (s.rows, s.cols) == (rows, cols)), key=lambda s: s.batch)
    first = mine[-1].batch
    for s in reversed(mine):
        if s.per_sample > (1 + within) * mine[-1].per_sample:
            break
        first = s.batch
    return first


@dataclass(frozen=True)
class LinkRow:
    """One measured array at one board clock and baud: array and line time per sample, in seconds."""

    rows: int
    cols: int
    clk_hz: int
    baud: int
    boards: list[str]
    array_s: float
    line_s: float

    @property
    def name(self) -> str:
        return f"{self.rows}×{self.cols}"

    @property
    def step_s(self) -> float:
        return self.line_s + self.array_s

    @property
    def line_share(self) -> float:
        return self.line_s / self.step_s

    @property
    def samples_per_s(self) -> float:
        return 1 / self.step_s

    @property
    def link_bound(self) -> bool:
        return self.line_s >= self.array_s


def link_table(r: Figures, batch: int = BATCH) -> list[LinkRow]:
    """Per measured array and board clock: array and line time per sample at ``batch``.

    The protocol is request–reply, so a step takes ``bytes · 10 / baud`` on the line plus
    ``cycles / f_clk`` in the array.
    """
    clocks: dict[tuple[int, int], list[str]] = {}
    for b in r.boards:
        clocks.setdefault((b.clk_hz, b.baud), []).append(b.name)
    return [LinkRow(s.rows, s.cols, clk, baud, names, s.per_sample / clk,
                    (s.bytes_in + s.bytes_out) * UART_BITS / baud)
            for s in r.steps if s.batch == batch for (clk, baud), names in sorted(clocks.items())]


@dataclass(frozen=True)
class BoardRow:
    """One board: samples/s of the resident epoch on each measured array at its clock and baud
    (smallest array first), and its own array."""

    name: str
    clk_hz: int
    baud: int
    own: str
    samples_per_s: list[tuple[str, float]]

    @property
    def gain(self) -> float:
        """Samples/s on the biggest array over those on the smallest."""
        return self.samples_per_s[-1][1] / self.samples_per_s[0][1]


def board_table(r: Figures) -> list[BoardRow]:
    """Per board: the resident epoch of every measured array modelled at the board's clock and baud."""
    epochs = sorted(r.resident, key=lambda e: e.rows * e.cols)
    return [BoardRow(b.name, b.clk_hz, b.baud, f"{b.rows}×{b.cols}",
                     [(e.name, e.samples_per_s(b.clk_hz, b.baud)) for e in epochs]) for b in r.boards]
