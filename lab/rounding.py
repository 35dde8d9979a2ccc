"""Rounding: low-precision weights trained with round-to-nearest-even or stochastic rounding.

The digits MLP is trained on the device with weights of 8, 12 and 16 bits (``Network.weight_bits``:
the formats the compiler chooses, less ``16 − bits`` fraction bits) and the weight update rounded to
nearest (even) or stochastically from the vector unit's LFSRs. Activations, gradients and the
accumulators keep their formats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host.compiler import Network, compile_network
from hw.config import DeviceConfig
from hw.isa import Rounding
from lab.plots import figure, save
from lab.runs import EPOCHS, train_all

__all__ = ["TITLE", "BITS", "SEEDS", "measure", "render"]

TITLE = "Rounding: stochastic rounding keeps low-precision training close to float32"
DIGITS = (64, 32, 10)
BITS = (8, 12, 16)
SEEDS = (0, 1, 2)
ROUNDINGS = {"nearest": Rounding.NEAREST_EVEN, "stochastic": Rounding.STOCHASTIC}
CMD = "python -m lab --only rounding"


def _network(bits: int, rounding: str) -> Network:
    return Network(DIGITS, weight_bits=bits, rounding=ROUNDINGS[rounding])


def measure() -> dict:
    """Every (bits, rounding) at every seed, and the learning rate the device applies at each width."""
    cases = [(bits, rounding) for bits in BITS for rounding in ROUNDINGS]
    runs = iter(train_all([(_network(*case), seed) for case in cases for seed in SEEDS]))
    out: dict = {"epochs": EPOCHS, "runs": {}, "rate": {}}
    for bits, rounding in cases:
        out["runs"][f"{bits} {rounding}"] = [next(runs) for _ in SEEDS]
    for bits in BITS:
        net = _network(bits, "stochastic")
        out["rate"][str(bits)] = compile_network(net, DeviceConfig()).effective_rates()[0]
    return out


def _mean(runs: list[dict], key: str) -> float:
    return float(np.mean([r[key][-1] for r in runs]))


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _table(r: dict) -> str:
    lines = ["| weight bits | learning rate applied (layer 1) | nearest even | stochastic | float32 "
             "| largest \\|w\\| reached |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for bits in BITS:
        near, stoch = r["runs"][f"{bits} nearest"], r["runs"][f"{bits} stochastic"]
        largest = max(x["max_weight"] for x in near + stoch)
        lines.append(f"| {bits} | {r['rate'][str(bits)]:.4f} | {_pct(_mean(near, 'test'))} | "
                     f"**{_pct(_mean(stoch, 'test'))}** | {_pct(_mean(stoch, 'float32'))} | {largest:.2f} |")
    return "\n".join(lines)


def _plots(r: dict, plots: Path) -> str:
    fig, (final, curves) = figure(2, width=12, height=4.4)
    float32 = np.mean([_mean(r["runs"][f"{b} stochastic"], "float32") for b in BITS])
    for rounding in ROUNDINGS:
        final.plot(BITS, [100 * _mean(r["runs"][f"{b} {rounding}"], "test") for b in BITS], "o-",
                   label=f"round {rounding}")
    final.axhline(100 * float32, color="k", linestyle=":", label="float32")
    final.set(xlabel="weight bits", ylabel="test accuracy % (mean of seeds)", xticks=BITS)
    final.legend(fontsize=8)
    epochs = range(1, r["epochs"] + 1)
    for bits in BITS:
        for rounding, style in zip(ROUNDINGS, ("--", "-"), strict=True):
            runs = r["runs"][f"{bits} {rounding}"]
            curves.plot(epochs, 100 * np.mean([x["test"] for x in runs], axis=0), style,
                        label=f"{bits} bits, {rounding}")
    curves.set(xlabel="epoch", ylabel="test accuracy % (mean of seeds)", ylim=(0, 100))
    curves.legend(fontsize=7)
    return save(fig, plots / "rounding.png", CMD)


def _range(r: dict) -> str:
    """Whether any weight reached the edge of its format."""
    largest = max(x["max_weight"] for runs in r["runs"].values() for x in runs)
    if not any(x.get("weight_saturated") for runs in r["runs"].values() for x in runs):
        return (f"No weight ever reached the edge of its format (largest |w| {largest:.2f}): only the "
                f"fraction bits limit these runs.")
    return (f"Some weights reached the edge of their format (largest |w| {largest:.2f}) and were "
            f"clipped there.")


def _fraction_bits(bits: int) -> int:
    """Fraction bits of layer 1's weights as the compiler starts them at ``bits`` bits."""
    return compile_network(_network(bits, "stochastic"), DeviceConfig()).formats.w[0]


def render(r: dict, plots: Path) -> str:
    def gap(bits: int, rounding: str) -> float:
        runs = r["runs"][f"{bits} {rounding}"]
        return 100 * (_mean(runs, "float32") - _mean(runs, "test"))

    low = min(BITS)
    frac = {bits: _fraction_bits(bits) for bits in (low, 16)}
    return f"""The digits MLP (64-32-10, ReLU, minibatch 32, learning rate 0.1, {r['epochs']} epochs, seeds
{', '.join(map(str, SEEDS))}) with its weights, biases and their updates held in `bits` bits (`bits − 3`
fraction bits at the start, ±4, moved while training if the saturation counters say so), the update
`W − α/m·dW` rounded to nearest even or stochastically (the
vector unit's per-lane LFSRs, `hw/numerics.py`). Activations and gradients stay 16-bit. Measured by
`{CMD}`.

{_table(r)}

- **At {low} bits** the gap to float32 is {gap(low, 'nearest'):.2f} points with round-to-nearest and
  {gap(low, 'stochastic'):.2f} points with stochastic rounding. An update smaller than half a weight LSB
  (2^-{frac[low]} = {2.0 ** -frac[low]:g} at {low} bits) is rounded away every time by round-to-nearest, so
  those weights stop learning; stochastic rounding applies it with a probability proportional to its
  size, so it is right on average.
- **At 16 bits** the two roundings differ by {abs(gap(16, 'nearest') - gap(16, 'stochastic')):.2f} points:
  the LSB (2^-{frac[16]}) is small enough that few updates vanish.
- {_range(r)} The learning rate applied differs slightly from 0.1 where the SGD multiplier
  (15 bits, shift ≤ 31) cannot hold it exactly (`Formats.effective_rate`).

![accuracy vs weight bits](lab/{_plots(r, plots)})
"""
