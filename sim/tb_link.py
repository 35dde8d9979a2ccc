"""cocotb testbench of the link: the RTL against the golden model ``sim.link.LinkModel``, byte for byte.

The stimulus is wire bytes; the model predicts the verified frames the controller receives and the
error replies the link sends. The testbench plays an echo controller (each frame comes back with
``type ^ 0x80``, the same ``seq`` and payload), so the transmitter's COBS encoding and CRC are
checked on every payload too. The link's output is an interleaving of the predicted error replies
and echo replies, each frame whole and exact.

Parameters (from ``tests/test_link.py``): ``max_payload``, and ``divisor`` for the design with the
UART PHY in front (``UARTLink``: only ``through_uart`` runs there, the other tests on ``Link``). The
seed is cocotb's (``COCOTB_RANDOM_SEED``, printed at start-up), so a failing run replays exactly.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw.frame import CRC_BYTES, ErrorCode, Frame, cobs_encode, crc16, encode_frame
from sim.link import ErrorReply, LinkModel
from sim.runner import tb_params
from sim.streams import serial_receive, serial_send

P = tb_params()
MAX = P["max_payload"]
DIVISOR = P.get("divisor")
CLOCK_PS = 10_000
KINDS = ("random", "zeros", "run", "sparse")


class Scoreboard:
    """Compares what the RTL did with what the model predicts, naming the first difference."""

    def __init__(self, log):
        self.log, self.frames_checked, self.replies_checked = log, 0, 0

    def frames(self, got: list[Frame], want: list[Frame]) -> None:
        for n, (g, w) in enumerate(zip(got, want, strict=False)):
            if g != w:
                raise AssertionError(f"frame {n}: got type {g.type} seq {g.seq} {len(g.payload)} "
                                     f"bytes, expected type {w.type} seq {w.seq} {len(w.payload)} "
                                     f"bytes (payload equal: {g.payload == w.payload})")
        if len(got) != len(want):
            raise AssertionError(f"controller got {len(got)} frames, expected {len(want)}")
        self.frames_checked += len(got)

    def wire(self, out: bytes, errors: list[bytes], replies: list[bytes]) -> None:
        """``out`` must be the frames of ``errors`` and ``replies`` interleaved, each in order."""
        errors, replies = list(errors), list(replies)
        frames = [frame + b"\x00" for frame in out.split(b"\x00")[:-1]]
        if out and not out.endswith(b"\x00"):
            raise AssertionError(f"output ends inside a frame: {out[-16:].hex()}")
        for n, frame in enumerate(frames):
            if errors and frame == errors[0]:
                errors.pop(0)
            elif replies and frame == replies[0]:
                replies.pop(0)
            else:
                raise AssertionError(f"output frame {n} {frame[:24].hex()}… is neither the next error "
                                     f"reply nor the next echo reply")
        if errors or replies:
            raise AssertionError(f"{len(errors)} error replies and {len(replies)} replies missing")
        self.replies_checked += len(frames)


def on_wire(frame: Frame) -> bytes:
    return encode_frame(frame.type, frame.seq, frame.payload)


def echo(frame: Frame) -> tuple[int, int, bytes]:
    return frame.type ^ 0x80, frame.seq, frame.payload


def predict(wire: bytes) -> tuple[list[Frame], list[bytes], list[bytes]]:
    """The model's frames, error replies and echo replies for ``wire``."""
    events = LinkModel(MAX).feed(wire)
    frames = [e for e in events if isinstance(e, Frame)]
    errors = [e.wire for e in events if isinstance(e, ErrorReply)]
    return frames, errors, [LinkModel.reply(*echo(f)) for f in frames]


def payload(rng: random.Random, n: int, kind: str) -> bytes:
    if kind == "zeros":
        return bytes(n)
    if kind == "run":
        return bytes(1 + k % 255 for k in range(n))
    if kind == "sparse":
        return bytes(0 if rng.random() < 0.3 else rng.randrange(1, 256) for _ in range(n))
    return bytes(rng.randrange(256) for _ in range(n))


