"""Training runs of the lab: a network trained on the golden model, with its float32 twin.

The golden model (``Driver.open("model")``) is the device bit for bit (the cocotb suite and
:func:`lab.neurons.measure` check it against the gateware), and it trains digits in about a second
per epoch, so the activation, rounding and neuron sections train on it. Runs are independent and
spread over the machine's cores, or a Ray cluster (:mod:`bench.parallel`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bench.parallel import parallel_map
from host.checkpoint import network_to_dict
from host.compiler import Network
from host.data import digits
from host.driver import Driver
from host.reference import Reference
from host.train import Trainer
from hw.config import DeviceConfig

__all__ = ["EPOCHS", "Run", "train", "train_all"]

EPOCHS = 20
"""Epochs of every run (those of ``systolic train``)."""


@dataclass(frozen=True)
class Run:
    """A training run of :func:`train`: per epoch the device's mean training ``loss``, its ``train`` and
    ``test`` accuracy, float32's test accuracy (``float32``, empty without the reference) and, with
    ``Network.stats``, each hidden unit's active fraction (``active[epoch][layer][unit]``); at the end
    the learned slopes per layer (PReLU), the largest weight magnitude (real units), whether a raw weight
    reached the edge of its format, and with stats a 40-bin histogram over [-2, 6) of each hidden
    layer's activations in the last minibatch."""

    network: dict   # host.checkpoint.network_to_dict
    seed: int
    loss: list[float]
    train: list[float]
    test: list[float]
    float32: list[float]
    active: list[list[list[float]]]
    slopes: list[list[float]]
    max_weight: float
    weight_saturated: bool
    histograms: list[list[int]] | None = None
    seconds: float = 0.0


def train(network: Network, seed: int, epochs: int = EPOCHS, reference: bool = True,
          target: str = "model") -> Run:
    """Train ``network`` on digits split by ``seed``, from ``seed``'s initial weights and data order.

    ``reference`` trains the float32 twin beside it; ``target`` is ``"model"`` or a pyserial URL (a
    virtual board).
    """
    train_set, test = digits(seed=seed)
    began = time.monotonic()
    out: dict = {"loss": [], "train": [], "test": [], "float32": [], "active": []}
    with Driver.open(target, config=DeviceConfig(), timeout=60.0) as driver:
        trainer = Trainer(driver, network, seed, x=train_set.x)
        initial = trainer.initial_weights()
        trainer.load(initial)
        ref = Reference.from_raw(trainer.program, initial) if reference else None
        rng, ref_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        for epoch in range(1, epochs + 1):
            result = trainer.train_epoch(train_set, rng, epoch)
            out["loss"].append(result.loss)
            out["train"].append(result.accuracy)
            out["test"].append(float(np.mean(trainer.predict(test.x) == test.y)))
            if result.active is not None:
                out["active"].append([a.tolist() for a in result.active])
            if ref is not None:
                ref.train_epoch(train_set, ref_rng)
                out["float32"].append(float(np.mean(ref.predict(test.x) == test.y)))
        params = trainer.weights()
        real = trainer.program.dequantize(params)
    histograms = None if result.activations is None else [
        np.histogram(a, bins=40, range=(-2, 6))[0].tolist() for a in result.activations]
    slopes = [s[:, 0].tolist() for s in real[network.layers:]]
    return Run(network_to_dict(network), seed, **out, slopes=slopes,
               max_weight=float(max(np.abs(w).max() for w in real[:network.layers])),
               weight_saturated=bool(max(np.abs(w).max() for w in params[:network.layers]) >= (1 << 15) - 1),
               histograms=histograms, seconds=time.monotonic() - began)


def _train(job: tuple[Network, int, int]) -> Run:
    return train(*job)


def train_all(jobs: list[tuple[Network, int]], epochs: int = EPOCHS) -> list[Run]:
    """:func:`train` of every ``(network, seed)``, in parallel (:func:`bench.parallel.parallel_map`),
    in the order given."""
    return list(parallel_map(_train, [(net, seed, epochs) for net, seed in jobs]))
