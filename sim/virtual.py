"""The virtual board: the SoC gateware under Verilator, reachable over TCP like a board's serial port.

``python -m sim.virtual --port N`` builds (or reuses) the Verilator model of :class:`hw.soc.SoC`,
listens on ``127.0.0.1:N`` (``--port 0`` picks a free port) and prints ``socket://127.0.0.1:N`` when
ready, so ``serial.serial_for_url("socket://127.0.0.1:N")`` talks to it exactly as to a board. Bytes
from the socket enter the SoC's ``i`` stream and bytes from ``o`` go back; one client at a time, and
the board keeps running when a client leaves. It stops on Ctrl-C, SIGTERM, ``--timeout`` seconds, or
when the process that started it dies, and prints the simulated cycles per second on stderr.

The SoC sits in :class:`sim.virtual_top.VirtualTop`, which queues bytes in words of ``WORD_BYTES``
each way, so Python touches the simulator once per word, on a falling clock edge. Otherwise the clock
(a simulator-side clock) runs free until a reply word is ready, the SoC falls idle, the input queue
has room again, or ``POLL_CYCLES`` pass (to look at the socket); when every frame sent has been
answered, the simulation waits for the socket without advancing. :class:`VirtualBoard` runs all this
in a subprocess and yields the URL.

This module is also the cocotb test module the simulator loads (:func:`serve`).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw.config import DeviceConfig
from sim.runner import ROOT, tb_params

__all__ = ["VirtualBoard", "serve", "main"]

CLOCK_NS = 10
POLL_CYCLES = 4096
WORD_BYTES = 8
POLL_S = 0.05


def _listen(port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(POLL_S)
    return server


def _accept_loop(server: socket.socket, events: queue.Queue, stop: threading.Event) -> None:
    """Socket thread: one client at a time; queues ``("open" | "data" | "close", conn or bytes)``."""
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except (TimeoutError, OSError):
            continue
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        events.put(("open", conn))
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                events.put(("close", conn))
                break
            events.put(("data", data))


class _Stopper:
    """Stops the board on SIGINT/SIGTERM, after a wall-clock timeout, or when the parent process dies."""

    def __init__(self, timeout: float | None):
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.parent = os.getppid()
        self.signalled = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._signal)

    def _signal(self, signum, frame) -> None:
        self.signalled = True

    def __call__(self) -> bool:
        late = self.deadline is not None and time.monotonic() > self.deadline
        return self.signalled or late or os.getppid() != self.parent


class _Drive:
    """The top's inputs, each written to the simulator only when its value changes."""

    def __init__(self, dut):
        self.handles = {name: getattr(dut, name) for name in ("w_data", "w_count", "drop", "r_ack")}
        self.values = dict.fromkeys(self.handles, 0)
        for handle in self.handles.values():
            handle.value = 0

    def set(self, name: str, value: int) -> None:
        if self.values[name] != value:
            self.values[name] = value
            self.handles[name].value = value


@cocotb.test()
async def serve(dut):
    """Serve the SoC on a TCP port until stopped (parameters from :func:`main`)."""
    params = tb_params()
    stopped = _Stopper(params.get("timeout"))
    server = _listen(params.get("port", 0))
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"
    events: queue.Queue = queue.Queue()
    stop_thread = threading.Event()
    thread = threading.Thread(target=_accept_loop, args=(server, events, stop_thread), daemon=True)
    thread.start()

    width = len(dut.w_data) // 8
    drive = _Drive(dut)
    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    falling = FallingEdge(dut.clk)
    r_count, r_data, w_rdy, busy = dut.r_count, dut.r_data, dut.w_rdy, dut.busy
    wake = (RisingEdge(dut.r_rdy), FallingEdge(busy), Timer(POLL_CYCLES * CLOCK_NS, unit="ns"))
    await falling

    if params.get("ready_file"):
        Path(params["ready_file"]).write_text(url + "\n")
    print(url, flush=True)

    conn = None
    pending = bytearray()        # bytes from the client not yet queued for the SoC
    out = bytearray()            # bytes from the SoC not yet sent to the client
    drop = False                 # the client left: discard what it queued
    waited = 0.0                 # wall time spent waiting for the client, not simulating
    started = time.monotonic()
    start_cycles = get_sim_time("ns") // CLOCK_NS

    def flush():
        nonlocal conn
        if out and conn is not None:
            try:
                conn.sendall(out)
            except OSError:
                conn = None
        out.clear()

    def poll(block: bool) -> None:
        nonlocal conn, drop
        try:
            kind, item = events.get(timeout=POLL_S) if block else events.get_nowait()
        except queue.Empty:
            return
        while True:
            if kind == "open":
                conn = item
            elif kind == "close" and item is conn:
                conn = None
                pending.clear()
                drop = True
            elif kind == "data" and conn is not None:
                pending.extend(item)
            try:
                kind, item = events.get_nowait()
            except queue.Empty:
                return

    # Every access happens on a falling edge: outputs are settled and inputs count at the next rising one.
    while not stopped():
        poll(block=False)
        count = r_count.value.to_unsigned()
        if count:
            out += r_data.value.to_unsigned().to_bytes(width, "little")[:count]
            if out[-1] == 0:
                flush()
        drive.set("r_ack", int(bool(count)))
        drive.set("drop", int(drop))
        push = bytes(pending[:width]) if pending and not drop and w_rdy.value else b""
        if push:
            del pending[:width]
            drive.set("w_data", int.from_bytes(push, "little"))
        drive.set("w_count", len(push))
        if count or push or drop:
            drop = False
            await falling
            continue
        flush()
        if not pending and not busy.value:
            t = time.monotonic()
            poll(block=True)
            waited += time.monotonic() - t
            continue
        await (First(*wake, RisingEdge(dut.w_low)) if pending else First(*wake))
        await falling

    flush()
    stop_thread.set()
    server.close()
    if conn is not None:
        conn.close()
    seconds = time.monotonic() - started - waited
    cycles = get_sim_time("ns") // CLOCK_NS - start_cycles
    stats = {"cycles": int(cycles), "seconds": round(seconds, 3),
             "cycles_per_second": round(cycles / seconds) if seconds > 0 else 0}
    if params.get("stats_file"):
        Path(params["stats_file"]).write_text(json.dumps(stats))
    print(f"virtual board: {stats['cycles']} cycles in {stats['seconds']} s simulating, "
          f"{stats['cycles_per_second']} cycles/s", file=sys.stderr, flush=True)