def good_frame(rng: random.Random, length: int | None = None) -> Frame:
    if length is None:
        length = rng.choice([0, 1, 2, rng.randrange(MAX + 1), rng.randrange(MAX + 1), 253, 254, 255,
                             MAX])
    return Frame(rng.randrange(0x7F), rng.randrange(256), payload(rng, length, rng.choice(KINDS)))


def raw_frame(type_: int, seq: int, length: int, data: bytes) -> bytes:
    """Wire bytes with a good CRC but any length field."""
    body = bytes([type_, seq]) + length.to_bytes(2, "little") + data
    return cobs_encode(body + crc16(body).to_bytes(CRC_BYTES, "little")) + b"\x00"


def bad_frame(rng: random.Random, case: str) -> bytes:
    """Wire bytes of one bad case, ending with a delimiter."""
    good = encode_frame(*echo(good_frame(rng)))
    if case == "flip":
        wire = bytearray(good)
        wire[rng.randrange(len(wire) - 1)] ^= 1 << rng.randrange(8)
        return bytes(wire)
    if case == "truncate":
        return good[:rng.randrange(1, len(good) - 1)] + b"\x00"
    if case == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + b"\x00"
    if case == "short":
        return cobs_encode(bytes(rng.randrange(256) for _ in range(rng.randrange(6)))) + b"\x00"
    if case == "empty":
        return b"\x00\x00"
    if case == "oversized_length":
        return raw_frame(1, rng.randrange(256), rng.randrange(MAX + 1, 0x10000), payload(rng, 5, "random"))
    if case == "oversized_data":
        return encode_frame(1, rng.randrange(256), payload(rng, MAX + rng.randrange(1, 300), "sparse"))
    if case == "mismatch":
        n = rng.randrange(MAX)
        wrong = n + rng.choice([-1, 1]) if n else 1
        return raw_frame(1, rng.randrange(256), wrong, payload(rng, n, "random"))
    raise ValueError(f"unknown bad case {case!r}")


BAD_CASES = ("flip", "truncate", "garbage", "short", "empty", "oversized_length", "oversized_data",
             "mismatch")


