"""A noisy line: bytes flipped, dropped and doubled at a given rate, in-process or as a TCP relay.

:class:`LineNoise` damages a byte stream: each byte, with probability ``rate``, has one bit flipped, is
dropped, or is sent twice (a third of the damage each). :class:`NoisyRelay` puts it between the host
and a device reachable over TCP (the virtual board): the host opens the relay's ``socket://`` URL,
and every byte either way crosses a :class:`LineNoise` of its own. Both are seeded, so a stream of
the same bytes is damaged the same way.

    with VirtualBoard(config) as board, NoisyRelay(board, rate=1e-3) as url:
        driver = Driver.open(url, timeout=5.0)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter

import numpy as np

__all__ = ["LineNoise", "NoisyRelay"]

_KINDS = ("flip", "drop", "double")


class LineNoise:
    """Damage to a byte stream at ``rate`` per byte; ``damage`` counts what was done, by kind."""

    def __init__(self, rate: float, seed: int = 0):
        if not 0 <= rate < 1:
            raise ValueError(f"the byte error rate must lie in [0, 1), not {rate!r}")
        self.rate, self.rng, self.damage = rate, np.random.default_rng(seed), Counter()

    def __call__(self, data: bytes) -> bytes:
        hit = np.flatnonzero(self.rng.random(len(data)) < self.rate)
        if not hit.size:
            return data
        out, last = bytearray(), 0
        for i, kind in zip(hit, self.rng.integers(0, len(_KINDS), hit.size), strict=True):
            out += data[last:i]
            last = i + 1
            self.damage[_KINDS[kind]] += 1
            if _KINDS[kind] == "flip":
                out.append(data[i] ^ (1 << int(self.rng.integers(8))))
            elif _KINDS[kind] == "double":
                out += data[i:i + 1] * 2
        return bytes(out + data[last:])


class NoisyRelay:
    """A TCP relay on 127.0.0.1 to the device at ``target`` (``socket://host:port``), damaging the
    bytes each way with :class:`LineNoise` at ``rate`` (seeds ``seed`` and ``seed + 1``).

    A context manager: entering gives the relay's ``socket://`` URL, leaving closes every socket.
    ``damage`` counts what was done, by direction (``"to device"``, ``"to host"``) and kind.
    """

    def __init__(self, target: str, rate: float, seed: int = 0):
        host, _, port = target.removeprefix("socket://").rpartition(":")
        self.target = (host or "127.0.0.1", int(port))
        self.noise = {"to device": LineNoise(rate, seed), "to host": LineNoise(rate, seed + 1)}
        self._sockets: list[socket.socket] = []

    @property
    def damage(self) -> Counter:
        return Counter({(way, kind): n for way, noise in self.noise.items()
                        for kind, n in noise.damage.items()})

    def __enter__(self) -> str:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._sockets.append(self._server)
        threading.Thread(target=self._accept, daemon=True).start()
        return f"socket://127.0.0.1:{self._server.getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while True:
            try:
                host, _ = self._server.accept()
            except OSError:
                return                                   # closed
            device = socket.create_connection(self.target)
            self._sockets += [host, device]
            for source, sink, way in ((host, device, "to device"), (device, host, "to host")):
                threading.Thread(target=self._pump, args=(source, sink, self.noise[way]), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, noise: LineNoise) -> None:
        try:
            while data := source.recv(4096):
                sink.sendall(noise(data))
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
