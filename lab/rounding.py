"""Rounding: low-precision weights trained with round-to-nearest-even or stochastic rounding.

The digits MLP is trained on the device with weights of 8, 12 and 16 bits (``Network.weight_bits``:
the formats the compiler chooses, less ``16 − bits`` fraction bits) and the weight update rounded to
nearest (even) or stochastically from the vector unit's LFSRs. Activations, gradients and the
accumulators keep their formats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import report
from host.compiler import Network, compile_network
from hw.config import DeviceConfig
from hw.isa import Rounding
from lab import TEMPLATES
from lab.plots import figure, save
from lab.runs import EPOCHS, Run, train_all

__all__ = ["TITLE", "BITS", "SEEDS", "Figures", "Width", "measure", "render"]

TITLE = "Rounding: stochastic rounding keeps low-precision training close to float32"
DIGITS = (64, 32, 10)
BITS = (8, 12, 16)
SEEDS = (0, 1, 2)
ROUNDINGS = {"nearest": Rounding.NEAREST_EVEN, "stochastic": Rounding.STOCHASTIC}
CMD = "python -m lab --only rounding"


def _network(bits: int, rounding: str) -> Network:
    return Network(DIGITS, weight_bits=bits, rounding=ROUNDINGS[rounding])


@dataclass(frozen=True)
class Figures:
    """The section's figures: the runs of each ``"BITS ROUNDING"`` (one per seed), and the learning rate
    the device applies to layer 1 at each width."""

    epochs: int
    runs: dict[str, list[Run]]
    rate: dict[int, float]
    seconds: float = 0.0

    def at(self, bits: int, rounding: str) -> list[Run]:
        return self.runs[f"{bits} {rounding}"]


def measure() -> Figures:
    """Every (bits, rounding) at every seed, and the learning rate the device applies at each width."""
    cases = [(bits, rounding) for bits in BITS for rounding in ROUNDINGS]
    runs = iter(train_all([(_network(*case), seed) for case in cases for seed in SEEDS]))
    return Figures(EPOCHS, {f"{bits} {rounding}": [next(runs) for _ in SEEDS] for bits, rounding in cases},
                    {bits: compile_network(_network(bits, "stochastic"), DeviceConfig()).effective_rates()[0]
                     for bits in BITS})


def _mean(runs: list[Run], key: str) -> float:
    return float(np.mean([getattr(r, key)[-1] for r in runs]))


@dataclass(frozen=True)
class Width:
    """One weight width over its seeds: mean final test accuracy with each rounding and in float32,
    the gaps to float32 in points, the largest ``|w|`` reached, and layer 1's starting fraction bits."""

    bits: int
    rate: float
    nearest: float
    stochastic: float
    float32: float
    gap_nearest: float
    gap_stochastic: float
    largest: float
    fraction_bits: int

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.fraction_bits

    @property
    def spread(self) -> float:
        """How far apart the two roundings' gaps are, in points."""
        return abs(self.gap_nearest - self.gap_stochastic)

    @classmethod
    def of(cls, r: Figures, bits: int) -> Width:
        near, stoch = r.at(bits, "nearest"), r.at(bits, "stochastic")
        return cls(bits, r.rate[bits], _mean(near, "test"), _mean(stoch, "test"), _mean(stoch, "float32"),
                   100 * (_mean(near, "float32") - _mean(near, "test")),
                   100 * (_mean(stoch, "float32") - _mean(stoch, "test")),
                   max(x.max_weight for x in near + stoch), _fraction_bits(bits))


def _fraction_bits(bits: int) -> int:
    """Fraction bits of layer 1's weights as the compiler starts them at ``bits`` bits."""
    return compile_network(_network(bits, "stochastic"), DeviceConfig()).formats.w[0]


def _plots(r: Figures, plots: Path) -> str:
    fig, (final, curves) = figure(2, width=12, height=4.4)
    float32 = np.mean([_mean(r.at(b, "stochastic"), "float32") for b in BITS])
    for rounding in ROUNDINGS:
        final.plot(BITS, [100 * _mean(r.at(b, rounding), "test") for b in BITS], "o-",
                   label=f"round {rounding}")
    final.axhline(100 * float32, color="k", linestyle=":", label="float32")
    final.set(xlabel="weight bits", ylabel="test accuracy % (mean of seeds)", xticks=BITS)
    final.legend(fontsize=8)
    epochs = range(1, r.epochs + 1)
    for bits in BITS:
        for rounding, style in zip(ROUNDINGS, ("--", "-"), strict=True):
            curves.plot(epochs, 100 * np.mean([x.test for x in r.at(bits, rounding)], axis=0), style,
                        label=f"{bits} bits, {rounding}")
    curves.set(xlabel="epoch", ylabel="test accuracy % (mean of seeds)", ylim=(0, 100))
    curves.legend(fontsize=7)
    return save(fig, plots / "rounding.png", CMD)


def render(r: Figures, plots: Path) -> str:
    """The section's Markdown; its plot goes to ``plots``."""
    widths = {bits: Width.of(r, bits) for bits in BITS}
    runs = [x for group in r.runs.values() for x in group]
    return report.render(TEMPLATES, "rounding.md.j2", r=r, widths=widths.values(), low=widths[min(BITS)],
                         high=widths[16], seeds=SEEDS, cmd=CMD, largest=max(x.max_weight for x in runs),
                         saturated=any(x.weight_saturated for x in runs), plot=_plots(r, plots))
