"""Plots shared by ``systolic train --plot`` and the lab."""

from __future__ import annotations

import numpy as np

__all__ = ["activity_map"]


def activity_map(fig, ax, active: list, title: str) -> None:
    """Each hidden unit's share of active samples (rows) per epoch (columns), in percent.

    ``active`` holds one entry per epoch: the fraction of samples each unit of one layer was active for.
    """
    fractions = np.array(active, dtype=float).T
    image = ax.imshow(100 * fractions, aspect="auto", cmap="viridis", vmin=0, vmax=100,
                      extent=(0.5, len(active) + 0.5, len(fractions) - 0.5, -0.5))
    ax.set(xlabel="epoch", ylabel="unit", title=title)
    fig.colorbar(image, ax=ax)
