"""Training on a device through the driver: resume, bit-identical targets, the command line's errors,
user data of any range from training to ``eval``."""

import dataclasses
import re

import numpy as np
import pytest

from host.checkpoint import Checkpoint
from host.cli import main
from host.compiler import Formats, Network, deep_enough
from host.data import Dataset, Holdout, Standardize
from host.driver import Driver
from host.train import Trainer
from hw.config import DeviceConfig
from hw.numerics import Act

SMALL = DeviceConfig(rows=2, cols=2, depth=256, imem=96, k_max=64, max_rows=4, max_payload=256,
                     clk_hz=12_000_000, baud=3_000_000)   # as tests/test_virtual.py: one Verilator build
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


def _weights(net: Network) -> list[np.ndarray]:
    """Raw parameters of the shapes of ``net``'s weights."""
    pairs = zip(net.sizes[:-1], net.sizes[1:], strict=True)
    return [np.arange(n * (m + 1)).reshape(n, m + 1) for m, n in pairs]


RNG = np.random.default_rng(0).bit_generator.state


def test_checkpoint_is_replaced_atomically(tmp_path):
    path = tmp_path / "run.npz"
    w = _weights(NET)
    formats = Formats.choose(NET)
    Checkpoint(NET, w, 1, 0, RNG, formats).save(path)
    Checkpoint(NET, [w[0] + 1, w[1]], 2, 0, RNG, formats).save(path)
    state = Checkpoint.load(path)
    assert state.epoch == 2 and np.array_equal(state.weights[0], w[0] + 1)
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"], "a temporary file was left behind"


def test_checkpoint_keeps_the_input_transform_and_the_holdout(tmp_path):
    path = tmp_path / "run.npz"
    w = _weights(NET)
    transform = Standardize(np.linspace(-3e4, 5e3, 8), np.linspace(0.1, 7e3, 8) / 3)
    holdout = Holdout(str(tmp_path / "d.csv"), "0" * 64, 0.3, 7)
    Checkpoint(NET, w, 1, 0, RNG, Formats.choose(NET), {}, transform, holdout).save(path)
    state = Checkpoint.load(path)
    assert np.array_equal(state.transform.mean, transform.mean)
    assert np.array_equal(state.transform.scale, transform.scale)
    assert state.holdout == holdout
    Checkpoint(NET, w, 1, 0, RNG, Formats.choose(NET)).save(path)    # the digits: neither
    state = Checkpoint.load(path)
    assert state.transform is None and state.holdout is None


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


def test_the_device_is_the_boards_or_deep_enough_for_the_network(capsys):
    """``--board`` picks a board's device; without it the default device's buffers grow with the network."""
    digits = Network((64, 32, 10))
    assert deep_enough(digits, DeviceConfig()) == DeviceConfig()
    wide = dataclasses.replace(digits, batch=128)      # A0, A1, D1 and A2: 4,480 words per bank
    assert deep_enough(wide, DeviceConfig()).depth == 8192
    assert deep_enough(wide, DeviceConfig(rows=2, cols=2)).depth == 16384   # two banks: twice as deep
    assert main(["info", "--target", "model", "--board", "ulx3s-85f"]) == 0
    assert re.search(r"^rows +8$", capsys.readouterr().out, re.M)
    assert main(["train", "--target", "model", "--board", "ulx3s-12f", "--epochs", "1"]) == 2
    assert "its 1024 words per bank" in capsys.readouterr().err
    assert main(["train", "--target", "model", "--batch", "128", "--epochs", "1", "--no-reference"]) == 0
    captured = capsys.readouterr()
    assert "deepened to 8192 words per bank" in captured.err and "test accuracy on the device" in captured.out


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


# -- user data of any range, from training to eval ---------------------------------------------------

