"""The whole device: link, command handler and controller, with or without the UART PHY in front.

:class:`SoC` is board-independent and exposes the link's wire byte streams: the virtual board
(``sim/virtual.py``) attaches its socket there. :class:`UartSoC` puts the UART PHY and a receive FIFO
in front, with the serial pins a board top connects.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .command import CommandHandler
from .config import DeviceConfig
from .controller import Controller
from .frame import COBS_RUN, CRC_BYTES, HEADER_BYTES
from .link import Link
from .pipeline import registered
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["SoC", "UartSoC", "frame_wire_bytes"]


def frame_wire_bytes(max_payload: int) -> int:
    """Wire bytes of the longest frame: COBS-encoded header, payload and CRC, plus the delimiter."""
    body = HEADER_BYTES + max_payload + CRC_BYTES
    return body + body // COBS_RUN + 1 + 1


class SoC(wiring.Component):
    """Link, command handler and controller, at the link's wire byte streams.

    Cycle contract: the one of :class:`hw.link.Link` at ``i`` and ``o`` (``i.ready`` is low while a
    verified frame is being executed and while its reply waits), and one reply frame on ``o`` per
    non-empty frame on ``i`` (:class:`hw.command.CommandHandler`).

    Parameters
    ----------
    config : DeviceConfig
        The device.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Wire bytes from the host.
    o : Out(stream.Signature(8))
        Wire bytes to the host.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, config: DeviceConfig):
        if not isinstance(config, DeviceConfig):
            raise TypeError(f"SoC needs a DeviceConfig, not {config!r}")
        self.config = config
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = Link(self.config.max_payload)
        m.submodules.command = command = CommandHandler(self.config)
        m.submodules.controller = controller = Controller(self.config)
        wiring.connect(m, wiring.flipped(self.i), link.i)
        wiring.connect(m, link.o, wiring.flipped(self.o))
        wiring.connect(m, link.rx_hdr, command.rx_hdr)
        wiring.connect(m, link.rx_data, command.rx_data)
        wiring.connect(m, command.tx_hdr, link.tx_hdr)
        # The reply's bytes pass a register: the host-read path behind them runs to no framing logic.
        wiring.connect(m, registered(m, command.tx_data, "tx_byte"), link.tx_data)
        wiring.connect(m, command.host, controller.host)
        return m


class UartSoC(wiring.Component):
    """The device behind an 8N1 UART at ``config.baud`` from a ``config.clk_hz`` clock.

    Received bytes pass a FIFO of :func:`frame_wire_bytes` (``max_payload``) bytes, then a register
    (the FIFO's block-RAM output runs to no other logic), before the link: a host that sends its next
    frame while the previous one executes and is answered loses nothing, as long as it keeps at most
    one whole frame ahead of the replies.

    Parameters
    ----------
    config : DeviceConfig
        The device; ``clk_hz`` and ``baud`` set the UART divisor.

    Raises
    ------
    ValueError
        If the clock cannot make the baud rate (:func:`hw.uart.uart_divisor`).

    Attributes
    ----------
    rx : In(1)
        The serial line from the host (asynchronous; idle high).
    tx : Out(1)
        The serial line to the host.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)

    def __init__(self, config: DeviceConfig):
        if not isinstance(config, DeviceConfig):
            raise TypeError(f"UartSoC needs a DeviceConfig, not {config!r}")
        self.config = config
        self.divisor = uart_divisor(config.clk_hz, config.baud)
        self.fifo_depth = frame_wire_bytes(config.max_payload)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = uart_rx = UARTRx(self.divisor)
        m.submodules.uart_tx = uart_tx = UARTTx(self.divisor)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=self.fifo_depth)
        m.submodules.soc = soc = SoC(self.config)
        wiring.connect(m, uart_rx.o, fifo.w_stream)
        wiring.connect(m, registered(m, fifo.r_stream, "rx_byte"), soc.i)
        wiring.connect(m, soc.o, uart_tx.i)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        return m
