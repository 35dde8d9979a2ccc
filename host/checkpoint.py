"""Checkpoints: everything a training run needs to continue exactly where it stopped, in one ``.npz``.

A checkpoint holds the raw device parameters (``W1 … WL``, each ``out × in+1``, bias last, then the
learned slopes ``S1 … S(L-1)`` of a PReLU network, each ``n × 1``), the network,
the fixed-point formats and shifts the compiler chose, the epoch just finished, the seed, the state
of the data-order generator and the history so far; for a run on a data file, also the input transform
fitted on its training rows (:class:`host.data.Standardize`) and where its test rows came from
(:class:`host.data.Holdout`). A checkpoint without them (the digits, or an older file) has neither.
Plain SGD has no optimizer state beyond the weights; the device's rounding LFSRs are reseeded from
``(seed, epoch)`` at the start of every epoch, so an epoch boundary captures the whole state. Files
are written atomically: a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from host.compiler import Formats, Network, Output
from host.data import Holdout, Standardize
from hw.isa import Rounding
from hw.numerics import Act

__all__ = ["Checkpoint", "network_to_dict", "network_from_dict"]


def network_to_dict(net: Network) -> dict:
    spec = asdict(net)
    spec.update(sizes=list(net.sizes), hidden=Act(net.hidden).name, output=net.output.name,
                rounding=Rounding(net.rounding).name)
    return spec


def network_from_dict(spec: dict) -> Network:
    spec = {**spec, "sizes": tuple(spec["sizes"]), "hidden": Act[spec["hidden"]],
            "output": Output[spec["output"]], "rounding": Rounding[spec["rounding"]]}
    return Network(**spec)


def _names(net: Network) -> list[str]:
    """The arrays of a checkpoint, in the order of ``Program.parameters``."""
    hidden = range(1, net.layers) if net.learn_slope else ()
    return [f"W{k}" for k in range(1, net.layers + 1)] + [f"S{k}" for k in hidden]


@dataclass
class Checkpoint:
    """The state of a training run at the end of ``epoch`` (0: before the first).

    ``transform`` is applied to every input the network sees (``None``: none); ``holdout`` says where
    the run's test rows came from (``None``: the digits test split).
    """

    network: Network
    weights: list[np.ndarray]
    epoch: int
    seed: int
    rng_state: dict
    formats: Formats
    history: dict = field(default_factory=dict)
    transform: Standardize | None = None
    holdout: Holdout | None = None

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a crash leaves the previous checkpoint or the new one, never half of one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"network": network_to_dict(self.network), "epoch": self.epoch, "seed": self.seed,
                "rng_state": self.rng_state, "history": self.history, "formats": asdict(self.formats),
                "transform": None if self.transform is None else self.transform.to_dict(),
                "holdout": None if self.holdout is None else self.holdout.to_dict()}
        names = _names(self.network)
        arrays = {name: w.astype(np.int16) for name, w in zip(names, self.weights, strict=True)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Checkpoint:
        path = Path(path)
        if not path.exists():
            raise ValueError(f"no checkpoint at {path}: train without --resume first")
        try:
            with np.load(path) as npz:
                meta = json.loads(str(npz["meta"]))
                network = network_from_dict(meta["network"])
                weights = [npz[name].astype(np.int64) for name in _names(network)]
                formats = Formats(**meta["formats"])
                transform, holdout = meta.get("transform"), meta.get("holdout")
                transform = None if transform is None else Standardize.from_dict(transform)
                holdout = None if holdout is None else Holdout.from_dict(holdout)
        except (OSError, KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a Systolic checkpoint ({error})") from None
        return cls(network, weights, meta["epoch"], meta["seed"], meta["rng_state"], formats,
                   meta.get("history", {}), transform, holdout)
