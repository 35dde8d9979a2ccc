"""Activations: the digits MLP trained on the device with each hidden activation, PReLU included.

Every variant is the digits MLP (64-32-10, softmax, minibatch 32, learning rate 0.1, 20 epochs)
trained on the golden model from the same initial weights and data order per seed, next to the same
network in float32. PReLU's slopes (one per hidden unit, starting at 0.25) are learned on the device:
the vector unit multiplies ``dA ⊙ min(Z, 0)`` and the array sums it over the minibatch in the SGD GEMM
that updates the weights (``host/compiler.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host.compiler import Network
from host.train import dead_fraction
from hw.numerics import Act
from lab.plots import figure, save
from lab.runs import EPOCHS, train_all

__all__ = ["TITLE", "VARIANTS", "SEEDS", "measure", "render", "summary"]

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


def measure() -> dict:
    """Every variant at every seed: the runs of :func:`lab.runs.train`, keyed by label."""
    jobs = [(Network(DIGITS, stats=True, **options), seed) for options in VARIANTS.values() for seed in SEEDS]
    runs = iter(train_all(jobs))
    return {"epochs": EPOCHS, "runs": {label: [next(runs) for _ in SEEDS] for label in VARIANTS}}


def summary(runs: list[dict]) -> dict:
    """Final figures of one variant over its seeds: means, and the spread of the device's accuracy."""
    device = [r["test"][-1] for r in runs]
    out = {"device": float(np.mean(device)), "low": min(device), "high": max(device),
           "float32": float(np.mean([r["float32"][-1] for r in runs])),
           "loss": float(np.mean([r["loss"][-1] for r in runs]))}
    out["gap"] = out["float32"] - out["device"]
    if runs[0]["active"]:
        out["dead"] = float(np.mean([dead_fraction(r["active"][-1][0]) for r in runs]))
    if runs[0]["slopes"]:
        slopes = np.concatenate([np.array(r["slopes"][0]) for r in runs])
        out["slopes"] = (float(slopes.mean()), float(slopes.min()), float(slopes.max()))
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _table(r: dict) -> str:
    lines = ["| activation | test accuracy, device (seeds min–max) | float32 | gap | final training loss "
             "| dead units at the end |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, runs in r["runs"].items():
        s = summary(runs)
        lines.append(f"| {label} | **{_pct(s['device'])}** ({_pct(s['low'])} – {_pct(s['high'])}) | "
                     f"{_pct(s['float32'])} | {100 * s['gap']:+.2f} pts | {s['loss']:.4f} | "
                     f"{_pct(s['dead'])} |")
    return "\n".join(lines)


def _curves(r: dict, plots: Path) -> str:
    fig, (loss, acc) = figure(2, width=12, height=4.6)
    epochs = range(1, r["epochs"] + 1)
    for label, runs in r["runs"].items():
        loss.plot(epochs, np.mean([x["loss"] for x in runs], axis=0), label=label)
        acc.plot(epochs, 100 * np.mean([x["test"] for x in runs], axis=0), label=label)
    loss.set(xlabel="epoch", ylabel="training loss (device, mean of seeds)", yscale="log")
    acc.set(xlabel="epoch", ylabel="test accuracy % (device, mean of seeds)", ylim=(80, 100))
    acc.legend(fontsize=7)
    return save(fig, plots / "activations.png", CMD)


def _slopes(r: dict, plots: Path) -> str:
    runs = r["runs"]["PReLU (learned)"]
    fig, ax = figure(width=6, height=3.6)
    ax.hist(np.concatenate([x["slopes"][0] for x in runs]), bins=30)
    ax.axvline(0.25, color="k", linestyle=":", label="initial slope 0.25")
    ax.set(xlabel="learned slope α of a hidden unit", ylabel="units (all seeds)")
    ax.legend(fontsize=8)
    return save(fig, plots / "prelu-slopes.png", CMD)


def render(r: dict, plots: Path) -> str:
    s = {label: summary(runs) for label, runs in r["runs"].items()}
    best = max(s, key=lambda label: s[label]["device"])
    worst = min(s, key=lambda label: s[label]["device"])
    slope = s["PReLU (learned)"]["slopes"]
    leaky = ", ".join(f"{k.split()[-1]}: {_pct(s[k]['device'])}" for k in s if k.startswith("leaky"))
    units = len(r["runs"]["PReLU (learned)"][0]["slopes"][0])
    seeds = ", ".join(map(str, SEEDS))
    epochs = r["epochs"]
    return f"""The digits MLP (64-32-10, softmax, minibatch 32, learning rate 0.1, {epochs} epochs) trained on
the device with each hidden activation, seeds {seeds} (each seed sets the data split, the initial
weights and the data order, the same for every activation), next to the same network in float32.
Measured by `{CMD}`.

{_table(r)}

- **Best on the device: {best}** at {_pct(s[best]['device'])} mean test accuracy; the lowest is {worst} at
  {_pct(s[worst]['device'])}. The spread between seeds is shown in brackets: differences smaller than it
  are noise.
- **Leaky ReLU's slope as a hyperparameter**: {leaky}.
- **PReLU**: the {units} slopes of the hidden layer, learned on the device from 0.25, ended at a mean
  of {slope[0]:.3f} (from {slope[1]:.3f} to {slope[2]:.3f} over the units of all seeds): each unit chose its
  own leak.
- "Dead units" are hidden units that were active (z > 0) for no training sample of the last epoch,
  counted on the device (see the neurons section); for tanh, sigmoid and swish z > 0 is only a sign.

![loss and accuracy curves](lab/{_curves(r, plots)})

![PReLU's learned slopes](lab/{_slopes(r, plots)})
"""
