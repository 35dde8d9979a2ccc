"""Float models in and out (``host/models.py``): export to ONNX and safetensors, import from ONNX
(an sklearn MLP converted by skl2onnx among them), and bad models refused in one line."""

from __future__ import annotations

import re

import numpy as np
import pytest

EXTRA = "the models extra is not installed: pip install -e '.[models]'"
onnx = pytest.importorskip("onnx", reason=EXTRA)
ort = pytest.importorskip("onnxruntime", reason=EXTRA)
safetensors_numpy = pytest.importorskip("safetensors.numpy", reason=EXTRA)

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from host import models  # noqa: E402
from host.checkpoint import Checkpoint  # noqa: E402
from host.cli import main  # noqa: E402
from host.data import digits  # noqa: E402


def _clusters(path, n: int = 96, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.random.default_rng(11).normal(0, 1, (3, 4))[y] * 3 + rng.normal(0, 0.5, (n, 4)) + 40
    np.savetxt(path, np.column_stack([x, y]), delimiter=",")
    return path


@pytest.fixture(scope="module", params=["relu", "prelu", "swish"])
def trained(request, tmp_path_factory):
    """A 4-6-3 network trained on raw features far from zero (so the export carries the transform)."""
    folder = tmp_path_factory.mktemp(request.param)
    data, checkpoint = _clusters(folder / "data.csv"), folder / "run.npz"
    assert main(["train", "--target", "model", "--layers", "4,6,3", "--batch", "8", "--epochs", "4",
                 "--activation", request.param, "--no-reference", "--data", str(data),
                 "--checkpoint", str(checkpoint)]) == 0
    return checkpoint, data


def _accuracies(out: str) -> tuple[float, float]:
    """The float and device accuracies ``import`` prints."""
    found = re.search(r"([\d.]+) % in float, ([\d.]+) % on the device", out)
    return float(found.group(1)), float(found.group(2))


def _run(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_export_agrees_with_the_device(trained, tmp_path, capsys):
    checkpoint, data = trained
    state = Checkpoint.load(checkpoint)
    x = np.loadtxt(data, delimiter=",")[:, :4]
    out = _run(capsys, ["export", "--target", "model", "--checkpoint", str(checkpoint), "--format", "onnx",
                        "--out", str(tmp_path / "m.onnx"), "--data", str(data)])
    agree = float(re.search(r"agree on ([\d.]+) %", out).group(1))
    difference = float(re.search(r"largest output difference ([\d.]+)", out).group(1))
    assert agree >= 99 and difference < 0.02, out
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"x": x.astype(np.float32)})[0]
    model = models.float_model(state)
    assert np.abs(onnx_out - model.outputs(x)).max() < 1e-4      # raw features in: the transform inside
    out = _run(capsys, ["export", "--target", "model", "--checkpoint", str(checkpoint), "--format",
                        "safetensors", "--out", str(tmp_path / "m.safetensors"), "--data", str(data)])
    assert "nn.Sequential(nn.Linear(4, 6)" in out and "load_state_dict" in out
    tensors = safetensors_numpy.load_file(str(tmp_path / "m.safetensors"))
    # nn.Sequential on raw features: the transform folded into the first Linear, PReLU's slopes in 1.weight
    layers = [models.Dense(tensors[f"{k}.weight"].astype(np.float64), tensors[f"{k}.bias"]) for k in (0, 2)]
    slopes = [tensors["1.weight"]] if "1.weight" in tensors else None
    folded = models.FloatModel(layers, model.hidden, model.output, model.slope, slopes)
    assert np.abs(folded.outputs(x) - onnx_out).max() < 1e-4


def test_onnx_round_trip_keeps_the_network(trained, tmp_path, capsys):
    checkpoint, data = trained
    state = Checkpoint.load(checkpoint)
    _run(capsys, ["export", "--target", "model", "--checkpoint", str(checkpoint), "--format", "onnx",
                  "--out", str(tmp_path / "m.onnx")])
    back, net = models.import_onnx(tmp_path / "m.onnx"), state.network
    imported = back.network(net.batch)
    assert (imported.sizes, imported.hidden, imported.output, imported.learn_slope) == \
        (net.sizes, net.hidden, net.output, net.learn_slope)
    x = np.loadtxt(data, delimiter=",")[:, :4]
    assert np.abs(back.outputs(x) - models.float_model(state).outputs(x)).max() < 1e-5
    out = _run(capsys, ["import", "--target", "model", str(tmp_path / "m.onnx"), "--out",
                        str(tmp_path / "back.npz"), "--data", str(data), "--batch", "8"])
    before, after = _accuracies(out)
    assert abs(before - after) <= 2, out
    _run(capsys, ["eval", "--target", "model", "--checkpoint", str(tmp_path / "back.npz"), "--data",
                  str(data)])


