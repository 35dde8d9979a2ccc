"""The golden model of the device: every instruction against NumPy and numerics, faults, commands."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Const

from hw import numerics
from hw.config import DeviceConfig
from hw.frame import ErrorCode, decode_frame, encode_frame, parse_error_payload
from hw.isa import (
    SOFTMAX_SHIFT_MAX,
    TENSORS,
    VERSION,
    Buf,
    Command,
    InfoReply,
    Instruction,
    Opcode,
    ProgramArgs,
    ReadArgs,
    Reg,
    Rounding,
    RunArgs,
    RunReply,
    Status,
    VecOp,
    WriteArgs,
    decode,
    encode,
    instruction,
)
from hw.numerics import ACT, Act
from sim.model import Device
from sim.vector import VectorModel

CONFIG = DeviceConfig(rows=2, cols=3, depth=256, imem=64, k_max=64, max_rows=8, max_payload=256)
"""Unequal array edges (banks = 4 > cols) so tile and beat orders are visible."""


def tensor(t: int, buf: Buf, base: int, rows: int, cols: int, pitch: int | None = None) -> int:
    pitch = -(-cols // CONFIG.banks) if pitch is None else pitch
    return instruction(Opcode.TENSOR, tensor={"t": t, "buf": buf, "base": base, "rows": rows,
                                              "cols": cols, "pitch": pitch})


def epi(op=VecOp.ADD, act=Act.IDENTITY, deriv=False, shift=0, b_shift=0, round=Rounding.NEAREST_EVEN):
    return {"op": op, "act": int(act), "deriv": deriv, "round": round, "shift": shift, "b_shift": b_shift}


def gemm(a, b, out, e, c=None, ta=False, tb=False) -> int:
    return instruction(Opcode.GEMM, gemm={"a": a, "ta": ta, "b": b, "tb": tb, "c": c or 0,
                                          "use_c": c is not None, "out": out, "epi": e})


def vec(a, out, e, b=None) -> int:
    return instruction(Opcode.VEC, vec={"a": a, "b": b or 0, "use_b": b is not None, "out": out, "epi": e})


def set_(reg: Reg, value: int) -> int:
    return instruction(Opcode.SET, set={"reg": reg, "value": value})


END = instruction(Opcode.END)


def execute(device: Device, *words: int) -> tuple[Status, int]:
    device.program(list(words) + [END])
    return device.run(0)


def random_words(rng, shape, lo=-(1 << 15), hi=1 << 15):
    return rng.integers(lo, hi, shape)


def expected_epilogue(t_a, t_b, e, slope=0, scale=0):
    """The vector unit on whole matrices with nearest-even rounding, from numerics alone."""
    t = VectorModel.combine(t_a, t_b, e["op"], e["b_shift"], scale)
    x = numerics.requantize(t, e["shift"])
    return numerics.activation(Act(e["act"]), e["deriv"], x, slope)


# -- GEMM ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 5, 4), (5, 7, 7), (4, 2, 6)])
def test_gemm_transposes_and_partial_tiles(ta, tb, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a, b, c = random_words(rng, (m, k)), random_words(rng, (k, n)), random_words(rng, (m, n), -64, 64)
    device = Device(CONFIG)
    device.write_matrix(Buf.W, 3, 5, a.T if ta else a)       # a wider pitch than needed: a view
    device.write_matrix(Buf.A, 0, 2, b.T if tb else b)
    device.write_matrix(Buf.G, 100, 2, c)
    e = epi(op=VecOp.ADD, act=Act.RELU, shift=20, b_shift=10)
    status = execute(device,
                     tensor(0, Buf.W, 3, *(a.T if ta else a).shape, 5),
                     tensor(1, Buf.A, 0, *(b.T if tb else b).shape, 2),
                     tensor(2, Buf.G, 100, m, n, 2),
                     tensor(3, Buf.G, 50, m, n),
                     gemm(0, 1, 3, e, c=2, ta=ta, tb=tb))
    assert status == (Status.OK, 5)
    expected = expected_epilogue(a @ b, c, e)
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 50, 1 if n <= 4 else 2, m, n), expected)


def test_gemm_without_c_and_into_a_read_buffer():
    rng = np.random.default_rng(0)
    a, b = random_words(rng, (4, 3), -100, 100), random_words(rng, (3, 5), -100, 100)
    device = Device(CONFIG)
    device.write_matrix(Buf.W, 0, 1, a)
    device.write_matrix(Buf.A, 0, 2, b)
    assert execute(device, tensor(0, Buf.W, 0, 4, 3), tensor(1, Buf.A, 0, 3, 5),
                   tensor(2, Buf.A, 20, 4, 5), gemm(0, 1, 2, epi(shift=2)))[0] == Status.OK
    np.testing.assert_array_equal(device.read_matrix(Buf.A, 20, 2, 4, 5), numerics.requantize(a @ b, 2))


def test_gemm_stochastic_beat_order():
    """Row tiles, then column tiles, then rows of the tile: one LFSR draw per lane and beat."""
    rng = np.random.default_rng(5)
    m, k, n = 5, 4, 7
    a, b, w = random_words(rng, (m, k)), random_words(rng, (k, n)), random_words(rng, (m, n), -1000, 1000)
    device = Device(CONFIG)
    device.write_matrix(Buf.G, 0, 1, a)
    device.write_matrix(Buf.A, 0, 2, b)
    device.write_matrix(Buf.W, 0, 2, w)
    e = epi(op=VecOp.SGD, shift=13, b_shift=13, round=Rounding.STOCHASTIC)
    assert execute(device, set_(Reg.SCALE, 300), set_(Reg.SEED, 1234),
                   tensor(0, Buf.G, 0, m, k), tensor(1, Buf.A, 0, k, n), tensor(2, Buf.W, 0, m, n),
                   gemm(0, 1, 2, e, c=2))[0] == Status.OK

    unit, acc, expected = VectorModel(CONFIG.cols), a @ b, np.zeros((m, n), dtype=np.int64)
    unit.seed(1234)
    for i0 in range(0, m, CONFIG.rows):
        for j0 in range(0, n, CONFIG.cols):
            for i in range(i0, min(i0 + CONFIG.rows, m)):
                lanes = np.arange(j0, j0 + CONFIG.cols)
                live = lanes < n
                beat_a = np.where(live, acc[i, np.minimum(lanes, n - 1)], 0)[None]
                beat_b = np.where(live, w[i, np.minimum(lanes, n - 1)], 0)[None]
                y = unit(beat_a, beat_b, op=VecOp.SGD, b_shift=13, shift=13, round=Rounding.STOCHASTIC,
                         scale=300)
                expected[i, lanes[live]] = y[0, live]
    np.testing.assert_array_equal(device.read_matrix(Buf.W, 0, 2, m, n), expected)
    np.testing.assert_array_equal(device.vector.state, unit.state)


# -- VEC -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", list(VecOp))
@pytest.mark.parametrize("act, deriv", [(Act.IDENTITY, False), (Act.SIGMOID, False), (Act.TANH, True),
                                        (Act.LEAKY_RELU, False), (Act.LEAKY_RELU, True)])
def test_vec(op, act, deriv):
    rng = np.random.default_rng(int(op.value) * 10 + int(act))
    a, b = random_words(rng, (3, 5), -3000, 3000), random_words(rng, (3, 5), -3000, 3000)
    device = Device(CONFIG)
    device.write_matrix(Buf.A, 0, 2, a)
    device.write_matrix(Buf.G, 0, 2, b)
    e = epi(op=op, act=act, deriv=deriv, shift=3 if op in (VecOp.MUL, VecOp.SGD) else 0, b_shift=1)
    assert execute(device, set_(Reg.SLOPE, 0x10000 + 1638), set_(Reg.SCALE, -5),
                   tensor(0, Buf.A, 0, 3, 5), tensor(1, Buf.G, 0, 3, 5), tensor(2, Buf.A, 10, 3, 5),
                   vec(0, 2, e, b=1))[0] == Status.OK
    expected = expected_epilogue(a, b, e, slope=1638, scale=-5)
    np.testing.assert_array_equal(device.read_matrix(Buf.A, 10, 2, 3, 5), expected)


def test_vec_without_b_is_a_alone():
    device = Device(CONFIG)
    a = np.arange(-6, 6).reshape(2, 6) * 1000
    device.write_matrix(Buf.G, 0, 2, a)
    assert execute(device, tensor(0, Buf.G, 0, 2, 6), tensor(1, Buf.A, 0, 2, 6),
                   vec(0, 1, epi(act=Act.RELU, shift=1)))[0] == Status.OK
    np.testing.assert_array_equal(device.read_matrix(Buf.A, 0, 2, 2, 6), np.maximum(a >> 1, 0))


def test_vec_stochastic_order_is_column_blocks_then_rows():
    rng = np.random.default_rng(9)
    m, n = 4, 7
    a = random_words(rng, (m, n))
    device = Device(CONFIG)
    device.write_matrix(Buf.A, 0, 2, a)
    assert execute(device, set_(Reg.SEED, 77), tensor(0, Buf.A, 0, m, n), tensor(1, Buf.G, 0, m, n),
                   vec(0, 1, epi(shift=9, round=Rounding.STOCHASTIC)))[0] == Status.OK
    unit, expected = VectorModel(CONFIG.cols), np.zeros((m, n), dtype=np.int64)
    unit.seed(77)
    for j0 in range(0, n, CONFIG.cols):
        for i in range(m):
            cols = np.arange(j0, min(j0 + CONFIG.cols, n))
            beat = np.zeros((1, CONFIG.cols), dtype=np.int64)
            beat[0, :len(cols)] = a[i, cols]
            expected[i, cols] = unit(beat, 0 * beat, shift=9, round=Rounding.STOCHASTIC)[0, :len(cols)]
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 0, 2, m, n), expected)


def test_set_seed_reseeds():
    rng = np.random.default_rng(2)
    a = random_words(rng, (3, 6))
    device = Device(CONFIG)
    device.write_matrix(Buf.A, 0, 2, a)
    body = [tensor(0, Buf.A, 0, 3, 6), tensor(1, Buf.G, 0, 3, 6),
            vec(0, 1, epi(shift=12, round=Rounding.STOCHASTIC))]
    results = []
    for program in ([set_(Reg.SEED, 42)] + body, body, [set_(Reg.SEED, 42)] + body):
        assert execute(device, *program)[0] == Status.OK
        results.append(device.read_matrix(Buf.G, 0, 2, 3, 6))
    np.testing.assert_array_equal(results[0], results[2])
    assert not np.array_equal(results[0], results[1])
    assert device.registers[Reg.SEED] == 42


# -- reductions ------------------------------------------------------------------------------------

def test_softmax_argmax_loss():
    rng = np.random.default_rng(4)
    m, n = 5, 9
    z = random_words(rng, (m, n), -20000, 20000)
    hot = rng.integers(0, m, n)
    y = (np.arange(m)[:, None] == hot) * ACT.one
    device = Device(CONFIG)
    device.write_matrix(Buf.G, 0, 3, z)
    device.write_matrix(Buf.W, 0, 3, y)
    assert execute(device, tensor(0, Buf.G, 0, m, n), tensor(1, Buf.A, 0, m, n),
                   tensor(2, Buf.W, 0, m, n), tensor(3, Buf.G, 40, 1, n), tensor(4, Buf.G, 50, 1, n),
                   instruction(Opcode.SOFTMAX, softmax={"a": 0, "out": 1}),
                   instruction(Opcode.ARGMAX, unary={"a": 1, "out": 3}),
                   instruction(Opcode.LOSS, loss={"a": 1, "y": 2, "out": 4}))[0] == Status.OK
    p = numerics.softmax(z)
    np.testing.assert_array_equal(device.read_matrix(Buf.A, 0, 3, m, n), p)
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 40, 3, 1, n)[0], np.argmax(p, axis=0))
    np.testing.assert_array_equal(device.read_matrix(Buf.G, 50, 3, 1, n)[0],
                                  numerics.cross_entropy(p[hot, np.arange(n)]))


def test_softmax_with_an_input_shift():
    rng = np.random.default_rng(5)
    m, n, shift = 6, 7, 3
    z = random_words(rng, (m, n))  # logits with ACT.frac - 3 fraction bits: some read below the table
    device = Device(CONFIG)
    device.write_matrix(Buf.G, 0, 2, z)
    assert execute(device, tensor(0, Buf.G, 0, m, n), tensor(1, Buf.A, 0, m, n),
                   instruction(Opcode.SOFTMAX, softmax={"a": 0, "out": 1, "shift": shift}))[0] == Status.OK
    p = device.read_matrix(Buf.A, 0, 2, m, n)
    np.testing.assert_array_equal(p, numerics.softmax(z, shift=shift))
    assert not np.array_equal(p, numerics.softmax(z))


def test_softmax_shift_is_where_a_gemm_keeps_its_epilogue_shift():
    # the controller hands the same bits to the vector unit's shift and the softmax unit's
    shift = SOFTMAX_SHIFT_MAX
    word = instruction(Opcode.SOFTMAX, softmax={"a": 0, "out": 1, "shift": shift})
    args = Instruction()(Const(word, Instruction().size)).args
    assert Const.cast(args.gemm.epi.shift).value == shift


def test_argmax_first_on_ties_and_binary_loss():
    device = Device(CONFIG)
    device.write_matrix(Buf.A, 0, 1, [[5, 7, 7, 0], [5, 7, 8, 0]])
    device.write_matrix(Buf.A, 10, 1, [[100, 4000, 2048, 1]])
    device.write_matrix(Buf.G, 0, 1, [[0, 4096, 2048, 2047]])
    assert execute(device, tensor(0, Buf.A, 0, 2, 4), tensor(1, Buf.W, 0, 1, 4),
                   tensor(2, Buf.A, 10, 1, 4), tensor(3, Buf.G, 0, 1, 4), tensor(4, Buf.W, 1, 1, 4),
                   instruction(Opcode.ARGMAX, unary={"a": 0, "out": 1}),
                   instruction(Opcode.LOSS, loss={"a": 2, "y": 3, "out": 4}))[0] == Status.OK
    assert device.read_matrix(Buf.W, 0, 1, 1, 4).tolist() == [[0, 0, 1, 0]]
    expected = numerics.cross_entropy(np.array([ACT.one - 100, 4000, 2048, ACT.one - 1]))
    np.testing.assert_array_equal(device.read_matrix(Buf.W, 1, 1, 1, 4)[0], expected)


# -- faults ----------------------------------------------------------------------------------------

FAULTS = [
    ("bad opcode", [instruction(Opcode.NOP), 14], Status.BAD_OPCODE, 1),
    ("bad activation", [tensor(0, Buf.A, 0, 2, 2), tensor(1, Buf.G, 0, 2, 2),
                        vec(0, 1, {**epi(), "act": 7})], Status.BAD_OPCODE, 2),
    ("bad register", [instruction(Opcode.SET, set={"reg": Reg.SEED, "value": 1}) | (7 << 4)],
     Status.BAD_OPCODE, 0),
    ("past the buffer", [tensor(0, Buf.A, 250, 7, 2)], Status.BAD_TENSOR, 0),
    ("pitch too small", [tensor(0, Buf.A, 0, 2, 5, pitch=1)], Status.BAD_TENSOR, 0),
    ("empty tensor", [tensor(0, Buf.A, 0, 0, 5)], Status.BAD_TENSOR, 0),
    ("no such buffer", [tensor(0, Buf.A, 0, 2, 2) | (3 << 8)], Status.BAD_TENSOR, 0),
    ("undefined register", [tensor(0, Buf.A, 0, 2, 2), vec(0, 9, epi())], Status.BAD_TENSOR, 1),
    ("K disagrees", [tensor(0, Buf.W, 0, 2, 3), tensor(1, Buf.A, 0, 2, 2), tensor(2, Buf.G, 0, 2, 2),
                     gemm(0, 1, 2, epi())], Status.BAD_SHAPE, 3),
    ("out disagrees", [tensor(0, Buf.W, 0, 2, 3), tensor(1, Buf.A, 0, 3, 2), tensor(2, Buf.G, 0, 2, 3),
                       gemm(0, 1, 2, epi())], Status.BAD_SHAPE, 3),
    ("one buffer twice", [tensor(0, Buf.W, 0, 2, 3), tensor(1, Buf.W, 10, 3, 2), tensor(2, Buf.G, 0, 2, 2),
                          gemm(0, 1, 2, epi())], Status.BAD_SHAPE, 3),
    ("c from a's buffer", [tensor(0, Buf.W, 0, 2, 3), tensor(1, Buf.A, 0, 3, 2), tensor(2, Buf.W, 9, 2, 2),
                           gemm(0, 1, 2, epi(), c=2)], Status.BAD_SHAPE, 3),
    ("vec one buffer", [tensor(0, Buf.A, 0, 2, 2), tensor(1, Buf.A, 5, 2, 2), vec(0, 0, epi(), b=1)],
     Status.BAD_SHAPE, 2),
    ("softmax too tall", [tensor(0, Buf.A, 0, 9, 2), tensor(1, Buf.G, 0, 9, 2),
                          instruction(Opcode.SOFTMAX, softmax={"a": 0, "out": 1})], Status.BAD_SHAPE, 2),
    ("argmax out rows", [tensor(0, Buf.A, 0, 3, 2), tensor(1, Buf.G, 0, 2, 2),
                         instruction(Opcode.ARGMAX, unary={"a": 0, "out": 1})], Status.BAD_SHAPE, 2),
    ("loss one buffer", [tensor(0, Buf.A, 0, 3, 2), tensor(1, Buf.A, 9, 3, 2), tensor(2, Buf.G, 0, 1, 2),
                         instruction(Opcode.LOSS, loss={"a": 0, "y": 1, "out": 2})], Status.BAD_SHAPE, 3),
    ("too deep", [tensor(0, Buf.W, 0, 1, 65), tensor(1, Buf.A, 0, 65, 1), tensor(2, Buf.G, 0, 1, 1),
                  gemm(0, 1, 2, epi())], Status.TOO_DEEP, 3),
]


@pytest.mark.parametrize("name, words, status, pc", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault(name, words, status, pc):
    assert execute(Device(CONFIG), *words) == (status, pc)


def test_no_end_and_tensor_count():
    device = Device(CONFIG)
    assert device.run(0) == (Status.NO_END, CONFIG.imem)
    device.program([tensor(t, Buf.G, t, 1, 1) for t in range(TENSORS)] + [END])
    assert device.run(0) == (Status.OK, TENSORS)
    assert device.run(TENSORS) == (Status.OK, TENSORS)


# -- host commands ---------------------------------------------------------------------------------

class Link:
    """Frames to and from a device, checking each reply's type and sequence number."""

    def __init__(self, device: Device):
        self.device, self.seq = device, 0

    def send(self, type: int, payload: bytes = b"", seq: int | None = None) -> tuple[int, bytes]:
        if seq is None:
            self.seq = seq = (self.seq + 1) & 0xFF
        wire = self.device.feed(encode_frame(type, seq, payload))
        assert wire.count(0) == 1
        frame = decode_frame(wire[:-1], 1 << 16)
        assert frame.seq == seq
        return frame.type, frame.payload

    def write(self, buf, addr, words, seq=None):
        payload = encode(WriteArgs(), {"buf": buf, "addr": addr}) + np.asarray(words, "<i2").tobytes()
        return self.send(Command.WRITE, payload, seq)

    def read(self, buf, addr, count):
        args = encode(ReadArgs(), {"buf": buf, "addr": addr, "count": count})
        kind, payload = self.send(Command.READ, args)
        assert kind == Command.READ
        return np.frombuffer(payload, "<i2").tolist()

    def run(self, entry, buf=Buf.A, addr=0, count=0, seq=None):
        return self.send(Command.RUN, encode(RunArgs(), {"entry": entry, "buf": buf, "addr": addr,
                                                         "count": count}), seq)


