"""The cheap corner of ``make robust``: digits trainings that once collapsed on the device train like
float32 (on the golden model, bit-identical to the gateware)."""

from __future__ import annotations

import numpy as np
import pytest

from host.compiler import Network
from host.data import digits
from host.driver import Driver
from host.reference import Reference
from host.train import Trainer
from hw.config import DeviceConfig


@pytest.mark.parametrize("network, epochs", [
    (Network((64, 32, 10)), 60),                    # collapsed to 10 % with every tensor in ACT
    (Network((64, 32, 10), batch=8), 20),           # collapsed to 10 % at epoch 20
], ids=["60-epochs", "batch-8"])
def test_digits_does_not_collapse(network, epochs):
    train, test = digits(seed=0)
    with Driver.open("model", config=DeviceConfig()) as driver:
        trainer = Trainer(driver, network, seed=0, x=train.x)
        initial = trainer.initial_weights()
        trainer.load(initial)
        rng, accuracy = np.random.default_rng(0), []
        for epoch in range(1, epochs + 1):
            trainer.train_epoch(train, rng, epoch)
            if epoch >= 20 and epoch % 10 == 0:
                accuracy.append(float(np.mean(trainer.predict(test.x) == test.y)))
    reference = Reference.from_raw(trainer.program, initial)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        reference.train_epoch(train, rng)
    float32 = float(np.mean(reference.predict(test.x) == test.y))
    assert min(accuracy) >= 0.95, accuracy
    assert accuracy[-1] >= float32 - 0.015, (accuracy, float32)


def _run(device, float32, epochs=None):
    from bench.robust import Case, Run

    epochs = epochs or list(range(2, 2 * len(device) + 1, 2))
    return Run(Case("x", {}, 0), epochs, device, float32, 1.0)


def test_collapse_gap_and_worst_gap():
    steady = _run([0.90, 0.95, 0.96, 0.96], [0.91, 0.96, 0.965, 0.97])
    assert not steady.collapsed and steady.final_gap == pytest.approx(1.0)
    assert steady.worst_gap == pytest.approx(1.0)        # epochs 6 and 8 are the second half
    dip = _run([0.90, 0.95, 0.80, 0.96], [0.91, 0.96, 0.96, 0.97])
    assert not dip.collapsed and dip.dips == [6]
    fell = _run([0.90, 0.95, 0.80, 0.30, 0.20], [0.91, 0.96, 0.96, 0.97, 0.97])
    assert fell.collapsed and fell.dips == [] and fell.worst_gap == pytest.approx(77.0)
    never_close = _run([0.50, 0.60, 0.70], [0.90, 0.91, 0.92])
    assert not never_close.collapsed                     # a gap that never closed is not a collapse
    untrained = _run([0.19, 0.10, 0.19, 0.09, 0.19], [0.19, 0.18, 0.20, 0.19, 0.19])
    assert not untrained.float32_trains and not untrained.collapsed and untrained.dips == []
    assert fell.float32_trains                           # float32 at 97 %: halfway from 10 % is 55 %


def test_grid_covers_the_brief_and_one_run_renders(tmp_path):
    from bench import robust
    from bench.robust import page
    from bench.robust.plot import plot

    cases = robust.grid()
    labels = {c.label for c in cases}
    assert {"batch 1, lr 0.03", "batch 128, lr 0.3", "prelu, 4 layers", "swish, 3 layers",
            "sigmoid output (BCE)"} <= labels
    assert sum(c.label == "batch 32, lr 0.1" for c in cases) == 3
    assert sum(c.label == "tanh, 3 layers" for c in cases) == 2 and len(cases) == 73
    run = robust.train(next(c for c in cases if c.label == "sigmoid output (BCE)"), epochs=2, every=1)
    assert run.epochs == [1, 2] and 0.5 < run.device[-1] <= 1 and 0.5 < run.float32[-1] <= 1
    md = page.render(robust.Grid(10.0, 2, [run]))
    assert "| sigmoid output (BCE) | 1 |" in md and "Collapses: none" in md
    plot(robust.Grid(10.0, 2, [run]), tmp_path / "gaps.png")
    assert (tmp_path / "gaps.png").stat().st_size > 0


def _grid():
    from bench.robust import Grid

    steady = _run([0.90, 0.95, 0.96, 0.96], [0.91, 0.96, 0.965, 0.97])
    fell = _run([0.90, 0.95, 0.80, 0.30, 0.20], [0.91, 0.96, 0.96, 0.97, 0.97])
    untrained = _run([0.19, 0.10, 0.19, 0.09, 0.19], [0.19, 0.18, 0.20, 0.19, 0.19])
    return Grid(120.0, 2, [steady, fell, untrained])


def test_grid_record_round_trips_through_json(tmp_path):
    from bench import report
    from bench.robust import Grid

    grid = _grid()
    report.write_json(tmp_path / "robust.json", grid)
    back = report.read_json(tmp_path / "robust.json", Grid)
    assert back == grid and back.summary == grid.summary
    assert '"collapsed": true' in (tmp_path / "robust.json").read_text()   # judged figures, for readers


def test_page_quotes_the_summary():
    from bench.robust import page

    md = page.render(_grid())
    assert "- **Collapses: x (seed 0).** Dips: none." in md
    assert "Float32 does not train: x (seed 0, float32 best 20.0 %)." in md
    assert "**77.00 points** (x)" in md and "2 runs" not in md
    assert "| x | 3 | 45.00 % | 71.00 % | 26.00 | 77.00 | **yes** |" in md


def test_the_stored_grid_renders_the_page_in_docs():
    from pathlib import Path

    from bench import report
    from bench.robust import Grid, page

    root = Path(__file__).resolve().parent.parent
    grid = report.read_json(root / "bench" / "robust.json", Grid)
    assert page.render(grid) == (root / "docs" / "robustness.md").read_text()
