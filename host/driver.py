"""The host's one way to talk to a device: a board, the virtual board or the golden model.

A :class:`Driver` speaks the host commands of ``docs/isa.md`` in the frames of ``docs/link.md`` over a
:class:`Transport`: :class:`SerialTransport` for anything pyserial opens (``/dev/ttyUSB1``,
``socket://127.0.0.1:N`` of :class:`sim.virtual.VirtualBoard`, ``loop://``) and
:class:`ModelTransport` for the golden model :class:`sim.model.Device` (``--target model``). The
same bytes go to all three.

Retry policy: every new command takes the next sequence number (mod 256). The frame is sent again,
with the same sequence number, when no matching reply comes within ``timeout`` seconds, when a reply
fails its COBS or CRC check on the host, or when the device's link answers that *our* frame arrived
damaged (``BAD_CRC``, ``TRUNCATED``, ``LENGTH_MISMATCH``, or ``OVERSIZED`` for a frame that was not
oversized). The device answers a retransmitted ``WRITE``, ``PROGRAM`` or ``RUN`` again without
executing it twice, and ``INFO``/``READ`` have no side effects, so resending is always safe. After
``retries`` resends :class:`LinkError` says what went wrong each time. Replies whose sequence number
or type do not match the command are stale (answers to earlier attempts) and are skipped. Device-side
rejections (``UNKNOWN_TYPE``, ``BAD_ARGUMENT``, a truly oversized frame) raise :class:`DeviceError` at
once, and a ``RUN`` that stops with a fault raises :class:`FaultError`.

Frame size: ``WRITE``, ``READ`` and ``PROGRAM`` are split into frames of at most ``max_payload`` bytes
each way. Every attempt that fails halves the frame size (down to :data:`MIN_FRAME`), and a split
command whose frame no longer fits sends its words again in the smaller frames, under new sequence
numbers (writing the same words twice, or reading twice, is harmless); only a frame of the smallest
size is resent as it was, and ``retries`` resends of one frame still end in :class:`LinkError`. After
:data:`GROW_AFTER` commands in a row that succeed at the first attempt, the frame size doubles again.
A noisy line so costs a few smaller frames, not the run: at a byte error rate of 10⁻³ a 1 KB frame
arrives damaged two times in three, a 128-byte frame one time in eight. A ``RUN`` is never split (it
must not run twice); the part of its output that its reply carries is chosen from the frame size.

Opening a driver sends ``INFO`` first: it learns ``max_payload`` (frames are split to fit it) and makes
the device forget the last command of an earlier session, so a new command can never be taken for a
retransmission of an old one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np
import serial

from hw.config import DeviceConfig
from hw.frame import ErrorCode, FrameError, FrameType, decode_frame, encode_frame, parse_error_payload
from hw.isa import (
    INSTRUCTION_BYTES,
    VERSION,
    Buf,
    Command,
    InfoReply,
    ProgramArgs,
    ReadArgs,
    RunArgs,
    RunReply,
    Status,
    WriteArgs,
    decode,
    encode,
    nbytes,
)
from sim.model import Device

__all__ = [
    "Transport", "SerialTransport", "ModelTransport",
    "DriverError", "LinkError", "DeviceError", "FaultError",
    "DeviceInfo", "RunResult", "LinkStats", "Driver", "MIN_FRAME", "GROW_AFTER",
]

logger = logging.getLogger(__name__)

DEFAULT_BAUD = 3_000_000
MIN_FRAME = 32
"""Payload bytes below which damage no longer shrinks the frames."""
GROW_AFTER = 16
"""Commands in a row that succeed at their first attempt before the frames grow back (doubling)."""
WORD_MIN, WORD_MAX = -(1 << 15), (1 << 15) - 1
_LINK_DAMAGE = (ErrorCode.BAD_CRC, ErrorCode.TRUNCATED, ErrorCode.LENGTH_MISMATCH)
_HINTS_LINK = ("check the cable and the port name, that the baud rate matches the board's, and that the "
               "board is programmed with the Systolic bitstream")


def _buf(buf: Buf | int) -> int:
    return buf.value if isinstance(buf, Buf) else int(buf)


def _name(kind: Command | int) -> str:
    return Command(kind).name if kind in Command._value2member_map_ else f"command type 0x{kind:02x}"


# -- errors --------------------------------------------------------------------------------------------


class DriverError(RuntimeError):
    """Base of the driver's errors; the CLI prints the message on one line."""


