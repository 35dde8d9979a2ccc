"""The benchmark's pure parts: table formatting, the GEMM runs and their summaries (``make bench``
itself is not part of ``make test``)."""

from dataclasses import replace
from pathlib import Path

import pytest

from bench import gemms, judge, measure, page, report
from bench.measure import GemmRun
from bench.records import Bitstream, Results, manifest
from bench.table import Row, markdown, text, verdict
from hw.boards import BOARDS
from hw.isa import Opcode, Status
from sim.model import Device

ROOT = Path(__file__).resolve().parent.parent


def test_verdicts():
    assert (verdict(True), verdict(False), verdict(None)) == ("pass", "SHORT", "—")


def test_tables_hold_every_row_and_escape_pipes():
    rows = [Row("a | b", "≥ 90 %", "95.0 %", verdict(True), "python -m bench"),
            Row("c", "", "n/a", verdict(None), "")]
    md = markdown(rows).splitlines()
    assert len(md) == 4 and md[2] == "| a \\| b | ≥ 90 % | 95.0 % | pass | `python -m bench` |"
    assert md[3].endswith("| — |  |")
    plain = text(rows).splitlines()
    assert len(plain) == 4
    assert plain[2].index("≥ 90 %") == plain[0].index("target")


def test_digits_gemms_come_from_the_compiled_step():
    _, found = gemms.digits(4, 4)
    assert [(g.m, g.k, g.n, g.ta, g.tb) for g in found] == [
        (32, 65, 32, False, False), (10, 33, 32, False, False), (32, 10, 32, True, False),
        (10, 32, 33, False, True), (32, 32, 65, False, True)]
    assert [g.kind for g in found[1:4]] == [gemms.gemm_kind(False, False), gemms.gemm_kind(True, False),
                                            gemms.gemm_kind(False, True)]
    assert len(found[2].tensors) == 4 and len(found[4].tensors) == 3  # c = out in the SGD step


def test_controllers_cover_every_board_array():
    assert set(gemms.CONTROLLERS) == {(b.config.rows, b.config.cols) for b in BOARDS.values()}
    for (rows, cols), config in gemms.CONTROLLERS.items():
        assert (config.rows, config.cols, config.imem) == (rows, cols, 16)
        assert config.depth == gemms.depth_needed(gemms.digits(rows, cols)[1] + gemms.sweep(config))


@pytest.mark.parametrize("size", sorted(gemms.CONTROLLERS))
def test_every_gemm_run_is_one_gemm_the_golden_model_runs(size):
    config = gemms.CONTROLLERS[size]
    runs = measure.gemm_runs(config)
    assert [r["k"] for r in runs if r["family"] == "sweep"] == [1 << i for i in range(
        (8 * max(size)).bit_length())]
    for r in runs:
        device = Device(config)
        device.program(r["words"])
        assert device.run(0) == (Status.OK, len(r["words"]) - 1), r
        assert sum(Opcode(w & 0xF) == Opcode.GEMM for w in r["words"]) == 1


def test_standalone_moves_tensors_down_and_checks_the_depth():
    program, found = gemms.digits(4, 4)
    backward = found[2]
    need = gemms.depth_needed([backward])
    setup = gemms.setup_words(program)
    words = gemms.standalone(backward, need, setup)
    assert words[:len(setup)] == list(setup) and words[-2] == backward.word
    assert min(t.base for t in backward.tensors.values()) > 0 and need < max(
        t.end for t in backward.tensors.values())
    with pytest.raises(ValueError, match=f"needs {need} words per bank"):
        gemms.standalone(backward, need - 1)


def _eff(level, m, k, n, efficiency, **more):
    return GemmRun(4, 4, m, k, n, 100, 100 * efficiency, efficiency, level, **more)


def test_target_scope_and_tile_occupancy():
    row = GemmRun(8, 8, 10, 33, 32, 100, 80.0, 0.8, "instruction")
    assert row.applies and not row.filled
    assert not replace(row, k=31).applies and not replace(row, n=31).applies
    assert replace(row, m=16).filled
    assert row.occupancy == 10 / 16 and row.in_busy_cells == 0.8 * 16 / 10
    assert gemms.occupancy(10, 32, 8, 8) == 10 / 16 and gemms.occupancy(32, 65, 4, 4) == 65 / 68


def test_efficiency_row_names_the_shapes_that_miss():
    filled = [_eff("array", 8, 16, 64, 0.98), _eff("instruction", 16, 32, 32, 0.95, family="sweep")]
    assert judge.efficiency_row(filled).verdict == "pass"
    short = _eff("instruction", 10, 33, 32, 0.8, family="digits", kind="GEMM W·A (forward)")
    row = judge.efficiency_row([*filled, short, _eff("array", 8, 1, 64, 0.1)])
    assert row.verdict == "SHORT (filled tiles pass)"
    assert "4×4 ≥ 98.0 % (array), ≥ 95.0 % (instruction)" in row.measured
    assert "10×33×32 on 4×4 80.0 % (83.3 % of cells busy)" in row.measured
    assert judge.efficiency_row([_eff("array", 8, 16, 64, 0.5), short]).verdict == "SHORT"


