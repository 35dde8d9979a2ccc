"""Prebuilt bitstreams: the manifest matches its files and the board table."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from hw.boards import BOARDS
from hw.boards.build import Report, Resource, write_report
from hw.boards.manifest import MANIFEST, check, record


def _build(tmp_path, name: str, fmax: float = 30.0, gateware: str = "0" * 40):
    """A finished build of board ``name`` in ``tmp_path / name`` with a made-up report."""
    target = BOARDS[name]
    build_dir = tmp_path / f"{name}-{fmax}-{gateware}"
    build_dir.mkdir()
    (build_dir / f"top.{target.bitstream}").write_bytes(bytes(range(256)) * 4)
    report = Report([Resource("LUT", "TRELLIS_COMB", 10, 100)], {"clk": (fmax, 15.0)}, True, [])
    write_report(target, report, 12.5, gateware, build_dir / "report.json")
    return build_dir


def test_record_then_check_catches_a_changed_file(tmp_path):
    folder = tmp_path / "bitstreams"
    item = record("ulx3s-85f", _build(tmp_path, "ulx3s-85f"), folder)
    assert item["sha256"] and item["commit"] == "0" * 40 and item["build_seconds"] == 12.5
    assert check(folder) == []
    path = folder / item["file"]
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    assert check(folder) == ["ulx3s-85f: ulx3s-85f.bit does not match its sha256"]


def test_check_catches_a_changed_board_table(tmp_path):
    folder = tmp_path / "bitstreams"
    record("ulx3s-85f", _build(tmp_path, "ulx3s-85f"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["ulx3s-85f"]["config"]["clk_hz"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "the board table now says" in check(folder)[0]


def test_check_catches_uncommitted_gateware(tmp_path):
    folder = tmp_path / "bitstreams"
    record("ulx3s-85f", _build(tmp_path, "ulx3s-85f"), folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["ulx3s-85f"]["commit"] += "+dirty"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert check(folder) == [f"ulx3s-85f: built from uncommitted gateware ({'0' * 40}+dirty): rebuild "
                             "and record it"]


def test_a_build_missing_timing_or_of_uncommitted_gateware_is_not_recorded(tmp_path):
    with pytest.raises(ValueError, match="misses timing"):
        record("ulx3s-85f", _build(tmp_path, "ulx3s-85f", fmax=10.0), tmp_path / "bitstreams")
    with pytest.raises(ValueError, match="uncommitted gateware"):
        record("ulx3s-85f", _build(tmp_path, "ulx3s-85f", gateware="0" * 40 + "+dirty"),
               tmp_path / "bitstreams")
    with pytest.raises(ValueError, match="no finished build"):
        record("icebreaker", tmp_path / "nothing", tmp_path / "bitstreams")


@pytest.mark.parametrize("name", list(BOARDS))
def test_info_reports_the_board_tables_configuration(name):
    """``systolic info`` on a board built from the table reports the table's configuration (the INFO
    payload comes from ``hw.isa.info_payload`` in the gateware and in the golden model alike)."""
    from host.driver import Driver

    config = BOARDS[name].config
    with Driver.open("model", config=config) as driver:
        reported = driver.info().config()
    unreported = {"vector_lanes", "serial_multipliers"}   # how units are built, not what they compute
    for field, value in asdict(config).items():
        if field not in unreported:
            assert getattr(reported, field) == value, field


def test_the_prebuilt_bitstreams_match_the_manifest_and_the_board_table():
    """Every entry of ``bitstreams/manifest.json`` against its file's sha256, the board table and a
    committed gateware."""
    assert json.loads(MANIFEST.read_text()), f"{MANIFEST} records no bitstream"
    assert check() == []
