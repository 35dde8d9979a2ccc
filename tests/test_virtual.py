"""The virtual board over TCP with pyserial, against the golden model (``sim/virtual.py``)."""

import time

import pytest
import serial

from hw.config import DeviceConfig
from hw.frame import decode_frame, encode_frame
from hw.isa import Buf, Command, Opcode, Rounding, RunReply, Status, VecOp, decode, instruction
from hw.numerics import Act
from sim.model import Device
from sim.tb_command import info, program, read, run, write
from sim.virtual import VirtualBoard

CONFIG = DeviceConfig(rows=2, cols=2, depth=256, imem=96, k_max=64, max_rows=4, max_payload=256,
                      clk_hz=12_000_000, baud=3_000_000)   # as tests/test_driver.py and test_train.py
EPILOGUE = {"op": VecOp.ADD, "act": Act.IDENTITY, "deriv": 0, "round": Rounding.NEAREST_EVEN, "shift": 4,
            "b_shift": 0}
GEMMS = [  # out (G, 8×8) = W (8×16) · A (16×8), many times over: a few thousand cycles per RUN
    instruction(Opcode.TENSOR, tensor={"t": 0, "buf": Buf.W, "base": 0, "rows": 8, "cols": 16, "pitch": 8}),
    instruction(Opcode.TENSOR, tensor={"t": 1, "buf": Buf.A, "base": 0, "rows": 16, "cols": 8, "pitch": 4}),
    instruction(Opcode.TENSOR, tensor={"t": 2, "buf": Buf.G, "base": 0, "rows": 8, "cols": 8, "pitch": 4}),
    *[instruction(Opcode.GEMM, gemm={"a": 0, "ta": 0, "b": 1, "tb": 0, "c": 0, "use_c": 0, "out": 2,
                                     "epi": EPILOGUE})] * 24,
    instruction(Opcode.END),
]


def exchange(port: serial.Serial, model: Device, wire: bytes) -> tuple[bytes, bytes]:
    """Send ``wire``; read as many reply frames as the model gives; both replies, RUN cycles zeroed."""
    want = model.feed(wire)
    port.write(wire)
    got = b"".join(port.read_until(b"\x00") for _ in range(want.count(0)))
    return zero_cycles(got), want


def zero_cycles(wire: bytes) -> bytes:
    frames = [f for f in wire.split(b"\x00") if f]
    out = b""
    for frame in frames:
        decoded = decode_frame(frame)
        payload = decoded.payload
        if decoded.type == Command.RUN:
            assert decode(RunReply(), payload).cycles > 0
            payload = payload[:3] + bytes(4) + payload[7:]
        out += encode_frame(decoded.type, decoded.seq, payload)
    return out


@pytest.mark.sim
def test_virtual_board():
    """INFO, WRITE/READ, a retransmitted WRITE, 20 RUNs, a client leaving mid-frame: as modelled."""
    model = Device(CONFIG)
    board = VirtualBoard(CONFIG, timeout=300)
    with board as url:
        with serial.serial_for_url(url, timeout=20) as port:
            got, want = exchange(port, model, info(1))
            assert got == want
            words = [(-1) ** n * 97 * n for n in range(60)]
            got, want = exchange(port, model, write(2, 0, 3, words) + read(3, 0, 0, 63))
            assert got == want
            got, want = exchange(port, model, write(4, 1, 0, [1] * 40) + write(4, 1, 0, [2] * 40)
                                 + read(5, 1, 0, 40))
            assert got == want
            got, want = exchange(port, model, program(6, 0, GEMMS[:14]) + program(7, 14, GEMMS[14:]))
            assert got == want == model.link.reply(Command.PROGRAM, 6, b"") + model.link.reply(
                Command.PROGRAM, 7, b"")
            for seq in range(8, 28):
                got, want = exchange(port, model, run(seq, 0, Buf.G, 0, 16))
                assert got == want
                assert decode(RunReply(), decode_frame(want[:-1]).payload).status == Status.OK
        with serial.serial_for_url(url, timeout=20) as port:   # a client leaving inside a frame
            port.write(write(28, 0, 0, [5] * 8)[:12])
            time.sleep(0.2)
        model.feed(write(28, 0, 0, [5] * 8)[:12] + b"\x00")     # the board ends the frame; no one hears
        time.sleep(0.2)
        with serial.serial_for_url(url, timeout=20) as port:
            got, want = exchange(port, model, info(29) + read(30, 0, 0, 8))
            assert got == want
    print(f"\nvirtual board: {board.stats}")
    assert board.stats["cycles"] > 100_000, board.stats
