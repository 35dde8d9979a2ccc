"""cocotb testbench of the controller: random programs on the gateware and on the golden model.

Each program runs on both after the same buffer contents are loaded through the host ports; status,
pc and every word of the three buffers (and of the data memory, if the device has one) must agree.
Parameters: the ``DeviceConfig`` fields and ``programs``. Stimulus is seeded from
``cocotb.RANDOM_SEED`` (``SEED=N`` replays a run).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from host.compiler import Formats, Network, Resident, compile_network
from hw.config import DeviceConfig
from hw.isa import OPERAND_BUFFERS, Buf, Opcode, Reg, Rounding, Status, instruction
from hw.numerics import Act, Fixed
from sim.model import Device
from sim.programs import SAMPLE_NUMBERS, clear_counters, gather_program, random_program
from sim.runner import tb_params

P = tb_params()
CONFIG = DeviceConfig(**{f.name: P[f.name] for f in dataclasses.fields(DeviceConfig) if f.name in P})
WORDS = CONFIG.banks * CONFIG.depth
MEMORIES = {buf: WORDS for buf in OPERAND_BUFFERS} | ({Buf.D: CONFIG.data_depth} if CONFIG.data_depth else {})
"""Every memory the host reaches, and its words."""


async def start(dut) -> None:
    Clock(dut.clk, 10, unit="ns").start()
    for port in ("host__start", "host__imem__valid", "host__write__valid", "host__read__valid",
                 "host__read_data__ready"):
        getattr(dut, port).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def program(dut, words: list[int]) -> None:
    dut.host__imem__valid.value = 1
    for addr, word in enumerate(words):
        dut.host__imem__payload.value = addr | word << 16
        await RisingEdge(dut.clk)
    dut.host__imem__valid.value = 0


async def write_words(dut, buf: int, words: np.ndarray, base: int = 0) -> None:
    dut.host__write__valid.value = 1
    for addr, word in enumerate(np.asarray(words).tolist(), start=base):
        dut.host__write__payload.value = buf | addr << 2 | (word & 0xFFFF) << 34
        await RisingEdge(dut.clk)
    dut.host__write__valid.value = 0


async def read_words(dut, buf: int, count: int) -> np.ndarray:
    """Flat words ``0 … count−1`` of ``buf`` through the host read port."""
    out, sent = [], 0
    dut.host__read_data__ready.value = 1
    while len(out) < count:
        dut.host__read__valid.value = int(sent < count)
        dut.host__read__payload.value = buf | sent << 2
        await ReadOnly()
        took = sent < count and dut.host__read__ready.value
        if dut.host__read_data__valid.value:
            out.append(dut.host__read_data__payload.value.to_signed())
        await RisingEdge(dut.clk)
        sent += int(bool(took))
    dut.host__read__valid.value = 0
    dut.host__read_data__ready.value = 0
    return np.array(out, dtype=np.int64)


async def run(dut, entry: int = 0) -> tuple[int, int, int]:
    dut.host__entry.value = entry
    dut.host__start.value = 1
    await RisingEdge(dut.clk)
    dut.host__start.value = 0
    await FallingEdge(dut.host__busy)
    await RisingEdge(dut.clk)
    return int(dut.host__status.value), int(dut.host__pc.value), int(dut.host__cycles.value)


async def fresh_model(dut, rng: np.random.Generator) -> Device:
    """A golden model and the gateware with the same random words in every buffer, and their
    saturation counters clear.

    A reset leaves memories as they were, so each test starts by making them agree.
    """
    model = Device(CONFIG)
    await program(dut, clear_counters())
    await run(dut)
    for buf, size in MEMORIES.items():
        words = rng.integers(-(1 << 15), 1 << 15, size)
        if buf == Buf.D:
            words[:SAMPLE_NUMBERS] = rng.integers(0, 12, SAMPLE_NUMBERS)
        model.write_words(buf, 0, words)
        await write_words(dut, buf.value, words)
    return model


async def compare_buffers(dut, model: Device, what: str) -> None:
    for buf, size in MEMORIES.items():
        got = await read_words(dut, buf.value, size)
        want = model.read_words(buf, 0, size)
        bad = np.flatnonzero(got != want)
        if len(bad):
            w = bad[0]
            raise AssertionError(f"{what}: buffer {buf.name} differs in {len(bad)} words, first at word "
                                 f"{w}: got {got[w]}, expected {want[w]} (words {bad[:8].tolist()}: "
                                 f"got {got[bad[:8]].tolist()}, expected {want[bad[:8]].tolist()})")


async def _programs(dut, make, what: str) -> set[Status]:
    """``programs`` programs ``make(rng)`` on the gateware and the model: buffers, status and pc agree.
    Returns the statuses they ended with."""
    await start(dut)
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    model = await fresh_model(dut, rng)
    statuses = set()
    for n in range(P.get("programs", 20)):
        words = make(rng)
        model.program(words)
        await program(dut, words)
        want = model.run(0)
        status, pc, cycles = await run(dut)
        statuses.add(Status(status))
        dut._log.info("%s %d: %d words, %s at pc %d, %d cycles", what, n, len(words), Status(status).name, pc,
                      cycles)
        assert (Status(status), pc) == want, f"{what} {n}: got {Status(status).name} at {pc}, not {want}"
        await compare_buffers(dut, model, f"{what} {n}")
    return statuses


@cocotb.test()
async def random_programs(dut):
    """Random GEMM/VEC/SOFTMAX/ARGMAX/LOSS/SET programs: buffers, status and pc as the model."""
    await _programs(dut, lambda rng: random_program(rng, CONFIG), "program")


@cocotb.test(skip=not CONFIG.data_depth)
async def gather_loops(dut):
    """Loops of GATHER (every mode) and ADVANCE from the data memory: buffers, status and pc as the
    model, faults included."""
    statuses = await _programs(dut, lambda rng: gather_program(rng, CONFIG), "gather loop")
    assert Status.OK in statuses, f"no gather loop ran to its end: {statuses}"


@cocotb.test()
async def scoreboard_bites(dut):
    """One flipped bit in one buffer word of the model is reported."""
    await start(dut)
    rng = np.random.default_rng(cocotb.RANDOM_SEED + 1)
    model = Device(CONFIG)
    for buf, size in MEMORIES.items():
        words = rng.integers(-(1 << 15), 1 << 15, size)
        model.write_words(buf, 0, words)
        await write_words(dut, buf.value, words)
    await compare_buffers(dut, model, "unmodified")
    word = int(rng.integers(0, WORDS))
    model.write_words(Buf.G, word, [model.read_words(Buf.G, word, 1)[0] ^ 1 << int(rng.integers(0, 15))])
    try:
        await compare_buffers(dut, model, "one bit flipped")
    except AssertionError as error:
        dut._log.info("caught as expected: %s", error)
    else:
        raise AssertionError("the scoreboard missed a flipped bit")


def _faults() -> list[tuple[str, list[int]]]:
    """Programs that must stop with a given fault, and where."""
    t = {"t": 0, "buf": Buf.W, "base": 0, "rows": 4, "cols": 4, "pitch": 2}
    tensor = {"t": 1, "buf": Buf.A, "base": 0, "rows": 4, "cols": 4, "pitch": 2}
    ok = [instruction(Opcode.TENSOR, tensor=t), instruction(Opcode.TENSOR, tensor=tensor)]
    gemm = {"a": 0, "ta": 0, "b": 1, "tb": 0, "c": 0, "use_c": 0, "out": 1,
            "epi": {"op": 0, "act": 0, "deriv": 0, "round": 0, "shift": 0, "b_shift": 0}}
    end = instruction(Opcode.END)
    return [
        ("bad opcode", [instruction(Opcode.NOP), 14, end]),
        ("buffer 3", [instruction(Opcode.TENSOR, tensor=t) | 3 << 8, end]),  # buf: bits 8-9
        ("pitch too small", [instruction(Opcode.TENSOR, tensor={**t, "cols": 4 * CONFIG.banks, "pitch": 1}),
                             end]),
        ("past the buffer", [instruction(Opcode.TENSOR, tensor={**t, "base": CONFIG.depth - 8}),  # fits
                             instruction(Opcode.TENSOR, tensor={**t, "base": CONFIG.depth - 1}), end]),
        # rows·pitch = 2**11: a product kept modulo a smaller power of two would look in range.
        ("far past the buffer", [instruction(Opcode.TENSOR, tensor={**t, "rows": 2048, "pitch": 1}), end]),
        ("undefined register", [*ok, instruction(Opcode.GEMM, gemm={**gemm, "a": 9}), end]),
        ("same buffer", [*ok, instruction(Opcode.TENSOR, tensor={**tensor, "t": 2, "buf": Buf.W, "base": 8}),
                         instruction(Opcode.GEMM, gemm={**gemm, "b": 2}), end]),
        ("K mismatch", [*ok, instruction(Opcode.TENSOR, tensor={**tensor, "t": 2, "rows": 3}),
                        instruction(Opcode.GEMM, gemm={**gemm, "b": 2}), end]),
        ("softmax too tall", [instruction(Opcode.TENSOR, tensor={**t, "rows": CONFIG.max_rows + 1}),
                              instruction(Opcode.TENSOR, tensor={**tensor, "rows": CONFIG.max_rows + 1}),
                              instruction(Opcode.SOFTMAX, softmax={"a": 0, "out": 1}), end]),
        ("too deep", [instruction(Opcode.TENSOR, tensor={**t, "cols": CONFIG.k_max + 1,
                                                           "pitch": -(-(CONFIG.k_max + 1) // CONFIG.banks)}),
                      instruction(Opcode.TENSOR, tensor={**tensor, "rows": CONFIG.k_max + 1, "pitch": 1}),
                      instruction(Opcode.TENSOR, tensor={**tensor, "t": 2, "buf": Buf.G}),
                      instruction(Opcode.GEMM, gemm={**gemm, "out": 2}), end]),
        ("no end", [instruction(Opcode.NOP)] * CONFIG.imem),
    ]


@cocotb.test()
async def faults(dut):
    """Every fault stops the run with the model's status and pc, and the next run works."""
    await start(dut)
    model = Device(CONFIG)
    seen = set()
    for name, words in _faults():
        model.program(words)
        await program(dut, words)
        want = model.run(0)
        status, pc, _ = await run(dut)
        dut._log.info("%s: %s at pc %d", name, Status(status).name, pc)
        assert want[0] != Status.OK, f"{name}: the model did not fault"
        seen.add(want[0])
        assert (Status(status), pc) == want, f"{name}: got {Status(status).name} at {pc}, expected {want}"
    assert seen == set(Status) - {Status.OK}, f"faults never raised: {set(Status) - {Status.OK} - seen}"


