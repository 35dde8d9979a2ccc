"""Activations: the digits MLP trained on the device with each hidden activation, PReLU included.

Every variant is the digits MLP (64-32-10, softmax, minibatch 32, learning rate 0.1, 20 epochs)
trained on the golden model from the same initial weights and data order per seed, next to the same
network in float32. PReLU's slopes (one per hidden unit, starting at 0.25) are learned on the device:
the vector unit multiplies ``dA ⊙ min(Z, 0)`` and the array sums it over the minibatch in the SGD GEMM
that updates the weights (``host/compiler.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import report
from host.compiler import Network
from host.train import dead_fraction
from hw.numerics import Act
from lab import TEMPLATES
from lab.plots import figure, save
from lab.runs import EPOCHS, Run, train_all

__all__ = ["TITLE", "VARIANTS", "SEEDS", "Figures", "Variant", "measure", "render"]

TITLE = "Activations: which one trains best on the device"
DIGITS = (64, 32, 10)
SEEDS = (0, 1, 2)
VARIANTS: dict[str, dict] = {
    "ReLU": dict(hidden=Act.RELU),
    "leaky ReLU 0.01": dict(hidden=Act.LEAKY_RELU, slope=0.01),
    "leaky ReLU 0.1": dict(hidden=Act.LEAKY_RELU, slope=0.1),
    "leaky ReLU 0.3": dict(hidden=Act.LEAKY_RELU, slope=0.3),
    "PReLU (learned)": dict(hidden=Act.LEAKY_RELU, slope=0.25, learn_slope=True),
    "tanh": dict(hidden=Act.TANH),
    "sigmoid": dict(hidden=Act.SIGMOID),
    "swish": dict(hidden=Act.SWISH),
}
"""Label → :class:`host.compiler.Network` options (stats on for all: the counters change nothing else)."""
CMD = "python -m lab --only activations"


@dataclass(frozen=True)
class Figures:
    """The section's figures: every variant's runs by label, one per seed."""

    epochs: int
    runs: dict[str, list[Run]]
    seconds: float = 0.0



def measure() -> Figures:
    """Every variant at every seed: the runs of :func:`lab.runs.train`, keyed by label."""
    jobs = [(Network(DIGITS, stats=True, **options), seed) for options in VARIANTS.values() for seed in SEEDS]
    runs = iter(train_all(jobs))
    return Figures(EPOCHS, {label: [next(runs) for _ in SEEDS] for label in VARIANTS})


@dataclass(frozen=True)
class Variant:
    """Final figures of one variant over its seeds: mean test accuracy of the device (``low`` to
    ``high`` over the seeds) and float32, training loss, dead units and, if learned, the slopes'
    mean, least and largest."""

    label: str
    device: float
    low: float
    high: float
    float32: float
    loss: float
    dead: float | None
    slopes: tuple[float, float, float] | None

    @property
    def gap(self) -> float:
        return self.float32 - self.device

    @classmethod
    def of(cls, label: str, runs: list[Run]) -> Variant:
        device = [r.test[-1] for r in runs]
        dead = float(np.mean([dead_fraction(r.active[-1][0]) for r in runs])) if runs[0].active else None
        slopes = np.concatenate([np.array(r.slopes[0]) for r in runs]) if runs[0].slopes else None
        spread = None if slopes is None else (float(slopes.mean()), float(slopes.min()), float(slopes.max()))
        return cls(label, float(np.mean(device)), min(device), max(device),
                   float(np.mean([r.float32[-1] for r in runs])), float(np.mean([r.loss[-1] for r in runs])),
                   dead, spread)


def _curves(r: Figures, plots: Path) -> str:
    fig, (loss, acc) = figure(2, width=12, height=4.6)
    epochs = range(1, r.epochs + 1)
    for label, runs in r.runs.items():
        loss.plot(epochs, np.mean([x.loss for x in runs], axis=0), label=label)
        acc.plot(epochs, 100 * np.mean([x.test for x in runs], axis=0), label=label)
    loss.set(xlabel="epoch", ylabel="training loss (device, mean of seeds)", yscale="log")
    acc.set(xlabel="epoch", ylabel="test accuracy % (device, mean of seeds)", ylim=(80, 100))
    acc.legend(fontsize=7)
    return save(fig, plots / "activations.png", CMD)


def _slopes(r: Figures, plots: Path) -> str:
    runs = r.runs["PReLU (learned)"]
    fig, ax = figure(width=6, height=3.6)
    ax.hist(np.concatenate([x.slopes[0] for x in runs]), bins=30)
    ax.axvline(0.25, color="k", linestyle=":", label="initial slope 0.25")
    ax.set(xlabel="learned slope α of a hidden unit", ylabel="units (all seeds)")
    ax.legend(fontsize=8)
    return save(fig, plots / "prelu-slopes.png", CMD)


def render(r: Figures, plots: Path) -> str:
    """The section's Markdown; its plots go to ``plots``."""
    variants = [Variant.of(label, runs) for label, runs in r.runs.items()]
    return report.render(
        TEMPLATES, "activations.md.j2", r=r, variants=variants, seeds=SEEDS, cmd=CMD,
        best=max(variants, key=lambda v: v.device), worst=min(variants, key=lambda v: v.device),
        leaky=[v for v in variants if v.label.startswith("leaky")],
        prelu=next(v for v in variants if v.label == "PReLU (learned)"),
        units=len(r.runs["PReLU (learned)"][0].slopes[0]), curves=_curves(r, plots), slopes=_slopes(r, plots))
