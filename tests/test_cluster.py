"""Data-parallel training across devices (``host/cluster.py``): the averaging, the device list, and
runs through Ray on golden models, reproducible bit for bit and resumed exactly."""

from __future__ import annotations

import numpy as np
import pytest

from bench import parallel
from host.checkpoint import Checkpoint
from host.cli import main
from host.cluster import average, devices


def test_average_rounds_to_the_nearest_word_ties_to_even():
    a = [np.array([[1, 2, -3, 7]]), np.array([[2, 2, -4, 8]])]
    b = [np.array([[2, 3, -4, 8]]), np.array([[2, 2, -4, 9]])]
    mean = average([a, b])
    assert [m.tolist() for m in mean] == [[[2, 2, -4, 8]], [[2, 2, -4, 8]]]      # 1.5 → 2, 2.5 → 2, -3.5 → -4
    assert average([a])[0].tolist() == a[0].tolist()


def test_parallel_map_keeps_the_order_over_local_processes(monkeypatch):
    monkeypatch.setattr(parallel, "ray_session", lambda: None)
    jobs = [[[np.array([k])], [np.array([k + 2])]] for k in range(5)]
    means = parallel.parallel_map(average, jobs, workers=2)
    assert [m[0].tolist() for m in means] == [[k + 1] for k in range(5)]


def test_the_devices_option():
    assert devices("model:3") == ["model"] * 3 and devices("virtual:1") == ["virtual"]
    assert devices("/dev/ttyUSB1, socket://127.0.0.1:5000") == ["/dev/ttyUSB1", "socket://127.0.0.1:5000"]
    for bad in ("model:0", "virtual:x", ","):
        with pytest.raises(ValueError, match="--devices"):
            devices(bad)


def _csv(path, n: int = 96):
    rng = np.random.default_rng(1)
    y = np.arange(n) % 3
    x = np.random.default_rng(11).normal(0, 1, (3, 4))[y] * 2 + rng.normal(0, 0.5, (n, 4))
    np.savetxt(path, np.column_stack([x, y]), delimiter=",")
    return path


def test_training_through_ray_is_reproducible_and_resumes_exactly(tmp_path, capsys):
    """One Ray session for every run (a second local Ray in another test would be a second cluster)."""
    pytest.importorskip("ray", reason="the cluster extra is not installed: pip install -e '.[cluster]'")
    data = _csv(tmp_path / "data.csv")
    assert main(["train", "--devices", "model,socket://127.0.0.1:1", "--layers", "4,6,3", "--batch", "8",
                 "--data", str(data), "--epochs", "1"]) == 2                  # first: Ray starts with 1 fpga
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device 1 (socket://127.0.0.1:1) failed" in err[0], err
    run = ["train", "--devices", "model:2", "--layers", "4,6,3", "--batch", "8", "--data", str(data)]

    def train(name: str, *extra: str) -> Checkpoint:
        capsys.readouterr()
        assert main([*run, "--checkpoint", str(tmp_path / name), *extra]) == 0, capsys.readouterr().err
        return Checkpoint.load(tmp_path / name)

    once, again = train("a.npz", "--epochs", "3"), train("b.npz", "--epochs", "3", "--no-reference")
    assert all(np.array_equal(x, y) for x, y in zip(once.weights, again.weights, strict=True))
    train("c.npz", "--epochs", "2", "--no-reference")
    resumed = train("c.npz", "--epochs", "3", "--resume", "--no-reference")
    assert all(np.array_equal(x, y) for x, y in zip(once.weights, resumed.weights, strict=True))
    assert resumed.history["test"] == once.history["test"]
    local = train("d.npz", "--epochs", "3", "--sync-every", "2", "--no-reference")
    assert not all(np.array_equal(x, y) for x, y in zip(once.weights, local.weights, strict=True))
    capsys.readouterr()
    assert main([*run, "--epochs", "1", "--sync-every", "2"]) == 0
    out = capsys.readouterr().out                # 72 training samples: 9 minibatches, 8 dealt to 2 devices
    assert " s, 2 averages)" in out and "device 1 (model):" in out, out
    assert "float32 reference (the same schedule)" in out
    assert main([*run, "--epochs", "1", "--stats", "--no-reference"]) == 0     # counted over both devices
    out = capsys.readouterr().out
    active = float(out.split("units active for ")[1].split(" %")[0])
    assert "layer 1: units active for" in out and 0 < active <= 100, out
    single = ["train", "--layers", "4,6,3", "--batch", "8", "--data", str(data), "--epochs", "2", "--profile",
              "--no-reference"]
    assert main([*single, "--target", "model"]) == 0       # one device through Ray trains as one alone
    alone = capsys.readouterr().out
    assert main([*single, "--devices", "model:1"]) == 0
    spread = capsys.readouterr().out

    def tables(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.startswith("  ")]
    assert "ΔW2" in alone and tables(alone) == tables(spread), (alone, spread)
    jobs = [[[np.array([k])], [np.array([k + 2])]] for k in range(5)]          # the lab's sweeps, on Ray
    assert [m[0].tolist() for m in parallel.parallel_map(average, jobs)] == [[k + 1] for k in range(5)]
