"""The lab's arithmetic and Markdown, from small made-up figures (no simulator)."""

from dataclasses import replace

import pytest

from bench import report
from bench.measure import GemmProfile, SimStats
from lab import parallelism as par
from lab import parallelism_records as rec
from lab.__main__ import document, read
from lab.parallelism_findings import Findings
from lab.parallelism_records import BACKWARD, FORWARD, UPDATE, ArrayRun, Board, Figures, Resident, Step

BOARDS = [Board("slow", 2, 2, 10_000_000, 1_000_000), Board("fast", 2, 2, 100_000_000, 1_000_000)]


def step(rows: int, cols: int, batch: int) -> Step:
    """A made-up profiled step: cycles shrink with the cells and grow with the minibatch."""
    cells = rows * cols
    shapes = [(FORWARD, 10, 33, batch, 400 * batch // cells + 20),
              (BACKWARD, 32, 10, batch, 300 * batch // cells + 20),
              (UPDATE, 10, batch, 33, 400 * batch // cells + 60)]
    gemms = [GemmProfile(kind, m, k, n, cycles, m * k * n / cells) for kind, m, k, n, cycles in shapes]
    kinds = {"RUN + END": 3, "TENSOR": 39, "VEC": 50 * batch // cols, **{g.kind: g.cycles for g in gemms}}
    return Step(batch, rows, cols, sum(kinds.values()), sum(g.ideal for g in gemms), kinds, gemms,
                bytes_in=150.0 + 100 / batch, bytes_out=6.0)


@pytest.fixture
def results() -> Figures:
    steps = [step(r, r, m) for r in (1, 2) for m in (1, rec.BATCH, 128)]
    arrays = [ArrayRun(r, r, 1024, 1.0, 2.0, SimStats(1000, 1.0, 1000.0)) for r in (1, 2)]
    resident = [Resident(r, r, 64, 200, 64 * 5000 // (r * r)) for r in (1, 2)]
    return Figures(steps, arrays, BOARDS, resident, seconds=90.0)


def test_speedups_are_per_sample_against_one_cell_at_the_same_minibatch(results):
    up = rec.speedups(results.steps)
    at = rec.index(results.steps)
    assert up[1, 1, 32] == 1
    assert up[2, 2, 32] == pytest.approx(at[1, 1, 32].cycles / at[2, 2, 32].cycles)
    assert at[2, 2, 128].per_sample == at[2, 2, 128].cycles / 128


def test_speedups_skip_minibatches_without_a_1x1_step(results):
    steps = [s for s in results.steps if (s.rows, s.batch) != (1, 128)]
    assert (2, 2, 128) not in rec.speedups(steps)


def test_board_view_models_every_resident_epoch_at_every_board(results):
    slow, fast = rec.board_table(results)
    one = results.resident[0]
    line_s, array_s = one.bytes * 10 / 1e6, one.cycles / 1e7
    assert slow.samples_per_s[0] == ("1×1", pytest.approx(one.samples / (line_s + array_s)))
    assert (slow.own, [name for name, _ in fast.samples_per_s]) == ("2×2", ["1×1", "2×2"])
    assert slow.gain > fast.gain > 1      # the faster the clock, the more the line's bytes weigh


def test_tile_fill_and_drain_cap():
    gemm = GemmProfile(FORWARD, 10, 10, 32, 100, 50.0)
    assert rec.tile_fill(gemm, 8, 8) == 10 / 16
    assert rec.tile_fill(gemm, 2, 2) == 1
    assert rec.drain_cap(gemm, 8, 8) == 10 / 25
    assert rec.drain_cap(gemm, 2, 2) == 1


def test_perfect_gemms_keeps_the_rest_of_the_step(results):
    s = rec.index(results.steps)[2, 2, 32]
    rest = s.cycles - sum(g.cycles for g in s.gemms)
    assert rec.perfect_gemms(s) == pytest.approx(rest + s.gemm_ideal)
    assert s.share("RUN + END", "TENSOR") == 42 / s.cycles


def test_settled_is_the_first_minibatch_within_ten_percent_of_the_largest():
    steps = [replace(step(1, 1, m), cycles=c) for m, c in ((1, 300), (2, 400), (4, 440), (8, 800))]
    assert rec.settled(steps, 1, 1) == 4


def test_link_table_adds_line_and_array_time_per_sample(results):
    rows = rec.link_table(results)
    assert len(rows) == 2 * len(BOARDS)
    slow = next(x for x in rows if x.boards == ["slow"] and x.rows == 2)
    s = rec.index(results.steps)[2, 2, rec.BATCH]
    assert slow.array_s == pytest.approx(s.cycles / rec.BATCH / 10e6)
    assert slow.line_s == pytest.approx((s.bytes_in + s.bytes_out) * 10 / 1e6)
    assert slow.samples_per_s == pytest.approx(1 / (slow.array_s + slow.line_s))


def test_findings_quote_the_figures(results):
    f = Findings.of(results)
    assert [a.step.name for a in f.arrays] == ["1×1", "2×2"] and f.big.step.cells == 4
    assert f.big.speedup == pytest.approx(f.one.step.cycles / f.big.step.cycles)
    assert f.big.drain == 2 * 2 + 2 + 1 and f.lone_big.batch == 1
    assert f.link.slow.clk_hz == 10_000_000 and f.link.fast.clk_hz == 100_000_000
    assert f.link.gain == pytest.approx(f.link.larger.samples_per_s / f.link.smaller.samples_per_s)


def test_device_depth_is_the_shallowest_power_of_two_that_fits():
    assert par.device(4, 4).depth == 8192
    assert par.device(8, 8, batch=32).depth == 1024


def test_render_names_the_command_and_draws_the_plots(results, tmp_path):
    md = par.render(results, tmp_path)
    assert f"`{par.CMD}`" in md
    s = rec.index(results.steps)[2, 2, rec.BATCH]
    assert f"| 2×2 | 4 | {s.cycles:,} | {s.per_sample:,.0f} |" in md
    for name in ("speedup.png", "per_sample.png", "breakdown.png"):
        assert f"](lab/{name})" in md
        assert (tmp_path / name).stat().st_size > 0


def test_figures_round_trip_through_json(results, tmp_path):
    report.write_json(tmp_path / "results.json", {"parallelism": results})
    back = read(tmp_path / "results.json")["parallelism"]
    assert back == results and isinstance(back.steps[0], Step)
    assert isinstance(back.steps[0].gemms[0], GemmProfile)


def test_document_has_the_introduction_and_every_measured_section(results, tmp_path):
    md = document({"parallelism": results}, tmp_path)
    assert md.startswith("# The lab: how is a neural net parallelised on a chip?")
    assert f"\n\n## {par.TITLE}\n\n" in md
    assert document({}, tmp_path).count("\n## ") == 0


def test_the_stored_figures_render_the_page_in_docs(tmp_path):
    from lab import DOCS

    assert document(read(), tmp_path) == DOCS.read_text()
