"""The profiler: its measures, its shadow of a step, and that profiling changes no result."""

from __future__ import annotations

import numpy as np
import pytest

from host.compiler import Formats, Network, compile_network, initial_parameters
from host.data import Dataset
from host.driver import Driver
from host.profile import compare, mean_stats, step_stats, table
from host.train import Trainer
from hw.config import DeviceConfig

SMALL = DeviceConfig(rows=4, cols=4)
NET = Network((8, 6, 3), batch=8, learning_rate=0.5)


def _data(n: int = 48) -> Dataset:
    rng = np.random.default_rng(4)
    centres = rng.normal(0, 1, (3, 8))
    y = rng.integers(0, 3, n)
    return Dataset(centres[y] + rng.normal(0, 0.3, (n, 8)), y, 3)


def test_compare_measures():
    s = compare([32767, 0, 4, -32768], 2, [9000.0, 0.1, 1.0, -8192.0])
    assert s.frac == 2 and s.saturated == 0.5 and s.flushed == 0.25
    exact = compare([4, -8], 2, [1.0, -2.0])
    assert exact.saturated == exact.flushed == exact.error == 0.0
    assert compare([1, 0], 0, [1.1, 0.0]).error == pytest.approx(0.1 / 1.1)
    assert compare([0, 0], 0, [0.0, 0.0]).error == 0.0


def _epoch(profile: bool, formats: Formats | None = None, scale: float = 1.0):
    data = _data()
    params = [w * scale for w in initial_parameters(NET, np.random.default_rng(2))]
    formats = formats or Formats.choose(NET, data.x, params)
    with Driver.open("model", config=SMALL) as driver:
        trainer = Trainer(driver, NET, seed=2, formats=formats, profile=profile)
        trainer.load(trainer.program.quantize(params))
        result = trainer.train_epoch(data, np.random.default_rng(1), 1)
        return result, trainer.weights()


def test_profiling_changes_nothing_and_tracks_the_shadow():
    plain, weights = _epoch(False)
    profiled, profiled_weights = _epoch(True)
    assert plain.profile is None and plain.loss == profiled.loss
    for a, b in zip(weights, profiled_weights, strict=True):
        assert np.array_equal(a, b)
    stats = profiled.profile
    assert {"X", "Z1", "A1", "g'1", "Z2", "P", "dZ2", "dZ1", "W1", "ΔW1", "W2", "ΔW2"} == set(stats)
    for name in ("Z1", "A1", "Z2", "P", "dZ2", "W1", "W2"):
        assert stats[name].saturated == 0 and stats[name].error < 0.01, (name, stats[name])
    assert "ΔW2" in table(stats)


def test_profile_catches_saturated_logits():
    """Logits in ACT (±8) with weights that drive them past it: the profiler shows Z2 saturating and
    the errors that follow; the chosen formats do not."""
    cramped = Formats(x=12, a=(12,), logits=12, w=(12, 12), dz=(12,), slope=12)
    bad, _ = _epoch(True, cramped, scale=6.0)
    assert bad.profile["Z2"].saturated > 0.05 and bad.profile["dZ2"].error > 0.05
    good, _ = _epoch(True, None, scale=6.0)
    assert good.profile["Z2"].saturated == 0 and good.profile["dZ2"].error < 0.01


def test_step_stats_needs_a_kept_program():
    program = compile_network(NET, SMALL)
    with pytest.raises(ValueError, match="keep=True"):
        step_stats(program, lambda region: None, [], np.zeros((8, 8)), np.zeros(8, dtype=int))


def test_mean_stats():
    a, b = compare([1], 0, [1.0]), compare([0], 0, [1.0])
    mean = mean_stats([{"t": a}, {"t": b}])["t"]
    assert mean.flushed == 0.5 and mean.error == 0.5
