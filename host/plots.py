"""Plots shared by ``systolic train --plot`` and the lab."""

from __future__ import annotations

import numpy as np

__all__ = ["activity_map", "profile_figure"]


def profile_figure(history: list[dict]):
    """The profiler's measures per epoch (``history``: one ``{tensor: TensorStats}`` per epoch), one
    panel per measure, a line per tensor; returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
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
