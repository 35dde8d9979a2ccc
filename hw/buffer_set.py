"""The three buffers of the controller, each reached by the reader or the writer that names it."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Module, Mux, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffers import Buffer, ReadRequest, WriteRequest
from .config import DeviceConfig
from .isa import OPERAND_BUFFERS
from .job import Tag

__all__ = ["Steps", "YResponse", "BufferSet"]


class Steps(data.StructLayout):
    """An X request and a Y request issued together (a GEMM's array step, a pass's beat)."""

    def __init__(self, config: DeviceConfig):
        request = ReadRequest(config.banks, config.depth, Tag().size)
        super().__init__({"x": request, "y": request})


class YResponse(data.StructLayout):
    """Y's lanes and the ``tag`` of its step."""

    def __init__(self, config: DeviceConfig):
        super().__init__({"data": data.ArrayLayout(signed(16), config.cols), "tag": Tag()})


class BufferSet(wiring.Component):
    """The buffers ``W``, ``A`` and ``G``, shared by three readers and a writer by buffer number.

    Readers: X (a GEMM's ``a``, or the host's reads while not ``busy``), Y (a GEMM's ``b`` or a pass's
    first operand) and Z (a GEMM's ``c`` or a pass's second operand, when ``use_z``). An instruction's
    operands are in different buffers, so each buffer serves at most one reader; ``buffers`` names
    them (3: none). The writer writes to ``buffers.out``.

    Cycle contract: each reader has the :class:`hw.buffers.Buffer` contract of its buffer. X and Y
    requests travel together on ``steps`` and are taken together when Y's buffer is ready (their
    responses are taken together too); while not ``busy`` ``steps`` carries X alone, to X's buffer.
    Responses are zero from a reader naming no buffer. X takes the rows of the array's lanes only;
    ``x_pending`` is high while one of its responses is queued or in flight.

    Parameters
    ----------
    config : DeviceConfig
    """

    def __init__(self, config: DeviceConfig):
        self.config = config
        lanes = data.ArrayLayout(signed(16), config.cols)
        super().__init__({
            "busy": In(1), "use_z": In(1),
            "buffers": In(data.StructLayout({"x": 2, "y": 2, "z": 2, "out": 2})),
            "steps": In(stream.Signature(Steps(config))),
            "z": In(stream.Signature(ReadRequest(config.banks, config.depth, Tag().size))),
            "x_data": Out(stream.Signature(data.ArrayLayout(signed(16), config.rows))), "x_pending": Out(1),
            "y_data": Out(stream.Signature(YResponse(config))),
            "z_data": Out(stream.Signature(lanes)),
            "write": In(stream.Signature(WriteRequest(config.banks, config.depth, 16), always_ready=True)),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        bufs = [Buffer(cfg.banks, cfg.depth, tag_width=Tag().size) for _ in OPERAND_BUFFERS]
        for buf, unit in zip(OPERAND_BUFFERS, bufs, strict=True):
            m.submodules[f"buf_{buf.name.lower()}"] = unit
        sel = self.buffers
        on_x = [sel.x == index for index in range(len(bufs))]
        on_y = [sel.y == index for index in range(len(bufs))]
        on_z = [self.use_z & (sel.z == index) for index in range(len(bufs))]
        steps = self.steps
        for index, unit in enumerate(bufs):
            pick_x = steps.valid & on_x[index]
            pick_y = steps.valid & self.busy & on_y[index]
            pick_z = self.z.valid & on_z[index]
            x_ready = on_x[index] & self.x_data.ready
            m.d.comb += [
                unit.rd.valid.eq(pick_x | pick_y | pick_z),
                unit.rd.payload.eq(Mux(pick_x, steps.payload.x,
                                       Mux(pick_y, steps.payload.y, self.z.payload))),
                unit.rd_data.ready.eq(Mux(self.busy, x_ready | (on_y[index] & self.y_data.ready)
                                          | (on_z[index] & self.z_data.ready), x_ready)),
                unit.wr.valid.eq(self.write.valid & (sel.out == index)),
                unit.wr.payload.eq(self.write.payload),
            ]
        # X and Y requests are taken together, so Y's buffer stands for both while busy.
        m.d.comb += [
            self.steps.ready.eq(_pick([unit.rd.ready for unit in bufs], Mux(self.busy, sel.y, sel.x))),
            self.z.ready.eq(_pick([unit.rd.ready for unit in bufs], sel.z)),
        ]
        m.d.comb += self.x_pending.eq(_any(bufs[k].pending & on_x[k] for k in range(len(bufs))))
        for port, on, lanes in ((self.x_data, on_x, cfg.rows), (self.z_data, on_z, cfg.cols)):
            m.d.comb += port.valid.eq(_any(bufs[k].rd_data.valid & on[k] for k in range(len(bufs))))
            for lane in range(lanes):
                m.d.comb += port.payload[lane].eq(
                    _any(Mux(on[k], bufs[k].rd_data.payload.data[lane], 0) for k in range(len(bufs))))
        y = self.y_data
        m.d.comb += [
            y.valid.eq(_any(bufs[k].rd_data.valid & on_y[k] for k in range(len(bufs)))),
            y.payload.tag.eq(_any(Mux(on_y[k], bufs[k].rd_data.payload.tag, 0) for k in range(len(bufs)))),
        ]
        for lane in range(cfg.cols):
            m.d.comb += y.payload.data[lane].eq(
                _any(Mux(on_y[k], bufs[k].rd_data.payload.data[lane], 0) for k in range(len(bufs))))
        return m


def _pick(values, index):
    """``values[index]``, the last one for an index past them."""
    return functools.reduce(lambda rest, k: Mux(index == k, values[k], rest), range(len(values) - 2, -1, -1),
                            values[-1])


def _any(values):
    """The OR of ``values``."""
    return functools.reduce(operator.or_, values)