async def start(dut) -> None:
    Clock(dut.clk, CLOCK_PS, unit="ps").start()
    for name in ("i__valid", "o__ready", "rx", "rx_hdr__ready", "rx_data__ready", "tx_hdr__valid",
                 "tx_data__valid"):
        if (name == "rx") == (DIVISOR is not None) or name.startswith(("rx_", "tx_")):
            getattr(dut, name).value = int(name == "rx")
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def exchange(dut, wire: bytes, rng: random.Random, n_frames: int, n_out: int, *,
                   p_valid: float = 1.0, p_ready: float = 1.0, timeout: int = 20_000,
                   settle: int = 600) -> tuple[list[Frame], bytes]:
    """Send ``wire`` and play the echo controller until ``n_frames`` frames arrived and ``n_out``
    bytes left; returns both. Inputs offered with probability ``p_valid`` are held until taken;
    each ready is raised with probability ``p_ready``. Fails if nothing moves for ``timeout``
    cycles (plus the time to send ``wire`` over the UART), or if anything more comes out within
    ``settle`` cycles."""
    serial = DIVISOR is not None
    out, frames, pending = bytearray(), [], []
    header, data, reply = None, bytearray(), None           # frame coming in, reply going out
    sent, offer_in, offer_hdr, offer_data, idle, quiet, seen = 0, False, False, False, 0, 0, 0
    if serial:
        bit_ps = DIVISOR * CLOCK_PS
        tasks = [cocotb.start_soon(serial_send(dut.rx, wire, bit_ps)),
                 cocotb.start_soon(serial_receive(dut.tx, bit_ps, out))]
        sent, timeout = len(wire), timeout + 10 * DIVISOR * len(wire)
    while quiet < settle:
        await RisingEdge(dut.clk)
        if not serial:
            offer_in = sent < len(wire) and (offer_in or rng.random() < p_valid)
            dut.i__valid.value = int(offer_in)
            dut.i__payload.value = wire[sent] if offer_in else 0
            dut.o__ready.value = int(rng.random() < p_ready)
        dut.rx_hdr__ready.value = int(rng.random() < p_ready)
        dut.rx_data__ready.value = int(rng.random() < p_ready)
        if reply is None and pending:
            reply, position = pending.pop(0), 0
        offer_hdr = reply is not None and position == 0 and (offer_hdr or rng.random() < p_valid)
        offer_data = reply is not None and position > 0 and (offer_data or rng.random() < p_valid)
        dut.tx_hdr__valid.value = int(offer_hdr)
        dut.tx_data__valid.value = int(offer_data)
        if offer_hdr:
            dut.tx_hdr__payload.value = reply[0] | reply[1] << 8 | len(reply[2]) << 16
        if offer_data:
            dut.tx_data__payload.value = reply[2][position - 1]
        await ReadOnly()
        moved = False
        if offer_in and dut.i__ready.value:
            sent, offer_in, moved = sent + 1, False, True
        if not serial and dut.o__valid.value and dut.o__ready.value:
            out.append(int(dut.o__payload.value))
        moved = moved or len(out) != seen
        seen = len(out)
        if dut.rx_hdr__valid.value and dut.rx_hdr__ready.value:
            word = int(dut.rx_hdr__payload.value)
            header, moved = (word & 0xFF, word >> 8 & 0xFF, word >> 16), True
            data.clear()
        if dut.rx_data__valid.value and dut.rx_data__ready.value:
            word = int(dut.rx_data__payload.value)
            data.append(word & 0xFF)
            if bool(word >> 8) != (len(data) == header[2]):
                raise AssertionError(f"rx_data.last is {word >> 8} on byte {len(data)} of {header[2]}")
            moved = True
        if header is not None and len(data) == header[2]:
            frames.append(Frame(header[0], header[1], bytes(data)))
            pending.append(echo(frames[-1]))
            header = None
        if offer_hdr and dut.tx_hdr__ready.value:
            position, offer_hdr, moved = 1, False, True
        if offer_data and dut.tx_data__ready.value:
            position, offer_data, moved = position + 1, False, True
        if reply is not None and position > len(reply[2]):
            reply = None
        idle = 0 if moved else idle + 1
        if idle > timeout:
            raise AssertionError(f"no transfer for {timeout} cycles: sent {sent}/{len(wire)} bytes, "
                                 f"got {len(frames)}/{n_frames} frames and {len(out)}/{n_out} bytes")
        done = sent == len(wire) and len(frames) >= n_frames and len(out) >= n_out and reply is None
        quiet = quiet + 1 if done else 0
    if serial:
        for task in tasks:
            task.cancel()
    if len(frames) != n_frames or len(out) != n_out:
        raise AssertionError(f"got {len(frames)} frames and {len(out)} bytes, expected {n_frames} "
                             f"and {n_out}")
    return frames, bytes(out)


async def check_exchange(dut, wire: bytes, rng: random.Random, board: Scoreboard, **kwargs) -> list[Frame]:
    frames, errors, replies = predict(wire)
    got, out = await exchange(dut, wire, rng, len(frames), sum(map(len, errors + replies)), **kwargs)
    board.frames(got, frames)
    board.wire(out, errors, replies)
    return frames


def good_wire(rng: random.Random, count: int) -> tuple[bytes, list[Frame]]:
    frames = [good_frame(rng) for _ in range(count)]
    frames += [Frame(5, 6, payload(rng, n, kind)) for n in (0, 254, 255, MAX) for kind in KINDS]
    rng.shuffle(frames)
    return b"".join(map(on_wire, frames)), frames


