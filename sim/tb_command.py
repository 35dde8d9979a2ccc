"""cocotb testbench of the device at its wire byte streams: :class:`hw.soc.SoC` against ``sim.model.Device``.

The stimulus is wire bytes of host commands (good, bad and retransmitted) and link garbage; the
golden model predicts the reply bytes, and the scoreboard requires the RTL's replies to be identical
byte for byte except ``RunReply.cycles``, which the functional model reports as 0. Cycles are checked
instead to be non-zero and, for a retransmitted ``RUN``, equal to the original's.

Parameters (from ``tests/test_command.py``): ``config``, the :class:`hw.config.DeviceConfig` fields.
The seed is cocotb's (``COCOTB_RANDOM_SEED``, printed at start-up), so a failing run replays exactly.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from host.compiler import Network, compile_network
from hw.config import DeviceConfig
from hw.frame import ErrorCode, FrameType, decode_frame, encode_error, encode_frame
from hw.isa import (
    Buf,
    Command,
    Opcode,
    ProgramArgs,
    ReadArgs,
    Rounding,
    RunArgs,
    RunReply,
    VecOp,
    WriteArgs,
    decode,
    encode,
    instruction,
    nbytes,
)
from hw.numerics import Act
from sim.model import Device
from sim.programs import clear_counters, random_program
from sim.runner import tb_params
from sim.streams import run_stream

CONFIG = DeviceConfig(**tb_params().get("config", {}))
WORDS = CONFIG.banks * CONFIG.depth
SIZES = {0: WORDS, 1: WORDS, 2: WORDS} | ({3: CONFIG.data_depth} if CONFIG.data_depth else {})
"""Words of every memory the host reaches, by buffer number (3: the data memory, if any)."""
RUN_HEADER = nbytes(RunReply())
CLOCK_NS = 10


# -- commands -------------------------------------------------------------------------------------

def write(seq: int, buf: int, addr: int, words: list[int]) -> bytes:
    data = b"".join((w & 0xFFFF).to_bytes(2, "little") for w in words)
    return encode_frame(Command.WRITE, seq, encode(WriteArgs(), {"buf": buf, "addr": addr}) + data)


def read(seq: int, buf: int, addr: int, count: int) -> bytes:
    return encode_frame(Command.READ, seq, encode(ReadArgs(), {"buf": buf, "addr": addr, "count": count}))


def program(seq: int, addr: int, words: list[int]) -> bytes:
    data = b"".join(w.to_bytes(8, "little") for w in words)
    return encode_frame(Command.PROGRAM, seq, encode(ProgramArgs(), {"addr": addr}) + data)


def run(seq: int, entry: int, buf: int = 0, addr: int = 0, count: int = 0) -> bytes:
    return encode_frame(Command.RUN, seq, encode(RunArgs(), {"entry": entry, "buf": buf, "addr": addr,
                                                             "count": count}))


def info(seq: int) -> bytes:
    return encode_frame(Command.INFO, seq, b"")


END = instruction(Opcode.END)
NOP = instruction(Opcode.NOP)
BAD_OPCODE = 14
EPILOGUE = {"op": VecOp.ADD, "act": Act.IDENTITY, "deriv": 0, "round": Rounding.NEAREST_EVEN, "shift": 0,
            "b_shift": 0}
COPY = [  # A[0:4] = W[0:4] (flat words 0..3 of a 1×4 matrix, one row)
    instruction(Opcode.TENSOR, tensor={"t": 0, "buf": Buf.W, "base": 0, "rows": 1, "cols": 4, "pitch": 4}),
    instruction(Opcode.TENSOR, tensor={"t": 1, "buf": Buf.A, "base": 0, "rows": 1, "cols": 4, "pitch": 4}),
    instruction(Opcode.VEC, vec={"a": 0, "b": 0, "use_b": 0, "out": 1, "epi": EPILOGUE}),
    END,
]


def random_words(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(-0x8000, 0x8000) for _ in range(n)]


# -- the scoreboard -------------------------------------------------------------------------------

def split(wire: bytes) -> list[bytes]:
    """The frames of ``wire``, each with its delimiter."""
    if wire and not wire.endswith(b"\x00"):
        raise AssertionError(f"output ends inside a frame: …{wire[-16:].hex()}")
    return [frame + b"\x00" for frame in wire.split(b"\x00")[:-1]]


def run_cycles(frame: bytes) -> tuple[bytes, int | None]:
    """``frame`` with the cycles of a ``RUN`` reply zeroed, and those cycles (``None`` if not one)."""
    decoded = decode_frame(frame[:-1], 0xFFFF)
    if decoded.type != Command.RUN or len(decoded.payload) < RUN_HEADER:
        return frame, None
    reply = decode(RunReply(), decoded.payload)
    header = encode(RunReply(), {"status": reply.status, "pc": reply.pc, "cycles": 0})
    return encode_frame(decoded.type, decoded.seq, header + decoded.payload[RUN_HEADER:]), reply.cycles


class Scoreboard:
    """Compares the RTL's reply bytes with the model's, frame by frame, ``RunReply.cycles`` aside."""

    def __init__(self):
        self.frames = 0
        self.runs: dict[int, int] = {}         # cycles of the last RUN reply per sequence number

    def check(self, got: bytes, want: bytes, what: str) -> list[int]:
        """Returns the cycles of the RUN replies in ``got``."""
        got_frames, want_frames = split(got), split(want)
        if len(got_frames) != len(want_frames):
            raise AssertionError(f"{what}: {len(got_frames)} reply frames, expected {len(want_frames)}")
        cycles = []
        for n, (g, w) in enumerate(zip(got_frames, want_frames, strict=True)):
            g, c = run_cycles(g)
            if g != w:
                raise AssertionError(f"{what}: reply {n} is {describe(g)}, expected {describe(w)}")
            if c is not None:
                if c == 0:
                    raise AssertionError(f"{what}: RUN reply {n} reports 0 cycles")
                cycles.append(c)
        self.frames += len(got_frames)
        return cycles


def describe(frame: bytes) -> str:
    decoded = decode_frame(frame[:-1], 0xFFFF)
    return f"type {decoded.type:#04x} seq {decoded.seq} payload {decoded.payload[:24].hex()}"


class Bench:
    """The device under test and its model, fed the same bytes."""

    def __init__(self, dut, rng: random.Random, p_valid: float = 1.0, p_ready: float = 1.0):
        self.dut, self.rng, self.p_valid, self.p_ready = dut, rng, p_valid, p_ready
        self.model = Device(CONFIG)
        self.scoreboard = Scoreboard()
        self.got = b""

    async def send(self, wire: bytes, what: str = "exchange", *, mutate: bool = False) -> list[int]:
        """Send ``wire``, collect the replies the model predicts, compare; returns RUN cycles."""
        want = self.model.feed(wire)
        got, _ = await run_stream(self.dut, list(wire), len(want), rng=self.rng, p_valid=self.p_valid,
                                  p_ready=self.p_ready, settle=200, timeout=100_000)
        if mutate:
            frames = split(want)
            last = decode_frame(frames[-1][:-1], 0xFFFF)
            payload = bytearray(last.payload)
            payload[self.rng.randrange(len(payload))] ^= 1 << self.rng.randrange(8)
            want = b"".join(frames[:-1]) + encode_frame(last.type, last.seq, bytes(payload))
        self.got = bytes(got)
        return self.scoreboard.check(self.got, want, what)


    async def clear(self) -> None:
        """Clear the saturation counters, then zero the instruction memory and the buffers: a reset
        leaves them all as they were.

        Every frame has its own sequence number (0x80 on), so none is taken for a retransmission.
        """
        per_frame = (CONFIG.max_payload - 8) // 8
        clearing = clear_counters()
        frames = [(program, (addr, clearing[addr:addr + per_frame]))
                  for addr in range(0, len(clearing), per_frame)]
        frames += [(run, (0,))]
        frames += [(program, (addr, [NOP] * min(per_frame, CONFIG.imem - addr)))
                   for addr in range(0, CONFIG.imem, per_frame)]
        per_frame = (CONFIG.max_payload - 5) // 2
        frames += [(write, (buf, addr, [0] * min(per_frame, size - addr)))
                   for buf, size in SIZES.items() for addr in range(0, size, per_frame)]
        wire = b"".join(make(0x80 + n, *args) for n, (make, args) in enumerate(frames))
        await self.send(wire, "clear")


async def start(dut) -> random.Random:
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    return random.Random(random.getrandbits(32))


# -- tests ----------------------------------------------------------------------------------------

@cocotb.test()
async def each_command(dut):
    """INFO, WRITE/READ round trips, PROGRAM and RUN of short programs."""
    rng = await start(dut)
    bench = Bench(dut, rng)
    await bench.clear()
    await bench.send(info(1), "INFO")
    seq = 2
    for buf, size in SIZES.items():
        count = rng.randrange(1, min(40, CONFIG.max_payload // 2))
        addr = rng.randrange(size - count)
        await bench.send(write(seq, buf, addr, random_words(rng, count)), "WRITE")
        await bench.send(read(seq + 1, buf, addr - 1 if addr else 0, count + 1), "READ")
        seq += 2
    await bench.send(read(seq, 0, WORDS - 1, 1) + read(seq + 1, 2, 0, 0), "READ at the edges")
    await bench.send(program(seq + 2, 0, [NOP, NOP, END]) + program(seq + 3, 4, [NOP, END]), "PROGRAM")
    seq += 4
    for entry, count in ((0, 3), (3, 0), (4, 5)):
        await bench.send(run(seq, entry, 1, rng.randrange(WORDS - count), count), f"RUN at {entry}")
        seq += 1
    await bench.send(program(seq, 6, [BAD_OPCODE]) + run(seq + 1, 6), "RUN to a bad opcode")
    tail = CONFIG.imem - 2
    await bench.send(program(seq + 2, tail, [NOP, NOP]) + run(seq + 3, tail), "RUN off the end")
    await bench.send(write(seq + 4, 0, WORDS - 3, [1, 2, 3]) + write(seq + 5, 1, WORDS, []),
                     "WRITE at the end")


@cocotb.test()
async def each_error(dut):
    """Every bad argument and an unknown type: an ERROR reply, and nothing executed."""
    rng = await start(dut)
    bench = Bench(dut, rng)
    await bench.clear()
    await bench.send(write(1, 0, 0, list(range(16))) + program(2, 0, [END]), "setup")
    max_words = CONFIG.max_payload // 2
    bad = {
        "unknown type": encode_frame(0x06, 3, b"\x01\x02"),
        "unknown type 0": encode_frame(0x00, 3, b""),
        "ERROR type": encode_frame(FrameType.ERROR, 3, b""),
        **({"WRITE past the data memory": write(3, 3, CONFIG.data_depth - 1, [7, 7])} if CONFIG.data_depth
           else {"WRITE to buffer 3": write(3, 3, 0, [7])}),
        "WRITE past the buffer": write(3, 0, WORDS - 1, [7, 7]),
        "WRITE at a huge address": write(3, 1, 0xFFFF_FFFF, [7]),
        "WRITE of an odd byte": encode_frame(Command.WRITE, 3, encode(WriteArgs(), {"buf": 0, "addr": 0})
                                             + b"\x07\x00\x07"),
        "WRITE shorter than its args": encode_frame(Command.WRITE, 3, b"\x00\x00"),
        **({"READ past the data memory": read(3, 3, CONFIG.data_depth - 2, 3)} if CONFIG.data_depth
           else {"READ of buffer 3": read(3, 3, 0, 1)}),
        "READ past the buffer": read(3, 2, WORDS - 2, 3),
        "READ larger than max_payload": read(3, 0, 0, max_words + 1),
        "READ shorter than its args": encode_frame(Command.READ, 3, b"\x00" * 6),
        "READ longer than its args": encode_frame(Command.READ, 3, b"\x00" * 8),
        "PROGRAM of half an instruction": encode_frame(Command.PROGRAM, 3, b"\x00\x00" + bytes(4)),
        "PROGRAM past imem": program(3, CONFIG.imem - 1, [NOP, NOP]),
        "PROGRAM shorter than its args": encode_frame(Command.PROGRAM, 3, b"\x00"),
        "RUN from past imem": run(3, CONFIG.imem),
        **({"RUN reading past the data memory": run(3, 0, 3, CONFIG.data_depth, 1)} if CONFIG.data_depth
           else {"RUN reading buffer 3": run(3, 0, 3, 0, 1)}),
        "RUN reading past the buffer": run(3, 0, 0, WORDS, 1),
        "RUN reply larger than max_payload": run(3, 0, 0, 0, (CONFIG.max_payload - RUN_HEADER) // 2 + 1),
        "RUN shorter than its args": encode_frame(Command.RUN, 3, b"\x00" * 8),
        "INFO with a payload": encode_frame(Command.INFO, 3, b"\x00"),
    }
    for what, wire in bad.items():
        unknown = what.startswith(("unknown", "ERROR"))
        await bench.send(wire, what)
        code = ErrorCode.UNKNOWN_TYPE if unknown else ErrorCode.BAD_ARGUMENT
        assert bench.got == encode_error(code, 3), what
    await bench.send(read(4, 0, 0, 16) + program(5, 0, [NOP]) + run(6, 0), "nothing executed")


@cocotb.test()
async def duplicates(dut):
    """A retransmission is answered again and not executed again; rejected frames are not remembered."""
    rng = await start(dut)
    bench = Bench(dut, rng)
    await bench.clear()
    await bench.send(write(7, 0, 10, [1, 2, 3]) + write(7, 0, 10, [4, 5, 6]), "WRITE twice")
    await bench.send(read(8, 0, 10, 3), "the first WRITE only")
    await bench.send(read(8, 0, 10, 3) + info(8) + info(8) + read(9, 0, 9, 2), "READ and INFO again")
    await bench.send(program(10, 0, [END]) + program(10, 0, [NOP, NOP, NOP, NOP]), "PROGRAM twice")
    await bench.send(program(11, 0, COPY) + write(12, 0, 0, [1, 2, 3, 4]), "the copy program")
    first = await bench.send(run(13, 0, 1, 0, 4), "RUN")
    repeat = await bench.send(run(13, 0, 1, 0, 4), "RUN retransmitted")
    assert repeat == first, f"a retransmitted RUN reports {repeat} cycles, the original {first}"
    await bench.send(write(14, 0, 0, [9, 8, 7, 6]) + run(13, 0, 1, 0, 4), "the same seq, not last: executed")
    await bench.send(read(15, 1, 0, 4), "copied again")
    await bench.send(write(16, 0, 0, [1]) + write(16, 3, 0, [2]) + write(16, 0, 0, [3]),
                     "bad frames forgotten")
    await bench.send(encode_frame(0x42, 17, b"") + encode_frame(0x42, 17, b""), "unknown types forgotten")
    await bench.send(read(18, 0, 0, 1), "read back")


@cocotb.test()
async def garbage(dut):
    """Link errors, random bytes and random commands, with random stalls on both streams."""
    rng = await start(dut)
    bench = Bench(dut, rng, p_valid=0.7, p_ready=0.6)
    await bench.clear()
    seq = 0
    for _ in range(60):
        seq = (seq + rng.choice([0, 1, 1, 1])) & 0xFF
        kind = rng.randrange(9)
        count = rng.randrange(0, 12)
        buf, addr = rng.choice([0, 1, 2, 2, 3]), rng.choice([0, rng.randrange(WORDS), WORDS - count])
        if kind == 0:
            wire = write(seq, buf, addr, random_words(rng, count))
        elif kind == 1:
            wire = read(seq, buf, addr, count)
        elif kind == 2:
            instructions = [rng.choice([NOP, END]) for _ in range(count % 4)]
            wire = program(seq, rng.randrange(CONFIG.imem), instructions)
        elif kind == 3:
            wire = run(seq, rng.randrange(CONFIG.imem), buf, addr, count)
        elif kind == 4:
            wire = info(seq)
        elif kind == 5:
            wire = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))) + b"\x00"
        elif kind == 6:
            wire = bytearray(write(seq, 0, 0, random_words(rng, 4)))
            wire[rng.randrange(len(wire) - 1)] ^= 1 << rng.randrange(8)
            wire = bytes(wire)
        elif kind == 7:
            wire = encode_frame(rng.randrange(6, 0xFF), seq, bytes(rng.randrange(256) for _ in range(count)))
        else:
            wire = encode_frame(rng.randrange(1, 6), seq, bytes(rng.randrange(256) for _ in range(count)))
        await bench.send(wire, f"random case {kind}")
    assert bench.scoreboard.frames >= 60


@cocotb.test()
async def scoreboard_bites(dut):
    """A one-bit error in the prediction must be caught."""
    rng = await start(dut)
    bench = Bench(dut, rng)
    await bench.clear()
    try:
        await bench.send(write(1, 0, 0, [5]) + read(2, 0, 0, 1), "mutated", mutate=True)
    except AssertionError:
        return
    raise AssertionError("the scoreboard missed a flipped bit")


class Session:
    """Commands with fresh sequence numbers, each exchange scored by the bench."""

    def __init__(self, bench: Bench, seq: int = 0):
        self.bench, self.seq = bench, seq

    def next(self) -> int:
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    async def program(self, words: list[int], addr: int = 0) -> None:
        per_frame = (CONFIG.max_payload - 2) // 8
        for start in range(0, len(words), per_frame):
            await self.bench.send(program(self.next(), addr + start, words[start:start + per_frame]),
                                  "PROGRAM")

    async def write(self, buf: int, addr: int, words) -> None:
        per_frame = (CONFIG.max_payload - 5) // 2
        words = [int(w) for w in words]
        for start in range(0, len(words), per_frame):
            await self.bench.send(write(self.next(), buf, addr + start, words[start:start + per_frame]),
                                  "WRITE")

    async def run(self, entry: int, what: str) -> None:
        await self.bench.send(run(self.next(), entry), what)

    async def dump(self, what: str) -> None:
        """READ every word of every buffer: the scoreboard compares them with the model's."""
        per_frame = CONFIG.max_payload // 2
        for buf, size in SIZES.items():
            for addr in range(0, size, per_frame):
                await self.bench.send(read(self.next(), buf, addr, min(per_frame, size - addr)), what)


