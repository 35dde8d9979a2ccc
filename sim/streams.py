"""cocotb helpers for valid/ready streams: bit packing and a driver-monitor loop with random stalls.

Amaranth exports a stream port ``x`` as ``x__valid``, ``x__ready`` and one flat ``x__payload``
vector; fields are packed from the least significant bit in declaration order, and array elements
from element 0 up. Payloads are therefore handled as Python integers, one write per cycle.
"""

from __future__ import annotations

import random

import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer

__all__ = ["pack", "unpack", "run_stream", "transfer_cycles", "serial_send", "serial_receive"]


def pack(fields: list[tuple[np.ndarray, int]]) -> list[int]:
    """Pack per-beat fields into payload integers.

    ``fields`` lists ``(values, width)`` in declaration order; ``values`` is ``(T,)`` for a scalar
    field or ``(T, n)`` for an array of ``n`` elements.
    """
    columns = []
    for values, width in fields:
        values = np.asarray(values, dtype=np.int64)
        columns += [(values if values.ndim == 1 else values[:, e], width)
                    for e in range(1 if values.ndim == 1 else values.shape[1])]
    words = []
    for t in range(len(columns[0][0])):
        word, offset = 0, 0
        for values, width in columns:
            word |= (int(values[t]) & ((1 << width) - 1)) << offset
            offset += width
        words.append(word)
    return words


def unpack(words: list[int], fields: list[tuple[int, int, bool]]) -> list[np.ndarray]:
    """Unpack payload integers: ``fields`` lists ``(count, width, signed)``; returns ``(T, count)``."""
    out, offset = [], 0
    for count, width, signed in fields:
        column = np.zeros((len(words), count), dtype=np.int64)
        for e in range(count):
            shift = offset + e * width
            for t, word in enumerate(words):
                v = (word >> shift) & ((1 << width) - 1)
                column[t, e] = v - (1 << width) if signed and v >> (width - 1) else v
        out.append(column)
        offset += count * width
    return out


async def run_stream(dut, words: list[int], n_out: int, *, rng: random.Random,
                     p_valid: float = 1.0, p_ready: float = 1.0, timeout: int = 10000,
                     settle: int = 0, i: str = "i", o: str = "o") -> tuple[list[int], int]:
    """Send ``words`` into stream ``i`` and collect ``n_out`` payloads from stream ``o``.

    Each cycle ``i.valid`` is offered with probability ``p_valid`` (random junk on ``i.payload``
    otherwise) and ``o.ready`` with ``p_ready`` (seeded by ``rng``). Returns the collected payloads
    and the number of cycles from the first input transfer to the last output transfer, both
    included (0 when either stream moved nothing, as when no reply is expected). Fails if nothing
    moves for ``timeout`` cycles (a hang), or if ``o`` offers another beat within ``settle`` cycles
    after the last one expected.
    """
    clk = dut.clk
    in_valid, in_ready = getattr(dut, f"{i}__valid"), getattr(dut, f"{i}__ready")
    in_payload = getattr(dut, f"{i}__payload")
    out_valid, out_ready = getattr(dut, f"{o}__valid"), getattr(dut, f"{o}__ready")
    out_payload = getattr(dut, f"{o}__payload")
    sent, received, cycle, idle = 0, [], 0, 0
    first_in = last_out = None
    while sent < len(words) or len(received) < n_out:
        await RisingEdge(clk)
        offer = sent < len(words) and rng.random() < p_valid
        in_valid.value = int(offer)
        # Without valid the payload means nothing: junk there must not reach a result.
        in_payload.value = words[sent] if offer else rng.getrandbits(len(in_payload))
        out_ready.value = int(rng.random() < p_ready)
        await ReadOnly()
        moved = False
        if offer and in_ready.value:
            first_in = cycle if first_in is None else first_in
            sent, moved = sent + 1, True
        if out_valid.value and out_ready.value:
            if len(received) >= n_out:
                raise AssertionError(f"stream {o} gave more than the {n_out} beats expected")
            received.append(int(out_payload.value))
            last_out, moved = cycle, True
        idle = 0 if moved else idle + 1
        if idle > timeout:
            raise AssertionError(f"no transfer for {timeout} cycles: sent {sent}/{len(words)}, "
                                 f"received {len(received)}/{n_out}")
        cycle += 1
    await RisingEdge(clk)
    in_valid.value = 0
    out_ready.value = 1
    for _ in range(settle):
        await ReadOnly()
        if out_valid.value:
            raise AssertionError(f"stream {o} gave a beat beyond the {n_out} expected")
        await RisingEdge(clk)
    out_ready.value = 0
    moved_both = first_in is not None and last_out is not None
    return received, last_out - first_in + 1 if moved_both else 0


async def transfer_cycles(dut, cycles: int, payload) -> tuple[list[int], list[int]]:
    """Over ``cycles`` cycles from now, with ``o`` always ready, offer on ``i`` the beat
    ``payload(n)`` once ``n`` beats have transferred (``None``: no beat); returns the cycles in which
    ``i`` transferred and those in which ``o`` was valid."""
    dut.o__ready.value = 1
    taken, outputs = [], []
    for cycle in range(cycles):
        word = payload(len(taken))
        dut.i__valid.value = int(word is not None)
        if word is not None:
            dut.i__payload.value = word
        await ReadOnly()
        if dut.i__valid.value == 1 and dut.i__ready.value == 1:
            taken.append(cycle)
        if dut.o__valid.value == 1:
            outputs.append(cycle)
        await RisingEdge(dut.clk)
    return taken, outputs


async def serial_send(pin, wire: bytes, bit_ps: int) -> None:
    """Drive ``wire`` on a UART line, 8N1, one bit per ``bit_ps`` picoseconds."""
    await Timer(3_000, unit="ps")                          # edges off the clock edges
    for byte in wire:
        for level in (0, *((byte >> n) & 1 for n in range(8)), 1):
            pin.value = level
            await Timer(bit_ps, unit="ps")


async def serial_receive(pin, bit_ps: int, out: bytearray, frames: int | None = None) -> None:
    """Append the 8N1 bytes seen on ``pin`` to ``out``; stop after ``frames`` 0x00 delimiters if given."""
    while frames is None or out.count(0) < frames:
        await FallingEdge(pin)
        await Timer(bit_ps // 2, unit="ps")
        byte = 0
        for n in range(8):
            await Timer(bit_ps, unit="ps")
            byte |= int(pin.value) << n
        await Timer(bit_ps, unit="ps")
        assert pin.value == 1, "the transmitter sent a low stop bit"
        out.append(byte)
