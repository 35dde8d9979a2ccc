"""The board table, the board tops and the build report, without the FPGA toolchains."""

from dataclasses import replace

import pytest
from amaranth.back import rtlil

from hw.boards import BOARDS, Board, Ecp5Pll, Ice40Pll, board
from hw.boards.build import build_options, parse_nextpnr_log
from hw.boards.top import BoardTop
from hw.config import DeviceConfig
from hw.soc import UartSoC
from hw.uart import uart_divisor


@pytest.mark.parametrize("name", BOARDS)
def test_board_row_is_consistent(name):
    target = BOARDS[name]
    cfg = target.config
    assert target.name == name
    clk = target.pll.output_hz(target.osc_hz) if target.pll else target.osc_hz
    assert clk == cfg.clk_hz
    assert cfg.baud >= 1_000_000
    assert uart_divisor(cfg.clk_hz, cfg.baud) >= 4
    assert target.platform_class()().default_clk_frequency == target.osc_hz


@pytest.mark.parametrize("name", BOARDS)
def test_top_elaborates(name):
    target = BOARDS[name]
    platform = target.platform_class()()
    plan = platform.build(BoardTop(target), name="top", do_build=False)
    assert "module \\top" in plan.files["top.il"]
    assert "uart" in plan.files["top.il"]


def test_rtlil_of_the_icebreaker_device():
    text = rtlil.convert(UartSoC(BOARDS["icebreaker"].config))
    assert "\\rx" in text and "\\tx" in text


def test_unknown_board_names_the_boards():
    with pytest.raises(ValueError, match="icebreaker"):
        board("nexys")


def test_clock_mismatch_is_rejected():
    with pytest.raises(ValueError, match="clk_hz"):
        Board(name="x", platform="m:C", osc_hz=25_000_000, config=DeviceConfig(clk_hz=50_000_000),
              pll=Ecp5Pll(clki_div=1, clkfb_div=4, clkop_div=6, clkop_cphase=2), loader="x",
              bitstream="bit")


def test_unknown_placer_is_rejected():
    with pytest.raises(ValueError, match="heap, sa, static"):
        replace(board("ulx3s-12f"), placer="fast")


@pytest.mark.parametrize("name", list(BOARDS))
def test_build_places_with_the_boards_placer_and_seed(name):
    options = build_options(board(name)).get("nextpnr_opts", "").split()
    assert options[options.index("--placer") + 1] == board(name).placer
    assert "--timing-allow-fail" in options
    seed = board(name).seed
    if seed is None:
        assert "--seed" not in options
    else:
        assert options[options.index("--seed") + 1] == str(seed)


def test_pll_ranges():
    assert Ice40Pll(divr=0, divf=63, divq=5, filter_range=1).output_hz(12e6) == 24e6
    with pytest.raises(ValueError, match="VCO"):
        Ecp5Pll(clki_div=1, clkfb_div=4, clkop_div=2, clkop_cphase=0).check(25e6)


ICE40_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:  5012/ 5280    94%
Info: \t        ICESTORM_RAM:    20/   30    66%
Info: \t               SB_IO:     3/   96     3%
Info: \t        ICESTORM_DSP:     8/    8   100%
Info: \t      ICESTORM_SPRAM:     0/    4     0%
Info: Max frequency for clock 'clk': 10.00 MHz (FAIL at 12.00 MHz)
Info: Routing complete.
Info: Max frequency for clock 'clk': 13.50 MHz (PASS at 12.00 MHz)
"""


def test_parse_nextpnr_log():
    report = parse_nextpnr_log(ICE40_LOG, "ice40")
    assert [(r.name, r.used, r.available) for r in report.resources] == [
        ("LUT", 5012, 5280), ("DSP", 8, 8), ("BRAM", 20, 30), ("SPRAM", 0, 4), ("IO", 3, 96)]
    assert report.fmax == {"clk": (13.5, 12.0)}
    assert report.fits and report.timing_met


def test_parse_nextpnr_log_overfull():
    text = ICE40_LOG.replace("5012/ 5280", "9000/ 5280").replace("Routing complete", "")
    text += "ERROR: Unable to place cell 'x', no BELs remaining\n"
    report = parse_nextpnr_log(text, "ice40")
    assert not report.fits
    assert report.errors == ["ERROR: Unable to place cell 'x', no BELs remaining"]


def test_area_lists_the_blocks_of_a_device():
    from hw.boards.area import Block, _table, blocks, rtlil_modules

    config = DeviceConfig(rows=2, cols=2, depth=16, imem=8, k_max=8, clk_hz=12_000_000)
    found = blocks(UartSoC(config), depth=4)
    paths = [b.path for b in found]
    assert paths[0] == () and ("soc", "controller", "datapath", "vector") in paths
    assert all(len(p) <= 4 for p in paths) and ("soc", "controller", "sequencer", "memory") not in paths
    assert Block(("soc", "link"), "Link").module == "top.soc.link"
    modules = rtlil_modules(rtlil.convert(UartSoC(config), name="top"))   # some names get a $N
    assert all(b.module in modules for b in found) and modules["top.soc.link"] == "top.soc.link"
    rows = [(Block((), "Top"), {"ICESTORM_LC": 10}), (Block(("a",), "A"), {"ICESTORM_LC": 4})]
    table = _table(BOARDS["icebreaker"], rows)
    assert table[1].split()[:3] == ["top", "(Top)", "10"] and table[2].split()[:2] == ["(rest)", "6"]
