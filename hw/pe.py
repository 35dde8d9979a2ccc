"""The processing element: one multiply-accumulate cell of the output-stationary systolic array."""

from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell that owns one output of the tile being computed.

    Cycle contract (every port is sampled on each rising edge; the cell never stalls):

    - ``a_o`` and ``b_o`` are ``a_i`` and ``b_i`` one cycle later. They are the registered operands
      of the multiplier and the operands passed on to the right (``a``) and downwards (``b``).
    - The product ``a_o * b_o`` is registered; on a cycle with ``mac`` high that registered product
      is added to the accumulator: ``acc <= acc + product``. With ``clear`` high, ``acc <= 0``
      instead: the next cycle's product starts a new sum (``clear`` is the next step's ``first``,
      so the accumulator is a register with a synchronous reset and the adder has no multiplexer).
    - With ``capture`` high on the same cycle as ``mac``, the new sum is also copied into ``result``.
    - With ``shift`` high, ``result <= result_i``: a column of cells chained through ``result_i``
      is a shift register that drains a finished tile while the accumulators work on the next.
      ``capture`` and ``shift`` are never high together (the array guarantees it).

    Both operands are registered and the product is registered, so synthesis maps the multiplier
    to a DSP block (MULT18X18D on ECP5, SB_MAC16 on iCE40 for widths up to 16).

    Parameters
    ----------
    width : int
        Bits of each signed operand.
    acc_width : int
        Bits of the signed accumulator and ``result``.
    """

    def __init__(self, width: int, acc_width: int):
        if acc_width < 2 * width:
            raise ValueError(f"acc_width {acc_width} cannot hold a {width}x{width}-bit product")
        self.width, self.acc_width = width, acc_width
        super().__init__({
            "a_i": In(signed(width)), "b_i": In(signed(width)),
            "a_o": Out(signed(width)), "b_o": Out(signed(width)),
            "mac": In(1), "clear": In(1), "capture": In(1), "shift": In(1),
            "result_i": In(signed(acc_width)), "result": Out(signed(acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        # Written every cycle and added only two cycles after a step enters: no reset needed, and
        # without one the register goes into the DSP block (SB_MAC16's output register on iCE40).
        prod = Signal(signed(2 * self.width), reset_less=True)
        acc = Signal(signed(self.acc_width))
        m.d.sync += [self.a_o.eq(self.a_i), self.b_o.eq(self.b_i), prod.eq(self.a_o * self.b_o)]
        total = acc + prod
        with m.If(self.mac):
            m.d.sync += acc.eq(total)
            with m.If(self.capture):
                m.d.sync += self.result.eq(total)
        with m.If(self.clear):
            m.d.sync += acc.eq(0)
        with m.If(self.shift):
            m.d.sync += self.result.eq(self.result_i)
        return m