class VirtualBoard:
    """The virtual board in a subprocess, as a context manager yielding its ``socket://`` URL.

    Parameters
    ----------
    config : DeviceConfig
        The device to simulate.
    port : int
        TCP port on 127.0.0.1; 0 picks a free one.
    timeout : float, optional
        Wall-clock seconds after which the board stops by itself.
    startup : float
        Seconds to wait for the board to listen, Verilator build included.

    Attributes
    ----------
    url : str
        ``socket://127.0.0.1:N`` once started.
    stats : dict
        After stopping: simulated ``cycles``, ``seconds`` spent simulating, ``cycles_per_second``.
    log : pathlib.Path
        The simulator's output (build and cocotb log).

    Raises
    ------
    RuntimeError
        If the board exits or does not listen within ``startup`` seconds; the message quotes its log.
    """

    def __init__(self, config: DeviceConfig | None = None, *, port: int = 0, timeout: float | None = None,
                 startup: float = 600.0):
        self.config = config or DeviceConfig()
        self.port, self.timeout, self.startup = port, timeout, startup
        self.url: str | None = None
        self.stats: dict = {}
        self._dir = Path(tempfile.mkdtemp(prefix="systolic-virtual-"))
        self.log = self._dir / "log"
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> str:
        ready, stats = self._dir / "url", self._dir / "stats.json"
        cmd = [sys.executable, "-m", "sim.virtual", "--port", str(self.port),
               "--config", json.dumps(asdict(self.config)), "--ready-file", str(ready),
               "--stats-file", str(stats)]
        if self.timeout is not None:
            cmd += ["--timeout", str(self.timeout)]
        with open(self.log, "w") as log:
            self._proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        deadline = time.monotonic() + self.startup
        while not (ready.exists() and ready.read_text().endswith("\n")):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                self.stop()
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"the virtual board did not start (exit code {code}); "
                                   f"its log {self.log} ends:\n{tail}")
            time.sleep(0.1)
        self.url = ready.read_text().strip()
        return self.url

    def stop(self) -> None:
        """Stop the simulator (SIGINT to its own process group) and read its statistics."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        stats = self._dir / "stats.json"
        if stats.exists():
            self.stats = json.loads(stats.read_text())
        self._proc = None


def _run(design, params: dict) -> None:
    """Simulate ``design`` under :func:`serve`, its C++ model built for speed."""
    from sim.runner import run

    run(design, "virtual", "sim.virtual", params, optimize=True)


def main(argv: list[str] | None = None) -> None:
    """Command line: build the SoC, serve it until Ctrl-C, print the URL and the cycles per second."""
    parser = argparse.ArgumentParser(prog="python -m sim.virtual", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--config", default="{}", help="DeviceConfig fields as JSON, e.g. '{\"rows\": 2}'")
    parser.add_argument("--timeout", type=float, help="stop after this many wall-clock seconds")
    parser.add_argument("--ready-file", help="write the URL to this file when listening")
    parser.add_argument("--stats-file", help="write the statistics as JSON to this file at exit")
    args = parser.parse_args(argv)
    try:
        config = DeviceConfig(**json.loads(args.config))
    except (TypeError, ValueError) as error:
        parser.error(f"--config {args.config!r}: {error}")
    if not 0 <= args.port <= 0xFFFF:
        parser.error(f"--port {args.port} is not a TCP port")

    from sim.virtual_top import VirtualTop

    signal.signal(signal.SIGINT, lambda signum, frame: None)   # the simulator stops; wait for it
    _run(VirtualTop(config, WORD_BYTES),
         {"config": asdict(config), "port": args.port, "timeout": args.timeout,
          "ready_file": args.ready_file, "stats_file": args.stats_file})


if __name__ == "__main__":
    main()
