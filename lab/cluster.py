"""Many devices: data parallelism across boards, and where the link eats the gain.

Each device holds a replica of the weights and trains on its own minibatches; every K steps the
replicas' weights are averaged (``host/cluster.py``). Measured here: the test accuracy against K on
four golden models, the bytes one average costs a device, and the wall time of an epoch on one and two
virtual boards. Modelled: the speed-up on N boards of each kind from the parallelism section's RTL
cycles and link bytes of a step and the board's clock and baud (a step's bytes cross the UART, then
its cycles run; an average reads and writes every weight over each board's own link).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import report
from bench.measure import DIGITS, UART_BITS
from host.cluster import Cluster, reference, starting_point
from host.compiler import Network, deep_enough
from host.data import digits
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig
from lab import TEMPLATES
from lab.plots import figure, save

__all__ = ["TITLE", "DEVICES", "SYNC_EVERY", "Figures", "BoardStep", "measure", "render"]

TITLE = "Many devices: data parallelism, and where the link eats the gain"
DEVICES = (1, 2, 4, 8)
SYNC_EVERY = (1, 2, 4, 8)
REPLICAS = 4
EPOCHS = 20
WALL_EPOCHS = 2
BATCH = 32
CMD = "python -m lab --only cluster"


@dataclass(frozen=True)
class BoardStep:
    """A board and its digits training step at minibatch 32: RTL cycles, link bytes each way."""

    name: str
    clk_hz: int
    baud: int
    cycles: int
    bytes_in: float
    bytes_out: float

    def step_seconds(self) -> float:
        return (self.bytes_in + self.bytes_out) * UART_BITS / self.baud + self.cycles / self.clk_hz

    def speedup(self, devices: int, k: int, sync_bytes: int) -> float:
        """Minibatches per second on ``devices`` boards averaging every ``k`` steps, against one board."""
        step = self.step_seconds()
        return devices * k * step / (k * step + (sync_bytes * UART_BITS / self.baud if devices > 1 else 0))


@dataclass(frozen=True)
class Figures:
    """The section's figures: the boards' steps, the bytes of one average per device, the test
    accuracy (device and float32) against K on :data:`REPLICAS` golden models, the seconds of an
    epoch on N virtual boards, and ``wide``: one golden model's test accuracy at a minibatch
    :data:`REPLICAS` times as large."""

    boards: list[BoardStep]
    sync_bytes: int
    accuracy: dict[int, float]
    float32: dict[int, float]
    epoch_seconds: dict[int, float]
    wide: float
    seconds: float = 0.0


def _boards() -> list[BoardStep]:
    """The digits step of every board whose array the parallelism section measured."""
    from hw.boards import BOARDS
    from lab.__main__ import read
    from lab.parallelism_records import index

    steps = index(read()["parallelism"].steps)
    return [BoardStep(name, b.config.clk_hz, b.config.baud, s.cycles, s.bytes_in * BATCH, s.bytes_out * BATCH)
            for name, b in BOARDS.items() if (s := steps.get((b.config.rows, b.config.cols, BATCH)))]


def _sync_bytes(network: Network) -> int:
    """The link bytes one average costs a device: every weight read, then written."""
    with Driver.open("model", config=DeviceConfig()) as driver:
        trainer = Trainer(driver, network)
        trainer.load(trainer.initial_weights())
        driver.reset_stats()
        trainer.set_parameters(trainer.weights())
        return driver.bytes_sent + driver.bytes_received


def _train(start: tuple, targets: list[str], k: int, epochs: int) -> tuple[float, list[float]]:
    """Test accuracy after ``epochs`` on ``targets`` averaging every ``k`` steps from ``start``
    (network, formats, raw weights, training and test set), and each epoch's seconds."""
    network, formats, raw, train, test = start
    cluster = Cluster(targets, network, formats, 0, DeviceConfig())
    try:
        cluster.load(raw)
        rng, seconds = np.random.default_rng(0), []
        for epoch in range(1, epochs + 1):
            began = time.monotonic()
            cluster.train_epoch(train, rng, epoch, k)
            seconds.append(time.monotonic() - began)
        return float(np.mean(cluster.predict(test.x) == test.y)), seconds
    finally:
        cluster.close()