@cocotb.test()
async def gemm_efficiency(dut):
    """Cycles of one GEMM instruction (fetch and decode included) against M·N·K / (R·C).

    Each GEMM is a program of its own (the ``gemms`` parameter: ``words`` whose last two are the GEMM
    and ``END``, its shape ``m``, ``k``, ``n`` and labels copied to the results), run after the same
    random words are loaded into every buffer of the gateware and the golden model. Its cycles are
    those of the program less those of the program with the GEMM replaced by a ``NOP``; every buffer
    is then compared with the golden model's. Without ``gemms``: ``A·B`` with ``M = 4·R``,
    ``N = 8·C`` and ``K = 4·max(R, C)`` and ``8·max(R, C)``.
    """
    await start(dut)
    rng = np.random.default_rng(0)
    R, C = CONFIG.rows, CONFIG.cols
    rows = []
    for gemm in P.get("gemms") or _default_gemms():
        words, m, k, n = gemm["words"], gemm["m"], gemm["k"], gemm["n"]
        model = await fresh_model(dut, rng)
        model.program(words)
        await program(dut, [*words[:-2], instruction(Opcode.NOP), words[-1]])
        _, _, setup = await run(dut)
        await program(dut, words)
        status, pc, total = await run(dut)
        name = f"GEMM M={m} K={k} N={n}"
        assert model.run(0) == (Status(status), pc) == (Status.OK, len(words) - 1), \
            f"{name}: got {Status(status).name} at {pc}"
        cycles, ideal = total - setup, m * n * k / (R * C)
        rows.append({**{key: v for key, v in gemm.items() if key != "words"}, "rows": R, "cols": C,
                     "cycles": cycles, "ideal": ideal, "efficiency": ideal / cycles})
        dut._log.info("%s: %d cycles, ideal %.0f, efficiency %.1f %%", name, cycles, ideal,
                      100 * ideal / cycles)
        await compare_buffers(dut, model, name)
    if "results" in P:
        Path(P["results"]).write_text(json.dumps(rows, indent=1))


