"""Instrumenting neurons: per-unit activity counters read from the device while it trains.

With ``Network.stats`` the training step also counts, per hidden unit, the samples for which the
unit is active (``z > 0``): a GEMM ``C += [Z > 0]·1`` on the device, read and cleared by the host at
the end of each epoch (``systolic train --stats``). A unit that was active for no sample of an epoch
is *dead* for that epoch: its gradient was zero for every sample, so (for ReLU) its incoming weights
did not change. The section also checks the counters of the virtual board (the gateware) against
those of the golden model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host.compiler import Network
from host.plots import activity_map
from host.train import dead_fraction
from hw.config import DeviceConfig
from hw.numerics import Act
from lab.plots import figure, save
from lab.runs import EPOCHS, train, train_all

__all__ = ["TITLE", "NET", "VARIANTS", "SEEDS", "measure", "render", "dead"]

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


def measure() -> dict:
    """Every variant at every seed, and the virtual board's counters next to the model's for one run."""
    from sim.virtual import VirtualBoard

    jobs = [(_network(options), seed) for options in VARIANTS.values() for seed in SEEDS]
    runs = iter(train_all(jobs))
    out: dict = {"epochs": EPOCHS, "runs": {label: [next(runs) for _ in SEEDS] for label in VARIANTS}}
    net = _network(VARIANTS["ReLU"])
    with VirtualBoard(DeviceConfig()) as url:
        gateware = train(net, 0, CHECK_EPOCHS, reference=False, target=url)
    model = train(net, 0, CHECK_EPOCHS, reference=False)
    same = all(gateware[key] == model[key] for key in ("loss", "train", "test", "active", "histograms"))
    out["check"] = {"epochs": CHECK_EPOCHS, "identical": same, "virtual_seconds": gateware["seconds"],
                    "model_seconds": model["seconds"]}
    return out


def _network(options: dict) -> Network:
    return Network(NET, stats=True, **{"learning_rate": RATE, **options})


def dead(run: dict, epoch: int = -1) -> list[float]:
    """Per hidden layer, the fraction of units active for no sample of ``epoch``."""
    return [dead_fraction(layer) for layer in run["active"][epoch]]


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _table(r: dict) -> str:
    layers = len(NET) - 2
    head = " | ".join(f"dead, layer {k}: epoch 1 → {r['epochs']}" for k in range(1, layers + 1))
    lines = [f"| variant | test accuracy (float32) | largest \\|w\\| | mean active fraction | {head} |",
             "| --- | ---: | ---: | ---: |" + " ---: |" * layers]
    for label, runs in r["runs"].items():
        first = np.mean([dead(x, 0) for x in runs], axis=0)
        last = np.mean([dead(x) for x in runs], axis=0)
        active = np.mean([np.mean(np.concatenate(x["active"][-1])) for x in runs])
        cells = " | ".join(f"{_pct(a)} → **{_pct(b)}**" for a, b in zip(first, last, strict=True))
        accuracy = np.mean([x["test"][-1] for x in runs])
        float32 = np.mean([x["float32"][-1] for x in runs])
        largest = max(x["max_weight"] for x in runs)
        lines.append(f"| {label} | {100 * accuracy:.2f} % ({100 * float32:.2f} %) | {largest:.2f} | "
                     f"{_pct(active)} | {cells} |")
    return "\n".join(lines)


def _dead_plot(r: dict, plots: Path) -> str:
    layers = len(NET) - 2
    fig, axes = figure(layers, width=6 * layers, height=4)
    axes = np.atleast_1d(axes)
    epochs = range(1, r["epochs"] + 1)
    for k, ax in enumerate(axes):
        for label, runs in r["runs"].items():
            curve = np.mean([[dead(x, e)[k] for e in range(r["epochs"])] for x in runs], axis=0)
            ax.plot(epochs, 100 * curve, "o-", markersize=3, label=label)
        ax.set(xlabel="epoch", ylabel="dead units % (mean of seeds)", title=f"hidden layer {k + 1}")
        ax.legend(fontsize=7)
    return save(fig, plots / "dead-units.png", CMD)


def _units_plot(r: dict, plots: Path) -> str:
    """Each unit's active fraction through training (ReLU, seed 0), and the last minibatch's activations."""
    run = r["runs"]["ReLU"][0]
    layers = len(NET) - 2
    fig, axes = figure(2, layers, width=12, height=3.4 * layers)
    axes = np.reshape(axes, (layers, 2))
    edges = np.linspace(-2, 6, 41)
    for k, (heat, hist) in enumerate(axes):
        activity_map(fig, heat, [epoch[k] for epoch in run["active"]],
                     f"ReLU layer {k + 1}: % of samples active (seed 0)")
        for label, runs in r["runs"].items():
            hist.stairs(runs[0]["histograms"][k], edges, label=label)
        hist.set(xlabel="activation a = g(z)", ylabel="count", yscale="log",
                 title=f"layer {k + 1}: activations of the last minibatch (seed 0)")
        hist.legend(fontsize=7)
    return save(fig, plots / "units.png", CMD)


def _saturated(r: dict) -> str:
    """A bullet on the variants whose weights reached the edge of their 16-bit format, if any."""
    hit = [label for label, runs in r["runs"].items() if any(x.get("weight_saturated") for x in runs)]
    if not hit:
        return ""
    runs = {label: r["runs"][label] for label in hit}
    figures = "; ".join(f"{label}: {100 * np.mean([x['test'][-1] for x in v]):.2f} % on the device, "
                        f"{100 * np.mean([x['float32'][-1] for x in v]):.2f} % in float32"
                        for label, v in runs.items())
    return (f"- **Saturation**: in {', '.join(hit)} some weights reached the edge of their format "
            f"and stuck there; training then fell apart on the device while float32, which has no "
            f"edge, went on ({figures}). The counters show the units dying as it happens.\n")


def render(r: dict, plots: Path) -> str:
    relu = r["runs"]["ReLU"]
    born = np.mean([dead(x, 0) for x in relu], axis=0)
    check = r["check"]
    same = "identical" if check["identical"] else "**different** (a bug: please report it)"
    net, seeds = "-".join(map(str, NET)), ", ".join(map(str, SEEDS))
    return f"""The MLP {net} (softmax, minibatch 32, learning rate {RATE} unless named,
{r['epochs']} epochs, seeds {seeds}) trained with the device's activity counters on. After every
epoch the host reads, per hidden unit, how many training samples made it active (z > 0). Measured
by `{CMD}`.

{_table(r)}

- **Epoch 1**: with ReLU, {" and ".join(f"{_pct(b)} of layer {k}" for k, b in enumerate(born, 1))}
  were active for no sample of the first epoch (mean of seeds). A dead ReLU unit gets no gradient, so
  its incoming weights stay as they are; it comes back only if the layer below changes under it.
- For leaky ReLU and PReLU a unit with z ≤ 0 for every sample still learns: the gradient on the
  negative side is the slope, not 0. The counters report how often z > 0 all the same.
{_saturated(r)}- **Gateware ≡ model**: the same run ({check['epochs']} epochs, ReLU, seed 0) on the virtual
  board and on the golden model gave {same} losses, accuracies, counters and activation histograms
  ({check['virtual_seconds']:.0f} s on the virtual board, {check['model_seconds']:.0f} s on the model).

![dead units per layer through training](lab/{_dead_plot(r, plots)})

![each unit's activity and the activations](lab/{_units_plot(r, plots)})
"""
