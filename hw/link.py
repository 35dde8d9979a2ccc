"""The link layer: COBS-framed, CRC-checked frames between the UART byte streams and the controller.

The frame format is defined once in :mod:`hw.frame`; ``docs/link.md`` describes the wire format,
the error replies and the controller-side cycle contract in full.
"""

import operator
from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .frame import (
    COBS_RUN,
    CRC_BYTES,
    CRC_INIT,
    CRC_POLY,
    ERROR_PAYLOAD_BYTES,
    HEADER_BYTES,
    HEADER_FIELDS,
    MAX_PAYLOAD,
    SEQ_KNOWN,
    ErrorCode,
    FrameType,
)

__all__ = ["Header", "Beat", "LinkErrorLayout", "crc16_step", "LinkRx", "LinkTx", "Link"]

Header = data.StructLayout(dict(HEADER_FIELDS))
"""A frame header: ``type``, ``seq``, ``length`` (payload bytes)."""

Beat = data.StructLayout({"data": 8, "last": 1})
"""One payload byte of a received frame; ``last`` marks the final one."""

LinkErrorLayout = data.StructLayout({"code": unsigned(8), "seq": 8, "seq_known": 1})
"""A link-level error for an ERROR reply; ``code`` takes :class:`hw.frame.ErrorCode` values."""

