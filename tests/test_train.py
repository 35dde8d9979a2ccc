"""Training on a device through the driver: resume, bit-identical targets, the command line's errors."""

import numpy as np
import pytest

from host.checkpoint import Checkpoint
from host.cli import main
from host.compiler import Formats, Network
from host.data import Dataset
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig
from hw.numerics import Act

SMALL = DeviceConfig(rows=2, cols=2, depth=256, imem=96, k_max=64, max_rows=4, max_payload=256)
NET = Network((8, 6, 3), hidden=Act.TANH, batch=4, learning_rate=0.2)
PRELU = Network((8, 6, 3), hidden=Act.LEAKY_RELU, learn_slope=True, slope=0.25, stats=True, weight_bits=12,
                batch=4, learning_rate=0.2)


def _data(n: int = 40) -> Dataset:
    rng = np.random.default_rng(7)
    centres = rng.normal(0, 1, (3, 8))
    y = rng.integers(0, 3, n)
    return Dataset((centres[y] + rng.normal(0, 0.3, (n, 8))).astype(np.float32), y, 3)


def _train(driver, epochs, rng, trainer=None, first=1, net=NET):
    trainer = trainer or Trainer(driver, net, seed=3, x=_data().x)
    if first == 1:
        trainer.load(trainer.initial_weights())
    for epoch in range(first, epochs + 1):
        trainer.train_epoch(_data(), rng, epoch)
    return trainer


@pytest.mark.parametrize("net", [NET, PRELU], ids=["tanh", "prelu"])
def test_resumed_training_ends_with_the_same_weights(tmp_path, net):
    with Driver.open("model", config=SMALL) as driver:
        straight = _train(driver, 3, np.random.default_rng(3), net=net).weights()
    path = tmp_path / "run.npz"
    with Driver.open("model", config=SMALL) as driver:
        rng = np.random.default_rng(3)
        trainer = _train(driver, 1, rng, net=net)
        Checkpoint(net, trainer.weights(), 1, 3, rng.bit_generator.state,
                   trainer.program.formats).save(path)
    state = Checkpoint.load(path)                  # a new process, a freshly reset device
    with Driver.open("model", config=SMALL) as driver:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.rng_state
        trainer = Trainer(driver, state.network, state.seed, state.formats)
        trainer.load(state.weights)
        resumed = _train(driver, 3, rng, trainer, first=state.epoch + 1).weights()
    for a, b in zip(straight, resumed, strict=True):
        assert np.array_equal(a, b)
    initial = Trainer(Driver.open("model", config=SMALL), net, 3).initial_weights()
    assert len(straight) == len(initial) == 2 + net.learn_slope
    for before, after in zip(initial, straight, strict=True):
        assert not np.array_equal(before, after), "training changed nothing"


def test_checkpoint_is_replaced_atomically(tmp_path):
    path = tmp_path / "run.npz"
    w = [np.arange(6).reshape(2, 3), np.arange(4).reshape(2, 2)]
    formats = Formats.choose(NET)
    Checkpoint(NET, w, 1, 0, {"a": 1}, formats).save(path)
    Checkpoint(NET, [w[0] + 1, w[1]], 2, 0, {"a": 2}, formats).save(path)
    state = Checkpoint.load(path)
    assert state.epoch == 2 and np.array_equal(state.weights[0], w[0] + 1)
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"], "a temporary file was left behind"


@pytest.mark.sim
def test_virtual_board_and_model_train_bit_identically():
    from sim.virtual import VirtualBoard

    def run(driver, net):
        trainer = Trainer(driver, net, seed=3)
        trainer.load(trainer.initial_weights())
        results = [trainer.train_epoch(_data(), np.random.default_rng(5), epoch) for epoch in (1, 2)]
        return trainer.weights(), results

    with Driver.open("model", config=SMALL) as driver:
        on_model = [run(driver, net) for net in (NET, PRELU)]
    with VirtualBoard(SMALL) as url, Driver.open(url, timeout=30.0) as driver:
        on_board = [run(driver, net) for net in (NET, PRELU)]
    for (weights_a, results_a), (weights_b, results_b) in zip(on_model, on_board, strict=True):
        for a, b in zip(weights_a, weights_b, strict=True):
            assert np.array_equal(a, b)
        for a, b in zip(results_a, results_b, strict=True):
            assert (a.loss, a.accuracy) == (b.loss, b.accuracy)
            for field in ("active", "activations"):
                assert (getattr(a, field) is None) == (getattr(b, field) is None)
                for x, y in zip(getattr(a, field) or [], getattr(b, field) or [], strict=True):
                    assert np.array_equal(x, y)
    active = on_board[1][1][-1].active   # PRELU's neuron counters, read from the gateware
    assert active is not None and 0 < active[0].mean() < 1


@pytest.mark.parametrize("argv, message", [
    (["train", "--target", "model", "--data", "/nonexistent.csv"], "nonexistent"),
    (["train", "--target", "model", "--layers", "64,x,10"], "--layers"),
    (["train", "--target", "model", "--activation", "softplus"], "--activation"),
    (["train", "--target", "model", "--layers", "64,4000,10"], "shrink"),
    (["info", "--port", "/dev/ttyDOESNOTEXIST"], "ttyDOESNOTEXIST"),
    (["train", "--target", "model", "--resume"], "--checkpoint"),
    (["eval", "--target", "model", "--checkpoint", "/nonexistent.npz"], "no checkpoint"),
])
def test_user_mistakes_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("systolic: error:") and message in err[-1], err


def test_bad_data_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,0\n4,5,nan,1\n")
    assert main(["train", "--target", "model", "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("systolic: error:"), err


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    """A run killed after its first checkpoint, resumed, ends where an uninterrupted run ends."""
    import subprocess
    import sys
    import time

    common = [sys.executable, "-m", "host.cli", "train", "--target", "model", "--epochs", "4",
              "--no-reference", "--seed", "5"]
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    subprocess.run([*common, "--checkpoint", str(whole)], check=True, capture_output=True)
    run = subprocess.Popen([*common, "--checkpoint", str(part)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not part.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    run.kill()
    run.wait()
    killed_at = Checkpoint.load(part).epoch
    assert killed_at < 4, "the run finished before it could be killed: nothing was tested"
    subprocess.run([*common, "--checkpoint", str(part), "--resume"], check=True, capture_output=True)
    a, b = Checkpoint.load(whole), Checkpoint.load(part)
    assert a.epoch == b.epoch == 4
    for wa, wb in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(wa, wb)
    assert a.history["loss"] == b.history["loss"]
