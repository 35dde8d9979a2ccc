"""Float models in and out: a checkpoint as ONNX or a safetensors state_dict, and back.

A network here is a list of :class:`Dense` layers (float weights ``out × in``, biases), the hidden
activation, the output and the input transform. :func:`export` writes a checkpoint's dequantised
parameters as

- an ONNX graph: ``Sub``/``Div`` of the input transform, then per layer a ``Gemm`` and its
  activation (``Relu``, ``LeakyRelu``, ``PRelu``, ``Sigmoid``, ``Tanh``, swish as ``x·Sigmoid(x)``),
  ending in ``Softmax`` or ``Sigmoid``;
- a PyTorch ``nn.Sequential`` state_dict in safetensors (the transform folded into the first
  ``Linear``), with the lines of PyTorch that build the matching model (:func:`pytorch_code`).

:func:`import_onnx` reads such a chain of ``Gemm`` (or ``MatMul`` and ``Add``) and activation nodes,
as ``torch.onnx.export`` and ``skl2onnx`` write it, and :func:`checkpoint_of` quantises it to the
formats the compiler chooses. The ``onnx``, ``onnxruntime`` and ``safetensors`` packages are the
optional extra ``models`` (``pip install -e '.[models]'``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.checkpoint import Checkpoint
from host.compiler import Formats, Network, Output
from host.data import Standardize
from hw.numerics import Act

__all__ = ["Dense", "FloatModel", "float_model", "export", "pytorch_code", "import_onnx",
           "import_safetensors", "checkpoint_of", "requires"]

_ONNX_ACT = {Act.RELU: "Relu", Act.SIGMOID: "Sigmoid", Act.TANH: "Tanh"}
_ACTS = {"Relu": Act.RELU, "Tanh": Act.TANH, "Sigmoid": Act.SIGMOID}
_TORCH_ACT = {Act.RELU: "ReLU()", Act.SIGMOID: "Sigmoid()", Act.TANH: "Tanh()", Act.SWISH: "SiLU()",
              Act.IDENTITY: "Identity()"}
SUPPORTED = ("Gemm, MatMul+Add, Relu, LeakyRelu, PRelu, Sigmoid, Tanh, x·Sigmoid(x), Softmax, and Sub/Div of "
             "the input")


def requires(*modules: str):
    """The modules, or a one-line error naming the extra that provides them."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as error:
        raise ValueError(f"{error.name} is not installed: pip install -e '.[models]' (onnx, onnxruntime, "
                         f"safetensors)") from None


@dataclass
class Dense:
    """A layer ``y = W·x + b``: ``weight`` is ``out × in``."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass
class FloatModel:
    """A float MLP the device can run: layers, the hidden activation (one for all hidden layers; with
    ``slopes``, PReLU's per layer), the output, and the input transform (``None``: none)."""

    layers: list[Dense]
    hidden: Act
    output: Output
    slope: float = 0.01
    slopes: list[np.ndarray] | None = None
    transform: Standardize | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.layers[0].weight.shape[1], *(d.weight.shape[0] for d in self.layers))

    def network(self, batch: int = 32) -> Network:
        prelu = self.slopes is not None
        return Network(self.sizes, hidden=Act.LEAKY_RELU if prelu else self.hidden, output=self.output,
                       batch=batch, slope=self.slope, learn_slope=prelu)

    def parameters(self) -> list[np.ndarray]:
        """The parameters in the compiler's order: ``W[k]`` with the bias as last column, then slopes."""
        weights = [np.column_stack([d.weight, d.bias]) for d in self.layers]
        return weights + [s.reshape(-1, 1) for s in self.slopes or []]

    def outputs(self, x) -> np.ndarray:
        """The float outputs (probabilities, or the sigmoid) of raw inputs ``x``, a sample per row:
        :func:`host.reference.forward` in float64, after the input transform."""
        from host.reference import forward

        x = np.asarray(x, dtype=np.float64)
        if self.transform is not None:
            x = self.transform.inputs(x)
        return forward(self.network(), self.parameters(), x)[2].T


