"""The host driver (``host/driver.py``): commands, splitting, faults, retries over a damaged link, ports."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest

from host.compiler import Region
from host.driver import (
    DeviceError,
    Driver,
    DriverError,
    FaultError,
    LinkError,
    ModelTransport,
    SerialTransport,
    Transport,
)
from hw.config import DeviceConfig
from hw.frame import ErrorCode
from hw.isa import VERSION, Buf, Command, Opcode, Rounding, Status, VecOp, instruction
from hw.numerics import Act, requantize
from sim.model import Device

CONFIG = DeviceConfig(rows=2, cols=2, depth=256, imem=96, k_max=64, max_rows=4, max_payload=256,
                      clk_hz=12_000_000, baud=3_000_000)   # as tests/test_virtual.py: one build
WORDS = CONFIG.banks * CONFIG.depth


def epilogue(op: VecOp = VecOp.ADD, shift: int = 0) -> dict:
    return {"op": op, "act": Act.IDENTITY, "deriv": 0, "round": Rounding.NEAREST_EVEN, "shift": shift,
            "b_shift": 0}


def region(buf: Buf, base: int, rows: int, cols: int) -> Region:
    return Region(buf, base, rows, cols, -(-cols // CONFIG.banks), CONFIG.banks)


W, X, OUT = region(Buf.W, 0, 4, 6), region(Buf.A, 0, 6, 5), region(Buf.G, 0, 4, 5)
SHIFT = 3
GEMM = [W.tensor(0), X.tensor(1), OUT.tensor(2),
        instruction(Opcode.GEMM, gemm={"a": 0, "ta": 0, "b": 1, "tb": 0, "c": 0, "use_c": 0, "out": 2,
                                       "epi": epilogue(shift=SHIFT)}),
        instruction(Opcode.END)]
ACC, STEP = region(Buf.W, 16, 4, 4), region(Buf.A, 24, 4, 4)
ACCUMULATE = [ACC.tensor(0), STEP.tensor(1),      # ACC += STEP: a side effect counted by the result
              instruction(Opcode.VEC, vec={"a": 0, "b": 1, "use_b": 1, "out": 0, "epi": epilogue()}),
              instruction(Opcode.END)]


def load_gemm(driver: Driver, rng: np.random.Generator) -> np.ndarray:
    """Program and load the GEMM; the output words it must produce."""
    w, x = rng.integers(-300, 300, (W.rows, W.cols)), rng.integers(-300, 300, (X.rows, X.cols))
    driver.program(GEMM)
    driver.write(W.buf, W.first, W.pack(w))
    driver.write(X.buf, X.first, X.pack(x))
    return OUT.pack(requantize(w @ x, SHIFT))


@pytest.fixture
def driver():
    with Driver.open("model", config=CONFIG) as driver:
        yield driver


def test_info_config(driver):
    info = driver.info()
    assert info == driver.device
    assert (info.version, info.rows, info.cols, info.banks, info.max_payload) == (VERSION, 2, 2, 2, 256)
    assert info.config() == CONFIG


def test_write_read_across_frames(driver):
    words = np.random.default_rng(1).integers(-(1 << 15), 1 << 15, WORDS)
    driver.reset_stats()
    driver.write(Buf.G, 0, words)
    writes = -(-WORDS // ((CONFIG.max_payload - 5) // 2))    # 125 words per WRITE frame of 256 bytes
    assert driver.stats.commands == writes == 5
    got = driver.read(Buf.G, 0, WORDS)
    assert driver.stats.commands == writes + 4              # 128 words per READ reply
    assert got.dtype == np.int64 and np.array_equal(got, words)
    assert np.array_equal(driver.read(Buf.G, 7, 3), words[7:10])
    assert driver.bytes_sent > 2 * WORDS and driver.bytes_received > 2 * WORDS
    driver.reset_stats()
    assert (driver.bytes_sent, driver.bytes_received, driver.stats.commands) == (0, 0, 0)
    assert driver.stats.retries == driver.stats.discarded == 0


def test_write_rejects_values_beyond_16_bits(driver):
    with pytest.raises(ValueError, match="quantize first"):
        driver.write(Buf.A, 0, [1, 1 << 15])


def test_program_run_gemm(driver):
    want = load_gemm(driver, np.random.default_rng(2))
    result = driver.run(0, (OUT.buf, OUT.first, OUT.words))
    assert (result.status, result.pc, result.cycles) == (Status.OK, len(GEMM) - 1, 0)
    assert np.array_equal(result.words, want)
    longer = driver.run(0, (Buf.A, 0, 100))                 # 60 words in the RUN reply, 40 by READ
    assert np.array_equal(longer.words, driver.read(Buf.A, 0, 100))


@pytest.mark.parametrize("program, status, pc", [
    ([instruction(Opcode.GEMM, gemm={"a": 3, "ta": 0, "b": 4, "tb": 0, "c": 0, "use_c": 0, "out": 5,
                                     "epi": epilogue()})], Status.BAD_TENSOR, 0),
    ([W.tensor(0), W.tensor(1), instruction(Opcode.VEC, vec={"a": 0, "b": 1, "use_b": 1, "out": 0,
                                                             "epi": epilogue()})], Status.BAD_SHAPE, 2),
    ([instruction(Opcode.NOP)], Status.NO_END, CONFIG.imem),
])
def test_run_fault(driver, program, status, pc):
    driver.program(program)
    with pytest.raises(FaultError, match=f"{status.name} at pc {pc}") as fault:
        driver.run(0, (Buf.W, 0, 2))
    assert (fault.value.status, fault.value.pc, len(fault.value.result.words)) == (status, pc, 2)


@pytest.mark.parametrize("call, command, code", [
    (lambda d: d.read(Buf.A, WORDS - 2, 3), Command.READ, ErrorCode.BAD_ARGUMENT),
    (lambda d: d.write(3, 0, [1]), Command.WRITE, ErrorCode.BAD_ARGUMENT),
    (lambda d: d.program([0] * (CONFIG.imem + 1)), Command.PROGRAM, ErrorCode.BAD_ARGUMENT),
    (lambda d: d.run(CONFIG.imem), Command.RUN, ErrorCode.BAD_ARGUMENT),
    (lambda d: d.command(0x42, b""), 0x42, ErrorCode.UNKNOWN_TYPE),
])
def test_device_error(driver, call, command, code):
    with pytest.raises(DeviceError, match=code.name) as error:
        call(driver)
    assert (error.value.command, error.value.code) == (command, code)
    assert driver.stats.retries == 0
    assert np.array_equal(driver.read(Buf.A, 0, 2), [0, 0])     # the link carries on


# -- retries --------------------------------------------------------------------------------------------


class Flaky:
    """A transport that damages frames both ways: drops, truncates, flips a bit or duplicates.

    ``p`` is the chance that a frame is damaged, per frame and direction; ``damage`` counts what was done.
    """

    def __init__(self, inner: Transport, seed: int, p: float = 0.25):
        self.inner, self.rng, self.p = inner, np.random.default_rng(seed), p
        self.name, self.damage = f"a flaky {inner.name}", Counter()
        self._received: list[bytes] = []

    def _spoil(self, frame: bytes, direction: str) -> list[bytes]:
        if self.rng.random() >= self.p:
            return [frame]
        what = str(self.rng.choice(["drop", "truncate", "flip", "duplicate"]))
        self.damage[direction, what] += 1
        if what == "drop":
            return []
        if what == "truncate":
            start = int(self.rng.integers(1, len(frame)))
            return [frame[:start] + frame[int(self.rng.integers(start + 1, len(frame) + 1)):]]
        if what == "flip":
            spoilt = bytearray(frame)
            spoilt[self.rng.integers(len(frame))] ^= 1 << int(self.rng.integers(8))
            return [bytes(spoilt)]
        return [frame, frame]

    def write(self, data: bytes) -> None:
        for frame in self._spoil(data[:-1], "sent"):
            self.inner.write(frame + b"\x00")

    def read_frame(self, timeout: float) -> bytes | None:
        while not self._received:
            if (frame := self.inner.read_frame(timeout)) is None:
                return None
            self._received += self._spoil(frame, "received")
        return self._received.pop(0)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retries_recover_and_run_once(seed):
    """Commands over a link damaging a quarter of the frames each way complete, and every RUN adds once."""
    rng = np.random.default_rng(seed)
    flaky = Flaky(ModelTransport(CONFIG), seed)
    model = flaky.inner.device
    driver = Driver(flaky, timeout=0.01, retries=20)
    assert driver.info().config() == CONFIG
    want = load_gemm(driver, rng)
    assert np.array_equal(driver.run(0, (OUT.buf, OUT.first, OUT.words)).words, want)
    acc, step = rng.integers(-500, 500, (2, ACC.rows, ACC.cols))
    driver.program(ACCUMULATE, addr=len(GEMM))
    driver.write(ACC.buf, ACC.first, ACC.pack(acc))
    driver.write(STEP.buf, STEP.first, STEP.pack(step))
    runs = 40
    for n in range(1, runs + 1):
        result = driver.run(len(GEMM), (ACC.buf, ACC.first, ACC.words))
        assert np.array_equal(ACC.unpack(result.words), acc + n * step)
    assert np.array_equal(ACC.unpack(driver.read(ACC.buf, ACC.first, ACC.words)), acc + runs * step)
    assert np.array_equal(ACC.unpack(model.read_words(ACC.buf, ACC.first, ACC.words)), acc + runs * step)
    assert driver.stats.retries > 10 and driver.stats.discarded > 0
    assert {what for _, what in flaky.damage} == {"drop", "truncate", "flip", "duplicate"}, flaky.damage


class Deaf:
    """A transport whose frames all vanish."""

    name = "nowhere"

    def __init__(self):
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def read_frame(self, timeout: float) -> bytes | None:
        return None

    def close(self) -> None:
        pass


def test_deaf_link_gives_up():
    deaf = Deaf()
    with pytest.raises(LinkError, match=r"INFO \(seq 0\) from nowhere after 4 attempts.*cable.*baud"):
        Driver(deaf, retries=3).info()
    assert deaf.writes == 4


def test_silent_port_times_out_quickly():
    """A socket that accepts and never answers: each attempt waits ``timeout``, then the driver gives up."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        transport = SerialTransport(f"socket://127.0.0.1:{server.getsockname()[1]}", poll=0.01)
        driver = Driver(transport, timeout=0.05, retries=2)
        began = time.monotonic()
        with pytest.raises(LinkError, match="no reply within 0.05 s ×3"):
            driver.info()
        assert time.monotonic() - began < 1
        assert driver.stats.retries == 2
        driver.close()


