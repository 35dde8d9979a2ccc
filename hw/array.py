"""The systolic array: R×C processing elements computing one R×C output tile per pass."""

from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .numerics import acc_bits
from .pe import ProcessingElement

__all__ = ["SystolicArray", "StepLayout", "RowLayout"]


class StepLayout(data.StructLayout):
    """One step ``k`` of a tile: column ``k`` of the ``A`` tile and row ``k`` of the ``B`` tile.

    ``first`` starts a new sum (the accumulators restart from zero); ``last`` ends the tile (its sums
    are emitted). Steps between a ``last`` and the next ``first`` keep adding to the same sums, so
    ``Y += A·B`` is a stream that continues without ``first``.
    """

    def __init__(self, rows: int, cols: int, width: int):
        super().__init__({
            "a": data.ArrayLayout(signed(width), rows),
            "b": data.ArrayLayout(signed(width), cols),
            "first": 1,
            "last": 1,
        })


class RowLayout(data.StructLayout):
    """One row of a finished tile: ``y[j] = Y[i, j]``; ``last`` marks the tile's final row."""

    def __init__(self, cols: int, acc_width: int):
        super().__init__({"y": data.ArrayLayout(signed(acc_width), cols), "last": 1})


class SystolicArray(wiring.Component):
    """An output-stationary systolic array of ``rows × cols`` multiply-accumulate cells.

    Cell ``(i, j)`` accumulates ``Y[i, j] = Σ_k A[i, k]·B[k, j]`` for the tile in flight. Step ``k``
    enters as one beat on ``i``; row ``i`` of ``A`` is delayed ``i`` cycles and column ``j`` of ``B``
    ``j`` cycles, so the operands of step ``k`` meet in cell ``(i, j)`` ``i + j`` cycles after they
    enter, moving one cell right (``A``) or down (``B``) per cycle. A finished tile is copied into
    the cells' result registers and leaves on ``o`` one row per beat (row 0 first), while the
    accumulators already work on the next tile.

    Cycle contract:

    - ``i``: a step transfers on a cycle with ``i.valid & i.ready``. ``i.ready`` is high except for a
      step with ``last`` set while the previous tile is still in flight or not yet drained; it
      depends on ``i.payload.last`` (never on ``o``-side timing within the cycle). A tile of
      ``K >= 2·rows + cols + 1`` steps therefore never waits when ``o`` is always ready, and the
      array computes ``rows·cols`` MACs on every cycle of a long stream.
    - ``o``: rows of a finished tile, ``valid`` held until ``ready``; the tile's ``rows`` beats are
      contiguous. Back-pressure on ``o`` eventually holds ``i`` through the rule above.
    - Latency: the first row of a tile is valid ``rows + cols + 1`` cycles after its last step.

    Parameters
    ----------
    rows, cols : int
        Array size R×C (each at least 1).
    width : int
        Bits of the signed operands (default 16).
    k_max : int
        Largest number of steps summed into one output; sets the accumulator width so that no sum
        of ``k_max`` products can overflow (:func:`hw.numerics.acc_bits`).
    acc_width : int, optional
        A wider accumulator than ``k_max`` needs (a narrower one is refused).

    Attributes
    ----------
    acc_width : int
        Bits of each signed output.
    """

    def __init__(self, rows: int, cols: int, width: int = 16, k_max: int = 1024,
                 acc_width: int | None = None):
        for name, value in (("rows", rows), ("cols", cols), ("width", width), ("k_max", k_max)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        need = acc_bits(width, width, k_max)
        if acc_width is not None and acc_width < need:
            raise ValueError(f"acc_width {acc_width} can overflow: k_max={k_max} products of "
                             f"{width}-bit operands need {need} bits")
        self.rows, self.cols, self.width, self.k_max = rows, cols, width, k_max
        self.acc_width = need if acc_width is None else acc_width
        super().__init__({
            "i": In(stream.Signature(StepLayout(rows, cols, width))),
            "o": Out(stream.Signature(RowLayout(cols, self.acc_width))),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        stages = rows + cols  # control stage s drives the cells with i + j + 1 == s

        pe = [[ProcessingElement(self.width, self.acc_width) for _ in range(cols)]
              for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pe[i][j]

        # Control travels down the anti-diagonals: valid, first (of a step taken), last per stage.
        valid = Signal(stages)
        first = Signal(stages)
        last = Signal(stages)
        full = Signal()                                  # result registers hold a tile
        row = Signal(range(rows))                        # next row to emit
        last_in_flight = (valid & last).any()

        step = self.i.payload
        m.d.comb += self.i.ready.eq(~step.last | ~(last_in_flight | full))
        take = self.i.valid & self.i.ready
        m.d.sync += [
            valid.eq(Cat(take, valid[:-1])),
            first.eq(Cat(take & step.first, first[:-1])),
            last.eq(Cat(step.last, last[:-1])),
        ]

        # Skew: row i of A waits i cycles, column j of B waits j cycles, before entering the grid.
        for i in range(rows):
            m.d.comb += pe[i][0].a_i.eq(_delayed(m, step.a[i], i, f"a_skew_{i}"))
        for j in range(cols):
            m.d.comb += pe[0][j].b_i.eq(_delayed(m, step.b[j], j, f"b_skew_{j}"))

        drain = self.o.valid & self.o.ready
        for i in range(rows):
            for j in range(cols):
                cell, s = pe[i][j], i + j + 1
                if j + 1 < cols:
                    m.d.comb += pe[i][j + 1].a_i.eq(cell.a_o)
                if i + 1 < rows:
                    m.d.comb += pe[i + 1][j].b_i.eq(cell.b_o)
                below = pe[i + 1][j].result if i + 1 < rows else Const(0, self.acc_width)
                m.d.comb += [
                    cell.mac.eq(valid[s]),
                    cell.clear.eq(first[s - 1]),       # the step reaching the cell next cycle
                    cell.capture.eq(last[s]),
                    cell.shift.eq(drain),
                    cell.result_i.eq(below),
                ]

        # The last cell captures at the final stage; the tile then drains one row per beat.
        m.d.comb += [
            self.o.valid.eq(full),
            self.o.payload.last.eq(row == rows - 1),
        ]
        for j in range(cols):
            m.d.comb += self.o.payload.y[j].eq(pe[0][j].result)
        with m.If(valid[-1] & last[-1]):
            m.d.sync += full.eq(1)
        with m.If(drain):
            m.d.sync += row.eq(row + 1)
            with m.If(row == rows - 1):
                m.d.sync += [full.eq(0), row.eq(0)]
        return m


def _delayed(m: Module, value, cycles: int, name: str):
    """``value`` delayed by ``cycles`` registers (``cycles`` may be zero)."""
    for n in range(cycles):
        reg = Signal.like(value, name=f"{name}_{n}")
        m.d.sync += reg.eq(value)
        value = reg
    return value