def _default_gemms() -> list[dict]:
    """``A·B`` into G with ``A`` in W and ``B`` in A, all at 0: ``M = 4·R``, ``N = 8·C``, two depths."""
    R, C, B = CONFIG.rows, CONFIG.cols, CONFIG.banks
    out = []
    for k in (4 * max(R, C), 8 * max(R, C)):
        m, n = 4 * R, 8 * C
        words = [instruction(Opcode.TENSOR, tensor={"t": t, "buf": buf, "base": 0, "rows": r, "cols": c,
                                                    "pitch": -(-c // B)})
                 for t, (buf, r, c) in enumerate(((Buf.W, m, k), (Buf.A, k, n), (Buf.G, m, n)))]
        words += [instruction(Opcode.GEMM, gemm={
            "a": 0, "ta": 0, "b": 1, "tb": 0, "c": 0, "use_c": 0, "out": 2,
            "epi": {"op": 0, "act": 0, "deriv": 0, "round": 0, "shift": 16, "b_shift": 0}}),
            instruction(Opcode.END)]
        out.append({"m": m, "k": k, "n": n, "words": words})
    return out


@cocotb.test()
async def random_words(dut):
    """Programs with arbitrary 64-bit words among valid instructions: the same faults and results."""
    def make(rng) -> list[int]:
        words = random_program(rng, CONFIG, ops=2)
        for _ in range(2):
            junk = int(rng.integers(0, 1 << 62)) << 2 | int(rng.integers(0, 4))
            words.insert(int(rng.integers(0, len(words))), junk)
        return words
    await _programs(dut, make, "program with junk")


TRAINING_NETS = (
    dict(hidden=Act.RELU),
    dict(hidden=Act.LEAKY_RELU, learn_slope=True, slope=0.25, stats=True),
    dict(hidden=Act.TANH, stats=True, weight_bits=8, rounding=Rounding.NEAREST_EVEN),
)
"""The compiled networks of :func:`training_steps`: plain ReLU, PReLU with neuron counters, and tanh with
counters, 8-bit weights and round-to-nearest updates."""


@cocotb.test()
async def training_steps(dut):
    """Compiled MLP training steps (forward, loss, backward, SGD) bit for bit as the model, then the
    saturation counts they left."""
    await start(dut)
    rng = np.random.default_rng(cocotb.RANDOM_SEED)
    model = await fresh_model(dut, rng)

    async def write_both(writes):
        for buf, addr, words in writes:
            model.write_words(buf, addr, words)
            await write_words(dut, Buf(buf).value, words, addr)

    async def run_both(entry, what):
        want = model.run(entry)
        status, pc, cycles = await run(dut, entry)
        assert (Status(status), pc) == want, f"{what}: got {Status(status).name} at {pc}, not {want}"
        return cycles

    for options in TRAINING_NETS:
        net = Network((12, 8, 4), batch=2 * CONFIG.cols + 1, learning_rate=0.1, **options)
        compiled = compile_network(net, CONFIG)
        model.program(list(compiled.words))
        await program(dut, list(compiled.words))
        await write_both(compiled.load_writes(compiled.initial_weights(rng)))
        await run_both(compiled.setup, "setup")
        for step in range(3):
            x = rng.normal(0, 1, (net.batch, net.sizes[0]))
            y = rng.integers(0, net.sizes[-1], net.batch)
            await write_both(compiled.batch_writes(x, y))
            cycles = await run_both(compiled.train, f"{options}, step {step}")
            dut._log.info("%s, training step %d: %d cycles", options, step, cycles)
            await compare_buffers(dut, model, f"{options}, after training step {step}")
        await run_both(compiled.count, f"{options}, saturation counts")
        await compare_buffers(dut, model, f"{options}, after reading the saturation counters")
    if CONFIG.data_depth:
        await _resident_epoch(dut, rng, model, write_both, run_both)


async def _resident_epoch(dut, rng, model, write_both, run_both) -> None:
    """A compiled resident epoch: samples in the data memory, two RUNs of its epoch entry (three steps,
    then one) from a sample list, as the model."""
    net = Network((5, 6, 3), batch=CONFIG.cols + 1, learning_rate=0.1, stats=True)
    samples = 9
    x = rng.integers(-8, 8, (samples, net.sizes[0])) / 4
    y = rng.integers(0, 3, samples)
    raw = Fixed(16, Formats.choose(net).x).quantize(x)
    compiled = compile_network(net, CONFIG, resident=Resident.of(raw, 3))
    model.program(list(compiled.words))
    await program(dut, list(compiled.words))
    await write_both(compiled.load_writes(compiled.initial_weights(rng)))
    await write_both(compiled.data_writes(x, y))
    await run_both(compiled.setup, "resident setup")
    for steps in (3, 1):
        await write_both(compiled.order_writes(rng.integers(0, samples, (steps, net.batch))))
        set_steps = [instruction(Opcode.SET, set={"reg": Reg.STEPS, "value": steps}), instruction(Opcode.END)]
        for target in (model, None):
            if target:
                target.program(set_steps, len(compiled.words))
            else:
                await program(dut, list(compiled.words) + set_steps)
        await run_both(len(compiled.words), "SET STEPS")
        cycles = await run_both(compiled.epoch, f"resident epoch of {steps} steps")
        dut._log.info("resident epoch of %d steps: %d cycles", steps, cycles)
        await compare_buffers(dut, model, f"after a resident epoch of {steps} steps")
