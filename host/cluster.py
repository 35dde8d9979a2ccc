"""Data-parallel training across devices, with Ray: a replica of the weights on every device.

Each device holds the whole network and trains, with its own on-chip SGD, on its own minibatches:
the epoch's shuffled minibatches (:func:`host.data.minibatches`, the same order as on one device)
are dealt round-robin, minibatch ``j`` to device ``j mod N``. Every ``sync_every`` = K local steps
the replicas are reconciled by averaging their weights (local SGD; K = 1 averages after every step,
which is the gradient average of one minibatch N times as large, each device's update rounded on
its own). The average of the raw 16-bit words is summed exactly and divided by N, rounded to the
nearest word, ties to even (:func:`average`), so a run is reproducible bit for bit from its seed,
and a resume from a checkpoint (taken after the epoch's last average) is exact. Device ``r`` seeds
its stochastic rounding from ``(seed, epoch, r)``. After each epoch the devices' saturation counts
are added up and the formats move on every device together (:mod:`host.exponents`).

One Ray actor drives each device (:class:`Replica`): ``model:N`` (golden models), ``virtual:N``
(virtual boards the actors start) or pyserial URLs, each board an actor holding one unit of the
custom resource ``fpga``, told its port by rank. ``ray.init()`` starts Ray on this machine; with
``RAY_ADDRESS`` set it joins that cluster. Ray is the optional extra ``cluster``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import numpy as np

from host.compiler import Formats, Network, initial_parameters
from host.data import Dataset, minibatches
from host.exponents import follow
from host.profile import TensorStats, mean_stats
from host.train import COUNTER_MAX, epoch_seed, starting_formats
from hw.config import DeviceConfig

__all__ = ["ray_session", "devices", "average", "starting_point", "Replica", "Cluster", "EpochSummary",
           "reference"]


def ray_session(boards: int = 0):
    """The ``ray`` module, started on this machine (offering ``boards`` units of the resource ``fpga``)
    or joined to the cluster at ``RAY_ADDRESS`` if it is not running yet; ``None`` without Ray."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        # Ray warns on stderr that it enabled its token authentication: that is its default.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        local = boards and "RAY_ADDRESS" not in os.environ     # a cluster's nodes declare their own
        ray.init(resources={"fpga": boards} if local else None, include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False, configure_logging=False)
    return ray


def devices(spec: str) -> list[str]:
    """The targets of ``--devices``: ``model:N``, ``virtual:N`` or comma-separated pyserial URLs."""
    kind, _, count = spec.partition(":")
    if kind in ("model", "virtual") and count:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--devices {spec}: the count after {kind}: must be a positive number")
        return [kind] * int(count)
    urls = [u.strip() for u in spec.split(",") if u.strip()]
    if not urls:
        raise ValueError("--devices takes model:N, virtual:N or a comma-separated list of ports")
    return urls


def starting_point(network: Network, x, seed: int) -> tuple[Formats, list[np.ndarray]]:
    """The formats and raw initial weights of a run of ``seed`` on inputs ``x``, as
    :class:`host.train.Trainer` chooses them on one device."""
    formats = starting_formats(network, x, seed)
    return formats, formats.quantize(network, initial_parameters(network, np.random.default_rng(seed)))


