"""The datapath: the systolic array and the vector, softmax and reduce units between the readers and
the writer, joined per instruction."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .buffer_set import YResponse
from .config import DeviceConfig
from .isa import Opcode, ReduceOp
from .job import dim_bits, run_members
from .pipeline import skid
from .reduce import Reduce
from .softmax import Softmax
from .vector import VectorUnit

__all__ = ["Result", "Datapath"]


class Result(data.StructLayout):
    """A beat of results for the writer, and the vector unit's saturation flags of its lanes."""

    def __init__(self, config: DeviceConfig):
        super().__init__({"y": data.ArrayLayout(signed(16), config.cols),
                          "saturated": config.cols, "high": config.cols})


class Datapath(wiring.Component):
    """Turns the operands' responses into result beats, through the units the running instruction uses.

    - ``GEMM``: X and Y responses join into array steps; the array's rows join Z's rows of ``c`` (if
      ``use_z``) into the vector unit's epilogue, which drops the rows past ``m`` of the last row tile.
    - ``VEC``: Y and Z (if ``use_z``) responses join into vector-unit beats.
    - ``SOFTMAX``: Y responses into the softmax unit; ``ARGMAX`` and ``LOSS``: Y and Z into the reduce
      unit.

    Cycle contract: the responses are taken as the units accept them, only while ``running``
    (``go``, one cycle before, resets the epilogue's count); ``result`` carries each beat the unit
    delivers (always taken).
    ``drained`` rises once the last row tile of a GEMM has left the array.

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        lanes = data.ArrayLayout(signed(16), config.cols)
        super().__init__({
            **run_members(config),
            "slope": In(signed(16)), "scale": In(signed(16)), "seed": In(32), "seed_load": In(1),
            "x_data": In(stream.Signature(data.ArrayLayout(signed(16), config.rows))),
            "y_data": In(stream.Signature(YResponse(config))),
            "z_data": In(stream.Signature(lanes)),
            "result": Out(stream.Signature(Result(config), always_ready=True)),
            "drained": Out(1),
        })
        unit = {"lanes": config.cols, "physical_lanes": config.vector_lanes}
        self.array = SystolicArray(config.rows, config.cols, 16, k_max=config.k_max)
        self.vector = VectorUnit(**unit, acc_width=self.array.acc_width,
                                 serial_multipliers=config.serial_multipliers)
        self.softmax = Softmax(**unit, max_rows=config.max_rows, serial_multipliers=config.serial_multipliers)
        self.reduce = Reduce(**unit, max_rows=config.max_rows)

    def elaborate(self, platform):
        m = Module()
        m.submodules.array, m.submodules.vector = self.array, self.vector
        m.submodules.softmax, m.submodules.reduce = self.softmax, self.reduce
        vec, smax, red, job = self.vector, self.softmax, self.reduce, self.job
        epi = job.epi
        m.d.comb += [
            vec.slope.eq(self.slope), vec.scale.eq(self.scale),
            vec.seed.eq(self.seed), vec.seed_load.eq(self.seed_load),
            vec.op.eq(epi.op), vec.act.eq(epi.act), vec.deriv.eq(epi.deriv), vec.round.eq(epi.round),
            vec.shift.eq(epi.shift), vec.b_shift.eq(epi.b_shift),
            smax.shift.eq(epi.shift[:len(smax.shift)]),  # SOFTMAX keeps its shift in these bits
            red.op.eq(Mux(job.op == Opcode.LOSS, ReduceOp.LOSS, ReduceOp.ARGMAX)),
        ]
        for j in range(self.config.cols):
            m.d.comb += vec.i.payload.b[j].eq(self.z_data.payload[j])
        # The array's drain enables every result register. On arrays of more than 16 cells it waits
        # on no unit after the array (a skid register); the smaller arrays' parts save its logic.
        big = self.config.rows * self.config.cols > 16
        rows = skid(m, self.array.o, "array_rows") if big else self.array.o
        with m.If(job.gemm):
            self._gemm(m, rows)
        with m.Else():
            self._pass(m)
        self._results(m)
        return m

    def _gemm(self, m, rows):
        """X and Y responses into array steps; the array's ``rows`` and Z's into the epilogue."""
        cfg, array, vec, tiles = self.config, self.array, self.vector, self.tiles
        x, y, z = self.x_data, self.y_data, self.z_data
        dim = dim_bits(cfg)
        # The row leaving the array: rows past m are dropped here. ``keep`` (the row is one of m) is a
        # register, set as the row before leaves.
        drain_i0, drain_r, drain_j0 = Signal(dim), Signal(range(cfg.rows)), Signal(dim)
        keep = Signal(init=1)
        epi_valid = rows.valid & (~self.job.use_z | z.valid)
        epi_take = epi_valid & (vec.i.ready | ~keep)
        for i in range(cfg.rows):
            m.d.comb += array.i.payload.a[i].eq(x.payload[i])
        for j in range(cfg.cols):
            m.d.comb += array.i.payload.b[j].eq(y.payload.data[j])
        m.d.comb += [
            array.i.payload.first.eq(y.payload.tag.first),
            array.i.payload.last.eq(y.payload.tag.last),
            array.i.valid.eq(self.running & x.valid & y.valid),
            x.ready.eq(array.i.ready & y.valid),
            y.ready.eq(array.i.ready & x.valid),
            rows.ready.eq(epi_take),
            z.ready.eq(epi_take),
            vec.i.valid.eq(epi_valid & keep),
            vec.i.payload.a.eq(rows.payload.y),
        ]
        with m.If(self.go):
            m.d.sync += [drain_i0.eq(0), drain_j0.eq(0), drain_r.eq(0), self.drained.eq(0), keep.eq(1)]
        with m.If(epi_take):
            with m.If(drain_r == cfg.rows - 1):
                m.d.sync += [drain_r.eq(0), keep.eq(1)]
                with m.If(drain_j0 == tiles.last_j0):
                    m.d.sync += [drain_j0.eq(0), drain_i0.eq(drain_i0 + cfg.rows),
                                 self.drained.eq(drain_i0 == tiles.last_i0)]
                with m.Else():
                    m.d.sync += drain_j0.eq(drain_j0 + cfg.cols)
            with m.Else():
                m.d.sync += [drain_r.eq(drain_r + 1),
                             keep.eq((drain_i0 != tiles.last_i0) | (drain_r + 1 < tiles.last_rows))]

    def _pass(self, m):
        """VEC, SOFTMAX, ARGMAX and LOSS: Y and Z responses joined into beats of their unit."""
        vec, smax, red = self.vector, self.softmax, self.reduce
        y, z = self.y_data, self.z_data
        z_ok = ~self.job.use_z | z.valid
        beat = self.running & y.valid & z_ok
        for j in range(self.config.cols):
            m.d.comb += [
                vec.i.payload.a[j].eq(y.payload.data[j]),
                smax.i.payload.x[j].eq(y.payload.data[j]),
                red.i.payload.a[j].eq(y.payload.data[j]),
                red.i.payload.y[j].eq(z.payload[j]),
            ]
        m.d.comb += [smax.i.payload.last.eq(y.payload.tag.last), red.i.payload.last.eq(y.payload.tag.last)]
        with m.Switch(self.job.op):
            with m.Case(Opcode.VEC):
                m.d.comb += [vec.i.valid.eq(beat), y.ready.eq(vec.i.ready & z_ok),
                             z.ready.eq(vec.i.ready & y.valid)]
            with m.Case(Opcode.SOFTMAX):
                m.d.comb += [smax.i.valid.eq(self.running & y.valid), y.ready.eq(smax.i.ready)]
            with m.Case(Opcode.ARGMAX, Opcode.LOSS):
                m.d.comb += [red.i.valid.eq(beat), y.ready.eq(red.i.ready & z_ok),
                             z.ready.eq(red.i.ready & y.valid)]

    def _results(self, m):
        """Whichever unit the instruction uses, into ``result``."""
        vec, smax, red, op, result = self.vector, self.softmax, self.reduce, self.job.op, self.result
        reduces = (op == Opcode.ARGMAX) | (op == Opcode.LOSS)
        m.d.comb += [
            result.valid.eq(Mux(op == Opcode.SOFTMAX, smax.o.valid, Mux(reduces, red.o.valid, vec.o.valid))),
            result.payload.saturated.eq(vec.o.payload.saturated),
            result.payload.high.eq(vec.o.payload.high),
        ]
        # Every unit's results are taken as they come: a unit the instruction does not use has none.
        m.d.comb += [vec.o.ready.eq(1), smax.o.ready.eq(1), red.o.ready.eq(1)]
        with m.Switch(op):
            with m.Case(Opcode.SOFTMAX):
                m.d.comb += result.payload.y.eq(smax.o.payload.y)
            with m.Case(Opcode.ARGMAX, Opcode.LOSS):
                m.d.comb += result.payload.y.eq(red.o.payload.y)
            with m.Default():
                m.d.comb += result.payload.y.eq(vec.o.payload.y)