class LinkError(DriverError):
    """The link failed: no port, or no valid reply after every retry."""


class DeviceError(DriverError):
    """The device rejected a command (``UNKNOWN_TYPE``, ``BAD_ARGUMENT``, ``OVERSIZED``).

    Attributes
    ----------
    command : Command or int
    code : ErrorCode
    seq : int
    """

    _HINTS = {
        ErrorCode.UNKNOWN_TYPE: "the gateware does not implement this command: rebuild the bitstream "
                                "from this version of the host",
        ErrorCode.BAD_ARGUMENT: "check the buffer number (W, A or G), that the flat words addressed stay "
                                "within banks·depth of the buffer, that instructions fit the instruction "
                                "memory and that the entry point lies inside it",
        ErrorCode.OVERSIZED: "the frame is longer than the device's max_payload: send less per command",
    }

    def __init__(self, command: Command | int, code: ErrorCode, seq: int):
        self.command, self.code, self.seq = command, code, seq
        hint = self._HINTS.get(code, "see docs/link.md")
        super().__init__(f"the device rejected {_name(command)} (seq {seq}) with {code.name}: {hint}")


class FaultError(DriverError):
    """A ``RUN`` stopped with a fault.

    Attributes
    ----------
    status : Status
    pc : int
        The instruction that faulted (``imem`` for ``NO_END``).
    result : RunResult
        The whole reply, words included.
    """

    _HINTS = {
        Status.BAD_OPCODE: "an unknown opcode, activation or SET register: check the instruction",
        Status.BAD_TENSOR: "a tensor register is undefined or runs past its buffer: define it with TENSOR "
                           "and check base + rows·pitch ≤ depth",
        Status.BAD_SHAPE: "operand shapes disagree, two operands share a buffer, or a column is longer "
                          "than max_rows",
        Status.TOO_DEEP: "a GEMM's K exceeds k_max: split it",
        Status.NO_END: "no END before the end of the instruction memory: check the entry point and that "
                       "the program was loaded",
    }

    def __init__(self, entry: int, result: RunResult):
        self.status, self.pc, self.result = result.status, result.pc, result
        super().__init__(f"RUN from entry {entry} stopped with {result.status.name} at pc {result.pc}: "
                         f"{self._HINTS.get(result.status, 'see docs/isa.md')}")


# -- transports ----------------------------------------------------------------------------------------


class Transport(Protocol):
    """Moves wire bytes: whole frames out, one reply frame in.

    Attributes
    ----------
    name : str
        What the transport is connected to, for error messages.
    """

    name: str

    def write(self, data: bytes) -> None:
        """Send wire bytes (one or more frames, delimiters included)."""

    def read_frame(self, timeout: float) -> bytes | None:
        """The next non-empty frame's wire bytes, delimiter excluded, or ``None`` after ``timeout`` s."""

    def close(self) -> None:
        """Release the port."""


class _Frames:
    """Received bytes split at the 0x00 delimiters; empty frames are dropped."""

    def __init__(self):
        self._buffer = bytearray()

    def extend(self, data: bytes) -> None:
        self._buffer += data

    def pop(self) -> bytes | None:
        while (end := self._buffer.find(0)) >= 0:
            frame = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            if frame:
                return frame
        return None