OVERHEAD = HEADER_BYTES + CRC_BYTES


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register after one more byte, as an Amaranth expression.

    Each result bit is the XOR of a fixed set of ``crc`` and ``byte`` bits, worked out here by
    running the bit-serial division on sets of bit indices (0..15 ``crc``, 16..23 ``byte``).
    """
    terms = [{n} | ({n + 8} if n >= 8 else set()) for n in range(16)]
    for _ in range(8):
        top = terms[15]
        terms = [set(), *terms[:15]]
        terms = [t ^ top if CRC_POLY >> n & 1 else t for n, t in enumerate(terms)]
    sources = Cat(crc, byte)
    return Cat(*(reduce(operator.xor, (sources[k] for k in sorted(t)), Const(0, 1)) for t in terms))


def _byte_memory(m: Module, name: str, depth: int):
    """A byte memory in ``m``: its write port, its read port and the byte read, a cycle after ``addr``.

    A byte read in the cycle its address is written is never used, so the read may return anything
    then (``no_rw_check``): synthesis maps the memory to block RAM with no logic ordering the two.
    """
    m.submodules[name] = memory = Memory(shape=8, depth=depth, init=[], attrs={"no_rw_check": 1})
    rd = memory.read_port(domain="comb")
    data = Signal(8, reset_less=True)
    m.d.sync += data.eq(rd.data)
    return memory.write_port(), rd, data


def _check_max_payload(max_payload) -> int:
    if not isinstance(max_payload, int) or isinstance(max_payload, bool) or not 1 <= max_payload <= 0xFFFF:
        raise ValueError(f"max_payload {max_payload!r} must be an integer in 1..65535")
    return max_payload


class LinkRx(wiring.Component):
    """Frame receiver: COBS decoding, buffering, CRC and length checks, then delivery.

    Incoming bytes are decoded as they arrive; the payload goes into a ``max_payload``-byte buffer
    and the CRC is computed on the fly. At the 0x00 delimiter the frame is checked and, only if it
    is good, offered to the controller; otherwise one link error is raised. An empty frame (two
    delimiters in a row) is ignored. A frame whose length field exceeds ``max_payload``, or that
    decodes to more bytes than the buffer holds, is discarded as it streams in (OVERSIZED at its
    delimiter). Whatever the input, the receiver is back hunting at the next 0x00.

    Cycle contract:

    - ``i.ready`` is high while a frame is being received (one byte per cycle) and low while a
      verified frame is delivered or a link error waits to be taken.
    - Per verified frame: one ``hdr`` transfer, then exactly ``length`` transfers on ``data``
      (none for an empty payload) with ``last`` on the final one. ``valid`` rises the cycle after
      the delimiter (``hdr``) or after the previous transfer (``data``), and payloads hold steady
      while ``valid`` and not ``ready``. The next frame's bytes are accepted the cycle after the
      final transfer.
    - ``error`` is offered the cycle after the delimiter of a bad frame and held until taken.

    Parameters
    ----------
    max_payload : int
        Payload bytes the frame buffer holds (1..65535).

    Raises
    ------
    ValueError
        If ``max_payload`` is out of range.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Wire bytes from the UART receiver.
    hdr : Out(stream.Signature(Header))
        Header of a verified frame.
    data : Out(stream.Signature(Beat))
        Payload bytes of a verified frame.
    error : Out(stream.Signature(LinkErrorLayout))
        Link-level errors, for :class:`LinkTx` to answer.
    """

    i: In(stream.Signature(8))
    hdr: Out(stream.Signature(Header))
    data: Out(stream.Signature(Beat))
    error: Out(stream.Signature(LinkErrorLayout))

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = _check_max_payload(max_payload)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        wr, rd, rd_data = _byte_memory(m, "buffer", self.max_payload)

        type_, seq = Signal(8), Signal(8)
        length = Signal(range(max(self.max_payload, 0xFF) + 1))  # its low byte whole, for OVERSIZED
        remaining = Signal(8)                      # bytes left in the current COBS block
        zero_pending = Signal()                    # the current block ends in an implied 0x00
        started = Signal()                         # a non-delimiter byte arrived in this frame
        count = Signal(range(self.max_payload + OVERHEAD + 1))  # decoded bytes; then bytes delivered
        older, newer = Signal(8), Signal(8)        # the last two decoded bytes (the CRC, at the end)
        crc = Signal(16, init=CRC_INIT)            # over the decoded bytes before those two
        code = Signal(range(max(ErrorCode) + 1))
        seq_known = Signal()

        byte = self.i.payload
        next_count = count + 1

        def fail(error_code):
            m.d.sync += [code.eq(error_code), seq_known.eq(count >= 2)]

        def restart():
            m.d.sync += [remaining.eq(0), zero_pending.eq(0), started.eq(0), count.eq(0),
                         crc.eq(CRC_INIT)]

        m.d.comb += [
            self.hdr.payload.type.eq(type_),
            self.hdr.payload.seq.eq(seq),
            self.hdr.payload.length.eq(length),
            self.data.payload.data.eq(rd_data),
            self.data.payload.last.eq(length == 1),
            self.error.payload.code.eq(code),
            self.error.payload.seq.eq(seq),
            self.error.payload.seq_known.eq(seq_known),
            rd.addr.eq(count),
            wr.addr.eq(count - OVERHEAD),
            wr.data.eq(older),
        ]

        with m.FSM():
            with m.State("RECEIVE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & (byte == 0)):
                    restart()
                    with m.If(started):                # an empty frame is ignored
                        with m.If((remaining != 0) | (count < OVERHEAD)):
                            fail(ErrorCode.TRUNCATED)
                            m.next = "ERROR"
                        with m.Elif(crc != Cat(older, newer)):
                            fail(ErrorCode.BAD_CRC)
                            m.next = "ERROR"
                        with m.Elif(length != count - OVERHEAD):
                            fail(ErrorCode.LENGTH_MISMATCH)
                            m.next = "ERROR"
                        with m.Else():
                            m.next = "HEADER"
                with m.Elif(self.i.valid):
                    decoded = Signal(8)
                    emit = Signal()
                    m.d.sync += started.eq(1)
                    with m.If(remaining == 0):
                        m.d.comb += [decoded.eq(0), emit.eq(zero_pending)]
                        m.d.sync += [remaining.eq(byte - 1), zero_pending.eq(byte != 0xFF)]
                    with m.Else():
                        m.d.comb += [decoded.eq(byte), emit.eq(1)]
                        m.d.sync += remaining.eq(remaining - 1)
                    with m.If(emit):
                        m.d.sync += [count.eq(next_count), older.eq(newer), newer.eq(decoded)]
                        with m.If(count >= 2):
                            m.d.sync += crc.eq(crc16_step(crc, older))
                        with m.If(count >= OVERHEAD):
                            m.d.comb += wr.en.eq(1)
                        with m.Switch(count):
                            with m.Case(0):
                                m.d.sync += type_.eq(decoded)
                            with m.Case(1):
                                m.d.sync += seq.eq(decoded)
                            with m.Case(2):
                                m.d.sync += length[:8].eq(decoded)
                            with m.Case(3):
                                m.d.sync += length[8:].eq(decoded)
                        too_long = Cat(length[:8], decoded) > self.max_payload
                        with m.If(((count == 3) & too_long) | (count == self.max_payload + OVERHEAD)):
                            fail(ErrorCode.OVERSIZED)
                            m.next = "DISCARD"
            with m.State("DISCARD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid & (byte == 0)):
                    restart()
                    m.next = "ERROR"
            with m.State("ERROR"):
                m.d.comb += self.error.valid.eq(1)
                with m.If(self.error.ready):
                    m.next = "RECEIVE"
            with m.State("HEADER"):
                m.d.comb += self.hdr.valid.eq(1)
                with m.If(self.hdr.ready):
                    with m.If(length == 0):
                        m.next = "RECEIVE"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):                   # count: the read address; length: bytes left
                m.d.comb += self.data.valid.eq(1)
                with m.If(self.data.ready):
                    m.d.comb += rd.addr.eq(next_count)
                    m.d.sync += [count.eq(next_count), length.eq(length - 1)]
                    with m.If(self.data.payload.last):
                        m.d.sync += count.eq(0)
                        m.next = "RECEIVE"
        return m


class _Part(enum.Enum, shape=2):
    """The part of a frame :class:`LinkTx` gathers next."""

    HEADER = 0
    PAYLOAD = 1
    CRC = 2
    DONE = 3


class LinkTx(wiring.Component):
    """Frame transmitter: link errors and controller replies, CRC appended, COBS-encoded.

    Between frames a waiting ``error`` wins over a waiting ``hdr``; a frame once started is sent
    whole, so replies never interleave. The frame bytes pass through a 254-byte block buffer: each
    COBS block is gathered (until a 0x00, 254 non-zero bytes, or the end of the frame), then its
    code byte and contents are sent, and the frame ends with a 0x00. Bytes are encoded exactly as
    :func:`hw.frame.cobs_encode` does.

    Cycle contract:

    - ``hdr.ready`` (or ``error.ready``) pulses for the cycle of the transfer when the transmitter
      is idle; the frame's ``length`` payload bytes are then taken from ``data`` (none for the
      error reply, whose 3-byte payload is made here). ``data.ready`` is high only while a block
      is being gathered and a payload byte is due; ``data.valid`` may come and go between bytes.
    - ``o`` carries the wire bytes with the usual stream rules; a stalled ``o`` stalls ``data``
      once the current block is gathered. Each frame byte costs about two cycles (in, then out).

    Attributes
    ----------
    hdr : In(stream.Signature(Header))
        Header of a reply frame from the controller.
    data : In(stream.Signature(8))
        Its payload bytes, exactly ``length`` of them.
    error : In(stream.Signature(LinkErrorLayout))
        Link-level errors from :class:`LinkRx`.
    o : Out(stream.Signature(8))
        Wire bytes to the UART transmitter.
    """

    hdr: In(stream.Signature(Header))
    data: In(stream.Signature(8))
    error: In(stream.Signature(LinkErrorLayout))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        wr, rd, rd_data = _byte_memory(m, "block", COBS_RUN + 1)

        hdr = Signal(Header)                    # rotated a byte per header byte, whole again after it
        is_error = Signal()
        err_code = Signal(range(max(ErrorCode) + 1))
        err_known = Signal()
        part = Signal(_Part)
        step = Signal(2)                        # byte of the header or of the CRC
        left = Signal(16)                       # payload bytes still to gather
        crc = Signal(16)                        # then shifted out, low byte first
        fill = Signal(range(COBS_RUN + 2))      # 1 + bytes in the block buffer: the block's code byte
        final = Signal()                        # the frame still needs a last block
        index = Signal(range(COBS_RUN + 1))     # next block byte to send

        error_byte = Mux(left[1], Mux(left[0], err_code, err_known * SEQ_KNOWN), hdr.seq)
        source, source_valid = Signal(8), Signal()
        with m.Switch(part):
            with m.Case(_Part.HEADER):
                m.d.comb += [source.eq(hdr.as_value()[:8]), source_valid.eq(1)]
            with m.Case(_Part.PAYLOAD):
                m.d.comb += [source.eq(Mux(is_error, error_byte, self.data.payload)),
                             source_valid.eq(is_error | self.data.valid)]
            with m.Case(_Part.CRC):
                m.d.comb += [source.eq(crc[:8]), source_valid.eq(1)]

        m.d.comb += [rd.addr.eq(index), wr.addr.eq(fill), wr.data.eq(source)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [part.eq(_Part.HEADER), step.eq(0), crc.eq(CRC_INIT), fill.eq(1), final.eq(1)]
                with m.If(self.error.valid):
                    m.d.comb += self.error.ready.eq(1)
                    e = self.error.payload
                    m.d.sync += [is_error.eq(1), err_code.eq(e.code), err_known.eq(e.seq_known),
                                 hdr.type.eq(FrameType.ERROR), hdr.seq.eq(Mux(e.seq_known, e.seq, 0)),
                                 hdr.length.eq(ERROR_PAYLOAD_BYTES), left.eq(ERROR_PAYLOAD_BYTES)]
                    m.next = "GATHER"
                with m.Elif(self.hdr.valid):
                    m.d.comb += self.hdr.ready.eq(1)
                    m.d.sync += [is_error.eq(0), hdr.eq(self.hdr.payload), left.eq(self.hdr.payload.length)]
                    m.next = "GATHER"
            with m.State("GATHER"):
                m.d.sync += index.eq(1)
                with m.If(part == _Part.DONE):
                    with m.If(final):
                        m.d.sync += final.eq(0)
                        m.next = "CODE"
                    with m.Else():
                        m.next = "DELIMITER"
                with m.Elif((part == _Part.PAYLOAD) & (left == 0)):
                    m.d.sync += part.eq(_Part.CRC)
                with m.Elif(source_valid):
                    m.d.sync += final.eq((source == 0) | (fill != COBS_RUN))
                    with m.If(part != _Part.CRC):
                        m.d.sync += crc.eq(crc16_step(crc, source))
                    with m.Switch(part):
                        with m.Case(_Part.HEADER):
                            m.d.sync += [hdr.eq(hdr.as_value().rotate_right(8)), step.eq(step + 1)]
                            with m.If(step == HEADER_BYTES - 1):
                                m.d.sync += [step.eq(0), part.eq(_Part.PAYLOAD)]
                        with m.Case(_Part.PAYLOAD):
                            m.d.comb += self.data.ready.eq(~is_error)
                            m.d.sync += left.eq(left - 1)
                        with m.Case(_Part.CRC):
                            m.d.sync += [crc.eq(crc[8:]), step.eq(step + 1)]
                            with m.If(step == CRC_BYTES - 1):
                                m.d.sync += part.eq(_Part.DONE)
                    with m.If(source == 0):
                        m.next = "CODE"
                    with m.Else():
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += fill.eq(fill + 1)
                        with m.If(fill == COBS_RUN):
                            m.next = "CODE"
            with m.State("CODE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(fill)]
                with m.If(self.o.ready):
                    m.next = "BLOCK"
                    with m.If(fill == 1):
                        m.next = "GATHER"
            with m.State("BLOCK"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(rd_data)]
                with m.If(self.o.ready):
                    m.d.comb += rd.addr.eq(index + 1)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index + 1 == fill):
                        m.d.sync += fill.eq(1)
                        m.next = "GATHER"
            with m.State("DELIMITER"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(0)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m


class Link(wiring.Component):
    """Receiver and transmitter of the link, joined by the link-error stream.

    See :class:`LinkRx` and :class:`LinkTx` for the cycle contracts of each side.

    Parameters
    ----------
    max_payload : int
        Payload bytes of the receive frame buffer (1..65535).

    Raises
    ------
    ValueError
        If ``max_payload`` is out of range.

    Attributes
    ----------
    i : In(stream.Signature(8))
        Wire bytes from the UART receiver (or the virtual board's socket).
    o : Out(stream.Signature(8))
        Wire bytes to the UART transmitter.
    rx_hdr, rx_data : Out(stream.Signature(Header)), Out(stream.Signature(Beat))
        Verified frames for the controller.
    tx_hdr, tx_data : In(stream.Signature(Header)), In(stream.Signature(8))
        Reply frames from the controller.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))
    rx_hdr: Out(stream.Signature(Header))
    rx_data: Out(stream.Signature(Beat))
    tx_hdr: In(stream.Signature(Header))
    tx_data: In(stream.Signature(8))

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = _check_max_payload(max_payload)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = LinkRx(self.max_payload)
        m.submodules.tx = tx = LinkTx()
        wiring.connect(m, wiring.flipped(self.i), rx.i)
        wiring.connect(m, rx.hdr, wiring.flipped(self.rx_hdr))
        wiring.connect(m, rx.data, wiring.flipped(self.rx_data))
        wiring.connect(m, rx.error, tx.error)
        wiring.connect(m, wiring.flipped(self.tx_hdr), tx.hdr)
        wiring.connect(m, wiring.flipped(self.tx_data), tx.data)
        wiring.connect(m, tx.o, wiring.flipped(self.o))
        return m
