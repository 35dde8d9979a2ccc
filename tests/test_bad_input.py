"""Bad input, fuzzed: every ``systolic`` command ends a bad input with exit code 2 and one line.

The suite feeds 63 distinct bad inputs, in four families (hypothesis draws new truncations and
random bytes on every run):

- damaged checkpoints (23) to ``eval``, ``infer``, ``export`` and ``train --resume``: truncated at 5
  places and anywhere, random bytes, a directory, a text file, and archives without ``meta``, with
  ``meta`` not JSON, with a network that cannot be, with weights missing, with an extra array, with float
  weights holding NaN, with weights of the wrong shape, with words past 16 bits, with formats of
  another depth, with a damaged generator state, with a negative epoch, with a history that is not
  lists, with object arrays; and a network too big for the device;
- damaged data files (22) to ``train``, ``eval`` and ``infer``: empty, a header only, ragged, a word
  among the numbers, NaN, infinity, one column, a negative label, a fractional label, labels past
  the classes, three features, seven columns, not UTF-8, an NPZ that is text, one without ``x``,
  one of objects, an unknown suffix, a missing file, a directory, random bytes as CSV and as NPZ,
  and a file without labels to ``eval``;
- conflicting options (15): ``--resume`` with another ``--layers``, ``--batch``, ``--activation``,
  ``--weight-bits``, ``--lr``, ``--seed``, ``--stats`` or ``--output``, or with ``--epochs`` it
  already finished; ``--target model`` with ``--port``; ``--resume`` without ``--checkpoint``; a
  ``--checkpoint`` path that holds another file; ``--resident`` with ``--profile``, with
  ``--devices``, or on a board without a data memory;
- devices that misbehave (3): a peer that answers garbage, one that never answers, one that hangs up
  mid-frame.

After each, the files the command was given are unchanged. A file without labels is not bad input
for ``infer``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.cli import main

LAYERS = ["--layers", "4,6,3", "--batch", "8"]
CASES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _csv(path: Path, n: int = 48, seed: int = 1, labels: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.random.default_rng(11).normal(0, 1, (3, 4))[y] + rng.normal(0, 0.4, (n, 4))
    np.savetxt(path, np.column_stack([x, y]) if labels else x, delimiter=",")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint of a 4-6-3 network trained 2 epochs on the golden model, and its data file."""
    folder = tmp_path_factory.mktemp("trained")
    data, checkpoint = _csv(folder / "data.csv"), folder / "run.npz"
    assert main(["train", "--target", "model", *LAYERS, "--epochs", "2", "--no-reference",
                 "--data", str(data), "--checkpoint", str(checkpoint)]) == 0
    return checkpoint, data


def _digests(*paths: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None for p in paths}


def _refused(capsys, argv: list[str], *files: Path, says: str = "") -> str:
    """Run ``systolic argv``: exit code 2, one line on stderr (containing ``says``), ``files`` untouched."""
    before = _digests(*files)
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("systolic: error:"), err
    assert says in err[0], err
    assert _digests(*files) == before, "a file the user had was changed"
    return err[0]


def _on_checkpoint(capsys, checkpoint: Path, data: Path, says: str = "") -> None:
    """``eval``, ``infer``, ``export`` and ``train --resume`` of ``checkpoint``: each refused in one line."""
    for argv in (["eval", "--target", "model", "--checkpoint", str(checkpoint)],
                 ["infer", "--target", "model", "--checkpoint", str(checkpoint), "--data", str(data)],
                 ["export", "--target", "model", "--checkpoint", str(checkpoint), "--format", "onnx", "--out",
                  str(checkpoint.with_suffix(".onnx"))],
                 ["train", "--target", "model", "--resume", "--checkpoint", str(checkpoint), "--epochs", "3",
                  "--data", str(data), "--no-reference"]):
        _refused(capsys, argv, checkpoint, data, says=says)