@contextmanager
def served(model: Device):
    """The golden model behind a TCP socket, answering in dribbles of 7 bytes; yields its URL."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def serve():
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(4096):
                    reply = model.feed(data)
                    for start in range(0, len(reply), 7):
                        conn.sendall(reply[start:start + 7])
                        time.sleep(0.0005)
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield f"socket://127.0.0.1:{server.getsockname()[1]}"
        thread.join(timeout=2)


def test_serial_transport_reassembles_frames():
    with served(Device(CONFIG)) as url, Driver.open(url, config=CONFIG, timeout=2) as driver:
        words = np.arange(-50, 50)
        driver.write(Buf.W, 3, words)
        assert np.array_equal(driver.read(Buf.W, 3, 100), words)
        assert driver.stats.retries == 0


def test_open_checks_config():
    """What ``INFO`` reports is checked; what it cannot tell (how the vector unit multiplies) is not."""
    with served(Device(CONFIG)) as url, pytest.raises(DriverError, match=r"reports rows 2 \(expected 4\)"):
        Driver.open(url, config=dataclasses.replace(CONFIG, rows=4))
    serial = dataclasses.replace(CONFIG, vector_lanes=1, serial_multipliers=True)
    with served(Device(CONFIG)) as url, Driver.open(url, config=serial, timeout=2) as driver:
        assert driver.info().rows == CONFIG.rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("target", ["/dev/ttyDOESNOTEXIST", "socket://127.0.0.1:{port}"])
def test_absent_port(target):
    """A missing device or a socket nobody listens on: the message suggests the alternatives."""
    with pytest.raises(LinkError, match=r"could not open .*plugged in.*--target model.*virtual board"):
        Driver.open(target.format(port=free_port()))


# -- the virtual board ------------------------------------------------------------------------------------


@pytest.mark.sim
def test_virtual_board_matches_model():
    """INFO, WRITE/READ across frames and RUNs over the real gateware give the golden model's answers."""
    from sim.virtual import VirtualBoard

    def session(driver: Driver) -> tuple[list, list[int]]:
        rng = np.random.default_rng(5)
        answers, cycles = [driver.info()], []
        words = rng.integers(-(1 << 15), 1 << 15, WORDS)
        driver.write(Buf.G, 0, words)
        answers.append(driver.read(Buf.G, 0, WORDS).tolist())
        load_gemm(driver, rng)
        driver.program(ACCUMULATE, addr=len(GEMM))
        for entry, (buf, first, count) in [(0, (OUT.buf, OUT.first, OUT.words))] + [
                (len(GEMM), (ACC.buf, ACC.first, ACC.words))] * 3:
            result = driver.run(entry, (buf, first, count))
            answers.append((result.status, result.pc, result.words.tolist()))
            cycles.append(result.cycles)
        return answers, cycles

    with Driver.open("model", config=CONFIG) as model:
        want, model_cycles = session(model)
    with VirtualBoard(CONFIG, timeout=300) as url, Driver.open(url, config=CONFIG, timeout=30) as board:
        got, board_cycles = session(board)
    assert got == want
    assert model_cycles == [0] * 4 and min(board_cycles) > 0     # the model does not count cycles