def test_gemm_target_says_why_it_does_not_apply():
    assert judge.gemm_target(_eff("instruction", 10, 33, 32, 0.8)) == "SHORT"
    assert judge.gemm_target(_eff("instruction", 32, 10, 32, 0.9)) == "(K < 16)"
    assert judge.gemm_target(_eff("instruction", 32, 32, 8, 0.9)) == "(N < 16)"


def _entry(rows, cols, dsp, fmax, clk_hz=15e6):
    return report.from_dict(Bitstream, {
        "board": "b", "file": "b.bit", "config": {}, "rows": rows, "cols": cols, "clk_hz": clk_hz,
        "baud": 3e6, "build_seconds": 600.0, "tools": {}, "sha256": "", "commit": "0123456789abcdef",
        "fmax": {"clk": {"achieved": fmax, "target": clk_hz / 1e6}},
        "resources": [{"name": "LUT", "cell": "TRELLIS_COMB", "used": 28963, "available": 83640},
                      {"name": "DSP", "cell": "MULT18X18D", "used": dsp, "available": 156},
                      {"name": "IO", "cell": "TRELLIS_IO", "used": 9, "available": 365}]})


def test_board_targets_are_judged_on_the_recorded_bitstreams():
    assert [r.verdict for r in judge.bitstream_rows({})] == ["not measured"] * 2
    slow = judge.bitstream_rows({"ulx3s-85f": _entry(8, 8, 81, 25.6)})
    assert slow[0].verdict == "not measured" and slow[1].verdict == "SHORT"
    assert "64 MAC cells" in slow[1].measured and "81/156 DSP" in slow[1].measured
    assert "IO" not in slow[1].measured
    assert judge.bitstream_rows({"ulx3s-85f": _entry(8, 8, 81, 101.0)})[1].verdict == "pass"
    ice = judge.bitstream_rows({"icebreaker": _entry(2, 4, 8, 13.0, clk_hz=12e6)})
    assert ice[0].verdict == "pass"
    assert judge.bitstream_rows({"icebreaker": _entry(2, 4, 8, 11.0, clk_hz=12e6)})[0].verdict == "SHORT"


def _results() -> Results:
    """The stored figures of the last ``make bench``."""
    return report.read_json(ROOT / "bench" / "results.json", Results)


def test_results_round_trip_through_json(tmp_path):
    r = _results()
    report.write_json(tmp_path / "results.json", r)
    back = report.read_json(tmp_path / "results.json", Results)
    assert back.steps == r.steps and back.link == r.link and back.accuracy == r.accuracy
    assert back.efficiency == r.efficiency and back.boards[-1] == r.boards[-1]
    assert set(back.link) == {1, 8, 32} and back.steps[0].gemms[0].efficiency > 0
    with pytest.raises(ValueError, match="Identity has no field same"):
        report.from_dict(Results, {**report.to_dict(r), "identity": {"same": True}})


def test_page_renders_the_figures_of_its_record():
    r = _results()
    rows = judge.rows(r, {"ulx3s-85f": _entry(8, 8, 81, 25.6)})
    assert len(rows) == 1 + len(r.steps) + 2 + len(r.boards) + len(r.resident) + 5 + 1 + 2
    resident = next(e for e in r.resident if e.device == "ulx3s-85f")
    assert f"{resident.samples_per_s:,.0f} samples/s modelled" in "".join(row.measured for row in rows)
    md = page.render(r, rows, {"ulx3s-85f": _entry(8, 8, 81, 25.6)})
    first = r.digits_gemms()[0]
    shape = f"{first.m} × {first.k} × {first.n}"
    assert f"| {first.rows}×{first.cols} | {first.kind} | {shape} | {first.cycles} |" in md
    assert f"| **step** | **{r.steps[0].cycles}** |" in md
    assert ("| ulx3s-85f | 8×8 | 15 MHz | 3 Mbaud | 28,963 / 83,640 | 81 / 156 | 25.6 MHz | 10 min "
            "| `0123456789` |") in md
    assert "No bitstream is recorded" in page.render(r, rows, {})


def test_the_stored_figures_render_the_page_in_docs():
    r, bitstreams = _results(), manifest(ROOT / "bitstreams" / "manifest.json")
    md = page.render(r, judge.rows(r, bitstreams), bitstreams)
    assert md == (ROOT / "docs" / "benchmarks.md").read_text()