def _rewrite(source: Path, target: Path, edit) -> Path:
    """A copy of the checkpoint ``source`` after ``edit(arrays, meta)`` (``meta`` decoded, written
    back unless the edit replaced or removed the array)."""
    with np.load(source) as npz:
        arrays = {name: npz[name] for name in npz.files}
    original = arrays["meta"]
    meta = json.loads(str(original[()]))
    edit(arrays, meta)
    if arrays.get("meta") is original:
        arrays["meta"] = np.array(json.dumps(meta))
    with open(target, "wb") as f:
        np.savez(f, **arrays)
    return target


# -- damaged checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_checkpoints(trained, tmp_path, capsys, share):
    checkpoint, data = trained
    raw = checkpoint.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[:int(len(raw) * share)])
    _on_checkpoint(capsys, cut, data, says="not a Systolic checkpoint")


@CASES
@given(st.data())
def test_truncated_or_random_checkpoints(trained, tmp_path, capsys, draw):
    checkpoint, data = trained
    raw = checkpoint.read_bytes()
    junk = draw.draw(st.one_of(st.integers(0, len(raw) - 1).map(lambda n: raw[:n]),
                               st.binary(max_size=4096)))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(junk)
    _refused(capsys, ["eval", "--target", "model", "--checkpoint", str(bad)], bad, data)


def test_a_directory_or_another_kind_of_file_as_checkpoint(trained, tmp_path, capsys):
    checkpoint, data = trained
    text = tmp_path / "notes.npz"
    text.write_text("not a checkpoint\n")
    for bad in (tmp_path, text):
        _on_checkpoint(capsys, bad, data)


def _drop(name):
    return lambda arrays, meta: arrays.pop(name)


def _set(name, value):
    def edit(arrays, meta):
        arrays[name] = value
    return edit


def _meta(edit):
    def change(arrays, meta):
        edit(meta)
    return change


BROKEN = {
    "no meta": _drop("meta"),
    "meta not JSON": _set("meta", np.array("{not json")),
    "a network that cannot be": _meta(lambda m: m["network"].update(sizes=[4])),
    "weights missing": _drop("W2"),
    "an extra array": _set("X", np.zeros(3)),
    "float weights with NaN": lambda a, m: a.update(W1=np.full(a["W1"].shape, np.nan)),
    "weights of the wrong shape": lambda a, m: a.update(W1=a["W1"][:, :-1]),
    "words out of 16 bits": lambda a, m: a.update(W1=a["W1"].astype(np.int32) + 70000),
    "formats of another depth": _meta(lambda m: m["formats"].update(w=[8, 8, 8], a=[8, 8], dz=[8, 8])),
    "a damaged generator state": _meta(lambda m: m.update(rng_state={"bit_generator": "nothing"})),
    "a negative epoch": _meta(lambda m: m.update(epoch=-1)),
    "a history that is not lists": _meta(lambda m: m.update(history={"loss": 3})),
    "object arrays": _set("W1", np.array([object()], dtype=object)),
}


@pytest.mark.parametrize("damage", list(BROKEN))
def test_damaged_checkpoint_archives(trained, tmp_path, capsys, damage):
    checkpoint, data = trained
    bad = _rewrite(checkpoint, tmp_path / "bad.npz", BROKEN[damage])
    _on_checkpoint(capsys, bad, data)


def test_a_checkpoint_too_big_for_the_device(trained, tmp_path, capsys):
    """A network another device configuration could hold: compiling it for this one is refused."""
    from host.checkpoint import Checkpoint
    from host.compiler import Formats, Network

    checkpoint, data = trained
    state = Checkpoint.load(checkpoint)
    big = Network((4, 3000, 3), batch=8)
    weights = [np.zeros((3000, 5), dtype=np.int64), np.zeros((3, 3001), dtype=np.int64)]
    Checkpoint(big, weights, 1, 0, state.rng_state, Formats.choose(big)).save(tmp_path / "big.npz")
    _refused(capsys, ["eval", "--target", "model", "--checkpoint", str(tmp_path / "big.npz"), "--data",
                      str(data)], data, says="shrink")


# -- damaged data files ------------------------------------------------------------------------------------