class SerialTransport:
    """A pyserial port: a device path or any URL ``serial.serial_for_url`` opens.

    Parameters
    ----------
    url : str
        ``/dev/ttyUSB1``, ``socket://127.0.0.1:N`` (the virtual board), ``loop://``, …
    baud : int
        Line rate; must match the board's (``INFO`` reports it). Ignored by ``socket://``.
    poll : float
        Seconds one read of the port may block; :meth:`read_frame` loops until its own timeout.

    Raises
    ------
    LinkError
        If the port cannot be opened (absent device, nobody listening on the socket, bad URL).
    """

    def __init__(self, url: str, baud: int = DEFAULT_BAUD, *, poll: float = 0.05):
        self.name = f"{url} at {baud} baud"
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=poll)
        except (serial.SerialException, ValueError, OSError) as error:
            raise LinkError(
                f"could not open {url!r}: {error}. Check that the board is plugged in and the port name "
                f"(e.g. /dev/ttyUSB1; `python -m serial.tools.list_ports` lists them), or use "
                f"--target model (the golden model) or the virtual board (`python -m sim.virtual` "
                f"prints a socket:// URL to use)") from error
        self._frames = _Frames()

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except serial.SerialException as error:
            raise LinkError(f"writing to {self.name} failed: {error}; {_HINTS_LINK}") from error

    def read_frame(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while (frame := self._frames.pop()) is None:
            if time.monotonic() >= deadline:
                return None
            try:
                self._frames.extend(self.port.read(max(1, self.port.in_waiting)))
            except serial.SerialException as error:
                raise LinkError(f"reading from {self.name} failed: {error}; {_HINTS_LINK}") from error
        return frame

    def close(self) -> None:
        self.port.close()


class ModelTransport:
    """The golden model :class:`sim.model.Device`, answering each frame as it is written.

    Parameters
    ----------
    config : DeviceConfig
        The device the model simulates.

    Attributes
    ----------
    device : Device
        The model, for tests that look inside it.
    """

    def __init__(self, config: DeviceConfig | None = None):
        self.device = Device(config or DeviceConfig())
        self.name = "the golden model"
        self._frames = _Frames()

    def write(self, data: bytes) -> None:
        self._frames.extend(self.device.feed(data))

    def read_frame(self, timeout: float) -> bytes | None:
        return self._frames.pop()

    def close(self) -> None:
        pass


# -- results -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """What ``INFO`` reports (:class:`hw.isa.InfoReply`)."""

    version: int
    rows: int
    cols: int
    banks: int
    depth: int
    imem: int
    k_max: int
    acc_width: int
    act_frac: int
    clk_hz: int
    baud: int
    max_payload: int
    gateware: int
    max_rows: int
    data_depth: int

    @classmethod
    def from_payload(cls, payload: bytes) -> DeviceInfo:
        view = decode(InfoReply(), payload)
        return cls(**{f.name: int(getattr(view, f.name)) for f in fields(cls)})

    def config(self) -> DeviceConfig:
        """The :class:`DeviceConfig` of this device.

        Raises
        ------
        ValueError
            If the figures the host derives (banks, accumulator width, activation format) differ from
            the reported ones: host and gateware come from different versions.
        """
        config = DeviceConfig(rows=self.rows, cols=self.cols, depth=self.depth, imem=self.imem,
                              k_max=self.k_max, max_rows=self.max_rows, max_payload=self.max_payload,
                              clk_hz=self.clk_hz, baud=self.baud, gateware=self.gateware,
                              data_depth=self.data_depth)
        for name in ("banks", "acc_width", "act_frac"):
            if getattr(config, name) != getattr(self, name):
                raise ValueError(f"the device reports {name} = {getattr(self, name)} but this host derives "
                                 f"{getattr(config, name)}: rebuild the bitstream from this version")
        return config


@dataclass(frozen=True)
class RunResult:
    """The reply to ``RUN``: status, pc of the ``END`` (or fault), cycles taken, the words asked for."""

    status: Status
    pc: int
    cycles: int
    words: np.ndarray


@dataclass
class LinkStats:
    """Counters since the last :meth:`Driver.reset_stats`.

    Attributes
    ----------
    commands : int
        Commands completed or rejected.
    bytes_sent, bytes_received : int
        Wire bytes each way, delimiters, retransmissions and discarded replies included.
    retries : int
        Frames sent again, as they were.
    resplit : int
        Frames whose words went again in smaller frames after damage.
    discarded : int
        Stale replies skipped (sequence number or type of another command).
    cycles : int
        Device cycles of the ``RUN``s (their replies' ``cycles``).
    """

    commands: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    retries: int = 0
    resplit: int = 0
    discarded: int = 0
    cycles: int = 0


# -- driver --------------------------------------------------------------------------------------------


class Driver:
    """Host commands over a transport, with sequence numbers, retries and byte counters.

    Build one with :meth:`open`; the constructor takes a transport and sends nothing.

    Parameters
    ----------
    transport : Transport
    timeout : float
        Seconds to wait for each reply before sending the frame again. A ``RUN`` must finish within
        it: give the virtual board (simulated gateware) tens of seconds.
    retries : int
        Resends of one frame before :class:`LinkError`; a frame is sent at most ``retries + 1`` times.

    Attributes
    ----------
    device : DeviceInfo | None
        What ``INFO`` last reported.
    stats : LinkStats
    frame : int
        Payload bytes a frame may carry now (the device's ``max_payload`` on a clean line).
    """

    def __init__(self, transport: Transport, *, timeout: float = 1.0, retries: int = 5):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, not {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries!r}")
        self.transport, self.timeout, self.retries = transport, timeout, retries
        self.device: DeviceInfo | None = None
        self.stats = LinkStats()
        self._seq = 0xFF
        self._limit, self._clean = 0xFFFF, 0

    @classmethod
    def open(cls, target: str, *, baud: int = DEFAULT_BAUD, config: DeviceConfig | None = None,
             timeout: float = 1.0, retries: int = 5) -> Driver:
        """Connect to ``target`` and ask it for ``INFO``.

        Parameters
        ----------
        target : str
            ``"model"`` for the golden model, else a pyserial port or URL.
        baud : int
            Line rate of a serial port.
        config : DeviceConfig, optional
            The golden model's device (default :class:`DeviceConfig`); for a port, the device the
            board must be (what ``INFO`` reports of it is checked, when given).

        Raises
        ------
        LinkError
            If the port cannot be opened or the device does not answer ``INFO``.
        DriverError
            If the device speaks another protocol version, or is not the ``config`` given.
        """
        transport = ModelTransport(config) if target == "model" else SerialTransport(target, baud)
        driver = cls(transport, timeout=timeout, retries=retries)
        try:
            info = driver.info()
            if info.version != VERSION:
                raise DriverError(f"{transport.name} speaks protocol version {info.version}, this host "
                                  f"speaks {VERSION}: program the board with a bitstream built from this "
                                  f"version of Systolic")
            if config is not None and target != "model":
                wrong = [f"{f.name} {getattr(info, f.name)} (expected {getattr(config, f.name)})"
                         for f in fields(config)
                         if hasattr(info, f.name) and getattr(info, f.name) != getattr(config, f.name)]
                if wrong:
                    raise DriverError(f"{transport.name} reports {', '.join(wrong)}: program the board "
                                      f"with a bitstream for this configuration, or expect the one it has")
        except BaseException:
            driver.close()
            raise
        return driver

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reset_stats(self) -> None:
        """Zero the counters (e.g. after loading a model, to count training traffic alone)."""
        self.stats = LinkStats()

    @property
    def bytes_sent(self) -> int:
        """Wire bytes sent since :meth:`reset_stats` (``stats.bytes_sent``)."""
        return self.stats.bytes_sent

    @property
    def bytes_received(self) -> int:
        """Wire bytes received since :meth:`reset_stats` (``stats.bytes_received``)."""
        return self.stats.bytes_received

    # -- commands ------------------------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        """``INFO``: the device's figures; also sets :attr:`device`."""
        self.device = DeviceInfo.from_payload(self.command(Command.INFO, b""))
        return self.device

    def write(self, buf: Buf | int, addr: int, words) -> None:
        """``WRITE`` signed 16-bit ``words`` to flat addresses ``addr, addr + 1, …`` of ``buf``.

        Split into as many frames as ``max_payload`` needs.

        Raises
        ------
        ValueError
            If a word does not fit 16 signed bits.
        DeviceError
            If the range runs past the buffer (earlier frames are written).
        """
        words = self._words(words)

        def payload(start: int, n: int) -> bytes:
            return (encode(WriteArgs(), {"buf": _buf(buf), "addr": addr + start})
                    + words[start:start + n].astype("<i2").tobytes())
        self._split(Command.WRITE, len(words), 2, nbytes(WriteArgs()), payload)

    def read(self, buf: Buf | int, addr: int, count: int) -> np.ndarray:
        """``READ`` ``count`` words from flat address ``addr`` of ``buf``, in as many frames as needed.

        Returns
        -------
        numpy.ndarray
            ``count`` signed 16-bit values (dtype ``int64``, as the golden model's buffers).
        """
        def payload(start: int, n: int) -> bytes:
            return encode(ReadArgs(), {"buf": _buf(buf), "addr": addr + start, "count": n})
        replies = self._split(Command.READ, count, 2, 0, payload)
        chunks = [np.zeros(0, dtype="<i2")] + [self._reply_words(Command.READ, r, n) for n, r in replies]
        return np.concatenate(chunks).astype(np.int64)

    def program(self, words, addr: int = 0) -> None:
        """``PROGRAM`` 64-bit instruction ``words`` from instruction address ``addr`` on."""
        words = [int(w) for w in words]

        def payload(start: int, n: int) -> bytes:
            return encode(ProgramArgs(), {"addr": addr + start}) + b"".join(
                w.to_bytes(INSTRUCTION_BYTES, "little") for w in words[start:start + n])
        self._split(Command.PROGRAM, len(words), INSTRUCTION_BYTES, nbytes(ProgramArgs()), payload)

    def run(self, entry: int, output: tuple[Buf | int, int, int] | None = None) -> RunResult:
        """``RUN`` from ``entry`` to ``END`` and return ``output = (buf, addr, count)`` words.

        Words that do not fit the ``RUN`` reply's ``max_payload`` are fetched with ``READ``.

        Raises
        ------
        FaultError
            If the program stops with a fault (its result is attached).
        """
        buf, addr, count = output or (0, 0, 0)
        header = nbytes(RunReply())
        first = min(count, (self.frame - header) // 2)
        reply = self.command(Command.RUN, encode(RunArgs(), {"entry": entry, "buf": _buf(buf), "addr": addr,
                                                             "count": first}))
        view = decode(RunReply(), reply)
        words = self._reply_words(Command.RUN, reply[header:], first).astype(np.int64)
        if count > first:
            words = np.concatenate([words, self.read(buf, addr + first, count - first)])
        result = RunResult(Status(view.status), int(view.pc), int(view.cycles), words)
        self.stats.cycles += result.cycles
        if result.status != Status.OK:
            raise FaultError(entry, result)
        return result

    def command(self, kind: Command | int, payload: bytes, size: int | None = None) -> bytes | None:
        """Send one command frame and return its reply payload, retrying as the module docstring says.

        With ``size`` (the larger payload of the frame and its reply) the command is one frame of a
        split one: ``None`` after a failed attempt that leaves ``size`` past :attr:`frame`, for the
        caller to send its words again in smaller frames.

        Raises
        ------
        LinkError
            If no valid reply came after ``retries`` resends.
        DeviceError
            If the device rejected the command.
        """
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        wire = encode_frame(kind, seq, payload)
        failures: Counter[str] = Counter()
        for attempt in range(self.retries + 1):
            self.stats.retries += bool(attempt)
            self.transport.write(wire)
            self.stats.bytes_sent += len(wire)
            result = self._await(kind, seq, len(payload))
            if isinstance(result, bytes):
                self.stats.commands += 1
                self._succeeded(first=not attempt)
                return result
            failures[result] += 1
            logger.debug("%s seq %d, attempt %d: %s", _name(kind), seq, attempt + 1, result)
            ceiling = self._limit if self.device is None else self.device.max_payload
            self._limit, self._clean = max(MIN_FRAME, min(self._limit, ceiling) // 2), 0
            if size is not None and size > self.frame:
                self.stats.resplit += 1
                return None
        summary = ", ".join(f"{what} ×{n}" for what, n in failures.items())
        raise LinkError(f"no valid reply to {_name(kind)} (seq {seq}) from {self.transport.name} after "
                        f"{self.retries + 1} attempts ({summary}); {_HINTS_LINK}")

    # -- helpers -------------------------------------------------------------------------------------

    def _await(self, kind: Command | int, seq: int, length: int) -> bytes | str:
        """The reply payload for ``(kind, seq)``, or why the frame must be sent again."""
        deadline = time.monotonic() + self.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            raw = self.transport.read_frame(remaining)
            if raw is None:
                break
            self.stats.bytes_received += len(raw) + 1
            try:
                frame = decode_frame(raw, max_payload=0xFFFF)
            except FrameError as error:
                return f"reply failed its check on the host ({error.code.name})"
            if frame.type == FrameType.ERROR:
                try:
                    code, error_seq = parse_error_payload(frame.payload)
                except ValueError:
                    return "malformed ERROR reply"
                if code in _LINK_DAMAGE:
                    return f"device saw a damaged frame ({code.name})"
                if code == ErrorCode.OVERSIZED and (self.device is None or length <= self.device.max_payload):
                    return "device saw a damaged frame (OVERSIZED)"
                if error_seq == seq:
                    self.stats.commands += 1
                    raise DeviceError(kind, code, seq)
            elif (frame.type, frame.seq) == (kind, seq):
                return frame.payload
            self.stats.discarded += 1
        return f"no reply within {self.timeout:g} s"

    @property
    def frame(self) -> int:
        """Payload bytes a frame may carry now."""
        if self.device is None:
            self.info()
        return min(self._limit, self.device.max_payload)

    def _succeeded(self, first: bool) -> None:
        """Count a command that got its reply; double the frame size after :data:`GROW_AFTER` in a row
        at their first attempt."""
        self._clean = self._clean + 1 if first else 0
        if self._clean >= GROW_AFTER and self.device is not None and self._limit < self.device.max_payload:
            self._limit, self._clean = self._limit * 2, 0

    def _split(self, kind: Command, count: int, unit: int, header: int, payload) -> list[tuple[int, bytes]]:
        """Send ``count`` items of ``unit`` bytes as ``kind`` commands, each as many items as a frame
        carries now (``header`` bytes of arguments before them), ``payload(start, n)`` the frame's.
        Returns each command's item count and reply payload (a ``READ`` carries its items back)."""
        replies, start = [], 0
        while start < count:
            n = min(count - start, max(1, (self.frame - header) // unit))
            reply = self.command(kind, payload(start, n), size=header + n * unit)
            if reply is not None:
                replies.append((n, reply))
                start += n
        return replies

    @staticmethod
    def _words(words) -> np.ndarray:
        array = np.asarray(words)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"words must be a 1-D sequence of integers, not {array.dtype} of shape "
                             f"{array.shape}: flatten and quantize first")
        array = array.astype(np.int64)
        if array.size and (array.min() < WORD_MIN or array.max() > WORD_MAX):
            raise ValueError(f"words must be signed 16-bit values in [{WORD_MIN}, {WORD_MAX}], found "
                             f"{array.min()} … {array.max()}: quantize first")
        return array

    @staticmethod
    def _reply_words(kind: Command, data: bytes, count: int) -> np.ndarray:
        if len(data) != 2 * count:
            raise LinkError(f"the {kind.name} reply holds {len(data)} bytes of words, expected {2 * count}: "
                            f"host and gateware disagree on the protocol, rebuild the bitstream")
        return np.frombuffer(data, dtype="<i2")
