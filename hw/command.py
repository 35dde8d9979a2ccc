"""The command handler: host commands (``docs/isa.md``) from the link, executed on the controller.

:class:`CommandHandler` sits between :class:`hw.link.Link` and :class:`hw.controller.Controller`. It
parses each verified frame, checks the header and the arguments before any side effect, drives the
controller's host ports, and sends exactly one reply frame per frame: the command's reply, or an
``ERROR`` frame (``UNKNOWN_TYPE``, ``BAD_ARGUMENT``) carrying the frame's sequence number.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import DeviceConfig
from .frame import SEQ_KNOWN, ErrorCode, FrameType
from .isa import (
    INSTRUCTION_BYTES,
    Buf,
    Command,
    InfoReply,
    ProgramArgs,
    ReadArgs,
    RunArgs,
    RunReply,
    WriteArgs,
    info_payload,
)
from .link import Beat, Header

__all__ = ["ImemWrite", "HostWrite", "HostRead", "CommandHandler", "info_reply"]

ImemWrite = data.StructLayout({"addr": 16, "data": 64})
"""One instruction for the controller's instruction memory."""

HostWrite = data.StructLayout({"buf": 2, "addr": 32, "data": signed(16)})
"""One word for a buffer, at a flat address (word ``w``: bank ``w mod banks``, address ``w // banks``)."""

HostRead = data.StructLayout({"buf": 2, "addr": 32})
"""A read request of one buffer word at a flat address."""

WORD_BYTES = 2


def _nbytes(layout: data.Layout) -> int:
    return (layout.size + 7) // 8


def info_reply(config: DeviceConfig) -> int:
    """The ``INFO`` reply payload of a device, as the integer of its little-endian bytes."""
    return int.from_bytes(info_payload(config), "little")