@cocotb.test(skip=DIVISOR is not None)
async def good_frames(dut):
    """Good frames of random lengths 0..max_payload, full of zeros, of 254-byte runs, back to back."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED)
    board = Scoreboard(dut._log)
    wire, sent = good_wire(rng, 24)
    assert await check_exchange(dut, wire, rng, board) == sent
    dut._log.info("good_frames: %d frames, %d replies checked", board.frames_checked, board.replies_checked)


@cocotb.test(skip=DIVISOR is not None)
async def stalls(dut):
    """Good frames with random gaps on every input and random back-pressure on every output."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    board = Scoreboard(dut._log)
    for p_valid, p_ready in ((0.5, 0.5), (0.9, 0.1), (0.2, 0.9)):
        wire, sent = good_wire(rng, 6)
        assert await check_exchange(dut, wire, rng, board, p_valid=p_valid, p_ready=p_ready) == sent


@cocotb.test(skip=DIVISOR is not None)
async def bad_frames(dut):
    """Every bad case, each followed by a good frame that gets through; stalls on both sides."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    board = Scoreboard(dut._log)
    cases = [case for case in BAD_CASES for _ in range(6)]
    rng.shuffle(cases)
    wire, goods = b"", []
    for case in cases:
        goods.append(good_frame(rng))
        wire += bad_frame(rng, case) + on_wire(goods[-1])
    frames, errors, _ = predict(wire)
    remaining = iter(frames)
    assert all(good in remaining for good in goods), "the model lost a good frame after a bad one"
    codes = {LinkModel(MAX).feed(e)[0].payload[0] for e in errors}
    missing = set(ErrorCode) - {ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_ARGUMENT} - codes  # the controller's
    assert not missing, f"no stimulus raised {sorted(c.name for c in missing)}"
    await check_exchange(dut, wire, rng, board, p_valid=0.8, p_ready=0.7)
    dut._log.info("bad_frames: %d frames, %d output frames checked", board.frames_checked,
                  board.replies_checked)


@cocotb.test(skip=DIVISOR is not None)
async def scoreboard_bites(dut):
    """A flipped bit in an observed frame, or in an observed reply, is caught."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 3)
    frame = good_frame(rng, 20)
    wire = on_wire(frame) + bad_frame(rng, "short")
    frames, errors, replies = predict(wire)
    got, out = await exchange(dut, wire, rng, 1, len(errors[0]) + len(replies[0]))
    Scoreboard(dut._log).frames(got, frames)
    Scoreboard(dut._log).wire(out, errors, replies)
    payload_bad = [Frame(got[0].type, got[0].seq, bytes([got[0].payload[0] ^ 4]) + got[0].payload[1:])]
    out_bad = bytearray(out)
    out_bad[rng.randrange(len(out) - 1)] ^= 1 << rng.randrange(8)
    for what, check in (("frame", lambda b: b.frames(payload_bad, frames)),
                        ("output", lambda b: b.wire(bytes(out_bad), errors, replies))):
        try:
            check(Scoreboard(dut._log))
        except AssertionError as error:
            dut._log.info("flipped bit in the %s caught as expected: %s", what, error)
        else:
            raise AssertionError(f"the scoreboard missed a flipped bit in the {what}")


@cocotb.test(skip=DIVISOR is None)
async def through_uart(dut):
    """Good and bad frames through the UART PHY on both sides, at the serial line; like the host,
    the testbench waits for the reply to each frame before sending the next."""
    await start(dut)
    rng = random.Random(cocotb.RANDOM_SEED + 4)
    board = Scoreboard(dut._log)
    for wire in (encode_frame(1, 2, payload(rng, 40, "sparse")), bad_frame(rng, "flip"),
                 encode_frame(3, 4, b""), b"\x5a" * 3 + bad_frame(rng, "truncate"),
                 encode_frame(5, 6, payload(rng, 60, "zeros"))):
        await check_exchange(dut, wire, rng, board, p_valid=0.5, p_ready=0.5,
                             timeout=800 * DIVISOR, settle=15 * DIVISOR)
    assert board.frames_checked == 3 and board.replies_checked >= 5, "a frame or reply went missing"
