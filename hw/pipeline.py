"""Pipeline registers between streams."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream

__all__ = ["registered"]


def registered(m: Module, source, name: str):
    """A stream carrying ``source``'s beats one cycle later, through a register.

    A beat a cycle passes when the returned stream is always ready; ``source.ready`` is high while
    the register is empty or its beat is taken, so it depends combinationally on the new stream's
    ``ready``.
    """
    sink = stream.Signature(source.payload.shape()).create(path=(name,))
    payload = Signal(source.payload.shape(), name=f"{name}_payload", reset_less=True)
    m.d.comb += [source.ready.eq(~sink.valid | sink.ready), sink.payload.eq(payload)]
    with m.If(source.ready):
        m.d.sync += [sink.valid.eq(source.valid), payload.eq(source.payload)]
    return sink
