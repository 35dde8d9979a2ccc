"""The lab's training sections render what they measured (fake figures, no simulator)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import report
from lab import activations, neurons, rounding
from lab.runs import Run


def _run(test: float, active=None, slopes=(), max_weight=0.5, weight_saturated=False) -> Run:
    """One run of :func:`lab.runs.train` with made-up figures, 3 epochs."""
    return Run({}, 0, [1.0, 0.5, 0.25], [0.5, 0.7, test], [0.5, 0.8, test], [0.5, 0.8, 0.95], active or [],
               [list(slopes)] if slopes else [], max_weight, weight_saturated, [[1] * 40, [2] * 40], 1.0)


def test_activations_summary_and_page(tmp_path):
    runs = {label: [_run(0.9 + 0.01 * k, active=[[[0, 1, 2]]] * 3) for k in range(3)]
            for label in activations.VARIANTS}
    runs["tanh"] = [_run(0.97, active=[[[3, 1, 2]]] * 3) for _ in range(3)]
    runs["PReLU (learned)"] = [replace(run, slopes=[[0.2, 0.3]]) for run in runs["PReLU (learned)"]]
    s = activations.Variant.of("ReLU", runs["ReLU"])
    assert s.device == pytest.approx(0.91) and (s.low, s.high) == (0.9, 0.92)
    assert s.gap == pytest.approx(0.04) and s.dead == pytest.approx(1 / 3)
    assert activations.Variant.of("PReLU", runs["PReLU (learned)"]).slopes == pytest.approx((0.25, 0.2, 0.3))
    page = activations.render(activations.Figures(3, runs), tmp_path)
    assert "**Best on the device: tanh** at 97.00 %" in page
    assert "| ReLU | **91.00 %** (90.00 % – 92.00 %) | 95.00 % | +4.00 pts | 0.2500 | 33.33 % |" in page
    assert "0.01: 91.00 %, 0.1: 91.00 %, 0.3: 91.00 %" in page
    assert (tmp_path / "activations.png").exists() and (tmp_path / "prelu-slopes.png").exists()


@pytest.mark.parametrize("edge, words", [(False, "No weight ever reached"), (True, "Some weights reached")])
def test_rounding_page(tmp_path, edge, words):
    runs = {f"{b} {r}": [_run(0.2 if (b, r) == (8, "nearest") else 0.93, weight_saturated=edge)]
            for b in rounding.BITS for r in rounding.ROUNDINGS}
    page = rounding.render(rounding.Figures(3, runs, {b: 0.1 for b in rounding.BITS}), tmp_path)
    assert "the gap to float32 is 75.00 points with round-to-nearest" in page
    assert "2.00 points with stochastic rounding" in page and words in page
    assert "| 8 | 0.1000 | 20.00 % | **93.00 %** | 95.00 % | 0.50 |" in page


def test_neurons_dead_fractions_and_page(tmp_path):
    epochs = [[[0, .5, 0, .1]], [[0, .5, .1, .1]], [[.3, .6, .1, .2]]]
    run = _run(0.9, active=epochs)
    assert neurons.dead(run, 0) == [0.5] and neurons.dead(run) == [0.0]
    runs = {label: [run] for label in neurons.VARIANTS}
    check = neurons.Check(1, True, 8.0, 2.0)
    page = neurons.render(neurons.Figures(3, runs, check), tmp_path)
    assert "| 50.0 % → **0.0 %** |" in page and "50.0 % of layer 1\n  were active" in page
    assert "gave identical losses" in page
    assert "| ReLU | 90.00 % (95.00 %) | 0.50 | 30.0 % |" in page   # mean of the last epoch's fractions
    assert "Saturation" not in page
    runs["ReLU, lr 0.3"] = [replace(run, max_weight=8.0, weight_saturated=True)]
    page = neurons.render(neurons.Figures(3, runs, check), tmp_path)
    assert "- **Saturation**: in ReLU, lr 0.3 some weights reached the edge" in page
    assert "(ReLU, lr 0.3: 90.00 % on the device, 95.00 % in float32)" in page


def test_a_section_round_trips_through_json(tmp_path):
    runs = {label: [_run(0.9, active=[[[0, 1]]] * 3)] for label in neurons.VARIANTS}
    figures = neurons.Figures(3, runs, neurons.Check(1, True, 8.0, 2.0), seconds=12.5)
    report.write_json(tmp_path / "neurons.json", figures)
    assert report.read_json(tmp_path / "neurons.json", neurons.Figures) == figures
