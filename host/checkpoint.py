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
import zipfile
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


def _weights(net: Network, arrays: dict) -> list[np.ndarray]:
    """The parameters of ``net`` from a checkpoint's arrays, checked: names, shapes, integer words."""
    names = _names(net)
    if sorted(arrays) != sorted(names):
        raise ValueError(f"arrays {sorted(arrays)} where the network has {names}")
    out = []
    for name in names:
        k = int(name[1:])
        shape = (net.sizes[k], net.sizes[k - 1] + 1) if name[0] == "W" else (net.sizes[k], 1)
        w = arrays[name]
        if w.shape != shape or w.dtype.kind not in "iu":
            raise ValueError(f"{name} is {w.dtype} of shape {w.shape}, not 16-bit words of shape {shape}")
        if w.size and (w.min() < -(1 << 15) or w.max() >= 1 << 15):
            raise ValueError(f"{name} holds values outside 16-bit words")
        out.append(w.astype(np.int64))
    return out


def _count(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} {value!r} is not a count")
    return value


def _history(history) -> dict:
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise ValueError("the history is not lists of figures per epoch")
    return {"loss": [], "accuracy": [], "test": [], **history}


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
        """The checkpoint at ``path``.

        Raises
        ------
        ValueError
            If there is none, or the file is not a whole, consistent Systolic checkpoint (truncated,
            not an archive, arrays missing, extra, of the wrong shape or type, metadata damaged).
        """
        path = Path(path)
        if not path.exists():
            raise ValueError(f"no checkpoint at {path}: train without --resume first")
        if not path.is_file() or not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a Systolic checkpoint (not an .npz archive, or truncated): "
                             f"give the file `systolic train --checkpoint` wrote")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            meta = json.loads(str(arrays.pop("meta")[()]))
            network = network_from_dict(meta["network"])
            weights = _weights(network, arrays)
            formats = Formats(**meta["formats"])
            if len(formats.w) != network.layers:
                raise ValueError(f"formats of {len(formats.w)} layers for a network of {network.layers}")
            transform, holdout = meta.get("transform"), meta.get("holdout")
            transform = None if transform is None else Standardize.from_dict(transform)
            holdout = None if holdout is None else Holdout.from_dict(holdout)
            state = cls(network, weights, _count(meta["epoch"], "epoch"), _count(meta["seed"], "seed"),
                        meta["rng_state"], formats, _history(meta.get("history", {})), transform, holdout)
            np.random.PCG64().state = state.rng_state      # refuses a damaged generator state
        except (OSError, EOFError, zipfile.BadZipFile, KeyError, IndexError, ValueError, TypeError,
                AttributeError) as error:
            raise ValueError(f"{path} is not a Systolic checkpoint ({type(error).__name__}: {error}): give "
                             f"the file `systolic train --checkpoint` wrote") from None
        return state
