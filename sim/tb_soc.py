"""cocotb testbench of :class:`hw.soc.UartSoC` at its serial pins, against ``sim.model.Device``.

The host side is a serial model at the nominal rate that sends frames back to back without waiting
for replies (a pipelining host): the receive FIFO must hold the frames that arrive while the link
executes and answers the previous one, so every reply must come back, identical to the model's
except ``RunReply.cycles``.

Parameters (from ``tests/test_soc.py``): ``config``, the :class:`hw.config.DeviceConfig` fields.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Timer, with_timeout

from hw.config import DeviceConfig
from hw.uart import uart_divisor
from sim.model import Device
from sim.runner import tb_params
from sim.streams import serial_receive, serial_send
from sim.tb_command import END, NOP, Scoreboard, info, program, random_words, read, run, write

CONFIG = DeviceConfig(**tb_params().get("config", {}))
CLOCK_NS = 10
BIT_NS = uart_divisor(CONFIG.clk_hz, CONFIG.baud) * CLOCK_NS


@cocotb.test()
async def pipelined_frames(dut):
    """Frames sent back to back, never waiting for a reply: nothing is lost."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    rng = random.Random(random.getrandbits(32))
    most = (CONFIG.max_payload - 5) // 2
    wire = (write(1, 0, 0, random_words(rng, most)) + read(2, 0, 0, most) + info(3)
            + program(4, 0, [NOP, NOP, END]) + write(5, 2, 7, random_words(rng, most))
            + run(6, 0, 2, 7, (CONFIG.max_payload - 7) // 2) + read(7, 2, 0, 10) + info(8))
    want = Device(CONFIG).feed(wire)
    got = bytearray()
    receiver = cocotb.start_soon(serial_receive(dut.tx, BIT_NS * 1000, got, want.count(0)))
    await serial_send(dut.rx, wire, BIT_NS * 1000)
    await with_timeout(receiver, 40 * BIT_NS * len(want), "ns")
    await Timer(20 * BIT_NS, unit="ns")
    Scoreboard().check(bytes(got), want, "pipelined frames")