def test_an_sklearn_mlp_runs_on_the_device_within_a_point(tmp_path, capsys):
    skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx (the test extra) is not installed")
    from sklearn.neural_network import MLPClassifier

    train, test = digits(seed=0)
    mlp = MLPClassifier((32,), max_iter=300, random_state=0).fit(train.x, train.y)
    float_accuracy = 100 * mlp.score(test.x, test.y)
    graph = skl2onnx.to_onnx(mlp, train.x[:1], options={id(mlp): {"zipmap": False}})
    (tmp_path / "mlp.onnx").write_bytes(graph.SerializeToString())
    np.savez(tmp_path / "test.npz", x=test.x, y=test.y)
    out = _run(capsys, ["import", "--target", "model", str(tmp_path / "mlp.onnx"), "--out",
                        str(tmp_path / "mlp.npz"), "--data", str(tmp_path / "test.npz")])
    before, after = _accuracies(out)
    assert abs(before - float_accuracy) < 0.01 and abs(after - float_accuracy) <= 1, out
    out = _run(capsys, ["eval", "--target", "model", "--checkpoint", str(tmp_path / "mlp.npz"), "--data",
                        str(tmp_path / "test.npz")])
    assert abs(float(re.search(r"accuracy: ([\d.]+) %", out).group(1)) - float_accuracy) <= 1, out


def _graph(path, nodes, initializers, inputs: int = 4, outputs: int = 3):
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, [None, inputs])],
                              [value("y", TensorProto.FLOAT, [None, outputs])],
                              [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k)
                               for k, v in initializers.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("case, says", [
    ("unsupported op", "node 'h' (Abs) is not one the device runs"),
    ("too big", "shrink"),
    ("mixed activations", "one activation after every hidden layer"),
    ("not onnx", "is not an ONNX model"),
    ("wrong input size", "the trained network takes 4"),
    ("safetensors without layers", "give --layers"),
    ("safetensors of other sizes", "not --layers 4,8,3"),
])
def test_bad_models_are_one_line(tmp_path, capsys, case, says):
    w = {"W1": np.ones((6, 4)), "b1": np.zeros(6), "W2": np.ones((3, 6)), "b2": np.zeros(3)}
    gemm1 = helper.make_node("Gemm", ["x", "W1", "b1"], ["z1"], transB=1)
    gemm2 = helper.make_node("Gemm", ["a1", "W2", "b2"], ["y"], transB=1)
    path = tmp_path / "m.onnx"
    extra = []
    if case == "unsupported op":
        _graph(path, [gemm1, helper.make_node("Abs", ["z1"], ["a1"], name="h"), gemm2], w)
    elif case == "too big":
        big = {"W1": np.ones((3000, 4)), "b1": np.zeros(3000), "W2": np.ones((3, 3000)), "b2": np.zeros(3)}
        _graph(path, [gemm1, helper.make_node("Relu", ["z1"], ["a1"]), gemm2], big)
    elif case == "mixed activations":
        w3 = {**w, "W2": np.ones((6, 6)), "b2": np.zeros(6), "W3": np.ones((3, 6)), "b3": np.zeros(3)}
        _graph(path, [gemm1, helper.make_node("Relu", ["z1"], ["a1"]),
                      helper.make_node("Gemm", ["a1", "W2", "b2"], ["z2"], transB=1),
                      helper.make_node("Tanh", ["z2"], ["a2"]),
                      helper.make_node("Gemm", ["a2", "W3", "b3"], ["y"], transB=1)], w3)
    elif case == "not onnx":
        path.write_bytes(b"\x00garbage" * 10)
    elif case == "wrong input size":
        _graph(path, [gemm1, helper.make_node("Relu", ["z1"], ["a1"]), gemm2], w)
        (tmp_path / "d.csv").write_text("1,2,3,0\n4,5,6,1\n")                # 3 features and a label
        extra = ["--data", str(tmp_path / "d.csv")]
    else:
        path = tmp_path / "m.safetensors"
        tensors = {"0.weight": np.ones((6, 4)), "0.bias": np.zeros(6), "2.weight": np.ones((3, 6)),
                   "2.bias": np.zeros(3)}
        safetensors_numpy.save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(path))
        extra = [] if case == "safetensors without layers" else ["--layers", "4,8,3"]
    capsys.readouterr()
    assert main(["import", "--target", "model", str(path), "--out", str(tmp_path / "out.npz"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("systolic: error:") and says in err[0], err
    assert not (tmp_path / "out.npz").exists()
