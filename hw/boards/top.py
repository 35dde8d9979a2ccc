"""The board top: clock, reset, the FTDI serial port and a status LED around :class:`hw.soc.UartSoC`.

The top knows boards only through the platform it is elaborated for and its :class:`~hw.boards.Board`
row; pins come from the platform's resources (``uart`` 0, ``led`` 0 and the default clock).
"""

from __future__ import annotations

from amaranth import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..soc import UartSoC
from . import Board, Ecp5Pll, Ice40Pll

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """The device on a board.

    - Clock: the board oscillator, or the PLL of the board's row; with a PLL, the ``sync`` domain is
      held in reset until the PLL locks (without one, the platform's power-on reset applies). On
      ECP5 the reset reaches its flip-flops through a global buffer (DCCA): nextpnr promotes only
      clocks, and over ten thousand reset pins on fabric wires congest the routing.
    - Serial: ``uart`` 0 of the platform (the FTDI's second channel on the iCEBreaker, the FT231X on
      the ULX3S) drives ``UartSoC.rx`` and is driven by ``UartSoC.tx``.
    - Status: ``led`` 0 blinks at about 1 Hz while the clock runs (and the PLL is locked).

    Parameters
    ----------
    board : Board
        The row of :data:`hw.boards.BOARDS` to build.

    Attributes
    ----------
    soc : UartSoC
        The device.
    """

    def __init__(self, board: Board):
        if not isinstance(board, Board):
            raise TypeError(f"BoardTop needs a Board, not {board!r}")
        self.board = board
        self.soc = UartSoC(board.config)

    def elaborate(self, platform):
        m = Module()
        if self.board.pll is not None:
            self._clock(m, platform)
        m.submodules.soc = soc = self.soc

        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [soc.rx.eq(rx.i), tx.o.eq(soc.tx)]

        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        blink = Signal(max(1, self.board.config.clk_hz.bit_length() - 1))
        m.d.sync += blink.eq(blink + 1)
        m.d.comb += led.o.eq(blink[-1])
        return m

    def _clock(self, m: Module, platform):
        """The ``sync`` domain from the PLL, in reset until it locks."""
        pll, osc_hz = self.board.pll, self.board.osc_hz
        m.domains.sync = sync = ClockDomain()
        locked = Signal()
        if isinstance(pll, Ice40Pll):
            pad = platform.request(platform.default_clk, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq, p_FILTER_RANGE=pll.filter_range,
                i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=sync.clk, o_LOCK=locked)
        elif isinstance(pll, Ecp5Pll):
            m.submodules.clk_in = clk_in = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{osc_hz / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{pll.output_hz(osc_hz) / 1e6:g}",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_FEEDBK_PATH="CLKOP",
                p_CLKI_DIV=pll.clki_div, p_CLKFB_DIV=pll.clkfb_div, p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=pll.clkop_div, p_CLKOP_CPHASE=pll.clkop_cphase, p_CLKOP_FPHASE=0,
                i_CLKI=clk_in.i, i_CLKFB=sync.clk, i_RST=0, i_STDBY=0,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=sync.clk, o_LOCK=locked)
        else:
            raise TypeError(f"board {self.board.name}: no PLL of type {type(pll).__name__}")
        if isinstance(pll, Ice40Pll):
            m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        else:
            m.domains.por = por = ClockDomain("por", local=True)
            m.d.comb += por.clk.eq(sync.clk)
            m.submodules.reset = ResetSynchronizer(~locked, domain="por")
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=por.rst, i_CE=1, o_CLKO=sync.rst)
