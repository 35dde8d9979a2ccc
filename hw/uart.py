"""UART PHY: 8N1 transmitter and receiver, LSB first, with the bit period set by a clock divisor."""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "uart_divisor", "UARTTx", "UARTRx"]

MIN_DIVISOR = 4


def _check_divisor(divisor) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor {divisor!r} must be an integer >= {MIN_DIVISOR} "
                         "(clock cycles per bit)")
    return divisor


def uart_divisor(clk_hz: float, baud: float, tolerance: float = 0.01) -> int:
    """The clock divisor ``round(clk_hz / baud)`` for a bit rate.

    Raises
    ------
    ValueError
        If the divisor is below :data:`MIN_DIVISOR`, or the rate it gives misses ``baud`` by more
        than ``tolerance`` (a fraction).
    """
    divisor = round(clk_hz / baud)
    _check_divisor(divisor)
    actual = clk_hz / divisor
    if abs(actual - baud) > tolerance * baud:
        raise ValueError(f"{clk_hz:g} Hz / {divisor} gives {actual:g} baud, more than "
                         f"{tolerance:.1%} off the {baud:g} baud asked for")
    return divisor


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, least significant bit first.

    Cycle contract: ``i.ready`` is high while the line is idle and on the last cycle of a stop bit,
    so back-to-back bytes take exactly ``10 * divisor`` cycles each. A byte transferred on ``i``
    starts its start bit on ``tx`` the next cycle. ``tx`` is a register output, high when idle.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`MIN_DIVISOR`.

    Raises
    ------
    ValueError
        If ``divisor`` is not an integer of at least :data:`MIN_DIVISOR`.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        bits = Signal(10, init=0x3FF)                  # start, 8 data, stop; shifted out from bit 0
        count = Signal(range(11))                       # bits still to send, the current one included
        timer = Signal(range(self.divisor))
        m.d.comb += [
            self.tx.eq(bits[0]),
            self.i.ready.eq((count == 0) | ((count == 1) & (timer == 0))),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [bits.eq(Cat(0, self.i.payload, 1)), count.eq(10), timer.eq(self.divisor - 1)]
        with m.Elif(count != 0):
            with m.If(timer == 0):
                m.d.sync += [bits.eq(Cat(bits[1:], 1)), count.eq(count - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """UART receiver, 8N1, least significant bit first, sampling each bit in its middle.

    ``rx`` passes a two-stage synchroniser. A low level starts a byte; the start bit is checked
    half a bit period later, within half a cycle on average (a shorter pulse is ignored as a
    glitch), and every further bit one ``divisor`` later, so the stop bit is sampled 9.5 bit
    periods after the falling edge: a sender within ±2 % of the nominal rate is received (±3 %
    with ``divisor >= 16``). The receiver hunts for the next start bit right after sampling the
    stop bit.

    Cycle contract: a received byte is offered on ``o`` about 9.5 bit periods after its start
    edge and held until taken. A byte that completes while the previous one is still waiting is
    dropped and ``overrun`` pulses for one cycle. A low stop bit drops the byte, pulses ``error``
    for one cycle, and the receiver waits for the line to go high (a break) before hunting again.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least :data:`MIN_DIVISOR`.

    Raises
    ------
    ValueError
        If ``divisor`` is not an integer of at least :data:`MIN_DIVISOR`.

    Attributes
    ----------
    rx : In(1)
        The serial line (asynchronous).
    o : Out(stream.Signature(8))
        Received bytes.
    error : Out(1)
        One-cycle pulse on a framing error (low stop bit).
    overrun : Out(1)
        One-cycle pulse when a byte is lost because ``o`` was not ready.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(self.divisor))
        bits = Signal(8)
        count = Signal(range(9))
        tick = timer == 0
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(~tick):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq((self.divisor - 2) // 2)
                    m.next = "START"
            with m.State("START"):
                with m.If(tick & line):
                    m.next = "IDLE"
                with m.Elif(tick):
                    m.d.sync += [timer.eq(self.divisor - 1), count.eq(8)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [bits.eq(Cat(bits[1:], line)), count.eq(count - 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(count == 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(tick):
                    with m.If(~line):
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(bits), self.o.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
