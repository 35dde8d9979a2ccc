"""The plots of ``systolic train --plot`` (PNG files in its folder), and the panels the lab shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["training", "unit_activity", "profile", "activity_map"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def training(folder: Path, history: dict, confusion: np.ndarray) -> list[Path]:
    """``curves.png`` (the loss and the accuracies per epoch) and ``confusion.png`` (of the test set)."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    left.plot(epochs, history["loss"])
    left.set(xlabel="epoch", ylabel="training loss (device)")
    right.plot(epochs, [100 * a for a in history["accuracy"]], label="train")
    if history["test"]:
        right.plot(epochs, [100 * a for a in history["test"]], label="test")
    right.set(xlabel="epoch", ylabel="accuracy (%)")
    right.legend()
    fig.tight_layout()
    curves = _save(fig, folder / "curves.png", 120)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(confusion, cmap="Blues")
    for (i, j), n in np.ndenumerate(confusion):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7)
    ticks = range(len(confusion))
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)", xticks=ticks, yticks=ticks)
    fig.tight_layout()
    return [curves, _save(fig, folder / "confusion.png", 120)]


def unit_activity(folder: Path, active: list, activations: list[np.ndarray]) -> list[Path]:
    """``units.png``: per hidden layer, each unit's active fraction through training, the dead fraction
    per epoch, and a histogram of the last minibatch's activations."""
    from host.train import dead_fraction

    layers = len(activations)
    fig, axes = _pyplot().subplots(layers, 3, figsize=(13, 3.2 * layers), squeeze=False)
    epochs = len(active)
    for k, (heat, dead, hist) in enumerate(axes, 1):
        activity_map(fig, heat, [epoch[k - 1] for epoch in active], f"layer {k}: % of samples active")
        dead.plot(range(1, epochs + 1), [100 * dead_fraction(e[k - 1]) for e in active], "o-")
        dead.set(xlabel="epoch", ylabel="dead units (%)", title=f"layer {k}: never active in the epoch")
        hist.hist(activations[k - 1].ravel(), bins=50)
        hist.set(xlabel="activation", ylabel="count", title=f"layer {k}: last minibatch")
    fig.tight_layout()
    return [_save(fig, folder / "units.png", 110)]


def profile(folder: Path, profiles: list[dict]) -> list[Path]:
    """``profile.png``: the profiler's measures of every tensor per epoch."""
    return [_save(_profile_figure(profiles), folder / "profile.png", 110)]


def _profile_figure(history: list[dict]):
    """The profiler's measures per epoch (``history``: one ``{tensor: TensorStats}`` per epoch), one
    panel per measure, a line per tensor; returns the figure."""
    fig, axes = _pyplot().subplots(1, 3, figsize=(15, 4.2))
    epochs = range(1, len(history) + 1)
    for ax, (measure, label) in zip(axes, [("saturated", "saturated (% of values)"),
                                           ("flushed", "flushed to zero (% of non-zero values)"),
                                           ("error", "relative error to float64 (%)")], strict=True):
        for name in history[0]:
            values = [100 * getattr(epoch[name], measure) for epoch in history]
            if max(values) > 0:
                ax.plot(epochs, values, label=f"{name} (frac {history[0][name].frac})")
        ax.set(xlabel="epoch", ylabel=label, yscale="symlog" if measure != "flushed" else "linear")
    axes[-1].legend(fontsize=7, ncol=2)
    fig.suptitle("each step against its float64 shadow (epoch means)")
    fig.tight_layout()
    return fig


def activity_map(fig, ax, active: list, title: str) -> None:
    """Each hidden unit's share of active samples (rows) per epoch (columns), in percent.

    ``active`` holds one entry per epoch: the fraction of samples each unit of one layer was active for.
    """
    fractions = np.array(active, dtype=float).T
    image = ax.imshow(100 * fractions, aspect="auto", cmap="viridis", vmin=0, vmax=100,
                      extent=(0.5, len(active) + 0.5, len(fractions) - 0.5, -0.5))
    ax.set(xlabel="epoch", ylabel="unit", title=title)
    fig.colorbar(image, ax=ax)
