"""The records of the robustness grid: a case, a finished run and what it says, the whole grid.

A run is judged here: its gaps (float32 − device, in points), its worst gap over the second half of
training, whether it *collapsed* (came within :data:`COLLAPSE_NEAR` points of float32 and later trailed
it by more than :data:`COLLAPSE_FAR` at two checks in a row) or *dipped* (a single such check), and
whether float32 itself trains (its best check at least halfway from chance to 100 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["COLLAPSE_NEAR", "COLLAPSE_FAR", "DEFAULT", "Case", "Run", "Flag", "CaseRow", "Summary", "Grid"]

COLLAPSE_NEAR, COLLAPSE_FAR = 2.0, 5.0
DEFAULT = "batch 32, lr 0.1"
"""The label of the digits default (64-32-10, ReLU)."""


@dataclass(frozen=True)
class Case:
    """One configuration of the grid (a network and a seed)."""

    label: str
    network: dict     # host.checkpoint.network_to_dict
    seed: int
    binary: bool = False   # sigmoid output: digit >= 5 against the rest

    @property
    def chance(self) -> float:
        """The accuracy of guessing: one class in 10, or one in 2 for the binary task."""
        return 0.5 if self.binary else 0.1


@dataclass
class Run:
    """A finished run: test accuracies (fractions) of the device and float32 at :attr:`epochs`."""

    DERIVED = ("final_gap", "worst_gap", "collapsed", "dips", "float32_trains")

    case: Case
    epochs: list[int]
    device: list[float]
    float32: list[float]
    seconds: float
    gaps: list[float] = field(init=False)

    def __post_init__(self):
        self.gaps = [100 * (f - d) for d, f in zip(self.device, self.float32, strict=True)]

    @property
    def float32_trains(self) -> bool:
        """Float32 gets at least halfway from chance to 100 % at some check."""
        return max(self.float32) >= (1 + self.case.chance) / 2

    @property
    def final_gap(self) -> float:
        return self.gaps[-1]

    @property
    def worst_gap(self) -> float:
        """The largest gap over the second half of training."""
        half = self.epochs[-1] / 2
        return max(g for e, g in zip(self.epochs, self.gaps, strict=True) if e > half)

    def _behind(self) -> list[bool]:
        """Per check: more than 5 points behind float32, after the run was once within 2 points."""
        near, out = False, []
        for gap in self.gaps:
            out.append(near and gap > COLLAPSE_FAR)
            near = near or gap <= COLLAPSE_NEAR
        return out

    @property
    def collapsed(self) -> bool:
        if not self.float32_trains:
            return False
        behind = self._behind()
        return any(a and b for a, b in zip(behind, behind[1:], strict=False))

    @property
    def dips(self) -> list[int]:
        """Epochs of single checks more than 5 points behind, between checks that are not (not a
        collapse). None where float32 does not train."""
        if not self.float32_trains:
            return []
        behind = [False, *self._behind(), False]
        return [e for k, e in enumerate(self.epochs, 1)
                if behind[k] and not behind[k - 1] and not behind[k + 1]]

    def gap_at(self, epoch: int) -> float:
        return self.gaps[self.epochs.index(epoch)]


@dataclass(frozen=True)
class Flag:
    """A run the page names: its case, seed, the epochs of its dips, float32's best accuracy."""

    label: str
    seed: int
    epochs: list[int]
    float32_best: float

    @classmethod
    def of(cls, run: Run) -> Flag:
        return cls(run.case.label, run.case.seed, run.dips, max(run.float32))


@dataclass(frozen=True)
class CaseRow:
    """One case over its seeds: mean final accuracies and gap, worst gap, collapses."""

    label: str
    seeds: int
    device: float
    float32: float
    final_gap: float
    worst_gap: float
    collapsed: bool
    untrained: int
    """Seeds at which float32 does not train."""

    @classmethod
    def of(cls, label: str, runs: list[Run]) -> CaseRow:
        return cls(label, len(runs), _mean(r.device[-1] for r in runs), _mean(r.float32[-1] for r in runs),
                   _mean(r.final_gap for r in runs), max(r.worst_gap for r in runs),
                   any(r.collapsed for r in runs), sum(not r.float32_trains for r in runs))


@dataclass(frozen=True)
class Summary:
    """The figures the brief asks for: collapses, the worst gap, the default's gaps (``nan`` if the
    default did not run); gaps in points."""

    runs: int
    epochs: int
    seeds: int
    """The most seeds of any case."""
    collapses: list[Flag]
    dips: list[Flag]
    untrained: list[Flag]
    worst_gap: float
    worst_run: str
    mean_final_gap: float
    default_seeds: int
    default_gap_20: float
    default_gap_final: float


@dataclass
class Grid:
    """``bench/robust.json``: every run, the wall time and the cores they ran on."""

    DERIVED = ("summary",)

    seconds: float
    cores: int
    runs: list[Run]

    def groups(self) -> dict[str, list[Run]]:
        """The runs by case label, in the order of the grid."""
        out: dict[str, list[Run]] = {}
        for run in self.runs:
            out.setdefault(run.case.label, []).append(run)
        return out

    def rows(self) -> list[CaseRow]:
        return [CaseRow.of(label, runs) for label, runs in self.groups().items()]

    @property
    def core_seconds(self) -> float:
        """The runs' own wall times, summed."""
        return sum(r.seconds for r in self.runs)

    @property
    def summary(self) -> Summary:
        runs, groups = self.runs, self.groups()
        default = groups.get(DEFAULT, [])
        epochs = runs[0].epochs
        judged = [r for r in runs if r.float32_trains] or runs
        at20 = 20 if 20 in epochs else epochs[0]
        return Summary(
            runs=len(runs), epochs=epochs[-1], seeds=max(len(g) for g in groups.values()),
            collapses=[Flag.of(r) for r in runs if r.collapsed], dips=[Flag.of(r) for r in runs if r.dips],
            untrained=[Flag.of(r) for r in runs if not r.float32_trains],
            worst_gap=max(r.worst_gap for r in judged),
            worst_run=max(judged, key=lambda r: r.worst_gap).case.label,
            mean_final_gap=_mean(r.final_gap for r in runs), default_seeds=len(default),
            default_gap_20=_mean(r.gap_at(at20) for r in default) if default else math.nan,
            default_gap_final=_mean(r.final_gap for r in default) if default else math.nan)


def _mean(values) -> float:
    return float(np.mean(list(values)))
