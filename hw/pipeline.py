"""Pipeline registers between streams."""

from amaranth.hdl import Module
from amaranth.lib import stream

__all__ = ["registered"]


def registered(m: Module, source, name: str):
    """A stream carrying ``source``'s beats one cycle later, through a register.

    A beat a cycle passes when the returned stream is always ready; ``source.ready`` is high while
    the register is empty or its beat is taken, so it depends combinationally on the new stream's
    ``ready``.
    """
    sink = stream.Signature(source.payload.shape()).create(path=(name,))
    m.d.comb += source.ready.eq(~sink.valid | sink.ready)
    with m.If(source.ready):
        m.d.sync += [sink.valid.eq(source.valid), sink.payload.eq(source.payload)]
    return sink
