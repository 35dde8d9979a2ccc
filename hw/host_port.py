"""The controller's host port: the one interface between the command handler and the controller."""

from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ImemWrite", "HostWrite", "HostRead", "HostPort"]

ImemWrite = data.StructLayout({"addr": 16, "data": 64})
"""One instruction for the controller's instruction memory."""

HostWrite = data.StructLayout({"buf": 2, "addr": 32, "data": signed(16)})
"""One word for a buffer, at a flat address (word ``w``: bank ``w mod banks``, address ``w // banks``)."""

HostRead = data.StructLayout({"buf": 2, "addr": 32})
"""A read request of one buffer word at a flat address."""


class HostPort(wiring.Signature):
    """The controller as the command handler drives it (the controller takes it flipped).

    Members
    -------
    start, entry : Out(1), Out(16)
        A one-cycle pulse that runs the program from ``entry``.
    busy, status, pc, cycles : In(1), In(8), In(16), In(32)
        Whether a program runs, and how the last run ended (:class:`hw.isa.Status`), where, after
        how many cycles.
    imem : Out(stream.Signature(ImemWrite))
        Instructions for the instruction memory.
    write : Out(stream.Signature(HostWrite))
        Buffer words to write.
    read, read_data : Out(stream.Signature(HostRead)), In(stream.Signature(signed(16)))
        Buffer read requests and their responses, in order.
    """

    def __init__(self):
        super().__init__({
            "start": Out(1), "entry": Out(16),
            "busy": In(1), "status": In(8), "pc": In(16), "cycles": In(32),
            "imem": Out(stream.Signature(ImemWrite)),
            "write": Out(stream.Signature(HostWrite)),
            "read": Out(stream.Signature(HostRead)),
            "read_data": In(stream.Signature(signed(16))),
        })
