"""The UART PHY on an HDL simulator (see ``sim/tb_uart.py``), and its parameter checks."""

import gc

import pytest
from amaranth import Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.uart import UARTRx, UARTTx, uart_divisor
from sim.runner import run


class UARTLoopback(wiring.Component):
    """A transmitter and a receiver; with ``loopback`` high the receiver hears ``tx``, else ``rx``."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))
    rx: In(1, init=1)
    tx: Out(1, init=1)
    loopback: In(1)
    error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.submodules.rx = rx = UARTRx(self.divisor)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += [self.tx.eq(tx.tx), rx.rx.eq(Mux(self.loopback, tx.tx, self.rx)),
                     self.error.eq(rx.error), self.overrun.eq(rx.overrun)]
        return m


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_divisor():
    assert uart_divisor(12e6, 3e6) == 4
    assert uart_divisor(25e6, 1e6) == 25
    assert uart_divisor(100e6, 2e6) == 50
    with pytest.raises(ValueError, match="divisor 2 "):
        uart_divisor(12e6, 6e6)
    with pytest.raises(ValueError, match="off the 3e"):
        uart_divisor(25e6, 3e6)
    for bad in (3, 4.0, True):
        with pytest.raises(ValueError, match=f"divisor {bad!r}"):
            UARTRx(bad)
        with pytest.raises(ValueError, match=f"divisor {bad!r}"):
            UARTTx(bad)
    gc.collect()                   # the half-built components warn as unused here, filtered


@pytest.mark.sim
@pytest.mark.parametrize("divisor", [4, 7])
def test_uart(divisor):
    run(UARTLoopback(divisor), f"uart_d{divisor}", "sim.tb_uart", {"divisor": divisor})
