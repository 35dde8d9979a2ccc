"""Plots of the lab: each names the command that made it in its corner."""

from __future__ import annotations

from pathlib import Path

__all__ = ["figure", "save"]


def figure(columns: int = 1, rows: int = 1, width: float = 7, height: float = 4.2):
    """A matplotlib ``(figure, axes)`` off-screen; ``axes`` is an array unless there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, columns, figsize=(width, height))


def save(fig, path: Path, command: str) -> str:
    """Save ``fig`` with ``command`` in its corner and close it; returns the file name."""
    import matplotlib.pyplot as plt

    fig.text(0.995, 0.005, command, fontsize=6, color="grey", ha="right", va="bottom")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name