def _raw_csv(path, n: int, seed: int) -> None:
    """Three classes in four features, in the thousands and offset far from zero, with a header."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(11).normal(0, 1, (3, 4))
    y = np.arange(n) % 3
    x = (centres[y] + rng.normal(0, 0.6, (n, 4))) * [1000, 3000, 200, 5000] + [500, -20000, 7000, 90000]
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,c,d,label", comments="")


TRAIN = ["train", "--target", "model", "--layers", "4,8,3", "--batch", "8", "--epochs", "8"]


def _figure(out: str, label: str) -> float:
    """The percentage printed after ``label``."""
    return float(re.search(rf"^{re.escape(label)}: ([0-9.]+) %", out, re.MULTILINE).group(1))


def _train_and_eval(capsys, train: list[str], checkpoint, eval_: list[str] = ()) -> tuple[float, float, str]:
    """Train, then evaluate the checkpoint: the device's test accuracy (after checking it against the
    float32 reference's), and the output of eval."""
    assert main([*TRAIN, *train, "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    device = _figure(out, "test accuracy on the device")
    assert device > 80, out                                              # it learned
    assert abs(device - _figure(out, "test accuracy of the float32 reference")) <= 2, out
    assert main(["eval", "--target", "model", "--checkpoint", str(checkpoint), *eval_]) == 0
    evaluated = capsys.readouterr().out
    return device, _figure(evaluated, "accuracy"), evaluated


def test_raw_features_train_and_eval_holds_out_the_same_rows(tmp_path, capsys):
    data, checkpoint = tmp_path / "raw.csv", tmp_path / "run.npz"
    _raw_csv(data, 160, seed=1)
    device, evaluated, out = _train_and_eval(capsys, ["--data", str(data)], checkpoint)
    assert evaluated == device and "of 40 samples" in out            # 25 % held out
    state = Checkpoint.load(checkpoint)
    assert state.holdout == Holdout.of(data, 0.25, 0)
    assert np.abs(state.transform.mean).max() > 1000                  # fitted on the raw features
    assert state.formats.x >= 11, "standardised inputs keep their fraction bits"


def test_a_test_file_replaces_the_split(tmp_path, capsys):
    data, test, checkpoint = tmp_path / "raw.csv", tmp_path / "test.csv", tmp_path / "run.npz"
    _raw_csv(data, 120, seed=1)
    _raw_csv(test, 45, seed=2)
    device, evaluated, out = _train_and_eval(capsys, ["--data", str(data), "--test", str(test)], checkpoint)
    assert evaluated == device and "of 45 samples" in out
    assert main(["eval", "--target", "model", "--checkpoint", str(checkpoint), "--data", str(test)]) == 0
    assert _figure(capsys.readouterr().out, "accuracy") == device      # --data: transformed alike


def test_eval_says_when_the_data_file_moved_or_changed(tmp_path, capsys):
    data, checkpoint = tmp_path / "raw.csv", tmp_path / "run.npz"
    _raw_csv(data, 60, seed=1)
    assert main([*TRAIN, "--epochs", "1", "--no-reference", "--data", str(data),
                 "--checkpoint", str(checkpoint)]) == 0
    capsys.readouterr()
    _raw_csv(data, 60, seed=2)
    for what in ("changed", "gone"):
        assert main(["eval", "--target", "model", "--checkpoint", str(checkpoint)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and what in err[0] and "--data" in err[0], err
        data.unlink(missing_ok=True)


@pytest.mark.parametrize("extra, message", [
    (["--test", "{narrow}"], "3 features per sample, the training data has 4"),
    (["--test-fraction", "1.5"], "strictly between 0 and 1, not 1.5"),
    (["--test-fraction", "0"], "strictly between 0 and 1, not 0"),
    (["--test", "{data}", "--test-fraction", "0.5"], "not both"),
    (["--layers", "3,8,3"], "4 features per sample, the network takes 3"),
], ids=["test-features", "fraction-above-1", "fraction-0", "test-and-fraction", "layers"])
def test_bad_test_sets_are_one_line(tmp_path, capsys, extra, message):
    data, narrow = tmp_path / "raw.csv", tmp_path / "narrow.csv"
    _raw_csv(data, 60, seed=1)
    narrow.write_text("1,2,3,0\n4,5,6,1\n7,8,9,2\n")
    extra = [a.format(data=data, narrow=narrow) for a in extra]
    assert main([*TRAIN, "--data", str(data), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("systolic: error:") and message in err[0], err


def test_test_options_need_data_and_a_class_needs_two_samples(tmp_path, capsys):
    lonely = tmp_path / "lonely.csv"
    lonely.write_text("".join(f"{i},{i % 3 if i < 8 else 3}\n" for i in range(9)))
    for argv, message in ([[*TRAIN, "--test-fraction", "0.5"], "give --data FILE"],
                          [[*TRAIN, "--data", str(lonely)], "class 3 has only 1 sample"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_plot_writes_every_png(tmp_path, capsys):
    data, folder = tmp_path / "raw.csv", tmp_path / "plots"
    _raw_csv(data, 60, seed=1)
    assert main([*TRAIN, "--epochs", "1", "--no-reference", "--data", str(data), "--stats", "--profile",
                 "--plot", str(folder)]) == 0
    names = {"curves.png", "confusion.png", "units.png", "profile.png"}
    assert {p.name for p in folder.iterdir()} == names
    out = capsys.readouterr().out
    assert all(str(folder / name) in out for name in names), out
    assert all((folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in names)
