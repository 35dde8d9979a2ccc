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
      after ``start``). ``status``, ``pc`` and ``cycles`` are sampled in the cycle of the
      ``tx_hdr`` transfer: the controller holds them until its next run, so a retransmitted ``RUN``
      samples them again.
    - The reply header is offered on ``tx_hdr`` once the frame is taken (and, for ``RUN``, the run
      has ended); its bytes follow on ``tx_data``. Words of ``READ``/``RUN`` are read one at a time:
      a ``host_rd`` request, then its ``host_rd_data`` response as two bytes, little-endian, the
      response taken with the second.
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
        Verified frames from a :class:`hw.link.Link` of ``config.max_payload``: no ``length`` above it.
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
        args = {Command.WRITE: WriteArgs(), Command.READ: ReadArgs(), Command.PROGRAM: ProgramArgs(),
                Command.RUN: RunArgs()}
        args_bytes = {Command.INFO: 0, **{command: _nbytes(layout) for command, layout in args.items()}}
        run_header = _nbytes(RunReply())
        info = InfoReply()
        info_bytes = _nbytes(info)
        error_bytes = 3

        kind = Signal(range(max(Command) + 1))           # the frame's type, if a known command
        seq = Signal(8)
        length = Signal(range(cfg.max_payload + 1))
        index = Signal(range(max(*args_bytes.values(), info_bytes) + 1))  # payload bytes taken (wrapping)
        taken = Signal()                                 # ... up to the last one
        error = Signal()                                 # the reply is an ERROR frame
        unknown = Signal()                               # ... for UNKNOWN_TYPE, else BAD_ARGUMENT
        last_kind, last_seq = Signal.like(kind), Signal(8)  # the last executed command (kind 0: none)

        # Arguments at the widths of their limits; ``wide``: one had a bit set above its register.
        buf = Signal(2)
        addr = Signal(range(max(words, cfg.imem) + 1))   # next flat word or instruction address
        left = Signal(range(cfg.max_payload // WORD_BYTES + 1))  # words to read (see also DECIDE)
        entry = Signal(range(cfg.imem))
        wide = Signal()
        fields = {"buf": buf, "addr": addr, "count": left, "entry": entry}
        mem_buf, mem_addr, mem_count = Signal(2), Signal.like(addr), Signal.like(left)  # of the last READ/RUN
        stage = Signal(8 * (INSTRUCTION_BYTES - 1))      # bytes before the one completing a word; RunReply

        is_type = {command: kind == command for command in Command}
        side_effects = is_type[Command.WRITE] | is_type[Command.PROGRAM] | is_type[Command.RUN]
        length_ok = Mux(is_type[Command.INFO], length == 0,
                    Mux(is_type[Command.READ], length == args_bytes[Command.READ],
                    Mux(is_type[Command.RUN], length == args_bytes[Command.RUN],
                    Mux(is_type[Command.WRITE], (length >= args_bytes[Command.WRITE]) & length[0],
                        (length >= args_bytes[Command.PROGRAM]) & (length[:3] == 2)))))
        n_args = Signal(range(max(args_bytes.values()) + 1))
        with m.Switch(kind):
            for command, n in args_bytes.items():
                with m.Case(command):
                    m.d.comb += n_args.eq(n)

        # ``addr + left`` ends the words or instructions a command touches (``(length - n) // 2`` is
        # ``length // 2 - n // 2`` for an odd ``length``, and likewise for instructions).
        write_n, program_n = args_bytes[Command.WRITE], args_bytes[Command.PROGRAM]
        end = addr + left
        end_ok = Mux(is_type[Command.WRITE], end <= words + write_n // WORD_BYTES,
                     Mux(is_type[Command.PROGRAM], end <= cfg.imem + program_n // INSTRUCTION_BYTES,
                         end <= words))
        buf_ok = buf < len(Buf)
        read_ok = buf_ok & (WORD_BYTES * left <= cfg.max_payload)
        run_ok = buf_ok & (entry < cfg.imem) & (run_header + WORD_BYTES * left <= cfg.max_payload)
        args_ok = ~wide & end_ok & Mux(is_type[Command.WRITE], buf_ok, Mux(is_type[Command.READ], read_ok,
                                       Mux(is_type[Command.RUN], run_ok, 1)))

        # The reply, from the decisions and the remembered state.
        reads = ~error & (is_type[Command.READ] | is_type[Command.RUN])
        code = Signal(8)
        m.d.comb += code.eq(Mux(unknown, ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_ARGUMENT))
        head_n = Signal(range(info_bytes + 1))
        with m.If(error):
            m.d.comb += head_n.eq(error_bytes)
        with m.Elif(is_type[Command.INFO]):
            m.d.comb += head_n.eq(info_bytes)
        with m.Elif(is_type[Command.RUN]):
            m.d.comb += head_n.eq(run_header)
        reply_byte = Mux(~error & is_type[Command.INFO],
                         Const(info_reply(cfg), info.size).word_select(index[:len(head_n)], 8),
                         Mux(error, Cat(code, Const(SEQ_KNOWN, 8), seq).word_select(index[:2], 8),
                             stage[:8]))

        byte = self.rx_data.payload.data
        payload_done = taken | (length == 0)
        take = self.rx_data.valid & self.rx_data.ready

        # Each command's arguments are the fields of ``RunArgs`` from one on: byte ``k`` of them is
        # byte ``k + skip`` of ``RunArgs``.
        run_args = args[Command.RUN]
        skip = Signal(range(args_bytes[Command.RUN]))
        with m.Switch(kind):
            for command, layout in args.items():
                offset = run_args["addr"].offset - layout["addr"].offset
                assert all((run_args[name].offset, min(run_args[name].width, field.width))
                           == (field.offset + offset, field.width) for name, field in layout)
                with m.Case(command):
                    m.d.comb += skip.eq(offset // 8)

        def parse():
            """Store each argument byte in its register; flag bits above it."""
            with m.Switch(index + skip):
                for k in range(args_bytes[Command.RUN]):
                    above = 0                            # bits of byte ``k`` above their register
                    with m.Case(k):
                        for name, field in run_args:
                            reg = fields[name]
                            lo, hi = max(field.offset, 8 * k), min(field.offset + field.width, 8 * k + 8)
                            cut = max(lo, min(hi, field.offset + len(reg)))
                            if cut > lo:
                                m.d.sync += reg[lo - field.offset:cut - field.offset].eq(
                                    byte[lo - 8 * k:cut - 8 * k])
                            above |= (1 << hi - 8 * k) - (1 << cut - 8 * k) if hi > cut else 0
                        with m.If((byte & above) != 0):
                            m.d.sync += wide.eq(1)

        def reject():
            m.d.sync += error.eq(1)
            m.next = "DRAIN"

        def execute():
            m.d.sync += [last_kind.eq(kind), last_seq.eq(seq)]

        m.d.comb += [
            self.entry.eq(entry),
            self.host_wr.payload.buf.eq(buf),
            self.host_wr.payload.addr.eq(addr),
            self.host_wr.payload.data.eq(Cat(stage[-8:], byte)),
            self.imem_w.payload.addr.eq(addr),
            self.imem_w.payload.data.eq(Cat(stage, byte)),
            self.host_rd.payload.buf.eq(mem_buf),
            self.host_rd.payload.addr.eq(addr),
            self.tx_hdr.payload.type.eq(Mux(error, FrameType.ERROR, kind)),
            self.tx_hdr.payload.seq.eq(seq),
            self.tx_hdr.payload.length.eq(head_n + Mux(reads, WORD_BYTES * mem_count, 0)),
        ]
        with m.If(take):
            m.d.sync += [index.eq(index + 1), taken.eq(self.rx_data.payload.last)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.rx_hdr.ready.eq(1)
                hdr = self.rx_hdr.payload
                known = Cat(*(hdr.type == command for command in Command)).any()
                with m.If(self.rx_hdr.valid):
                    m.d.sync += [kind.eq(hdr.type), seq.eq(hdr.seq), length.eq(hdr.length), index.eq(0),
                                 taken.eq(0), error.eq(~known), unknown.eq(~known), wide.eq(0)]
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(error):
                    m.next = "DRAIN"
                with m.Elif((last_kind == kind) & (last_seq == seq) & side_effects):
                    m.next = "DRAIN"
                with m.Elif(~length_ok):
                    reject()
                with m.Elif(is_type[Command.INFO]):
                    execute()
                    m.next = "REPLY"
                with m.Else():                           # the words of a WRITE, instructions of a PROGRAM
                    m.d.sync += left.eq(Mux(is_type[Command.WRITE], length[1:], length[3:]))
                    m.next = "ARGS"
            with m.State("ARGS"):
                m.d.comb += self.rx_data.ready.eq(1)
                with m.If(self.rx_data.valid):
                    parse()
                    with m.If(index == n_args - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(~args_ok):
                    reject()
                with m.Else():
                    execute()
                    with m.Switch(kind):
                        with m.Case(Command.WRITE):
                            m.next = "WRITE"
                        with m.Case(Command.PROGRAM):
                            m.next = "PROGRAM"
                        with m.Case(Command.READ):
                            m.d.sync += [mem_buf.eq(buf), mem_addr.eq(addr), mem_count.eq(left)]
                            m.next = "REPLY"
                        with m.Case(Command.RUN):
                            m.d.sync += [mem_buf.eq(buf), mem_addr.eq(addr), mem_count.eq(left)]
                            m.next = "START"
            with m.State("WRITE"):                       # the byte after a low byte completes a word
                with m.If(payload_done):
                    m.next = "REPLY"
                with m.Elif(index[0] == args_bytes[Command.WRITE] % WORD_BYTES):
                    m.d.comb += self.rx_data.ready.eq(1)
                    with m.If(self.rx_data.valid):
                        m.d.sync += stage.eq(Cat(stage[8:], byte))
                with m.Else():
                    m.d.comb += [self.host_wr.valid.eq(self.rx_data.valid),
                                 self.rx_data.ready.eq(self.host_wr.ready)]
                    with m.If(take):
                        m.d.sync += addr.eq(addr + 1)
            with m.State("PROGRAM"):                     # the eighth byte completes an instruction
                with m.If(payload_done):
                    m.next = "REPLY"
                with m.Elif(index[:3] != (args_bytes[Command.PROGRAM] - 1) % INSTRUCTION_BYTES):
                    m.d.comb += self.rx_data.ready.eq(1)
                    with m.If(self.rx_data.valid):
                        m.d.sync += stage.eq(Cat(stage[8:], byte))
                with m.Else():
                    m.d.comb += [self.imem_w.valid.eq(self.rx_data.valid),
                                 self.rx_data.ready.eq(self.imem_w.ready)]
                    with m.If(take):
                        m.d.sync += addr.eq(addr + 1)
            with m.State("START"):
                m.d.comb += self.start.eq(1)
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~self.busy):
                    m.next = "REPLY"
            with m.State("DRAIN"):
                m.d.comb += self.rx_data.ready.eq(~payload_done)
                with m.If(payload_done):
                    m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += self.tx_hdr.valid.eq(1)
                with m.If(self.tx_hdr.ready):
                    m.d.sync += [index.eq(0), addr.eq(mem_addr), left.eq(Mux(reads, mem_count, 0)),
                                 stage.eq(Cat(self.status, self.pc, self.cycles))]
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
                        m.d.sync += [index.eq(index + 1), stage.eq(stage[8:])]
            with m.State("READ"):
                m.d.comb += self.host_rd.valid.eq(1)
                with m.If(self.host_rd.ready):
                    m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
                    m.next = "LOW"
            with m.State("LOW"):                         # the response waits while its low byte is sent
                m.d.comb += [self.tx_data.valid.eq(self.host_rd_data.valid),
                             self.tx_data.payload.eq(self.host_rd_data.payload[:8])]
                with m.If(self.tx_data.valid & self.tx_data.ready):
                    m.next = "HIGH"
            with m.State("HIGH"):
                m.d.comb += [self.tx_data.valid.eq(1), self.tx_data.payload.eq(self.host_rd_data.payload[8:]),
                             self.host_rd_data.ready.eq(self.tx_data.ready)]
                with m.If(self.tx_data.ready):
                    m.next = "HEAD"
        return m
