"""The command handler: host commands (``docs/isa.md``) from the link, executed on the controller.

:class:`CommandHandler` sits between :class:`hw.link.Link` and :class:`hw.controller.Controller`. It
parses each verified frame, checks the header and the arguments before any side effect, drives the
controller's host ports, and sends exactly one reply frame per frame: the command's reply, or an
``ERROR`` frame (``UNKNOWN_TYPE``, ``BAD_ARGUMENT``) carrying the frame's sequence number.
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import DeviceConfig
from .frame import ERROR_FIELDS, SEQ_KNOWN, ErrorCode, FrameType
from .host_port import HostPort
from .isa import (
    INSTRUCTION_BYTES,
    OPERAND_BUFFERS,
    Buf,
    Command,
    InfoReply,
    ProgramArgs,
    ReadArgs,
    RunArgs,
    RunReply,
    WriteArgs,
    info_payload,
    nbytes,
)
from .link import Beat, Header

__all__ = ["CommandHandler", "info_reply"]

WORD_BYTES = 2
_ARGS = {Command.WRITE: WriteArgs(), Command.READ: ReadArgs(), Command.PROGRAM: ProgramArgs(),
         Command.RUN: RunArgs()}
_ARGS_BYTES = {Command.INFO: 0, **{command: nbytes(layout) for command, layout in _ARGS.items()}}
_RUN_HEADER, _INFO_BYTES = nbytes(RunReply()), nbytes(InfoReply())
_ERROR = data.StructLayout(dict(ERROR_FIELDS))


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
    ``BAD_ARGUMENT``. The arguments are then collected and checked: a buffer number past ``G`` (past
    ``D`` with a data memory), flat words past ``banks·depth`` (``data_depth`` for ``D``), instructions
    past ``imem``, a ``RUN`` entry past ``imem``, or a ``READ``/``RUN`` reply longer than
    ``max_payload`` are ``BAD_ARGUMENT``. A rejected frame has no
    side effect and is not remembered; the rest of its payload is drained before the error reply.

    Cycle contract:

    - ``rx_hdr.ready`` is high only while idle; a decision cycle follows each header. Payload bytes
      are taken one per cycle, except that the byte completing a ``WRITE`` word or a ``PROGRAM``
      instruction waits for ``host.write.ready`` / ``host.imem.ready`` (it is passed through in the same
      cycle). A frame's payload is always taken whole, whatever the decision.
    - ``RUN``: ``start`` pulses for one cycle with ``entry`` once the whole frame is taken; the reply
      starts the first cycle ``busy`` is low after that (the controller raises ``busy`` the cycle
      after ``start``). ``status``, ``pc`` and ``cycles`` are sampled in the cycle of the
      ``tx_hdr`` transfer: the controller holds them until its next run, so a retransmitted ``RUN``
      samples them again.
    - The reply header is offered on ``tx_hdr`` once the frame is taken (and, for ``RUN``, the run
      has ended); its bytes follow on ``tx_data``. Words of ``READ``/``RUN`` are read one at a time:
      a ``host.read`` request, then its ``host.read_data`` response as two bytes, little-endian, the
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
    host : Out(HostPort())
        The controller: its runs, its instruction memory and its buffers' words.
    """

    rx_hdr: In(stream.Signature(Header))
    rx_data: In(stream.Signature(Beat))
    tx_hdr: Out(stream.Signature(Header))
    tx_data: Out(stream.Signature(8))
    host: Out(HostPort())

    def __init__(self, config: DeviceConfig):
        if not isinstance(config, DeviceConfig):
            raise TypeError(f"CommandHandler needs a DeviceConfig, not {config!r}")
        self.config = config
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        r = _Registers(self.config)
        is_type = {command: r.kind == command for command in Command}
        side_effects = is_type[Command.WRITE] | is_type[Command.PROGRAM] | is_type[Command.RUN]
        byte = self.rx_data.payload.data
        payload_done = r.taken | (r.length == 0)
        take = self.rx_data.valid & self.rx_data.ready
        head_n, reply_byte, reads = self._reply(m, r, is_type)
        m.d.comb += [
            self.host.entry.eq(r.entry),
            self.host.write.payload.buf.eq(r.buf),
            self.host.write.payload.addr.eq(r.addr),
            self.host.write.payload.data.eq(Cat(r.stage[-8:], byte)),
            self.host.imem.payload.addr.eq(r.addr),
            self.host.imem.payload.data.eq(Cat(r.stage, byte)),
            self.host.read.payload.buf.eq(r.mem_buf),
            self.host.read.payload.addr.eq(r.addr),
            self.tx_hdr.payload.type.eq(Mux(r.error, FrameType.ERROR, r.kind)),
            self.tx_hdr.payload.seq.eq(r.seq),
            self.tx_hdr.payload.length.eq(head_n + Mux(reads, WORD_BYTES * r.mem_count, 0)),
        ]
        with m.If(take):
            m.d.sync += [r.index.eq(r.index + 1), r.taken.eq(self.rx_data.payload.last)]

        def reject():
            m.d.sync += r.error.eq(1)
            m.next = "DRAIN"

        def execute():
            m.d.sync += [r.last_kind.eq(r.kind), r.last_seq.eq(r.seq)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.rx_hdr.ready.eq(1)
                hdr = self.rx_hdr.payload
                known = Cat(*(hdr.type == command for command in Command)).any()
                with m.If(self.rx_hdr.valid):
                    m.d.sync += [r.kind.eq(hdr.type), r.seq.eq(hdr.seq), r.length.eq(hdr.length),
                                 r.index.eq(0), r.taken.eq(0), r.error.eq(~known), r.unknown.eq(~known),
                                 r.wide.eq(0)]
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(r.error):
                    m.next = "DRAIN"
                with m.Elif((r.last_kind == r.kind) & (r.last_seq == r.seq) & side_effects):
                    m.next = "DRAIN"
                with m.Elif(~_length_ok(r, is_type)):
                    reject()
                with m.Elif(is_type[Command.INFO]):
                    execute()
                    m.next = "REPLY"
                with m.Else():                           # the words of a WRITE, instructions of a PROGRAM
                    m.d.sync += r.left.eq(Mux(is_type[Command.WRITE], r.length[1:], r.length[3:]))
                    m.next = "ARGS"
            with m.State("ARGS"):
                m.d.comb += self.rx_data.ready.eq(1)
                with m.If(self.rx_data.valid):
                    _parse(m, r, byte)
                    with m.If(r.index == _n_args(m, r) - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(~self._args_ok(r, is_type)):
                    reject()
                with m.Else():
                    execute()
                    with m.Switch(r.kind):
                        with m.Case(Command.WRITE):
                            m.next = "WRITE"
                        with m.Case(Command.PROGRAM):
                            m.next = "PROGRAM"
                        with m.Case(Command.READ):
                            m.d.sync += r.remember()
                            m.next = "REPLY"
                        with m.Case(Command.RUN):
                            m.d.sync += r.remember()
                            m.next = "START"
            with m.State("WRITE"):                       # the byte after a low byte completes a word
                self._pass_through(m, r, byte, payload_done, self.host.write,
                                   r.index[0] == _ARGS_BYTES[Command.WRITE] % WORD_BYTES)
            with m.State("PROGRAM"):                     # the eighth byte completes an instruction
                self._pass_through(m, r, byte, payload_done, self.host.imem,
                                   r.index[:3] != (_ARGS_BYTES[Command.PROGRAM] - 1) % INSTRUCTION_BYTES)
            with m.State("START"):
                m.d.comb += self.host.start.eq(1)
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~self.host.busy):
                    m.next = "REPLY"
            with m.State("DRAIN"):
                m.d.comb += self.rx_data.ready.eq(~payload_done)
                with m.If(payload_done):
                    m.next = "REPLY"
            self._send(m, r, head_n, reply_byte, reads)
        return m

    def _args_ok(self, r, is_type):
        """The arguments are in range: ``addr + left`` ends the words or instructions a command
        touches (``(length - n) // 2`` is ``length // 2 - n // 2`` for an odd ``length``, and likewise
        for instructions)."""
        cfg = self.config
        data = r.buf == Buf.D
        words = Mux(data, cfg.data_depth, cfg.banks * cfg.depth)
        write_n, program_n = _ARGS_BYTES[Command.WRITE], _ARGS_BYTES[Command.PROGRAM]
        end = r.addr + r.left
        end_ok = Mux(is_type[Command.WRITE], end <= words + write_n // WORD_BYTES,
                     Mux(is_type[Command.PROGRAM], end <= cfg.imem + program_n // INSTRUCTION_BYTES,
                         end <= words))
        buf_ok = (r.buf < len(OPERAND_BUFFERS)) | (data & (cfg.data_depth > 0))
        read_ok = buf_ok & (WORD_BYTES * r.left <= cfg.max_payload)
        run_ok = buf_ok & (r.entry < cfg.imem) & (_RUN_HEADER + WORD_BYTES * r.left <= cfg.max_payload)
        return ~r.wide & end_ok & Mux(is_type[Command.WRITE], buf_ok, Mux(is_type[Command.READ], read_ok,
                                      Mux(is_type[Command.RUN], run_ok, 1)))

    def _reply(self, m, r, is_type):
        """The reply, from the decisions and the remembered state: its header bytes ``head_n``, the
        byte ``index`` of them, and whether words follow."""
        reads = ~r.error & (is_type[Command.READ] | is_type[Command.RUN])
        error = Signal(_ERROR)
        m.d.comb += [error.code.eq(Mux(r.unknown, ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_ARGUMENT)),
                     error.flags.eq(SEQ_KNOWN), error.seq.eq(r.seq)]
        head_n = Signal(range(_INFO_BYTES + 1))
        with m.If(r.error):
            m.d.comb += head_n.eq(nbytes(_ERROR))
        with m.Elif(is_type[Command.INFO]):
            m.d.comb += head_n.eq(_INFO_BYTES)
        with m.Elif(is_type[Command.RUN]):
            m.d.comb += head_n.eq(_RUN_HEADER)
        info = Const(info_reply(self.config), InfoReply().size)
        reply_byte = Mux(~r.error & is_type[Command.INFO], info.word_select(r.index[:len(head_n)], 8),
                         Mux(r.error, error.as_value().word_select(r.index[:2], 8), r.stage[:8]))
        return head_n, reply_byte, reads

    def _pass_through(self, m, r, byte, payload_done, port, staged):
        """``WRITE`` and ``PROGRAM``: bytes into ``stage`` while ``staged``, the byte completing a
        word or instruction passed through to ``port`` with them."""
        with m.If(payload_done):
            m.next = "REPLY"
        with m.Elif(staged):
            m.d.comb += self.rx_data.ready.eq(1)
            with m.If(self.rx_data.valid):
                m.d.sync += r.stage.eq(Cat(r.stage[8:], byte))
        with m.Else():
            m.d.comb += [port.valid.eq(self.rx_data.valid), self.rx_data.ready.eq(port.ready)]
            with m.If(self.rx_data.valid & self.rx_data.ready):
                m.d.sync += r.addr.eq(r.addr + 1)

    def _send(self, m, r, head_n, reply_byte, reads):
        """The reply states: the header, its bytes, then the words read, two bytes each."""
        host = self.host
        with m.State("REPLY"):
            m.d.comb += self.tx_hdr.valid.eq(1)
            with m.If(self.tx_hdr.ready):
                run = RunReply()(r.stage)
                m.d.sync += [r.index.eq(0), r.addr.eq(r.mem_addr), r.left.eq(Mux(reads, r.mem_count, 0)),
                             run.status.eq(host.status), run.pc.eq(host.pc), run.cycles.eq(host.cycles)]
                m.next = "HEAD"
        with m.State("HEAD"):
            with m.If(r.index == head_n):
                with m.If(r.left == 0):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "READ"
            with m.Else():
                m.d.comb += [self.tx_data.valid.eq(1), self.tx_data.payload.eq(reply_byte)]
                with m.If(self.tx_data.ready):
                    m.d.sync += [r.index.eq(r.index + 1), r.stage.eq(r.stage[8:])]
        with m.State("READ"):
            m.d.comb += host.read.valid.eq(1)
            with m.If(host.read.ready):
                m.d.sync += [r.addr.eq(r.addr + 1), r.left.eq(r.left - 1)]
                m.next = "LOW"
        with m.State("LOW"):                             # the response waits while its low byte is sent
            m.d.comb += [self.tx_data.valid.eq(host.read_data.valid),
                         self.tx_data.payload.eq(host.read_data.payload[:8])]
            with m.If(self.tx_data.valid & self.tx_data.ready):
                m.next = "HIGH"
        with m.State("HIGH"):
            m.d.comb += [self.tx_data.valid.eq(1), self.tx_data.payload.eq(host.read_data.payload[8:]),
                         host.read_data.ready.eq(self.tx_data.ready)]
            with m.If(self.tx_data.ready):
                m.next = "HEAD"


class _Registers:
    """The handler's registers: the frame being executed, its arguments, the last executed command."""

    def __init__(self, config: DeviceConfig):
        self.kind = Signal(range(max(Command) + 1))      # the frame's type, if a known command
        self.seq = Signal(8)
        self.length = Signal(range(config.max_payload + 1))
        self.index = Signal(range(max(*_ARGS_BYTES.values(), _INFO_BYTES) + 1))  # bytes taken (wrapping)
        self.taken = Signal()                            # ... up to the last one
        self.error = Signal()                            # the reply is an ERROR frame
        self.unknown = Signal()                          # ... for UNKNOWN_TYPE, else BAD_ARGUMENT
        self.last_kind, self.last_seq = Signal.like(self.kind), Signal(8)  # the last executed (kind 0: none)
        # Arguments at the widths of their limits; ``wide``: one had a bit set above its register.
        self.buf = Signal(2)
        words = max(config.banks * config.depth, config.imem, config.data_depth)
        self.addr = Signal(range(words + 1))             # the next word or instruction
        self.left = Signal(range(config.max_payload // WORD_BYTES + 1))  # words to read (see also DECIDE)
        self.entry = Signal(range(config.imem))
        self.wide = Signal()
        self.fields = {"buf": self.buf, "addr": self.addr, "count": self.left, "entry": self.entry}
        # The arguments of the last READ or RUN, for its reply (and a retransmission's).
        self.mem_buf, self.mem_addr = Signal(2), Signal.like(self.addr)
        self.mem_count = Signal.like(self.left)
        self.stage = Signal(8 * (INSTRUCTION_BYTES - 1))  # bytes before the one completing a word; RunReply

    def remember(self):
        """Keep the arguments of a READ or RUN for its reply."""
        return [self.mem_buf.eq(self.buf), self.mem_addr.eq(self.addr), self.mem_count.eq(self.left)]


def _length_ok(r, is_type):
    """The payload length fits the command."""
    return Mux(is_type[Command.INFO], r.length == 0,
           Mux(is_type[Command.READ], r.length == _ARGS_BYTES[Command.READ],
           Mux(is_type[Command.RUN], r.length == _ARGS_BYTES[Command.RUN],
           Mux(is_type[Command.WRITE], (r.length >= _ARGS_BYTES[Command.WRITE]) & r.length[0],
               (r.length >= _ARGS_BYTES[Command.PROGRAM]) & (r.length[:3] == 2)))))


def _n_args(m, r):
    """Bytes of the arguments of the frame's command."""
    n_args = Signal(range(max(_ARGS_BYTES.values()) + 1))
    with m.Switch(r.kind):
        for command, n in _ARGS_BYTES.items():
            with m.Case(command):
                m.d.comb += n_args.eq(n)
    return n_args


def _parse(m, r, byte):
    """Store argument byte ``index`` in its register; flag bits above it.

    Each command's arguments are the fields of ``RunArgs`` from one on: byte ``k`` of them is byte
    ``k + skip`` of ``RunArgs``.
    """
    run_args = _ARGS[Command.RUN]
    skip = Signal(range(_ARGS_BYTES[Command.RUN]))
    with m.Switch(r.kind):
        for command, layout in _ARGS.items():
            offset = run_args["addr"].offset - layout["addr"].offset
            assert all((run_args[name].offset, min(run_args[name].width, field.width))
                       == (field.offset + offset, field.width) for name, field in layout)
            with m.Case(command):
                m.d.comb += skip.eq(offset // 8)
    with m.Switch(r.index + skip):
        for k in range(_ARGS_BYTES[Command.RUN]):
            above = 0                                    # bits of byte ``k`` above their register
            with m.Case(k):
                for name, field in run_args:
                    reg = r.fields[name]
                    lo, hi = max(field.offset, 8 * k), min(field.offset + field.width, 8 * k + 8)
                    cut = max(lo, min(hi, field.offset + len(reg)))
                    if cut > lo:
                        m.d.sync += reg[lo - field.offset:cut - field.offset].eq(byte[lo - 8 * k:cut - 8 * k])
                    above |= (1 << hi - 8 * k) - (1 << cut - 8 * k) if hi > cut else 0
                with m.If((byte & above) != 0):
                    m.d.sync += r.wide.eq(1)
