"""Training over a noisy line (``sim/noisy.py``): the driver shrinks its frames after damage and grows
them back, and a run through the noise ends bit-identical to a clean one."""

import numpy as np
import pytest

from host.compiler import Network
from host.data import Dataset
from host.driver import GROW_AFTER, MIN_FRAME, Driver, ModelTransport
from host.train import Trainer
from hw.config import DeviceConfig
from hw.numerics import Act
from sim.noisy import LineNoise, NoisyRelay

SMALL = DeviceConfig(rows=2, cols=2, depth=256, imem=96, k_max=64, max_rows=4, max_payload=256,
                     clk_hz=12_000_000, baud=3_000_000)   # as tests/test_virtual.py: one Verilator build
NET = Network((8, 6, 3), hidden=Act.TANH, batch=4, learning_rate=0.2)
WIDE = Network((64, 32, 10), batch=32)                    # a minibatch of 4 KB: 1 KB frames


def _data(features: int, n: int) -> Dataset:
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 1, (3, features))
    y = rng.integers(0, 3, n)
    return Dataset((centres[y] + rng.normal(0, 0.3, (n, features))).astype(np.float32), y, 3)


def _train(driver: Driver, net: Network, data: Dataset, epochs: int = 2) -> list[np.ndarray]:
    trainer = Trainer(driver, net, seed=3, x=data.x)
    trainer.load(trainer.initial_weights())
    rng = np.random.default_rng(5)
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(data, rng, epoch)
    return trainer.weights()


class NoisyModel:
    """The golden model behind a :class:`LineNoise` each way, byte by byte as a serial line would be."""

    def __init__(self, config: DeviceConfig, rate: float):
        self.inner, self.name = ModelTransport(config), "a noisy golden model"
        self.out, self.back, self._pending = LineNoise(rate, 1), LineNoise(rate, 2), b""

    def write(self, data: bytes) -> None:
        self.inner.write(self.out(data))
        while (frame := self.inner.read_frame(0)) is not None:
            self._pending += self.back(frame + b"\0")

    def read_frame(self, timeout: float) -> bytes | None:
        while b"\0" in self._pending:
            frame, _, self._pending = self._pending.partition(b"\0")
            if frame:
                return frame
        return None

    def close(self) -> None:
        pass


def test_line_noise_flips_drops_and_doubles_at_its_rate():
    noise = LineNoise(0.01, seed=4)
    data = bytes(range(256)) * 400
    damaged = noise(data)
    assert set(noise.damage) == {"flip", "drop", "double"} and 800 < sum(noise.damage.values()) < 1250
    assert len(damaged) - len(data) == noise.damage["double"] - noise.damage["drop"]
    assert LineNoise(0.01, seed=4)(data) == damaged and LineNoise(0.0)(data) == data
    with pytest.raises(ValueError, match="byte error rate"):
        LineNoise(1.5)


def test_frames_shrink_on_a_noisy_line_and_grow_back_on_a_clean_one():
    """At 3·10⁻³ per byte a 1 KB frame survives one time in twenty: six resends of it fail together
    three times in four, so training gets through only in smaller frames, and ends as on a clean line."""
    data = _data(64, 96)
    with Driver.open("model", config=DeviceConfig()) as clean:
        expected = _train(clean, WIDE, data)
    line = NoisyModel(DeviceConfig(), 3e-3)
    driver = Driver(line, timeout=0.01)
    weights = _train(driver, WIDE, data)
    assert all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True))
    assert driver.stats.resplit > 0 and driver.stats.retries > 0
    assert MIN_FRAME <= driver.frame < DeviceConfig().max_payload
    line.out.rate = line.back.rate = 0.0                # the line is clean again
    driver.reset_stats()
    for _ in range((DeviceConfig().max_payload // MIN_FRAME).bit_length() * GROW_AFTER):   # 32 B → 1 KB
        driver.read(0, 0, 16)
    assert driver.frame == DeviceConfig().max_payload
    assert driver.stats.resplit == driver.stats.retries == 0


@pytest.mark.sim
def test_training_through_a_noisy_relay_to_the_virtual_board_is_exact():
    """Bytes flipped, dropped and doubled at 10⁻³ each way between the host and the virtual board."""
    from sim.virtual import VirtualBoard

    data = _data(8, 40)
    with Driver.open("model", config=SMALL) as clean:
        expected = _train(clean, NET, data)
    with VirtualBoard(SMALL) as board:
        relay = NoisyRelay(board, rate=1e-3)
        with relay as url, Driver.open(url, timeout=5.0) as driver:
            weights = _train(driver, NET, data)
    assert all(np.array_equal(a, b) for a, b in zip(weights, expected, strict=True))
    assert {kind for _, kind in relay.damage} == {"flip", "drop", "double"}, relay.damage