def float_model(state: Checkpoint) -> FloatModel:
    """The checkpoint's network with its parameters dequantised from the formats it was trained in."""
    net = state.network
    params = state.formats.dequantize(net, state.weights)
    layers = [Dense(w[:, :-1], w[:, -1]) for w in params[:net.layers]]
    slopes = [s.ravel() for s in params[net.layers:]] if net.learn_slope else None
    hidden = Act(net.hidden)
    return FloatModel(layers, hidden, net.output, net.slope, slopes, state.transform)


def export(state: Checkpoint, path: str | Path, fmt: str) -> FloatModel:
    """Write ``state`` as ``fmt`` (``onnx`` or ``safetensors``) to ``path``; returns the float model."""
    model = float_model(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        (onnx,) = requires("onnx")
        onnx.save(_onnx_graph(model), str(path))
    elif fmt == "safetensors":
        (numpy_io,) = requires("safetensors.numpy")
        numpy_io.save_file(_state_dict(model), str(path))
    else:
        raise ValueError(f"--format must be onnx or safetensors, not {fmt!r}")
    return model


def _onnx_graph(model: FloatModel):
    onnx, helper = requires("onnx", "onnx.helper")
    tensor = onnx.numpy_helper.from_array
    nodes, weights = [], []
    x = "x"
    if model.transform is not None:
        weights += [tensor(model.transform.mean.astype(np.float32), "mean"),
                    tensor(model.transform.scale.astype(np.float32), "scale")]
        nodes += [helper.make_node("Sub", [x, "mean"], ["centred"]),
                  helper.make_node("Div", ["centred", "scale"], ["standardised"])]
        x = "standardised"
    for k, d in enumerate(model.layers, 1):
        weights += [tensor(d.weight.astype(np.float32), f"W{k}"), tensor(d.bias.astype(np.float32), f"b{k}")]
        nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [f"z{k}"], transB=1))
        x = f"z{k}"
        if k == len(model.layers):
            break
        out = f"a{k}"
        if model.slopes is not None:
            weights.append(tensor(model.slopes[k - 1].astype(np.float32), f"slope{k}"))
            nodes.append(helper.make_node("PRelu", [x, f"slope{k}"], [out]))
        elif model.hidden is Act.LEAKY_RELU:
            nodes.append(helper.make_node("LeakyRelu", [x], [out], alpha=float(model.slope)))
        elif model.hidden is Act.SWISH:
            nodes += [helper.make_node("Sigmoid", [x], [f"s{k}"]),
                      helper.make_node("Mul", [x, f"s{k}"], [out])]
        elif model.hidden is Act.IDENTITY:
            nodes.append(helper.make_node("Identity", [x], [out]))
        else:
            nodes.append(helper.make_node(_ONNX_ACT[model.hidden], [x], [out]))
        x = out
    last = (helper.make_node("Softmax", [x], ["probabilities"], axis=1) if model.output is Output.SOFTMAX
            else helper.make_node("Sigmoid", [x], ["probabilities"]))
    value = helper.make_tensor_value_info
    graph = helper.make_graph([*nodes, last], "systolic",
                              [value("x", onnx.TensorProto.FLOAT, [None, model.sizes[0]])],
                              [value("probabilities", onnx.TensorProto.FLOAT, [None, model.sizes[-1]])],
                              weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _state_dict(model: FloatModel) -> dict[str, np.ndarray]:
    """``nn.Sequential`` names: ``Linear`` at 0, 2, 4, …, activations between; the transform folded."""
    out = {}
    for k, d in enumerate(model.layers):
        weight, bias = d.weight, d.bias
        if k == 0 and model.transform is not None:
            weight = weight / model.transform.scale
            bias = bias - weight @ model.transform.mean
        out[f"{2 * k}.weight"], out[f"{2 * k}.bias"] = weight.astype(np.float32), bias.astype(np.float32)
        if model.slopes is not None and k < len(model.layers) - 1:
            out[f"{2 * k + 1}.weight"] = model.slopes[k].astype(np.float32)
    return out


def pytorch_code(model: FloatModel, path: str) -> str:
    """The lines of PyTorch that build the ``nn.Sequential`` of a safetensors export and load it."""
    parts = []
    for k, d in enumerate(model.layers):
        parts.append(f"nn.Linear({d.weight.shape[1]}, {d.weight.shape[0]})")
        if k < len(model.layers) - 1:
            if model.slopes is not None:
                parts.append(f"nn.PReLU({d.weight.shape[0]})")
            elif model.hidden is Act.LEAKY_RELU:
                parts.append(f"nn.LeakyReLU({model.slope:g})")
            else:
                parts.append(f"nn.{_TORCH_ACT[model.hidden]}")
    parts.append("nn.Softmax(dim=1)" if model.output is Output.SOFTMAX else "nn.Sigmoid()")
    return ("import torch.nn as nn\nfrom safetensors.torch import load_file\n\n"
            f"model = nn.Sequential({', '.join(parts)})\nmodel.load_state_dict(load_file({path!r}))\n")


def import_onnx(path: str | Path) -> FloatModel:
    """The float MLP of an ONNX file: a chain of ``Gemm`` (or ``MatMul`` then ``Add``) and activation
    nodes from the graph's first input to its ``Softmax`` or ``Sigmoid`` (nodes after it, such as
    ``ArgMax``, are ignored; a chain ending in a ``Gemm`` is taken as softmax logits).

    Raises
    ------
    ValueError
        If the file is not ONNX, or a node on the chain is not one the device runs (named, with what
        it supports), or the hidden layers do not share one activation.
    """
    onnx, numpy_helper = requires("onnx", "onnx.numpy_helper")
    try:
        graph = onnx.load(str(path)).graph
    except Exception as error:        # onnx raises protobuf's DecodeError, among others
        raise ValueError(f"{path} is not an ONNX model ({type(error).__name__})") from None
    constants = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
    reader = _Chain(graph, constants)
    return reader.model(path)


class _Chain:
    """Walks an ONNX graph's data path from its first input, collecting layers and activations."""

    def __init__(self, graph, constants: dict[str, np.ndarray]):
        self.nodes = [n for n in graph.node if n.op_type != "Constant"]
        self.constants = constants
        self.inputs = [i.name for i in graph.input if i.name not in constants]

    def model(self, path) -> FloatModel:
        x = self.inputs[0]
        layers, acts, slopes, transform = [], [], [], {"mean": None, "scale": None}
        output, pending = None, None        # pending: a MatMul waiting for its Add
        for node in self.nodes:
            if x not in node.input:
                continue
            op, other = node.op_type, [i for i in node.input if i != x]
            constant = other[0] if other and other[0] in self.constants else None
            where = f"{path}: node {node.name or node.output[0]!r} ({op})"
            if op in ("Cast", "Identity", "Flatten"):
                pass
            elif op in ("Sub", "Div") and not layers and constant:
                transform["mean" if op == "Sub" else "scale"] = self.constants[constant].ravel()
            elif op == "Gemm":
                layers.append(self._gemm(node, x, where))
            elif op == "MatMul" and constant:
                pending = Dense(self.constants[constant].T, np.zeros(self.constants[constant].shape[1]))
                layers.append(pending)
            elif op == "Add" and pending is not None and constant:
                pending.bias = pending.bias + self.constants[constant].ravel()
                pending = None
            elif op == "Softmax" or op == "Sigmoid" and not self._used(node):
                output = Output.SOFTMAX if op == "Softmax" else Output.SIGMOID
                break
            elif op == "Sigmoid" and (product := self._product(node, x)) is not None:   # x·Sigmoid(x)
                acts.append((Act.SWISH, 0.01))
                node = product
            elif op in ("Relu", "Tanh", "Sigmoid", "LeakyRelu") or op == "PRelu" and constant:
                if op == "PRelu":
                    slopes.append(self.constants[constant].ravel())
                alpha = next((a.f for a in node.attribute if a.name == "alpha"), 0.01)
                acts.append((_ACTS.get(op, Act.LEAKY_RELU), alpha))
            else:
                raise ValueError(f"{where} is not one the device runs: it supports {SUPPORTED}")
            x = node.output[0]
        if not layers:
            raise ValueError(f"{path}: no Gemm or MatMul on the path from the input: it supports {SUPPORTED}")
        if len(acts) != len(layers) - 1 or len({a[0] for a in acts}) > 1:
            raise ValueError(f"{path}: activations {[a[0].name.lower() for a in acts]} between {len(layers)} "
                             f"layers: the device runs one activation after every hidden layer")
        hidden, slope = acts[0] if acts else (Act.IDENTITY, 0.01)
        std = None
        if transform["mean"] is not None or transform["scale"] is not None:
            n = layers[0].weight.shape[1]
            std = Standardize(np.zeros(n) if transform["mean"] is None else transform["mean"] * np.ones(n),
                              np.ones(n) if transform["scale"] is None else transform["scale"] * np.ones(n))
        return FloatModel(layers, hidden, output or Output.SOFTMAX, slope, slopes or None, std)

    def _used(self, node) -> bool:
        """Whether another node reads ``node``'s output."""
        return any(node.output[0] in n.input for n in self.nodes)

    def _product(self, sigmoid, x):
        """The ``Mul`` of ``x`` by ``sigmoid``'s output, if there is one."""
        factors = sorted([x, sigmoid.output[0]])
        return next((n for n in self.nodes if n.op_type == "Mul" and sorted(n.input) == factors), None)

    def _gemm(self, node, x, where) -> Dense:
        attrs = {a.name: a for a in node.attribute}
        if node.input[0] != x or node.input[1] not in self.constants:
            raise ValueError(f"{where}: a Gemm of the data by constant weights only")
        w = self.constants[node.input[1]] * (attrs["alpha"].f if "alpha" in attrs else 1.0)
        if attrs.get("transA") is not None and attrs["transA"].i:
            raise ValueError(f"{where}: transA is not supported")
        w = w if "transB" in attrs and attrs["transB"].i else w.T
        b = self.constants.get(node.input[2], 0.0) if len(node.input) > 2 else 0.0
        return Dense(w, (b * (attrs["beta"].f if "beta" in attrs else 1.0)).ravel() * np.ones(w.shape[0]))


def import_safetensors(path: str | Path, sizes: tuple[int, ...], hidden: Act, output: Output,
                       slope: float = 0.01) -> FloatModel:
    """The float MLP of an ``nn.Sequential`` state_dict of ``Linear`` layers (``N.weight``,
    ``N.bias``) with ``sizes``, the activation and output given (a state_dict does not say them)."""
    (numpy_io,) = requires("safetensors.numpy")
    try:
        tensors = numpy_io.load_file(str(path))
    except Exception as error:        # safetensors raises its own SafetensorError
        raise ValueError(f"{path} is not a safetensors file ({type(error).__name__})") from None
    linear = sorted({int(name.split(".")[0]) for name in tensors if name.endswith(".weight")
                     and tensors[name].ndim == 2})
    layers = [Dense(tensors[f"{i}.weight"].astype(np.float64),
                    tensors.get(f"{i}.bias", np.zeros(len(tensors[f"{i}.weight"]))).astype(np.float64))
              for i in linear]
    model = FloatModel(layers, hidden, output, slope)
    if model.sizes != tuple(sizes):
        raise ValueError(f"{path}: Linear layers of sizes {','.join(map(str, model.sizes))}, not --layers "
                         f"{','.join(map(str, sizes))}")
    return model


def checkpoint_of(model: FloatModel, x=None, batch: int = 32) -> tuple[Checkpoint, list[tuple[float, float]]]:
    """A device checkpoint of ``model`` (epoch 0), quantised to the formats the compiler chooses for
    its parameters and, if given, raw inputs ``x``; and per parameter array its largest quantisation
    error and the largest magnitude."""
    net = model.network(batch)
    x = None if x is None else (x if model.transform is None else model.transform.inputs(x))
    params = model.parameters()
    formats = Formats.choose(net, x, params)
    raw = formats.quantize(net, params)
    errors = [(float(np.abs(q - p).max()), float(np.abs(p).max()))
              for q, p in zip(formats.dequantize(net, raw), params, strict=True)]
    state = Checkpoint(net, raw, 0, 0, np.random.default_rng(0).bit_generator.state, formats,
                       {}, model.transform)
    return state, errors
