"""The command handler in the whole device, on an HDL simulator against the golden model.

See ``sim/tb_command.py``.
"""

import gc
from dataclasses import asdict

import pytest

from hw.command import CommandHandler, info_reply
from hw.config import DeviceConfig
from hw.isa import InfoReply, decode, nbytes
from hw.soc import SoC
from sim.runner import run

CONFIG = DeviceConfig(rows=2, cols=2, depth=64, imem=64, k_max=64, max_rows=4, max_payload=128,
                      clk_hz=12_000_000, baud=3_000_000, data_depth=96)


def test_info_reply():
    reply = decode(InfoReply(), info_reply(CONFIG).to_bytes(nbytes(InfoReply()), "little"))
    assert (reply.rows, reply.cols, reply.banks, reply.depth, reply.imem) == (2, 2, 2, 64, 64)
    assert (reply.max_payload, reply.clk_hz, reply.baud) == (128, 12_000_000, 3_000_000)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_config():
    with pytest.raises(TypeError, match="not 4"):
        CommandHandler(4)
    gc.collect()


@pytest.mark.sim
def test_commands():
    run(SoC(CONFIG), "soc", "sim.tb_command", {"config": asdict(CONFIG)})
