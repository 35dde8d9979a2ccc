"""cocotb testbench of the UART PHY: a serial model at nominal and ±2 % rates, framing errors, loop-back.

The design is ``UARTLoopback`` from ``tests/test_uart.py``: a :class:`hw.uart.UARTTx` and a
:class:`hw.uart.UARTRx`, with ``loopback`` high joining ``tx`` to the receiver. Parameters:
``divisor``. The seed is cocotb's (``COCOTB_RANDOM_SEED``, printed at start-up).
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, Timer

from sim.runner import tb_params

P = tb_params()
DIVISOR = P["divisor"]
CLOCK_PS = 10_000
BIT_PS = DIVISOR * CLOCK_PS


def serial_bits(byte: int, stop: int = 1) -> list[int]:
    """Line levels of one 8N1 character, start bit first."""
    return [0, *((byte >> n) & 1 for n in range(8)), stop]


async def serial_send(pin, levels: list[int], bit_ps: int) -> None:
    """Drive ``levels`` on ``pin``, one per ``bit_ps`` picoseconds."""
    for level in levels:
        pin.value = level
        await Timer(bit_ps, unit="ps")


class Receiver:
    """Collects bytes from the receiver's ``o`` (ready with probability ``p_ready``) and counts pulses
    of ``error`` and ``overrun``."""

    def __init__(self, dut, rng: random.Random, p_ready: float = 1.0):
        self.dut, self.rng, self.p_ready = dut, rng, p_ready
        self.bytes: list[int] = []
        self.errors = self.overruns = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            dut.o__ready.value = int(self.rng.random() < self.p_ready)
            await ReadOnly()
            if dut.o__valid.value and dut.o__ready.value:
                self.bytes.append(int(dut.o__payload.value))
            self.errors += int(dut.error.value)
            self.overruns += int(dut.overrun.value)


async def start(dut) -> None:
    Clock(dut.clk, CLOCK_PS, unit="ps").start()
    dut.rx.value = 1
    dut.loopback.value = 0
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await Timer(3_000, unit="ps")          # the serial model's edges stay off the clock edges


def check(got: list[int], want: list[int], what: str) -> None:
    if got != want:
        pairs = enumerate(zip(got, want, strict=False))
        first = next((n for n, (g, w) in pairs if g != w), min(len(got), len(want)))
        raise AssertionError(f"{what}: received {len(got)} bytes, expected {len(want)}; first "
                             f"difference at byte {first}")


@cocotb.test()
@cocotb.parametrize(ppm=[0, 20_000, -20_000])
async def receive(dut, ppm):
    """Random bytes back to back, then with idle gaps, from a sender ``ppm`` off the nominal rate."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + ppm)
    bit_ps = round(BIT_PS * (1 + ppm / 1e6))
    rx = Receiver(dut, rng, p_ready=0.5)
    sent = [rng.randrange(256) for _ in range(120)]
    levels = [level for byte in sent[:80] for level in serial_bits(byte)]
    for byte in sent[80:]:
        levels += [1] * rng.randrange(4) + serial_bits(byte)
    await serial_send(dut.rx, levels, bit_ps)
    await ClockCycles(dut.clk, 2 * DIVISOR + 50)      # the last byte is taken
    check(rx.bytes, sent, f"sender at {ppm:+d} ppm")
    assert rx.errors == 0 and rx.overruns == 0, f"{rx.errors} framing errors, {rx.overruns} overruns"


@cocotb.test()
async def framing_error(dut):
    """A low stop bit and a long break each drop one character, raise ``error`` once, and the
    bytes after them are received."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    rx = Receiver(dut, rng)
    good = [[rng.randrange(256) for _ in range(8)] for _ in range(3)]
    levels = [level for byte in good[0] for level in serial_bits(byte)]
    levels += serial_bits(rng.randrange(256), stop=0) + [1]
    levels += [level for byte in good[1] for level in serial_bits(byte)]
    levels += [0] * 25 + [1]
    levels += [level for byte in good[2] for level in serial_bits(byte)]
    await serial_send(dut.rx, levels, BIT_PS)
    await ClockCycles(dut.clk, 2 * DIVISOR + 50)
    check(rx.bytes, good[0] + good[1] + good[2], "around framing errors")
    assert rx.errors == 2, f"{rx.errors} framing errors reported, expected 2"


@cocotb.test()
async def loopback(dut):
    """Bytes through the transmitter into the receiver; back-to-back bytes are 10 bits apart."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    dut.loopback.value = 1
    rx = Receiver(dut, rng, p_ready=0.7)
    sent = [rng.randrange(256) for _ in range(100)]
    starts, cycle, n, offer = [], 0, 0, False
    while n < len(sent):                  # the first 50 back to back, then random idle gaps
        await RisingEdge(dut.clk)
        offer = offer or n < 50 or rng.random() < 0.01
        dut.i__valid.value = int(offer)
        dut.i__payload.value = sent[n]
        await ReadOnly()
        if offer and dut.i__ready.value:
            starts.append(cycle)
            n, offer = n + 1, False
        cycle += 1
    await RisingEdge(dut.clk)
    dut.i__valid.value = 0
    await ClockCycles(dut.clk, 12 * DIVISOR)
    check(rx.bytes, sent, "loop-back")
    gaps = {b - a for a, b in zip(starts[:49], starts[1:50], strict=True)}
    assert gaps == {10 * DIVISOR}, f"back-to-back bytes {sorted(gaps)} cycles apart, expected {10 * DIVISOR}"
    assert rx.errors == 0 and rx.overruns == 0, f"{rx.errors} framing errors, {rx.overruns} overruns"