BAD_CSV = {
    "empty": "",
    "a header only": "a,b,c,d,label\n",
    "ragged": "1,2,3,4,0\n1,2,3,0\n",
    "a word among the numbers": "1,2,3,4,0\n1,2,x,4,1\n",
    "NaN": "1,2,nan,4,0\n1,2,3,4,1\n",
    "infinity": "1,2,inf,4,0\n1,2,3,4,1\n",
    "one column": "1\n2\n",
    "a negative label": "1,2,3,4,-1\n1,2,3,4,1\n",
    "a fractional label": "1,2,3,4,0.5\n1,2,3,4,1\n",
    "labels outside the classes": "1,2,3,4,0\n1,2,3,4,7\n",
    "three features": "1,2,3,0\n4,5,6,1\n",
    "seven columns": "1,2,3,4,5,6,0\n",
}


LABELS = {"labels outside the classes", "a negative label", "a fractional label", "three features"}
"""Bad only for commands that read labels: infer reads none (and 3 features and a label are 4 features)."""


@pytest.mark.parametrize("damage", list(BAD_CSV))
def test_damaged_csv_files(trained, tmp_path, capsys, damage):
    checkpoint, _ = trained
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV[damage])
    on_checkpoint = ["--target", "model", "--checkpoint", str(checkpoint), "--data", str(bad)]
    train = ["train", "--target", "model", *LAYERS, "--epochs", "1", "--no-reference", "--data", str(bad)]
    commands = [["eval", *on_checkpoint], train]
    if damage not in LABELS:
        commands.append(["infer", *on_checkpoint])
    for argv in commands:
        _refused(capsys, argv, checkpoint, bad)


@CASES
@given(st.binary(max_size=512))
def test_random_bytes_as_data(trained, tmp_path, capsys, junk):
    checkpoint, _ = trained
    for suffix in (".csv", ".npz"):
        bad = tmp_path / f"junk{suffix}"
        bad.write_bytes(junk)
        argv = ["eval", "--target", "model", "--checkpoint", str(checkpoint), "--data", str(bad)]
        before = _digests(bad)
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 0 or (code == 2 and len(err) == 1 and err[0].startswith("systolic: error:")), err
        assert _digests(bad) == before


def test_other_bad_data_files(trained, tmp_path, capsys):
    checkpoint, _ = trained
    not_utf8 = tmp_path / "latin.csv"
    not_utf8.write_bytes("1,2,3,4,0\n\xe9,2,3,4,1\n".encode("latin-1"))
    fake = tmp_path / "fake.npz"
    fake.write_text("x,y\n")
    no_x = tmp_path / "no_x.npz"
    np.savez(no_x, y=np.zeros(3))
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([object()], dtype=object), y=np.zeros(1))
    unknown = tmp_path / "data.txt"
    unknown.write_text("1,2,3,4,0\n")
    for bad, says in ((not_utf8, "UTF-8"), (fake, "not a valid .npz"), (no_x, "no array 'x'"),
                      (objects, "numeric"), (unknown, "unknown format"),
                      (tmp_path / "gone.csv", "no such file"), (tmp_path, "directory")):
        for command in ("eval", "infer"):
            argv = [command, "--target", "model", "--checkpoint", str(checkpoint), "--data", str(bad)]
            _refused(capsys, argv, checkpoint, bad, says=says)