def average(replicas: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of the replicas' raw parameters, to the nearest word, ties to even."""
    n = len(replicas)
    return [np.rint(np.sum(ws, axis=0) / n).astype(np.int64) for ws in zip(*replicas, strict=True)]


class Replica:
    """One device and the network on it (a Ray actor in :class:`Cluster`)."""

    def __init__(self, target: str, network: Network, formats: Formats, seed: int, rank: int,
                 config: DeviceConfig, profile: bool = False):
        from host.driver import Driver
        from host.train import Trainer

        self.rank, self.seed = rank, seed
        self._stack = contextlib.ExitStack()
        if target == "model":
            driver = self._stack.enter_context(Driver.open("model", config=config))
        elif target == "virtual":
            from sim.virtual import VirtualBoard

            url = self._stack.enter_context(VirtualBoard(config))
            driver = self._stack.enter_context(Driver.open(url, timeout=30.0))
        else:
            driver = self._stack.enter_context(Driver.open(target))
        self.driver = driver
        self.trainer = Trainer(driver, network, seed, formats, profile=profile)

    def load(self, raw: list[np.ndarray]) -> None:
        self.trainer.load(raw)

    def set_parameters(self, raw: list[np.ndarray]) -> None:
        self.trainer.set_parameters(raw)

    def weights(self) -> list[np.ndarray]:
        return self.trainer.weights()

    def begin_epoch(self, epoch: int) -> None:
        self.driver.reset_stats()
        self.trainer.reseed(epoch_seed(self.seed, epoch) ^ self.rank)
        self.counts = [np.zeros(r.rows, dtype=np.int64) for r in self.trainer.program.counters]
        self.steps_done = 0

    def steps(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[float], int]:
        """Train on ``batches``: each step's mean loss, and the right predictions made before them."""
        losses, right = [], 0
        drain = COUNTER_MAX // self.trainer.network.batch    # steps before a counter could saturate
        for x, y in batches:
            loss, predictions = self.trainer.train_step(x, y)
            losses.append(float(loss.mean()))
            right += int((predictions == y).sum())
            self.steps_done += 1
            if self.counts and self.steps_done % drain == 0:
                self.trainer.drain_counters(self.counts)
        return losses, right

    def profiles(self) -> list[dict]:
        """With profiling: each step's comparison with its float64 shadow since the last call."""
        return self.trainer.take_profiles()

    def active(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """With ``Network.stats``: the epoch's count of samples each hidden unit was active for, and the
        activations of the last minibatch."""
        self.trainer.drain_counters(self.counts)
        return self.counts, self.trainer.activations()

    def saturation(self) -> dict[str, tuple[int, int]]:
        return self.trainer.saturation()

    def program(self):
        return self.trainer.program

    def move(self, formats: Formats) -> None:
        self.trainer.move(formats)

    def predict(self, x) -> np.ndarray:
        return self.trainer.predict(x)

    def link_bytes(self) -> tuple[int, int]:
        return self.driver.bytes_sent, self.driver.bytes_received

    def close(self) -> None:
        self._stack.close()


@dataclass
class EpochSummary:
    """An epoch of data-parallel training: mean loss, training accuracy, format moves, link bytes per
    device ``(sent, received)`` and the number of averages; with ``Network.stats`` each hidden unit's
    active fraction over every device's samples, and the last minibatch's activations on device 0;
    with profiling, each tensor's comparison with its float64 shadow, averaged over every device's
    steps (:mod:`host.profile`)."""

    loss: float
    accuracy: float
    moves: list
    link: list[tuple[int, int]]
    syncs: int
    active: list[np.ndarray] | None = None
    activations: list[np.ndarray] | None = None
    profile: dict[str, TensorStats] | None = None


class Cluster:
    """A replica of ``network`` on each of ``targets`` (:func:`devices`), driven through Ray: ``model``
    and ``virtual`` devices of ``config``, boards whatever their ``INFO`` says; with ``profile`` every
    step is compared with a float64 shadow.

    Raises
    ------
    ValueError
        If Ray is not installed, or a device cannot be opened (the message names it).
    """

    def __init__(self, targets: list[str], network: Network, formats: Formats, seed: int,
                 config: DeviceConfig, profile: bool = False):
        boards = sum(t not in ("model", "virtual") for t in targets)
        ray = ray_session(boards)
        if ray is None:
            raise ValueError("--devices trains through Ray, which is not installed: pip install -e "
                             "'.[cluster]'")
        self.ray, self.targets, self.network, self.seed = ray, targets, network, seed
        have = ray.cluster_resources().get("fpga", 0)
        if boards > have:
            raise ValueError(f"--devices names {boards} boards, the Ray cluster offers {have:g} of the "
                             f"resource fpga: start each node with its boards, "
                             f"ray start --resources='{{\"fpga\": N}}'")
        actor = ray.remote(Replica)
        self.replicas = [actor.options(num_cpus=0, resources={} if t in ("model", "virtual") else {"fpga": 1})
                         .remote(t, network, formats, seed, rank, config, profile)
                         for rank, t in enumerate(targets)]
        self.profile = profile
        self._all("weights")          # the actors are up, or the error names the device

    def _all(self, method: str, *args, each=None) -> list:
        """Call ``method`` on every replica (``each[r]`` as the arguments of replica ``r``), in parallel."""
        calls = [getattr(r, method).remote(*(each[k] if each is not None else args))
                 for k, r in enumerate(self.replicas)]
        results = []
        for rank, call in enumerate(calls):
            try:
                results.append(self.ray.get(call))
            except self.ray.exceptions.RayError as error:
                cause = error.cause if isinstance(error, self.ray.exceptions.RayTaskError) else error
                raise ValueError(f"device {rank} ({self.targets[rank]}) failed: {type(cause).__name__}: "
                                 f"{str(cause).splitlines()[0] if str(cause) else ''} (resume from the last "
                                 f"checkpoint with the devices left)") from None
        return results

    def load(self, raw: list[np.ndarray]) -> None:
        self._all("load", raw)

    def weights(self) -> list[np.ndarray]:
        """The parameters, equal on every device after an epoch (its last step is followed by an
        average)."""
        return self._all("weights")[0]

    def train_epoch(self, data: Dataset, rng: np.random.Generator, epoch: int,
                    sync_every: int) -> EpochSummary:
        n = len(self.replicas)
        batches = list(minibatches(data, self.network.batch, rng))
        usable = len(batches) // n * n
        if usable == 0:
            raise ValueError(f"{len(batches)} minibatches of {self.network.batch} do not give each of the "
                             f"{n} devices one: lower the minibatch or use fewer devices")
        self._all("begin_epoch", epoch)
        losses, right, syncs = [], 0, 0
        for start in range(0, usable, n * sync_every):
            chunk = batches[start:start + n * sync_every]
            for step_losses, step_right in self._all("steps", each=[(chunk[r::n],) for r in range(n)]):
                losses += step_losses
                right += step_right
            if n > 1:
                self._all("set_parameters", average(self._all("weights")))
                syncs += 1
        tally: dict[str, list[int]] = {}
        for counts in self._all("saturation"):
            for name, (saturated, high) in counts.items():
                total = tally.setdefault(name, [0, 0])
                total[0] += saturated
                total[1] += high
        active = activations = None
        if self.network.stats:
            counted = self._all("active")
            active = [sum(layers) / (usable * self.network.batch)
                      for layers in zip(*(c for c, _ in counted), strict=True)]
            activations = counted[0][1]
        profile = None
        if self.profile:
            profile = mean_stats([step for steps in self._all("profiles") for step in steps])
        program = self.ray.get(self.replicas[0].program.remote())
        formats, moves = follow(program, {k: tuple(v) for k, v in tally.items()}, usable)
        if moves:
            self._all("move", formats)
        return EpochSummary(float(np.mean(losses)), right / (usable * self.network.batch), moves,
                            self._all("link_bytes"), syncs, active, activations, profile)

    def formats(self) -> Formats:
        return self.ray.get(self.replicas[0].program.remote()).formats

    def predict(self, x) -> np.ndarray:
        return self.ray.get(self.replicas[0].predict.remote(x))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._all("close")


def reference(network: Network, formats: Formats, start: list[np.ndarray], sets: tuple[Dataset, Dataset],
              seed: int, epochs: int, n: int, k: int) -> float:
    """The test accuracy of the same schedule in float32: ``n`` replicas from the raw ``start`` (in
    ``formats``), each on its round-robin minibatches, their weights averaged every ``k`` steps."""
    from host.reference import Reference

    train, test = sets
    weights = formats.dequantize(network, start)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        batches = list(minibatches(train, network.batch, rng))
        for first in range(0, len(batches) // n * n, n * k):
            chunk, replicas = batches[first:first + n * k], []
            for r in range(n):
                replica = Reference(network, weights)
                for x, y in chunk[r::n]:
                    replica.train_step(x, y)
                replicas.append(replica.weights())
            weights = [np.mean(ws, axis=0) for ws in zip(*replicas, strict=True)]
    return float(np.mean(Reference(network, weights).predict(test.x) == test.y))
