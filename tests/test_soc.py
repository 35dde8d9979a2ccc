"""The device behind its UART (``sim/tb_soc.py``) and the SoC's parameters."""

import gc
from dataclasses import asdict

import pytest

from hw.config import DeviceConfig
from hw.frame import encode_frame
from hw.soc import SoC, UartSoC, frame_wire_bytes
from sim.runner import run

CONFIG = DeviceConfig(rows=2, cols=2, depth=64, imem=32, k_max=64, max_rows=4, max_payload=128,
                      clk_hz=12_000_000, baud=3_000_000)


def test_frame_wire_bytes():
    for n in (0, 1, 247, 248, 500, 1024):
        assert len(encode_frame(1, 2, bytes([1]) * n)) <= frame_wire_bytes(n)
    assert frame_wire_bytes(1024) == len(encode_frame(1, 2, bytes([1]) * 1024))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_parameters():
    with pytest.raises(TypeError, match="not 'x'"):
        SoC("x")
    with pytest.raises(ValueError, match="UART divisor 3"):
        UartSoC(DeviceConfig(clk_hz=10_000_000, baud=3_000_000))
    gc.collect()


@pytest.mark.sim
def test_uart_soc():
    run(UartSoC(CONFIG), "uart_soc", "sim.tb_soc", {"config": asdict(CONFIG)})
