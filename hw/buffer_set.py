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
from .pipeline import registered

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

    Cycle contract: each reader has the :class:`hw.buffers.Buffer` contract of its buffer, its
    responses passing a register on the way (a cycle more than the buffer's ``latency``). X and Y
    requests travel together on ``steps`` and are taken together when both their buffers are ready
    (their responses are taken together too); while not ``busy`` ``steps`` carries X alone, to X's
    buffer.
    Responses are zero from a reader naming no buffer. X takes the rows of the array's lanes only;
    ``x_pending`` is high while one of its responses is queued, in flight or in its register.

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
        # Eight banks lie far apart on the part: each bank's word is copied before the rotation.
        copy = cfg.banks > 4
        bufs = [Buffer(cfg.banks, cfg.depth, tag_width=Tag().size, copy=copy) for _ in OPERAND_BUFFERS]
        for buf, unit in zip(OPERAND_BUFFERS, bufs, strict=True):
            m.submodules[f"buf_{buf.name.lower()}"] = unit
        sel = self.buffers
        # Y and Z read only while busy: idle, X's buffer answers the host alone.
        on_x = [sel.x == index for index in range(len(bufs))]
        on_y = [self.busy & (sel.y == index) for index in range(len(bufs))]
        on_z = [self.busy & self.use_z & (sel.z == index) for index in range(len(bufs))]
        # Each reader's responses, picked from its buffer, pass a register on their way out: the
        # buffers' queues and the readers' selection run to no logic beyond.
        picked = {}
        for name in ("x", "y", "z"):
            port = getattr(self, f"{name}_data")
            picked[name] = stream.Signature(port.payload.shape()).create(path=(f"{name}_picked",))
            wiring.connect(m, registered(m, picked[name], f"{name}_response"), wiring.flipped(port))
        x_data, y_data, z_data = picked["x"], picked["y"], picked["z"]
        # X and Y requests transfer together: each goes to its buffer when the other's can take it.
        steps = self.steps
        x_free = (sel.x == len(bufs)) | _pick([unit.rd.ready for unit in bufs], sel.x)
        y_free = _pick([unit.rd.ready for unit in bufs], sel.y)
        for index, unit in enumerate(bufs):
            pick_x = steps.valid & on_x[index] & (~self.busy | y_free)
            pick_y = steps.valid & on_y[index] & x_free
            pick_z = self.z.valid & on_z[index]
            x_ready = on_x[index] & x_data.ready
            m.d.comb += [
                unit.rd.valid.eq(pick_x | pick_y | pick_z),
                # A buffer serves one reader: its request is chosen by that alone, not by readiness.
                unit.rd.payload.eq(Mux(on_x[index], steps.payload.x,
                                       Mux(on_y[index], steps.payload.y, self.z.payload))),
                unit.rd_data.ready.eq(x_ready | (on_y[index] & y_data.ready) | (on_z[index] & z_data.ready)),
                unit.wr.valid.eq(self.write.valid & (sel.out == index)),
                unit.wr.payload.eq(self.write.payload),
            ]
        m.d.comb += [
            self.steps.ready.eq(x_free & (~self.busy | y_free)),
            self.z.ready.eq(_pick([unit.rd.ready for unit in bufs], sel.z)),
        ]
        m.d.comb += self.x_pending.eq(_any(bufs[k].pending & on_x[k] for k in range(len(bufs)))
                                      | self.x_data.valid)
        for port, on, lanes in ((x_data, on_x, cfg.rows), (z_data, on_z, cfg.cols)):
            m.d.comb += port.valid.eq(_any(bufs[k].rd_data.valid & on[k] for k in range(len(bufs))))
            for lane in range(lanes):
                m.d.comb += port.payload[lane].eq(
                    _any(Mux(on[k], bufs[k].rd_data.payload.data[lane], 0) for k in range(len(bufs))))
        y = y_data
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