def _wide(network: Network, train, test) -> float:
    """Test accuracy of ``network`` trained alone at a minibatch :data:`REPLICAS` times as large, as
    ``systolic train --target model --batch …`` trains it (buffers deepened to fit)."""
    wide = dataclasses.replace(network, batch=network.batch * REPLICAS)
    with Driver.open("model", config=deep_enough(wide, DeviceConfig())) as driver:
        trainer = Trainer(driver, wide, 0, x=train.x)
        trainer.load(trainer.initial_weights())
        rng = np.random.default_rng(0)
        for epoch in range(1, EPOCHS + 1):
            trainer.train_epoch(train, rng, epoch)
        return float(np.mean(trainer.predict(test.x) == test.y))


def measure() -> Figures:
    network = Network(DIGITS, batch=BATCH)
    train, test = digits(seed=0)
    formats, raw = starting_point(network, train.x, 0)
    start = (network, formats, raw, train, test)
    accuracy = {k: _train(start, ["model"] * REPLICAS, k, EPOCHS)[0] for k in SYNC_EVERY}
    float32 = {k: reference(network, formats, raw, (train, test), 0, EPOCHS, REPLICAS, k) for k in SYNC_EVERY}
    wall = {n: _train(start, ["virtual"] * n, 1, WALL_EPOCHS)[1][-1] for n in (1, 2)}
    return Figures(_boards(), _sync_bytes(network), accuracy, float32, wall, _wide(network, train, test))


def render(r: Figures, plots: Path) -> str:
    """The section's Markdown; its plot goes to ``plots``."""
    rows = [(b, {n: {k: b.speedup(n, k, r.sync_bytes) for k in (1, 8)} for n in DEVICES}) for b in _kinds(r)]
    return report.render(TEMPLATES, "cluster.md.j2", r=r, rows=rows, devices=DEVICES, cmd=CMD,
                         replicas=REPLICAS, epochs=EPOCHS, batch=BATCH, wall_epochs=WALL_EPOCHS,
                         plot=_plot(r, plots))


def _kinds(r: Figures) -> list[BoardStep]:
    """One row per distinct step (boards of one array share it), named by all its boards."""
    kinds: dict[tuple, list[BoardStep]] = {}
    for b in r.boards:
        kinds.setdefault((b.clk_hz, b.baud, b.cycles, b.bytes_in, b.bytes_out), []).append(b)
    return [dataclasses.replace(group[0], name=", ".join(b.name for b in group)) for group in kinds.values()]


def _plot(r: Figures, plots: Path) -> str:
    fig, (speed, accuracy) = figure(2, width=10)
    for b in _kinds(r):
        for k, style in ((1, "-"), (8, "--")):
            speed.plot(DEVICES, [b.speedup(n, k, r.sync_bytes) for n in DEVICES], style, marker="o",
                       label=f"{b.name}, K={k}")
    speed.plot(DEVICES, DEVICES, ":", color="grey", label="ideal")
    speed.set(xlabel="boards", ylabel="speed-up (modelled)", xticks=DEVICES)
    speed.legend(fontsize=7)
    ks = sorted(r.accuracy)
    accuracy.plot(ks, [100 * r.accuracy[k] for k in ks], marker="o", label=f"{REPLICAS} devices")
    accuracy.plot(ks, [100 * r.float32[k] for k in ks], marker="x", linestyle="--",
                  label="float32, same schedule")
    accuracy.set(xlabel="K (steps between averages)", ylabel=f"test accuracy after {EPOCHS} epochs (%)",
                 xticks=ks)
    accuracy.legend(fontsize=7)
    return save(fig, plots / "cluster.png", CMD)
