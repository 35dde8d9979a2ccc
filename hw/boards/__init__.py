"""The boards Systolic builds for: one table of per-board settings.

A :class:`Board` names the amaranth-boards platform that describes the pins (the platform file is
data and is never copied here), the :class:`~hw.config.DeviceConfig` the board's part holds at a
clock that meets timing, and the PLL that makes that clock from the board's oscillator. The board
top (:mod:`hw.boards.top`), the build (:mod:`hw.boards.build`) and the flasher
(:mod:`hw.boards.flash`) read everything from :data:`BOARDS`.

Adding a board is adding a row: a platform class, a device configuration whose ``clk_hz`` the PLL
(or the oscillator) gives exactly and whose ``baud`` that clock can make, and the board name
openFPGALoader knows it by.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..config import BOARD_DEVICES, DeviceConfig
from ..uart import uart_divisor

__all__ = ["Ice40Pll", "Ecp5Pll", "PLACERS", "Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Ice40Pll:
    """An iCE40 ``SB_PLL40_PAD`` in SIMPLE feedback: ``f_out = f_in·(divf+1) / ((divr+1)·2**divq)``.

    The numbers are those ``icepll -i F_IN -o F_OUT`` prints.
    """

    divr: int
    divf: int
    divq: int
    filter_range: int

    def output_hz(self, input_hz: float) -> float:
        """The output frequency for an ``input_hz`` reference."""
        return input_hz * (self.divf + 1) / ((self.divr + 1) * 2 ** self.divq)

    def check(self, input_hz: float) -> None:
        """Raise :exc:`ValueError` unless the phase detector and VCO are within the iCE40's ranges."""
        pfd = input_hz / (self.divr + 1)
        vco = pfd * (self.divf + 1)
        if not 10e6 <= pfd <= 133e6 or not 533e6 <= vco <= 1066e6:
            raise ValueError(f"{self}: PFD {pfd / 1e6:g} MHz (10..133) or VCO {vco / 1e6:g} MHz "
                             "(533..1066) out of range")


@dataclass(frozen=True)
class Ecp5Pll:
    """An ECP5 ``EHXPLLL`` fed back from CLKOP: ``f_out = f_in·clkfb_div / clki_div``.

    The VCO runs at ``f_out·clkop_div``; the numbers are those ``ecppll -i F_IN -o F_OUT`` prints.
    """

    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int

    def output_hz(self, input_hz: float) -> float:
        """The output frequency for an ``input_hz`` reference."""
        return input_hz * self.clkfb_div / self.clki_div

    def check(self, input_hz: float) -> None:
        """Raise :exc:`ValueError` unless the phase detector and VCO are within the ECP5's ranges."""
        pfd = input_hz / self.clki_div
        vco = self.output_hz(input_hz) * self.clkop_div
        if not 3.125e6 <= pfd <= 400e6 or not 400e6 <= vco <= 800e6:
            raise ValueError(f"{self}: PFD {pfd / 1e6:g} MHz (3.125..400) or VCO {vco / 1e6:g} MHz "
                             "(400..800) out of range")


PLACERS = ("heap", "sa", "static")
"""The placers nextpnr offers (``--placer``)."""


@dataclass(frozen=True)
class Board:
    """One board: its platform, its device and its clock.

    Parameters
    ----------
    name : str
        The name on the command line (``make bitstream BOARD=name``).
    platform : str
        The amaranth-boards platform class as ``"module:Class"``.
    osc_hz : int
        The board oscillator (the platform's default clock).
    config : DeviceConfig
        The device built for this board; ``clk_hz`` is the clock the design runs at.
    pll : Ice40Pll, Ecp5Pll or None
        Makes ``config.clk_hz`` from ``osc_hz``; ``None`` runs from the oscillator.
    loader : str
        The ``-b`` board name of openFPGALoader.
    bitstream : str
        The file suffix of the bitstream Amaranth's build produces (``"bin"`` or ``"bit"``).
    placer : str
        nextpnr's placer (``--placer``, one of :data:`PLACERS`): ``"heap"``, its default, or
        ``"static"``, which spreads the 8×8 arrays' cells over the whole part where the heap placer
        crowds them round the DSP rows into more wires than the router can untangle.
    seed : int or None
        nextpnr's random seed (``--seed``), where its default placement misses the clock; ``None``
        keeps nextpnr's default. A build is the same for the same seed and netlist.
    """

    name: str
    platform: str
    osc_hz: int
    config: DeviceConfig
    pll: Ice40Pll | Ecp5Pll | None
    loader: str
    bitstream: str
    placer: str = "heap"
    seed: int | None = None

    def __post_init__(self):
        if self.placer not in PLACERS:
            raise ValueError(f"board {self.name}: placer {self.placer!r} is not one of nextpnr's "
                             f"{', '.join(PLACERS)}")
        clk = self.pll.output_hz(self.osc_hz) if self.pll else self.osc_hz
        if self.pll:
            self.pll.check(self.osc_hz)
        if clk != self.config.clk_hz:
            raise ValueError(f"board {self.name}: the clock is {clk:g} Hz, but config.clk_hz is "
                             f"{self.config.clk_hz}")
        uart_divisor(self.config.clk_hz, self.config.baud)

    @property
    def family(self) -> str:
        """``"ice40"`` or ``"ecp5"``."""
        return "ice40" if self.bitstream == "bin" else "ecp5"

    def platform_class(self) -> type:
        """The amaranth-boards platform class.

        Raises
        ------
        ImportError
            If amaranth-boards is not installed.
        """
        module, _, cls = self.platform.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except ModuleNotFoundError as error:
            raise ImportError("building for a board needs amaranth-boards: "
                              "pip install -e '.[boards]'") from error


def _ulx3s(size: str, placer: str = "heap", seed: int | None = None) -> Board:
    name = f"ulx3s-{size.lower()}"
    config = BOARD_DEVICES[name]
    return Board(name=name, platform=f"amaranth_boards.ulx3s:ULX3S_{size}_Platform", osc_hz=25_000_000,
                 config=config, pll=_ECP5_PLLS[config.clk_hz], loader="ulx3s", bitstream="bit",
                 placer=placer, seed=seed)


# ecppll -i 25 -o F: clocks a 25 MHz oscillator makes that are whole multiples of the baud rate.
_ECP5_PLLS = {
    45_000_000: Ecp5Pll(clki_div=5, clkfb_div=9, clkop_div=13, clkop_cphase=6),
    75_000_000: Ecp5Pll(clki_div=1, clkfb_div=3, clkop_div=8, clkop_cphase=4),
}

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board(name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
          osc_hz=12_000_000, config=BOARD_DEVICES["icebreaker"], pll=None, loader="ice40_generic",
          bitstream="bin"),
    _ulx3s("12F"), _ulx3s("25F"), _ulx3s("45F", placer="static"), _ulx3s("85F", placer="static", seed=2),
)}
"""Every board, by name."""


def board(name: str) -> Board:
    """The board called ``name``.

    Raises
    ------
    ValueError
        If there is no such board; the message lists the boards there are.
    """
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; the boards are: {', '.join(BOARDS)}") from None