@cocotb.test()
async def programs_over_the_link(dut):
    """Random programs loaded, run and read back through the link: replies identical to the model's."""
    rng = await start(dut)
    bench = Bench(dut, rng, p_valid=0.8, p_ready=0.8)
    await bench.clear()
    session = Session(bench)
    nrng = np.random.default_rng(rng.getrandbits(32))
    await session.write(2, 0, nrng.integers(-(1 << 15), 1 << 15, WORDS))
    for n in range(tb_params().get("programs", 8)):
        await session.program(random_program(nrng, CONFIG, ops=2, max_dim=6))
        await session.run(0, f"random program {n}")
        await session.dump(f"buffers after random program {n}")


@cocotb.test()
async def training_step_over_the_link(dut):
    """A compiled 2-layer MLP: weights, a minibatch and one training step, all through the link."""
    rng = await start(dut)
    bench = Bench(dut, rng)
    await bench.clear()
    session = Session(bench)
    nrng = np.random.default_rng(rng.getrandbits(32))
    net = Network((6, 4, 3), hidden=Act.TANH, batch=3, learning_rate=0.2)
    compiled = compile_network(net, CONFIG)
    await session.program(list(compiled.words))
    for buf, addr, words in compiled.load_writes(compiled.initial_weights(nrng)):
        await session.write(buf, addr, words)
    await session.run(compiled.setup, "setup")
    for step in range(2):
        x = nrng.normal(0, 1, (net.batch, net.sizes[0]))
        for buf, addr, words in compiled.batch_writes(x, nrng.integers(0, 3, net.batch)):
            await session.write(buf, addr, words)
        buf, addr, count = compiled.output
        await bench.send(run(session.next(), compiled.train, buf, addr, count), f"training step {step}")
    await session.dump("buffers after training")
