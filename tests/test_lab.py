"""The lab's arithmetic and Markdown, from small made-up figures (no simulator)."""

import pytest

from lab import parallelism as par
from lab.__main__ import document
from lab.parallelism import BACKWARD, FORWARD, UPDATE

BOARDS = [{"name": "slow", "rows": 2, "cols": 2, "clk_hz": 10_000_000, "baud": 1_000_000},
          {"name": "fast", "rows": 2, "cols": 2, "clk_hz": 100_000_000, "baud": 1_000_000}]


def step(rows: int, cols: int, batch: int) -> dict:
    """A made-up profiled step: cycles shrink with the cells and grow with the minibatch."""
    cells = rows * cols
    gemms = [{"kind": FORWARD, "m": 10, "k": 33, "n": batch, "cycles": 400 * batch // cells + 20},
             {"kind": BACKWARD, "m": 32, "k": 10, "n": batch, "cycles": 300 * batch // cells + 20},
             {"kind": UPDATE, "m": 10, "k": batch, "n": 33, "cycles": 400 * batch // cells + 60}]
    for g in gemms:
        g["ideal"] = g["m"] * g["k"] * g["n"] / cells
    kinds = {"RUN + END": 3, "TENSOR": 39, "VEC": 50 * batch // cols}
    for g in gemms:
        kinds[g["kind"]] = g["cycles"]
    return {"batch": batch, "rows": rows, "cols": cols, "cycles": sum(kinds.values()),
            "gemm_ideal": sum(g["ideal"] for g in gemms), "kinds": kinds, "gemms": gemms,
            "bytes_in": 150.0 + 100 / batch, "bytes_out": 6.0}


@pytest.fixture
def results() -> dict:
    steps = [step(r, r, m) for r in (1, 2) for m in (1, par.BATCH, 128)]
    arrays = [{"rows": r, "cols": r, "depth": 1024, "start_seconds": 1.0, "wall_seconds": 2.0,
               "simulator": {}} for r in (1, 2)]
    return {"steps": steps, "arrays": arrays, "boards": BOARDS, "seconds": 90.0}


def test_speedups_are_per_sample_against_one_cell_at_the_same_minibatch(results):
    up = par.speedups(results["steps"])
    at = par.index(results["steps"])
    assert up[1, 1, 32] == 1
    assert up[2, 2, 32] == pytest.approx(at[1, 1, 32]["cycles"] / at[2, 2, 32]["cycles"])
    assert par.per_sample(at[2, 2, 128]) == at[2, 2, 128]["cycles"] / 128


def test_speedups_skip_minibatches_without_a_1x1_step(results):
    steps = [s for s in results["steps"] if (s["rows"], s["batch"]) != (1, 128)]
    assert (2, 2, 128) not in par.speedups(steps)


def test_tile_fill_and_drain_cap():
    gemm = {"m": 10, "k": 10, "n": 32}
    assert par.tile_fill(gemm, 8, 8) == 10 / 16
    assert par.tile_fill(gemm, 2, 2) == 1
    assert par.drain_cap(gemm, 8, 8) == 10 / 25
    assert par.drain_cap(gemm, 2, 2) == 1


def test_perfect_gemms_keeps_the_rest_of_the_step(results):
    s = par.index(results["steps"])[2, 2, 32]
    rest = s["cycles"] - sum(g["cycles"] for g in s["gemms"])
    assert par.perfect_gemms(s) == pytest.approx(rest + s["gemm_ideal"])
    assert par.share(s, ("RUN + END", "TENSOR")) == 42 / s["cycles"]


def test_settled_is_the_first_minibatch_within_ten_percent_of_the_largest():
    steps = [{"rows": 1, "cols": 1, "batch": m, "cycles": c}
             for m, c in ((1, 300), (2, 400), (4, 440), (8, 800))]
    assert par.settled(steps, 1, 1) == 4


def test_link_table_adds_line_and_array_time_per_sample(results):
    rows = par.link_table(results)
    assert len(rows) == 2 * len(BOARDS)
    slow = next(x for x in rows if x["boards"] == ["slow"] and x["rows"] == 2)
    s = par.index(results["steps"])[2, 2, par.BATCH]
    assert slow["array_s"] == pytest.approx(s["cycles"] / par.BATCH / 10e6)
    assert slow["line_s"] == pytest.approx((s["bytes_in"] + s["bytes_out"]) * 10 / 1e6)


def test_device_depth_is_the_shallowest_power_of_two_that_fits():
    assert par.device(4, 4).depth == 8192
    assert par.device(8, 8, batch=32).depth == 1024


def test_render_names_the_command_and_draws_the_plots(results, tmp_path):
    md = par.render(results, tmp_path)
    assert f"`{par.CMD}`" in md
    assert "| 2×2 | 4 |" in md
    for name in ("speedup.png", "per_sample.png", "breakdown.png"):
        assert f"](lab/{name})" in md
        assert (tmp_path / name).stat().st_size > 0


def test_document_has_the_introduction_and_every_measured_section(results, tmp_path):
    md = document({"parallelism": results}, tmp_path)
    assert md.startswith("# The lab: how is a neural net parallelised on a chip?")
    assert f"## {par.TITLE}" in md
    assert document({}, tmp_path).count("\n## ") == 0
