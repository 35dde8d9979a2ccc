"""Device figures measured on the virtual board: training-step cycles, array efficiency, link bytes.

``python -m sim.bench`` compiles the digits MLP (64-32-10, ReLU, softmax, minibatch 32) for the
default :class:`hw.config.DeviceConfig`, loads it into the virtual board (the real gateware under
Verilator) over pyserial, runs training steps on random minibatches (cycle counts do not depend on
the data) and prints:

- RTL cycles per training step (``RunReply.cycles``), against the ideal of ``R·C`` MACs per cycle
  for the step's GEMMs: the array efficiency inside a training program;
- link bytes per sample each way for a training step (``WRITE`` of ``X`` and ``Y`` and one ``RUN``),
  against the input and label bytes;
- the virtual board's simulated cycles per second on this machine.
"""

from __future__ import annotations

import time

import numpy as np
import serial

from host.compiler import Network, compile_network
from hw.config import DeviceConfig
from hw.frame import FrameType, decode_frame, encode_frame
from hw.isa import Command, ProgramArgs, RunArgs, RunReply, Status, WriteArgs, decode, encode
from sim.virtual import VirtualBoard

__all__ = ["gemm_macs", "main"]


def gemm_macs(sizes: tuple[int, ...], batch: int) -> int:
    """MACs of one training step: forward, back-propagation to every hidden layer, weight gradients."""
    macs = 0
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        macs += n_out * (n_in + 1) * batch          # Z = W·[A; 1]
        macs += n_out * batch * (n_in + 1)          # dW = dZ·[A; 1]ᵀ, bias column included
        if layer:
            macs += n_in * n_out * batch            # dZ of the layer below = Wᵀ·dZ (bias row skipped)
    return macs


class _Link:
    """Frames over a pyserial port, counting bytes each way."""

    def __init__(self, port: serial.SerialBase):
        self.port, self.seq, self.sent, self.received = port, 0, 0, 0

    def command(self, kind: Command, payload: bytes) -> bytes:
        self.seq = (self.seq + 1) & 0xFF
        wire = encode_frame(kind, self.seq, payload)
        self.port.write(wire)
        reply = self.port.read_until(b"\x00")
        self.sent, self.received = self.sent + len(wire), self.received + len(reply)
        frame = decode_frame(reply[:-1])
        if frame.type == FrameType.ERROR:
            raise RuntimeError(f"the device refused {kind.name}: {frame.payload.hex()}")
        return frame.payload

    def write(self, buf, addr: int, words, max_payload: int) -> None:
        words = np.asarray(words, dtype=np.int64)
        per_frame = (max_payload - len(encode(WriteArgs(), {"buf": 0, "addr": 0}))) // 2
        for start in range(0, len(words), per_frame):
            data = (words[start:start + per_frame] & 0xFFFF).astype("<u2").tobytes()
            self.command(Command.WRITE, encode(WriteArgs(), {"buf": buf, "addr": addr + start}) + data)

    def run(self, entry: int, output=(0, 0, 0)) -> tuple[Status, int]:
        buf, addr, count = output
        reply = self.command(Command.RUN, encode(RunArgs(), {"entry": entry, "buf": buf, "addr": addr,
                                                             "count": count}))
        head = decode(RunReply(), reply)
        return Status(head.status), head.cycles


def main(steps: int = 4) -> None:
    config = DeviceConfig()
    net = Network((64, 32, 10), batch=32, learning_rate=0.1)
    compiled = compile_network(net, config)
    rng = np.random.default_rng(0)
    board = VirtualBoard(config)
    with board as url:
        link = _Link(serial.serial_for_url(url, timeout=60))
        per_frame = (config.max_payload - 2) // 8
        words = list(compiled.words)
        for start in range(0, len(words), per_frame):
            data = b"".join(w.to_bytes(8, "little") for w in words[start:start + per_frame])
            link.command(Command.PROGRAM, encode(ProgramArgs(), {"addr": start}) + data)
        for buf, addr, data in compiled.load_writes(compiled.initial_weights(rng)):
            link.write(buf, addr, data, config.max_payload)
        link.run(compiled.setup)
        link.sent = link.received = 0
        cycles, began = [], time.monotonic()
        for _ in range(steps):
            x = rng.normal(0, 1, (net.batch, net.sizes[0]))
            for buf, addr, data in compiled.batch_writes(x, rng.integers(0, 10, net.batch)):
                link.write(buf, addr, data, config.max_payload)
            status, step_cycles = link.run(compiled.train, compiled.output)
            assert status == Status.OK, f"the training step stopped with {status.name}"
            cycles.append(step_cycles)
        wall = time.monotonic() - began
    ideal = gemm_macs(net.sizes, net.batch) / (config.rows * config.cols)
    samples = steps * net.batch
    data_bytes = 2 * (net.sizes[0] + net.sizes[-1])
    print(f"digits MLP {'-'.join(map(str, net.sizes))}, minibatch {net.batch}, "
          f"{config.rows}x{config.cols} array, {config.clk_hz / 1e6:.0f} MHz, {config.baud} baud")
    print(f"training step: {cycles[-1]} cycles; GEMM MACs at {config.rows * config.cols} per cycle: "
          f"{ideal:.0f} cycles, efficiency {100 * ideal / cycles[-1]:.1f} %")
    print(f"link per sample: {link.sent / samples:.1f} bytes in, {link.received / samples:.1f} out, "
          f"{(link.sent + link.received) / samples:.1f} in all against {data_bytes} bytes of inputs and "
          f"one-hot labels ({(link.sent + link.received) / samples / data_bytes:.3f}×)")
    print(f"time on the link per step at {config.baud} baud: "
          f"{10 * (link.sent + link.received) / steps / config.baud * 1e3:.2f} ms; compute "
          f"{cycles[-1] / config.clk_hz * 1e3:.3f} ms")
    print(f"virtual board: {board.stats.get('cycles_per_second', float('nan')):,.0f} simulated cycles/s "
          f"over the session; {steps} steps in {wall:.1f} s of wall time")


if __name__ == "__main__":
    main()
