"""The link on an HDL simulator against its golden model (see ``sim/tb_link.py``)."""

import gc

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.frame import Frame, encode_error, encode_frame
from hw.link import Link
from hw.uart import UARTRx, UARTTx
from sim.link import ErrorReply, LinkModel
from sim.runner import run

MAX_PAYLOAD = 300
DIVISOR = 4


class UARTLink(wiring.Component):
    """The link behind the UART PHY: serial ``rx``/``tx`` on one side, the controller streams on
    the other."""

    def __init__(self, divisor: int, max_payload: int):
        self.divisor, self.max_payload = divisor, max_payload
        link = Link.__annotations__
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          **{name: link[name] for name in ("rx_hdr", "rx_data", "tx_hdr", "tx_data")}})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        m.submodules.link = link = Link(self.max_payload)
        wiring.connect(m, uart_rx.o, link.i)
        wiring.connect(m, link.o, uart_tx.i)
        for name in ("rx_hdr", "rx_data", "tx_hdr", "tx_data"):
            wiring.connect(m, getattr(link, name), wiring.flipped(getattr(self, name)))
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        return m


def test_model_resynchronises():
    model = LinkModel(16)
    good = encode_frame(1, 2, b"\x00hi")
    assert model.feed(b"\x13\x37") == []
    assert model.feed(b"\x00\x00" + good) == [ErrorReply(2, None, encode_error(2, None)),
                                               Frame(1, 2, b"\x00hi")]
    assert model.feed(encode_frame(1, 7, bytes(17))[:-1]) == []
    assert model.feed(b"\x00" + good) == [ErrorReply(4, 7, encode_error(4, 7)), Frame(1, 2, b"\x00hi")]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_parameters():
    for bad in (0, 65536, 2.5):
        with pytest.raises(ValueError, match=f"max_payload {bad!r}"):
            Link(bad)
    gc.collect()                   # the half-built components warn as unused here, filtered


@pytest.mark.sim
def test_link():
    run(Link(MAX_PAYLOAD), f"link_{MAX_PAYLOAD}", "sim.tb_link", {"max_payload": MAX_PAYLOAD})


@pytest.mark.sim
def test_link_through_uart():
    run(UARTLink(DIVISOR, MAX_PAYLOAD), f"uart_link_d{DIVISOR}", "sim.tb_link",
        {"max_payload": MAX_PAYLOAD, "divisor": DIVISOR})
