"""Instrumenting neurons: per-unit activity counters read from the device while it trains.

With ``Network.stats`` the training step also counts, per hidden unit, the samples for which the
unit is active (``z > 0``): a GEMM ``C += [Z > 0]·1`` on the device, read and cleared by the host at
the end of each epoch (``systolic train --stats``). A unit that was active for no sample of an epoch
is *dead* for that epoch: its gradient was zero for every sample, so (for ReLU) its incoming weights
did not change. The section also checks the counters of the virtual board (the gateware) against
those of the golden model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import report
from host.compiler import Network
from host.plots import activity_map
from host.train import dead_fraction
from hw.config import DeviceConfig
from hw.numerics import Act
from lab import TEMPLATES
from lab.plots import figure, save
from lab.runs import EPOCHS, Run, train, train_all

__all__ = ["TITLE", "NET", "VARIANTS", "SEEDS", "Figures", "Check", "Variant", "measure",
           "render", "dead"]

TITLE = "Neurons: how many units are active, and how many die"
NET = (64, 32, 10)
"""The digits MLP of ``systolic train``."""
SEEDS = (0, 1, 2)
RATE = 0.1
"""Learning rate of the variants that do not name theirs."""
VARIANTS: dict[str, dict] = {
    "ReLU": dict(hidden=Act.RELU),
    "ReLU, lr 0.3": dict(hidden=Act.RELU, learning_rate=0.3),
    "leaky ReLU 0.01": dict(hidden=Act.LEAKY_RELU, slope=0.01),
    "PReLU (learned)": dict(hidden=Act.LEAKY_RELU, slope=0.25, learn_slope=True),
}
CHECK_EPOCHS = 2
"""Epochs of the virtual board vs golden model check."""
CMD = "python -m lab --only neurons"


@dataclass(frozen=True)
class Check:
    """The same run on the virtual board and the golden model: identical figures, and their wall times."""

    epochs: int
    identical: bool
    virtual_seconds: float
    model_seconds: float


@dataclass(frozen=True)
class Figures:
    """The section's figures: every variant's runs by label (one per seed), and the gateware check."""

    epochs: int
    runs: dict[str, list[Run]]
    check: Check
    seconds: float = 0.0



def measure() -> Figures:
    """Every variant at every seed, and the virtual board's counters next to the model's for one run."""
    from sim.virtual import VirtualBoard

    jobs = [(_network(options), seed) for options in VARIANTS.values() for seed in SEEDS]
    runs = iter(train_all(jobs))
    net = _network(VARIANTS["ReLU"])
    with VirtualBoard(DeviceConfig()) as url:
        gateware = train(net, 0, CHECK_EPOCHS, reference=False, target=url)
    model = train(net, 0, CHECK_EPOCHS, reference=False)
    same = all(getattr(gateware, key) == getattr(model, key)
               for key in ("loss", "train", "test", "active", "histograms"))
    return Figures(EPOCHS, {label: [next(runs) for _ in SEEDS] for label in VARIANTS},
                   Check(CHECK_EPOCHS, same, gateware.seconds, model.seconds))


def _network(options: dict) -> Network:
    return Network(NET, stats=True, **{"learning_rate": RATE, **options})


def dead(run: Run, epoch: int = -1) -> list[float]:
    """Per hidden layer, the fraction of units active for no sample of ``epoch``."""
    return [dead_fraction(layer) for layer in run.active[epoch]]


@dataclass(frozen=True)
class Variant:
    """One variant over its seeds: mean final test accuracy (device, float32), the largest ``|w|``,
    whether a weight saturated, the mean active fraction of the last epoch, and per layer the mean
    share of dead units in the first and the last epoch."""

    label: str
    device: float
    float32: float
    largest: float
    saturated: bool
    active: float
    first: list[float]
    last: list[float]

    @classmethod
    def of(cls, label: str, runs: list[Run]) -> Variant:
        return cls(label, float(np.mean([x.test[-1] for x in runs])),
                   float(np.mean([x.float32[-1] for x in runs])), max(x.max_weight for x in runs),
                   any(x.weight_saturated for x in runs),
                   float(np.mean([np.mean(np.concatenate(x.active[-1])) for x in runs])),
                   np.mean([dead(x, 0) for x in runs], axis=0).tolist(),
                   np.mean([dead(x) for x in runs], axis=0).tolist())

    @property
    def dead(self) -> list[tuple[float, float]]:
        """Per layer, the share of dead units in the first and the last epoch."""
        return list(zip(self.first, self.last, strict=True))


def _dead_plot(r: Figures, plots: Path) -> str:
    layers = len(NET) - 2
    fig, axes = figure(layers, width=6 * layers, height=4)
    axes = np.atleast_1d(axes)
    epochs = range(1, r.epochs + 1)
    for k, ax in enumerate(axes):
        for label, runs in r.runs.items():
            curve = np.mean([[dead(x, e)[k] for e in range(r.epochs)] for x in runs], axis=0)
            ax.plot(epochs, 100 * curve, "o-", markersize=3, label=label)
        ax.set(xlabel="epoch", ylabel="dead units % (mean of seeds)", title=f"hidden layer {k + 1}")
        ax.legend(fontsize=7)
    return save(fig, plots / "dead-units.png", CMD)


def _units_plot(r: Figures, plots: Path) -> str:
    """Each unit's active fraction through training (ReLU, seed 0), and the last minibatch's activations."""
    run = r.runs["ReLU"][0]
    layers = len(NET) - 2
    fig, axes = figure(2, layers, width=12, height=3.4 * layers)
    axes = np.reshape(axes, (layers, 2))
    edges = np.linspace(-2, 6, 41)
    for k, (heat, hist) in enumerate(axes):
        activity_map(fig, heat, [epoch[k] for epoch in run.active],
                     f"ReLU layer {k + 1}: % of samples active (seed 0)")
        for label, runs in r.runs.items():
            hist.stairs(runs[0].histograms[k], edges, label=label)
        hist.set(xlabel="activation a = g(z)", ylabel="count", yscale="log",
                 title=f"layer {k + 1}: activations of the last minibatch (seed 0)")
        hist.legend(fontsize=7)
    return save(fig, plots / "units.png", CMD)


def render(r: Figures, plots: Path) -> str:
    """The section's Markdown; its plots go to ``plots``."""
    variants = [Variant.of(label, runs) for label, runs in r.runs.items()]
    relu = next(v for v in variants if v.label == "ReLU")
    return report.render(TEMPLATES, "neurons.md.j2", r=r, variants=variants, relu=relu,
                         saturated=[v for v in variants if v.saturated], net="-".join(map(str, NET)),
                         layers=len(NET) - 2, seeds=SEEDS, rate=RATE, cmd=CMD,
                         dead_plot=_dead_plot(r, plots), units_plot=_units_plot(r, plots))