def test_infer_takes_files_with_or_without_labels_and_eval_needs_them(trained, tmp_path, capsys):
    checkpoint, _ = trained
    labelled, bare = _csv(tmp_path / "l.csv", 9, seed=5), _csv(tmp_path / "b.csv", 9, seed=5, labels=False)
    outputs = []
    for data in (labelled, bare):
        capsys.readouterr()
        assert main(["infer", "--target", "model", "--checkpoint", str(checkpoint), "--data", str(data)]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 10
    np.savez(tmp_path / "x.npz", x=np.loadtxt(bare, delimiter=","))
    assert main(["infer", "--target", "model", "--checkpoint", str(checkpoint), "--data",
                 str(tmp_path / "x.npz")]) == 0
    assert capsys.readouterr().out == outputs[0]
    _refused(capsys, ["eval", "--target", "model", "--checkpoint", str(checkpoint), "--data", str(bare)],
             says="no labels")


# -- conflicting options ---------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, says", [
    (["--layers", "4,16,3"], "--layers 4,16,3 (it was trained with 4,6,3)"),
    (["--batch", "16"], "--batch 16 (it was trained with 8)"),
    (["--activation", "tanh"], "--activation tanh (it was trained with relu)"),
    (["--weight-bits", "12"], "--weight-bits 12 (it was trained with 16)"),
    (["--lr", "0.3"], "--lr 0.3"),
    (["--seed", "5"], "--seed 5"),
    (["--stats"], "--stats True"),
    (["--output", "sigmoid"], "--output sigmoid"),
    (["--epochs", "2"], "has finished epoch 2"),
])
def test_resume_refuses_options_that_contradict_the_checkpoint(trained, tmp_path, capsys, extra, says):
    checkpoint, data = trained
    copy = tmp_path / "run.npz"
    copy.write_bytes(checkpoint.read_bytes())
    argv = ["train", "--target", "model", "--resume", "--checkpoint", str(copy), "--data", str(data),
            "--no-reference", *(["--epochs", "3"] if "--epochs" not in extra else []), *extra]
    _refused(capsys, argv, copy, data, says=says)


def test_resume_with_the_trained_options_and_other_conflicts(trained, tmp_path, capsys):
    checkpoint, data = trained
    copy = tmp_path / "run.npz"
    copy.write_bytes(checkpoint.read_bytes())
    assert main(["train", "--target", "model", "--resume", "--checkpoint", str(copy), "--data", str(data),
                 "--epochs", "3", "--no-reference", "--layers", "4,6,3", "--batch", "8"]) == 0
    _refused(capsys, ["info", "--target", "model", "--port", "socket://127.0.0.1:9"], says="not both")
    _refused(capsys, ["train", "--target", "model", "--resume"], says="--checkpoint")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    _refused(capsys, ["train", "--target", "model", *LAYERS, "--epochs", "1", "--no-reference", "--data",
                      str(data), "--checkpoint", str(notes)], notes, says="choose another path")
    resident = ["train", "--target", "model", *LAYERS, "--epochs", "1", "--data", str(data), "--resident"]
    _refused(capsys, [*resident, "--profile"], data, says="drop --resident")
    _refused(capsys, ["train", *LAYERS, "--devices", "model:2", "--data", str(data), "--resident"], data,
             says="--devices streams")
    _refused(capsys, [*resident, "--board", "ulx3s-12f"], data, says="the device has 0")


# -- devices that misbehave ------------------------------------------------------------------------------

def _device(behaviour: str) -> tuple[str, threading.Thread]:
    """A TCP peer that answers ``garbage``, stays ``silent``, or ``hangs up`` mid-frame."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        connection, _ = server.accept()
        with connection, server:
            connection.settimeout(10)
            rng = np.random.default_rng(0)
            while True:
                try:
                    if not connection.recv(4096):
                        return
                except OSError:
                    return
                if behaviour == "garbage":
                    connection.sendall(rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
                elif behaviour == "hangs up":
                    connection.sendall(b"\x05\x01\x01\x02")            # the start of a frame
                    return
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"socket://127.0.0.1:{port}", thread


@pytest.mark.parametrize("behaviour", ["garbage", "silent", "hangs up"])
def test_devices_that_misbehave(capsys, behaviour):
    url, thread = _device(behaviour)
    _refused(capsys, ["info", "--port", url])
    thread.join(timeout=15)


def test_the_count_in_the_docstring_is_the_suite():
    checkpoints = 5 + 2 + 2 + len(BROKEN) + 1          # cut, hypothesis, directory and text, archives, big
    data = len(BAD_CSV) + 7 + 2 + 1                   # CSVs, other files, random bytes, eval unlabelled
    counts = {"damaged checkpoints": checkpoints, "damaged data files": data,
              "conflicting options": 9 + 3 + 3, "devices that misbehave": 3}
    text = " ".join(__doc__.split())
    assert all(f"{family} ({n})" in text for family, n in counts.items()), counts
    assert f"feeds {sum(counts.values())} distinct bad inputs" in text
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert f"feeds it {sum(counts.values())} distinct bad inputs" in readme
