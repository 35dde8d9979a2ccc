"""The robustness grid: its cases, and one run of a case on the device beside float32."""

from __future__ import annotations

import time

import numpy as np

from bench.parallel import parallel_map
from bench.robust.records import Case, Run
from host.checkpoint import network_from_dict, network_to_dict
from host.compiler import Network, Output
from host.data import Dataset, digits
from host.driver import Driver
from host.reference import Reference
from host.train import Trainer
from hw.config import DeviceConfig
from hw.numerics import Act

__all__ = ["EPOCHS", "EVERY", "SEEDS", "grid", "train", "run_all"]

EPOCHS = 100
EVERY = 2
CONFIG = DeviceConfig(depth=8192)
SEEDS = (0, 1, 2)
ACTIVATIONS = {"identity": {"hidden": Act.IDENTITY}, "relu": {"hidden": Act.RELU},
               "leaky_relu": {"hidden": Act.LEAKY_RELU},
               "prelu": {"hidden": Act.LEAKY_RELU, "learn_slope": True, "slope": 0.25},
               "sigmoid": {"hidden": Act.SIGMOID}, "tanh": {"hidden": Act.TANH},
               "swish": {"hidden": Act.SWISH}}
DEPTHS = {2: (64, 32, 10), 3: (64, 32, 16, 10), 4: (64, 32, 32, 16, 10)}


def _case(label: str, seed: int, binary: bool = False, **options) -> Case:
    return Case(label, network_to_dict(Network(**options)), seed, binary)


def grid(seeds=SEEDS) -> list[Case]:
    """Every case, the slowest first (so the pool ends together)."""
    cases = []
    for batch in (1, 8, 32, 128):
        for lr in (0.03, 0.1, 0.3):
            for seed in seeds if batch > 1 else seeds[:1]:
                cases.append(_case(f"batch {batch}, lr {lr}", seed, sizes=DEPTHS[2], batch=batch,
                                   learning_rate=lr))
    for name, options in ACTIVATIONS.items():
        for layers, sizes in DEPTHS.items():
            if name == "relu" and layers == 2:
                continue   # the batch 32, lr 0.1 case above
            for seed in seeds[:2]:
                cases.append(_case(f"{name}, {layers} layers", seed, sizes=sizes, **options))
    for seed in seeds:
        cases.append(_case("sigmoid output (BCE)", seed, binary=True, sizes=(64, 32, 1),
                           output=Output.SIGMOID))
    return cases


def _binary(data: Dataset) -> Dataset:
    return Dataset(data.x, (data.y >= 5).astype(np.int64), 2, f"{data.name} (>= 5)")


def train(case: Case, epochs: int = EPOCHS, every: int = EVERY) -> Run:
    """One run of the grid: the device (golden model) and float32, side by side."""
    began = time.monotonic()
    network = network_from_dict(case.network)
    train_set, test = digits(seed=case.seed)
    if case.binary:
        train_set, test = _binary(train_set), _binary(test)
    checked, device, float32 = [], [], []
    with Driver.open("model", config=CONFIG) as driver:
        trainer = Trainer(driver, network, case.seed, x=train_set.x)
        initial = trainer.initial_weights()
        trainer.load(initial)
        reference = Reference.from_raw(trainer.program, initial)
        rng, ref_rng = np.random.default_rng(case.seed), np.random.default_rng(case.seed)
        for epoch in range(1, epochs + 1):
            trainer.train_epoch(train_set, rng, epoch)
            reference.train_epoch(train_set, ref_rng)
            if epoch % every == 0 or epoch == epochs:
                checked.append(epoch)
                device.append(float(np.mean(trainer.predict(test.x) == test.y)))
                float32.append(float(np.mean(reference.predict(test.x) == test.y)))
    return Run(case, checked, device, float32, time.monotonic() - began)


def _train(job: tuple[Case, int, int]) -> Run:
    return train(*job)


def run_all(cases: list[Case], epochs: int = EPOCHS, every: int = EVERY, workers: int | None = None,
            progress=None) -> list[Run]:
    """:func:`train` of every case in parallel (:func:`bench.parallel.parallel_map`: ``workers``
    processes, default every core, or a Ray cluster)."""
    runs = []
    for run in parallel_map(_train, [(case, epochs, every) for case in cases], workers):
        runs.append(run)
        if progress:
            progress(run)
    return runs
