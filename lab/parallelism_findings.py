"""What the parallelism section says, figure by figure: drawn from :class:`~lab.parallelism_records.Figures`
for ``templates/parallelism.md.j2``, which holds the sentences."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.measure import DIGITS, UART_BITS, GemmProfile
from lab.parallelism_records import (
    BACKWARD,
    BATCH,
    FORWARD,
    UPDATE,
    VECTOR_KINDS,
    Figures,
    LinkRow,
    Step,
    arrays,
    at_batch,
    batches,
    drain_cap,
    index,
    link_table,
    perfect_gemms,
    settled,
    speedups,
    tile_fill,
)

__all__ = ["AtArray", "GemmRow", "LinkFindings", "Findings"]


@dataclass(frozen=True)
class AtArray:
    """One array's step at minibatch :data:`BATCH`: its speed-up per sample over one cell (and over its
    cells), the output layer's forward GEMM (tile fill, efficiency), the drain a tile must hide
    (``2R + C + 1``), the output layer's backward GEMM's efficiency, and the speed-up the step would
    reach if every GEMM ran at ``R·C`` MACs per cycle."""

    step: Step
    speedup: float
    of_cells: float
    forward_fill: float
    forward_efficiency: float
    drain: int
    backward_efficiency: float
    bound: float

    @classmethod
    def of(cls, step: Step, one: Step, speedup: float) -> AtArray:
        classes = DIGITS[-1]
        forward = step.gemm(FORWARD, m=classes)
        return cls(step, speedup, speedup / step.cells, tile_fill(forward, step.rows, step.cols),
                   forward.efficiency, 2 * step.rows + step.cols + 1,
                   step.gemm(BACKWARD, k=classes).efficiency, one.cycles / perfect_gemms(step))


@dataclass(frozen=True)
class GemmRow:
    """A GEMM of a step, its tile fill and the cap the drain puts on its tiles."""

    step: Step
    gemm: GemmProfile
    fill: float
    cap: float


@dataclass(frozen=True)
class LinkFindings:
    """The link against the array: line bytes per sample, the arrays that take longest (``slow``) and
    shortest (``fast``) per sample, the cycles per sample above which the slow array outlasts the line
    at each clock, and what the biggest array buys at the slow array's clock (``larger``)."""

    rows: list[LinkRow]
    own: dict[str, tuple[int, int]]
    bytes: float
    slow: LinkRow
    fast: LinkRow
    all_link_bound: bool
    thresholds: list[tuple[float, float]]
    slow_cycles: float
    smaller: LinkRow
    larger: LinkRow

    @classmethod
    def of(cls, r: Figures) -> LinkFindings:
        rows = link_table(r)
        slow, fast = max(rows, key=lambda x: x.array_s), min(rows, key=lambda x: x.array_s)
        even = sorted((x for x in rows if x.name == slow.name), key=lambda x: x.clk_hz)
        same = sorted((x for x in rows if x.clk_hz == slow.clk_hz), key=lambda x: x.array_s)
        line = min(x.line_s for x in rows)
        own = {b.name: (b.rows, b.cols) for b in r.boards}
        return cls(rows, own, line * slow.baud / UART_BITS, slow, fast,
                   all(x.link_bound for x in rows), [(x.clk_hz, x.clk_hz * x.line_s) for x in even],
                   slow.array_s * slow.clk_hz, same[-1], same[0])

    @property
    def line_s(self) -> float:
        """The least line time per sample of any row."""
        return min(x.line_s for x in self.rows)

    @property
    def most_array_s(self) -> float:
        return max(x.array_s for x in self.rows)

    @property
    def gain(self) -> float:
        """Samples per second on ``larger`` over those on ``smaller``."""
        return self.larger.samples_per_s / self.smaller.samples_per_s

    @property
    def fewer(self) -> float:
        """How many times fewer array cycles ``larger`` needs than ``smaller``."""
        return self.smaller.array_s / self.larger.array_s


@dataclass(frozen=True)
class Findings:
    """Every figure the section's prose and tables quote."""

    steps: list[Step]
    at: dict[tuple[int, int, int], Step]
    up: dict[tuple[int, int, int], float]
    sizes: list[tuple[int, int]]
    batches: list[int]
    arrays: list[AtArray]
    lone: list[Step]
    """The steps at minibatch 1, smallest array first."""
    gemms: list[GemmRow]
    settled: list[tuple[str, int]]
    flat: tuple[int, int]
    """The least and most cycles of the biggest array's step at minibatches up to its columns."""
    link: LinkFindings
    start_seconds: float

    @classmethod
    def of(cls, r: Figures) -> Findings:
        steps, at, up = r.steps, index(r.steps), speedups(r.steps)
        chosen = at_batch(steps, BATCH)
        big = chosen[-1]
        flat = [at[big.rows, big.cols, m].cycles for m in batches(steps)
                if m <= big.cols and (big.rows, big.cols, m) in at]
        return cls(steps, at, up, arrays(steps), batches(steps),
                   [AtArray.of(s, chosen[0], up.get(s.key, math.nan)) for s in chosen], at_batch(steps, 1),
                   [GemmRow(s, g, tile_fill(g, s.rows, s.cols), drain_cap(g, s.rows, s.cols))
                    for s in chosen for g in s.gemms],
                   [(f"{rows}×{cols}", settled(steps, rows, cols)) for rows, cols in arrays(steps)],
                   (min(flat), max(flat)), LinkFindings.of(r), sum(a.start_seconds for a in r.arrays))

    @property
    def one(self) -> AtArray:
        return self.arrays[0]

    @property
    def big(self) -> AtArray:
        return self.arrays[-1]

    @property
    def lone_big(self) -> Step:
        """The biggest array's step at minibatch 1."""
        return self.at[self.big.step.rows, self.big.step.cols, 1]

    def vector_cycles(self, a: AtArray) -> int:
        """Cycles of the vector and softmax units in ``a``'s step."""
        return sum(a.step.kinds.get(k, 0) for k in VECTOR_KINDS)

    def vector_share(self, a: AtArray) -> float:
        return a.step.share(*VECTOR_KINDS)

    @property
    def vector_ratio(self) -> float:
        """How many times fewer vector cycles the biggest array takes than the smallest."""
        return self.vector_cycles(self.one) / self.vector_cycles(self.big)

    @property
    def cells_ratio(self) -> int:
        return self.big.step.cells // self.one.step.cells

    @property
    def update_shares(self) -> list[float]:
        """The update GEMMs' share of each step at minibatch 1."""
        return [step.share(UPDATE) for step in self.lone]

    def kinds(self) -> list[str]:
        """The instruction kinds of the steps at minibatch :data:`BATCH`, in their first order."""
        return list(dict.fromkeys(k for a in self.arrays for k in a.step.kinds))
