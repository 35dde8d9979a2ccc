"""cocotb testbench of a buffer: every read response compared with the golden model's lanes.

Parameters (from ``tests/test_buffers.py``): ``banks``, ``depth``, ``width``, ``tag_width``,
``latency`` and, for each stream (``rd``, ``wr``, ``rd_data``), the ``[offset, width]`` of each
payload field. The seed is cocotb's (``COCOTB_RANDOM_SEED``, printed at start-up), so a failing run
replays exactly.

Requests carry ``row = base + p·pitch`` and ``skew = p mod B`` (:class:`Access` derives them),
while the model predicts from ``(base, pitch, p, q)`` through :class:`hw.layout.Layout`. One driver
loop offers reads and writes and takes responses cycle by cycle; the model applies each write as it
transfers and predicts each read the cycle after its transfer (when the banks are read: after the
writes of its own cycle, before those of that one), and the scoreboard compares responses in request
order, except lanes whose word a write of the cycle after the read's transfer changes: the buffer
leaves those undefined.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hw.isa import Mode
from sim.buffers import BufferModel
from sim.runner import tb_params

P = tb_params()
B, DEPTH, W, TAG, LATENCY = P["banks"], P["depth"], P["width"], P["tag_width"], P["latency"]
LO, HI = -(1 << (W - 1)), (1 << (W - 1)) - 1


@dataclass
class Access:
    """A request: where it goes, and for writes the lanes and mask (a read's ``tag`` comes back)."""

    mode: Mode
    base: int
    pitch: int = 0
    p: int = 0
    q: int = 0
    tag: int = 0
    data: list = field(default_factory=lambda: [0] * B)
    mask: int = (1 << B) - 1

    @property
    def row(self) -> int:
        """The request's ``row``: the address where row ``p`` starts."""
        return self.base + self.p * self.pitch

    @property
    def skew(self) -> int:
        """The request's ``skew``: ``p mod B``."""
        return self.p % B

    def where(self) -> tuple:
        return self.mode, self.base, self.pitch, self.p, self.q


def host(word: int, **kwargs) -> Access:
    """The host's word ``word`` (and the ``B − 1`` after it for a read): a ``ROW`` access of row 0
    at address 0; a write stores lane 0 only unless given another ``mask``."""
    return Access(Mode.ROW, 0, **{"mask": 1, **kwargs}, q=word)


def encode(fields: dict, access: Access) -> int:
    """The payload integer of ``access`` for a stream whose fields are ``{name: [offset, width]}``."""
    word = 0
    for name, (offset, width) in fields.items():
        if name == "data":
            for lane, value in enumerate(access.data):
                word |= (int(value) & ((1 << W) - 1)) << (offset + lane * W)
        else:
            value = getattr(access, name)
            value = value.value if isinstance(value, Mode) else value
            word |= (value & ((1 << width) - 1)) << offset
    return word


def decode(word: int) -> tuple[np.ndarray, int]:
    """Lanes (signed) and tag of a ``rd_data`` payload."""
    offset = P["rd_data"]["data"][0]
    lanes = np.array([(word >> (offset + lane * W)) & ((1 << W) - 1) for lane in range(B)], dtype=np.int64)
    lanes -= (lanes >> (W - 1)) << W
    tag_offset, tag_width = P["rd_data"]["tag"]
    return lanes, (word >> tag_offset) & ((1 << tag_width) - 1)


class Scoreboard:
    """Compares each response with the model's prediction, naming the first difference."""

    def __init__(self):
        self.checked = 0

    def compare(self, what: str, got: tuple, want: tuple, defined=True) -> None:
        """Compare the lanes where ``defined`` (a mask, or all) and the tag."""
        (lanes, tag), (want_lanes, want_tag) = got, want
        if tag != want_tag:
            raise AssertionError(f"{what}: tag {tag}, expected {want_tag}")
        bad = np.flatnonzero((lanes != want_lanes) & defined)
        if len(bad):
            raise AssertionError(f"{what}: {len(bad)} wrong lanes, first lane {bad[0]}: got "
                                 f"{lanes[bad[0]]}, expected {want_lanes[bad[0]]} (all: {lanes.tolist()} "
                                 f"vs {want_lanes.tolist()})")
        self.checked += 1


class Bench:
    """Drives ``rd`` and ``wr`` and takes ``rd_data``, keeping ``model`` in step with the hardware."""

    def __init__(self, dut, rng: random.Random):
        self.dut, self.rng = dut, rng
        self.model = BufferModel(B, DEPTH)
        self.board = Scoreboard()

    async def run(self, reads: list, writes: list, *, p_rd: float = 1.0, p_wr: float = 1.0,
                  ready=1.0, exact_latency: bool = False, timeout: int = 100) -> list:
        """Offer ``reads`` and ``writes`` (``None`` is a cycle without an offer); returns the responses.

        Each cycle the next request of each list is offered with probability ``p_rd``/``p_wr``, and
        ``rd_data.ready`` is raised with probability ``ready`` (or where ``ready(cycle)`` is true).
        """
        dut, rng = self.dut, self.rng
        reads, writes = deque(reads), deque(writes)
        expected, responses = deque(), []
        pending = None                     # a read taken last cycle: its banks are read in this one
        cycle = idle = 0
        while reads or writes or expected or pending:
            await RisingEdge(dut.clk)
            read = reads[0] if reads and rng.random() < p_rd else False
            write = writes[0] if writes and rng.random() < p_wr else False
            if read is None:
                reads.popleft()
            if write is None:
                writes.popleft()
            dut.rd__valid.value = int(bool(read))
            if read:
                dut.rd__payload.value = encode(P["rd"], read)
            dut.wr__valid.value = int(bool(write))
            if write:
                dut.wr__payload.value = encode(P["wr"], write)
            dut.rd_data__ready.value = int(ready(cycle) if callable(ready) else rng.random() < ready)
            await ReadOnly()
            moved = False
            if dut.rd_data__valid.value and dut.rd_data__ready.value:
                if not expected:
                    raise AssertionError(f"cycle {cycle}: a response without a request")
                want_lanes, defined, want_tag, accepted, what = expected.popleft()
                if cycle - accepted < LATENCY or (exact_latency and cycle - accepted != LATENCY):
                    raise AssertionError(f"{what}: response {cycle - accepted} cycles after its "
                                         f"request, latency is {LATENCY}")
                got = decode(int(dut.rd_data__payload.value))
                self.board.compare(what, got, (want_lanes, want_tag), defined)
                responses.append(got[0])
                moved = True
            if pending:
                taken, at = pending
                what = f"{taken.mode.name} read of (base, pitch, p, q) = {taken.where()[1:]}, cycle {at}"
                expected.append((self.model.read(*taken.where()), self.defined(taken, write), taken.tag,
                                 at, what))
                pending = None
            if read and dut.rd__ready.value:
                reads.popleft()
                pending = (read, cycle)
                moved = True
            if write:
                if not dut.wr__ready.value:
                    raise AssertionError(f"cycle {cycle}: wr not ready")
                writes.popleft()
                self.model.write(*write.where(), write.data, [write.mask >> lane & 1 for lane in range(B)])
                moved = True
            idle = 0 if moved or callable(ready) else idle + 1
            if idle > timeout:
                raise AssertionError(f"no transfer for {timeout} cycles: {len(reads)} reads, "
                                     f"{len(writes)} writes, {len(expected)} responses outstanding")
            cycle += 1
        await RisingEdge(dut.clk)
        dut.rd__valid.value = dut.wr__valid.value = 0
        dut.rd_data__ready.value = 1
        for _ in range(LATENCY + 2):
            await ReadOnly()
            if dut.rd_data__valid.value:
                raise AssertionError("a response beyond the requests")
            await RisingEdge(dut.clk)
        return responses

    def defined(self, read: Access, write) -> np.ndarray:
        """The lanes of ``read`` whose word ``write`` (on the cycle its banks are read, or none) leaves
        alone."""
        if not write:
            return np.ones(B, dtype=bool)
        words = zip(*self.model.lanes(*write.where()), strict=True)
        written = {word for lane, word in enumerate(words) if write.mask >> lane & 1}
        return np.array([word not in written for word in zip(*self.model.lanes(*read.where()), strict=True)])

    def junk(self) -> list[int]:
        return [self.rng.randint(LO, HI) for _ in range(B)]

    async def load(self, p_wr: float = 1.0) -> list:
        """Host-style load: random matrices over random noise, one write of lane 0 per word.

        Returns the matrices as ``(base, matrix)``; the model must then hold exactly the image.
        """
        rng, layout = self.rng, self.model.layout
        nrng = np.random.default_rng(rng.getrandbits(32))
        image = nrng.integers(LO, HI + 1, (B, DEPTH))
        matrices, base = [], rng.randrange(3)
        for _ in range(3):
            rows, cols = rng.randint(1, 2 * B + 3), rng.randint(1, 3 * B + 2)
            matrix = nrng.integers(LO, HI + 1, (rows, cols))
            layout.store(matrix, base, image)
            matrices.append((base, matrix))
            base += layout.words(rows, cols) + rng.randrange(3)
        writes = []
        for word in range(B * DEPTH):
            bank, address = layout.unflat(word)
            data = self.junk()
            data[0] = int(image[bank, address])
            writes.append(host(word, data=data, pitch=rng.randrange(DEPTH)))
        await self.run([], writes, p_wr=p_wr)
        assert np.array_equal(self.model.image, image), "the model's image differs from the one loaded"
        for base, matrix in matrices:
            assert np.array_equal(layout.load(self.model.image, base, *matrix.shape), matrix)
        return matrices

    def access(self, matrices: list, modes=(*Mode, None), write: bool = False) -> Access:
        """A random access in range: a segment of a stored matrix (edges favoured) or, for a mode
        ``None``, host words with a random ``pitch`` (which a ``ROW`` access ignores)."""
        rng = self.rng
        while True:
            mode = rng.choice(modes)
            if mode is None:
                access = host(rng.randrange(B * DEPTH), pitch=rng.randrange(DEPTH))
            else:
                base, matrix = rng.choice(matrices)
                rows, cols = matrix.shape
                p = rng.choice([0, rows - 1, rng.randrange(rows)])
                q = rng.choice([0, cols - 1, rng.randrange(cols)])
                access = Access(mode, base, self.model.layout.pitch(cols), p, q)
            access.tag = rng.getrandbits(TAG)
            if write:
                access.data, access.mask = self.junk(), rng.getrandbits(B)
            try:
                self.model.lanes(*access.where())
            except IndexError:
                continue
            return access


async def start(dut) -> Bench:
    Clock(dut.clk, 10, unit="ns").start()
    dut.rd__valid.value = dut.wr__valid.value = dut.rd_data__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    return Bench(dut, random.Random(cocotb.RANDOM_SEED))


@cocotb.test()
async def segment_reads(dut):
    """Host-style load, then random ROW, COLUMN and host-word reads with gaps and stalls."""
    bench = await start(dut)
    matrices = await bench.load(p_wr=0.8)
    reads = [bench.access(matrices) for _ in range(1500)]
    await bench.run(reads, [], p_rd=0.8, ready=0.6)
    dut._log.info("segment_reads: %d responses checked", bench.board.checked)


@cocotb.test()
async def full_rate(dut):
    """No gaps, no stalls: one read per cycle, each response exactly ``latency`` cycles later."""
    bench = await start(dut)
    matrices = await bench.load()
    reads = [bench.access(matrices) for _ in range(400)]
    await bench.run(reads, [], exact_latency=True, timeout=0)


@cocotb.test()
async def masked_writes_and_mixed_traffic(dut):
    """Reads and masked writes of every mode at once, then every word read back."""
    bench = await start(dut)
    matrices = await bench.load()
    reads = [bench.access(matrices) for _ in range(1500)]
    writes = [bench.access(matrices, write=True) for _ in range(1500)]
    await bench.run(reads, writes, p_rd=0.7, p_wr=0.5, ready=0.6)
    everything = [host(word) for word in range(0, B * DEPTH, B)]
    await bench.run(everything, [], p_rd=0.9, ready=0.9)
    dut._log.info("masked_writes_and_mixed_traffic: %d responses checked", bench.board.checked)


@cocotb.test()
async def read_during_write(dut):
    """A read the cycle before a write to some of its words: its other lanes are right and the
    write lands; a read on the cycle of a write sees it. A queued response keeps its data while its
    word is written."""
    bench = await start(dut)
    matrices = await bench.load()
    rng, model = bench.rng, bench.model
    for _ in range(20):
        word = rng.randrange(B * DEPTH)
        old = int(model.image[model.layout.unflat(word)])
        new = [old ^ 0x5A5A] + bench.junk()[1:]
        newer = [old ^ 0x0FF0] + bench.junk()[1:]
        got = await bench.run([host(word)] * 2, [None, host(word, data=new)])
        assert got[1][0] == new[0], f"word {word}: {got} after writing {new[0]}"
        # The response waits on rd_data while the word is written again.
        got = await bench.run([host(word), None, None, host(word)],
                              [None, None, host(word, data=newer)], ready=lambda cycle: cycle >= 6)
        assert (got[0][0], got[1][0]) == (new[0], newer[0]), f"word {word}: {got}"
    for _ in range(40):
        write = bench.access(matrices, modes=(Mode.ROW, Mode.COLUMN), write=True)
        write.mask = (1 << B) - 1
        crossing = Access(Mode.COLUMN if write.mode is Mode.ROW else Mode.ROW, *write.where()[1:])
        try:
            model.lanes(*crossing.where())
        except IndexError:
            continue
        got = await bench.run([crossing, crossing], [None, write])
        assert got[1][0] == write.data[0], "the crossing element was not written"


@cocotb.test()
async def scoreboard_bites(dut):
    """One flipped bit in one observed lane, or a wrong tag, is reported by the scoreboard."""
    bench = await start(dut)
    matrices = await bench.load()
    rng = bench.rng
    read = bench.access(matrices)
    got = (await bench.run([read], []))[0]
    want = bench.model.read(*read.where())
    bench.board.compare("unmodified", (got, read.tag), (want, read.tag))
    flipped = got.copy()
    lane, bit = rng.randrange(B), rng.randrange(W)
    flipped[lane] = ((flipped[lane] ^ (1 << bit)) + (1 << (W - 1))) % (1 << W) - (1 << (W - 1))
    for what, observed in (("one bit flipped", (flipped, read.tag)),
                           ("wrong tag", (got, read.tag ^ 1))):
        try:
            bench.board.compare(what, observed, (want, read.tag))
        except AssertionError as error:
            dut._log.info("caught as expected: %s", error)
        else:
            raise AssertionError(f"the scoreboard missed: {what}")