def error(reply: tuple[int, bytes]) -> ErrorCode:
    assert reply[0] == 0xFF
    return parse_error_payload(reply[1])[0]


def test_info():
    kind, payload = Link(Device(CONFIG)).send(Command.INFO)
    info = decode(InfoReply(), payload)
    assert kind == Command.INFO and len(payload) == InfoReply().size // 8
    assert (info.version, info.rows, info.cols, info.banks, info.depth, info.imem, info.k_max) == \
        (VERSION, 2, 3, 4, 256, 64, 64)
    assert (info.acc_width, info.act_frac, info.max_payload) == (CONFIG.acc_width, 12, 256)


def test_write_read_round_trip():
    link = Link(Device(CONFIG))
    words = [-32768, -1, 0, 1, 32767, 1234]
    assert link.write(Buf.G, 1018, words) == (Command.WRITE, b"")
    assert link.read(Buf.G, 1018, 6) == words
    assert link.read(Buf.A, 1018, 6) == [0] * 6
    assert link.device.buffers[Buf.G][1018 % 4, 1018 // 4] == -32768


def increment_program(link: Link) -> None:
    """A program that adds 1 to word 0 of buffer A (from a one in G)."""
    words = [tensor(0, Buf.A, 0, 1, 1), tensor(1, Buf.G, 0, 1, 1), vec(0, 0, epi(), b=1), END]
    payload = encode(ProgramArgs(), {"addr": 0}) + b"".join(w.to_bytes(8, "little") for w in words)
    assert link.send(Command.PROGRAM, payload) == (Command.PROGRAM, b"")
    link.write(Buf.G, 0, [1])


def test_program_run_and_duplicate_run_not_executed():
    link = Link(Device(CONFIG))
    increment_program(link)
    first = link.run(0, Buf.A, 0, 2)
    assert first[0] == Command.RUN
    header = decode(RunReply(), first[1])
    assert (header.status, header.pc, header.cycles) == (Status.OK, 3, 0)
    assert np.frombuffer(first[1][7:], "<i2").tolist() == [1, 0]
    assert link.run(0, Buf.A, 0, 2, seq=link.seq) == first          # retransmission
    assert link.read(Buf.A, 0, 1) == [1]
    link.run(0)
    assert link.read(Buf.A, 0, 1) == [2]


def test_duplicate_write_not_executed():
    link = Link(Device(CONFIG))
    link.write(Buf.W, 0, [7], seq=10)
    link.write(Buf.W, 0, [8], seq=11)
    assert link.write(Buf.W, 0, [7], seq=11) == (Command.WRITE, b"")   # same seq: a retransmission
    assert link.read(Buf.W, 0, 1) == [8]
    link.write(Buf.W, 0, [9], seq=11)    # same seq, other type last: new
    assert link.read(Buf.W, 0, 1) == [9]


def test_unknown_type_and_corrupted_frame():
    device = Device(CONFIG)
    assert error(Link(device).send(0x42)) == ErrorCode.UNKNOWN_TYPE
    wire = bytearray(encode_frame(Command.INFO, 3, b""))
    wire[1] ^= 0x40   # the type byte: the CRC fails, the sequence number survives
    reply = device.feed(bytes(wire))
    assert parse_error_payload(decode_frame(reply[:-1]).payload) == (ErrorCode.BAD_CRC, 3)


@pytest.mark.parametrize("command, payload", [
    (Command.INFO, b"\x00"),
    (Command.WRITE, encode(WriteArgs(), {"buf": Buf.A, "addr": 1023}) + b"\x01\x00\x02\x00"),
    (Command.WRITE, encode(WriteArgs(), {"buf": Buf.A, "addr": 0}) + b"\x01"),
    (Command.WRITE, encode(WriteArgs(), {"buf": 3, "addr": 0}) + b"\x01\x00"),
    (Command.WRITE, b"\x01\x00"),
    (Command.READ, encode(ReadArgs(), {"buf": Buf.G, "addr": 1020, "count": 5})),
    (Command.READ, encode(ReadArgs(), {"buf": Buf.G, "addr": 0, "count": 200})),
    (Command.READ, encode(ReadArgs(), {"buf": Buf.G, "addr": 0, "count": 1}) + b"\x00"),
    (Command.PROGRAM, encode(ProgramArgs(), {"addr": 64}) + bytes(8)),
    (Command.PROGRAM, encode(ProgramArgs(), {"addr": 0}) + bytes(7)),
    (Command.RUN, encode(RunArgs(), {"entry": 64, "buf": Buf.A, "addr": 0, "count": 0})),
    (Command.RUN, encode(RunArgs(), {"entry": 0, "buf": Buf.A, "addr": 1020, "count": 5})),
])
def test_bad_arguments(command, payload):
    device = Device(CONFIG)
    assert error(Link(device).send(command, payload)) == ErrorCode.BAD_ARGUMENT
    assert all(not image.any() for image in device.buffers.values()) and not any(device.imem)


def test_tensor_footprint_counts_whole_rows():
    """``base + rows·pitch`` must fit ``depth``, even where the last row's spare words are unused."""
    assert execute(Device(CONFIG), tensor(0, Buf.A, 254, 2, 1, pitch=1)) == (Status.OK, 1)
    assert execute(Device(CONFIG), tensor(0, Buf.A, 254, 2, 1, pitch=2)) == (Status.BAD_TENSOR, 0)