class CommandHandler(wiring.Component):
    """Executes host commands on the controller, one frame at a time, one reply per frame.

    For each frame the handler decides, from the header alone: an unknown type is answered with
    ``UNKNOWN_TYPE``; a ``WRITE``, ``PROGRAM`` or ``RUN`` with the sequence number and type of the last
    executed command is a retransmission, answered again without executing it (its payload is
    discarded): ``WRITE`` and ``PROGRAM`` get their empty acknowledgement, ``RUN`` the remembered
    status, pc and cycles with the remembered words read again. ``INFO`` and ``READ`` have no side
    effects and simply execute again. A payload length that does not fit the command (``INFO`` not
    empty, ``READ`` not 7 bytes, ``RUN`` not 9, ``WRITE`` shorter than its 5-byte arguments or with
    an odd word part, ``PROGRAM`` shorter than 2 bytes or not a whole number of instructions) is
    ``BAD_ARGUMENT``. The arguments are then collected and checked: a buffer number past ``G``,
    flat words past ``banks·depth``, instructions past ``imem``, a ``RUN`` entry past ``imem``, or a
    ``READ``/``RUN`` reply longer than ``max_payload`` are ``BAD_ARGUMENT``. A rejected frame has no
    side effect and is not remembered; the rest of its payload is drained before the error reply.

    Cycle contract:

    - ``rx_hdr.ready`` is high only while idle; a decision cycle follows each header. Payload bytes
      are taken one per cycle, except that the byte completing a ``WRITE`` word or a ``PROGRAM``
      instruction waits for ``host_wr.ready`` / ``imem_w.ready`` (it is passed through in the same
      cycle). A frame's payload is always taken whole, whatever the decision.
    - ``RUN``: ``start`` pulses for one cycle with ``entry`` once the whole frame is taken; the reply
      starts the first cycle ``busy`` is low after that (the controller raises ``busy`` the cycle
      after ``start``), with ``status``, ``pc`` and ``cycles`` sampled in that cycle.
    - The reply header is offered on ``tx_hdr`` once the frame is taken (and, for ``RUN``, the run
      has ended); its bytes follow on ``tx_data``. Words of ``READ``/``RUN`` are read one at a time:
      a ``host_rd`` request, its ``host_rd_data`` response, then two bytes, little-endian.
    - After the last reply byte the handler is idle again; the controller's ports carry nothing
      outside the phases above.

    Parameters
    ----------
    config : DeviceConfig
        The device: buffer size ``banks·depth``, ``imem`` and ``max_payload`` bound the arguments;
        all of it is reported by ``INFO``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`DeviceConfig`.

    Attributes
    ----------
    rx_hdr, rx_data : In(stream.Signature(Header)), In(stream.Signature(Beat))
        Verified frames from the link.
    tx_hdr, tx_data : Out(stream.Signature(Header)), Out(stream.Signature(8))
        Reply frames to the link.
    start, entry : Out(1), Out(16)
        Start a run of the controller at ``entry``.
    busy, status, pc, cycles : In(1), In(8), In(16), In(32)
        The controller's run state and the result of its last run.
    imem_w : Out(stream.Signature(ImemWrite))
        Instructions for the instruction memory.
    host_wr : Out(stream.Signature(HostWrite))
        Buffer words to write.
    host_rd, host_rd_data : Out(stream.Signature(HostRead)), In(stream.Signature(signed(16)))
        Buffer read requests and their responses, in order.
    """

    rx_hdr: In(stream.Signature(Header))
    rx_data: In(stream.Signature(Beat))
    tx_hdr: Out(stream.Signature(Header))
    tx_data: Out(stream.Signature(8))
    start: Out(1)
    entry: Out(16)
    busy: In(1)
    status: In(8)
    pc: In(16)
    cycles: In(32)
    imem_w: Out(stream.Signature(ImemWrite))
    host_wr: Out(stream.Signature(HostWrite))
    host_rd: Out(stream.Signature(HostRead))
    host_rd_data: In(stream.Signature(signed(16)))

    def __init__(self, config: DeviceConfig):
        if not isinstance(config, DeviceConfig):
            raise TypeError(f"CommandHandler needs a DeviceConfig, not {config!r}")
        self.config = config
        super().__init__()

    def elaborate(self, platform):
        cfg = self.config
        m = Module()

        words = cfg.banks * cfg.depth
        args_bytes = {Command.INFO: 0, Command.WRITE: _nbytes(WriteArgs()), Command.READ: _nbytes(ReadArgs()),
                      Command.PROGRAM: _nbytes(ProgramArgs()), Command.RUN: _nbytes(RunArgs())}
        run_header = _nbytes(RunReply())
        info = InfoReply()
        info_bytes = _nbytes(info)
        error_bytes = 3

        hdr = Signal(Header)
        index = Signal(16)                               # payload bytes taken; then reply bytes sent
        args = Signal(8 * max(args_bytes.values()))
        error = Signal()                                 # the reply is an ERROR frame
        code = Signal(8)

        last_valid, last_seq, last_type = Signal(), Signal(8), Signal(8)
        mem_buf, mem_addr, mem_count = Signal(2), Signal(32), Signal(16)  # words of the last READ/RUN
        run_reply = Signal(RunReply())                   # result of the last RUN

        addr = Signal(32)                                # next flat word or instruction address
        left = Signal(16)                                # words still to read for the reply
        low = Signal(8)                                  # first byte of a WRITE word
        high = Signal()                                  # the next WRITE byte completes a word
        instr = Signal(8 * INSTRUCTION_BYTES)
        sub = Signal(range(INSTRUCTION_BYTES))           # byte of the PROGRAM instruction
        word = Signal(16)

        wa = WriteArgs()(args[:WriteArgs().size])
        ra = ReadArgs()(args[:ReadArgs().size])
        pa = ProgramArgs()(args[:ProgramArgs().size])
        xa = RunArgs()(args[:RunArgs().size])

        is_type = {command: hdr.type == command for command in Command}
        known = Cat(*is_type.values()).any()
        side_effects = is_type[Command.WRITE] | is_type[Command.PROGRAM] | is_type[Command.RUN]
        length = hdr.length
        length_ok = Mux(is_type[Command.INFO], length == 0,
                    Mux(is_type[Command.READ], length == args_bytes[Command.READ],
                    Mux(is_type[Command.RUN], length == args_bytes[Command.RUN],
                    Mux(is_type[Command.WRITE], (length >= args_bytes[Command.WRITE]) & length[0],
                        (length >= args_bytes[Command.PROGRAM]) & (length[:3] == 2)))))
        n_args = Signal(range(max(args_bytes.values()) + 1))
        with m.Switch(hdr.type):
            for command, n in args_bytes.items():
                with m.Case(command):
                    m.d.comb += n_args.eq(n)

        n_write = (length - args_bytes[Command.WRITE]) >> 1
        n_program = (length - args_bytes[Command.PROGRAM]) >> 3
        write_ok = (wa.buf < len(Buf)) & (wa.addr + n_write <= words)
        read_ok = ((ra.buf < len(Buf)) & (ra.addr + ra.count <= words)
                   & (WORD_BYTES * ra.count <= cfg.max_payload))
        run_ok = ((xa.buf < len(Buf)) & (xa.addr + xa.count <= words) & (xa.entry < cfg.imem)
                  & (run_header + WORD_BYTES * xa.count <= cfg.max_payload))
        program_ok = pa.addr + n_program <= cfg.imem
        args_ok = Mux(is_type[Command.WRITE], write_ok, Mux(is_type[Command.READ], read_ok,
                  Mux(is_type[Command.RUN], run_ok, program_ok)))

        # The reply, from the decisions and the remembered state.
        reads = ~error & (is_type[Command.READ] | is_type[Command.RUN])
        head = Signal(8 * run_header)
        head_n = Signal(range(info_bytes + 1))
        reply_len = Signal(16)
        reply_byte = Signal(8)
        m.d.comb += head.eq(Mux(error, Cat(code, Const(SEQ_KNOWN, 8), hdr.seq), run_reply))
        with m.If(error):
            m.d.comb += head_n.eq(error_bytes)
        with m.Elif(is_type[Command.INFO]):
            m.d.comb += head_n.eq(info_bytes)
        with m.Elif(is_type[Command.RUN]):
            m.d.comb += head_n.eq(run_header)
        m.d.comb += [
            reply_len.eq(head_n + Mux(reads, WORD_BYTES * mem_count, 0)),
            reply_byte.eq(Mux(~error & is_type[Command.INFO],
                              Const(info_reply(cfg), info.size).word_select(index, 8),
                              head.word_select(index[:3], 8))),
        ]

        byte = self.rx_data.payload.data
        payload_done = index == length
        take = self.rx_data.valid & self.rx_data.ready

        def reject(error_code):
            m.d.sync += [error.eq(1), code.eq(error_code)]
            m.next = "DRAIN"

        def execute():
            m.d.sync += [last_valid.eq(1), last_seq.eq(hdr.seq), last_type.eq(hdr.type)]

        m.d.comb += [
            self.entry.eq(xa.entry),
            self.host_wr.payload.buf.eq(wa.buf),
            self.host_wr.payload.addr.eq(addr),
            self.host_wr.payload.data.eq(Cat(low, byte)),
            self.imem_w.payload.addr.eq(addr),
            self.imem_w.payload.data.eq(Cat(instr[:-8], byte)),
            self.host_rd.payload.buf.eq(mem_buf),
            self.host_rd.payload.addr.eq(addr),
            self.tx_hdr.payload.type.eq(Mux(error, FrameType.ERROR, hdr.type)),
            self.tx_hdr.payload.seq.eq(hdr.seq),
            self.tx_hdr.payload.length.eq(reply_len),
        ]
        with m.If(take):
            m.d.sync += index.eq(index + 1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.rx_hdr.ready.eq(1)
                with m.If(self.rx_hdr.valid):
                    m.d.sync += [hdr.eq(self.rx_hdr.payload), index.eq(0), error.eq(0)]
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(~known):
                    reject(ErrorCode.UNKNOWN_TYPE)
                with m.Elif(last_valid & (last_seq == hdr.seq) & (last_type == hdr.type) & side_effects):
                    m.next = "DRAIN"
                with m.Elif(~length_ok):
                    reject(ErrorCode.BAD_ARGUMENT)
                with m.Elif(is_type[Command.INFO]):
                    execute()
                    m.next = "REPLY"
                with m.Else():
                    m.next = "ARGS"
            with m.State("ARGS"):
                m.d.comb += self.rx_data.ready.eq(1)
                with m.If(self.rx_data.valid):
                    m.d.sync += args.word_select(index[:4], 8).eq(byte)
                    with m.If(index == n_args - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += [high.eq(0), sub.eq(0)]
                with m.If(~args_ok):
                    reject(ErrorCode.BAD_ARGUMENT)
                with m.Else():
                    execute()
                    with m.Switch(hdr.type):
                        with m.Case(Command.WRITE):
                            m.d.sync += addr.eq(wa.addr)
                            m.next = "WRITE"
                        with m.Case(Command.PROGRAM):
                            m.d.sync += addr.eq(pa.addr)
                            m.next = "PROGRAM"
                        with m.Case(Command.READ):
                            m.d.sync += [mem_buf.eq(ra.buf), mem_addr.eq(ra.addr), mem_count.eq(ra.count)]
                            m.next = "REPLY"
                        with m.Case(Command.RUN):
                            m.d.sync += [mem_buf.eq(xa.buf), mem_addr.eq(xa.addr), mem_count.eq(xa.count)]
                            m.next = "START"
            with m.State("WRITE"):
                with m.If(payload_done):
                    m.next = "REPLY"
                with m.Elif(~high):
                    m.d.comb += self.rx_data.ready.eq(1)
                    with m.If(self.rx_data.valid):
                        m.d.sync += [low.eq(byte), high.eq(1)]
                with m.Else():
                    m.d.comb += [self.host_wr.valid.eq(self.rx_data.valid),
                                 self.rx_data.ready.eq(self.host_wr.ready)]
                    with m.If(take):
                        m.d.sync += [addr.eq(addr + 1), high.eq(0)]
            with m.State("PROGRAM"):
                with m.If(payload_done):
                    m.next = "REPLY"
                with m.Elif(sub != INSTRUCTION_BYTES - 1):
                    m.d.comb += self.rx_data.ready.eq(1)
                    with m.If(self.rx_data.valid):
                        m.d.sync += [instr.word_select(sub, 8).eq(byte), sub.eq(sub + 1)]
                with m.Else():
                    m.d.comb += [self.imem_w.valid.eq(self.rx_data.valid),
                                 self.rx_data.ready.eq(self.imem_w.ready)]
                    with m.If(take):
                        m.d.sync += [addr.eq(addr + 1), sub.eq(0)]
            with m.State("START"):
                m.d.comb += self.start.eq(1)
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~self.busy):
                    m.d.sync += [run_reply.status.eq(self.status), run_reply.pc.eq(self.pc),
                                 run_reply.cycles.eq(self.cycles)]
                    m.next = "REPLY"
            with m.State("DRAIN"):
                m.d.comb += self.rx_data.ready.eq(~payload_done)
                with m.If(payload_done):
                    m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += self.tx_hdr.valid.eq(1)
                with m.If(self.tx_hdr.ready):
                    m.d.sync += [index.eq(0), addr.eq(mem_addr), left.eq(Mux(reads, mem_count, 0))]
                    m.next = "HEAD"
            with m.State("HEAD"):
                with m.If(index == head_n):
                    with m.If(left == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "READ"
                with m.Else():
                    m.d.comb += [self.tx_data.valid.eq(1), self.tx_data.payload.eq(reply_byte)]
                    with m.If(self.tx_data.ready):
                        m.d.sync += index.eq(index + 1)
            with m.State("READ"):
                m.d.comb += self.host_rd.valid.eq(1)
                with m.If(self.host_rd.ready):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                    m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.comb += self.host_rd_data.ready.eq(1)
                with m.If(self.host_rd_data.valid):
                    m.d.sync += word.eq(self.host_rd_data.payload)
                    m.next = "LOW"
            with m.State("LOW"):
                m.d.comb += [self.tx_data.valid.eq(1), self.tx_data.payload.eq(word[:8])]
                with m.If(self.tx_data.ready):
                    m.next = "HIGH"
            with m.State("HIGH"):
                m.d.comb += [self.tx_data.valid.eq(1), self.tx_data.payload.eq(word[8:])]
                with m.If(self.tx_data.ready):
                    m.next = "HEAD"
        return m
