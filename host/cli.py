"""The ``systolic`` command: train and run networks on a board, the virtual board or the golden model.

With no ``--port``, ``train``, ``infer``, ``eval`` and ``info`` start a virtual board (the real
gateware under Verilator) for the duration of the command; ``--target model`` uses the golden model
instead (bit-identical, much faster). Both are the device of ``--board`` if given, else the default
device (``hw.config.DeviceConfig``) with buffers as deep as the network needs. User mistakes end in
one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host import plots
from host.checkpoint import Checkpoint
from host.compiler import Network, Output
from hw.config import BOARD_DEVICES, DeviceConfig
from hw.isa import Rounding
from hw.numerics import Act

__all__ = ["main", "ROUNDING"]

ROUNDING = {"stochastic": Rounding.STOCHASTIC, "nearest": Rounding.NEAREST_EVEN}
"""``--rounding`` of the weight update."""

_NETWORK = {"layers": "64,32,10", "activation": "relu", "slope": None, "weight_bits": 16,
            "rounding": "stochastic", "stats": False, "output": "softmax", "batch": 32, "lr": 0.1,
            "seed": 0}
"""``train``'s options that a checkpoint fixes, and their defaults for a new run."""


def _options_of(state: Checkpoint) -> dict:
    """The values of the :data:`_NETWORK` options that trained ``state``."""
    net = state.network
    activation = "prelu" if net.learn_slope else Act(net.hidden).name.lower()
    rounding = next(name for name, value in ROUNDING.items() if value == net.rounding)
    return {"layers": ",".join(map(str, net.sizes)), "activation": activation, "slope": net.slope,
            "weight_bits": net.weight_bits, "rounding": rounding, "stats": net.stats,
            "output": net.output.name.lower(), "batch": net.batch, "lr": net.learning_rate,
            "seed": state.seed}


def _resolve(args, state: Checkpoint | None) -> None:
    """Fill the :data:`_NETWORK` options not given: from the checkpoint when resuming (refusing the
    given ones that contradict it, naming both values), else from the defaults."""
    if state is None:
        for name, default in _NETWORK.items():
            if getattr(args, name) is None:
                setattr(args, name, default)
        return
    trained = _options_of(state)
    given = {name: getattr(args, name) for name in _NETWORK if getattr(args, name) is not None}
    if "layers" in given:
        given["layers"] = ",".join(str(n) for n in _sizes(given["layers"]))
    if "activation" in given:
        given["activation"] = given["activation"].lower().replace("-", "_")
    clashes = [f"--{name.replace('_', '-')} {value} (it was trained with {trained[name]})"
               for name, value in given.items() if value != trained[name]]
    if clashes:
        raise ValueError(f"--resume continues {args.checkpoint} as it was trained, but {'; '.join(clashes)}: "
                         f"drop these options to resume, or train a new network without --resume")
    vars(args).update(trained)
    if args.epochs <= state.epoch:
        raise ValueError(f"{args.checkpoint} has finished epoch {state.epoch}: give --epochs above "
                         f"{state.epoch} to train on")


def _sizes(layers: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in layers.split(","))
    except ValueError:
        raise ValueError(f"--layers must be sizes like 64,32,10, not {layers!r}") from None


def _activation(name: str) -> tuple[Act, bool]:
    """The hidden activation ``--activation`` names, and whether it is PReLU."""
    key = name.lower().replace("-", "_")
    try:
        return (Act.LEAKY_RELU, True) if key == "prelu" else (Act[key.upper()], False)
    except KeyError:
        names = ", ".join([a.name.lower() for a in Act] + ["prelu"])
        raise ValueError(f"--activation must be one of {names}, not {name!r}") from None


def _network(args) -> Network:
    sizes = _sizes(args.layers)
    hidden, prelu = _activation(args.activation)
    slope = args.slope if args.slope is not None else 0.25 if prelu else 0.01
    return Network(sizes, hidden=hidden, output=Output[args.output.upper()], batch=args.batch,
                   learning_rate=args.lr, slope=slope, learn_slope=prelu, weight_bits=args.weight_bits,
                   rounding=ROUNDING[args.rounding], stats=args.stats)


def _config(args, network: Network | None = None, keep: bool = False, data: int = 0) -> DeviceConfig:
    """The device of ``--board``; else the default device, its buffers deepened if ``network``
    (compiled with ``keep`` or not) needs more words per bank, with a data memory of ``data`` words
    (rounded up to a power of two) if it is not more than the 65,536 a tensor addresses."""
    from host.compiler import deep_enough

    if args.board:
        return BOARD_DEVICES[args.board]
    config = DeviceConfig() if network is None else deep_enough(network, DeviceConfig(), keep)
    if 0 < data <= 1 << 16:
        config = dataclasses.replace(config, data_depth=1 << (data - 1).bit_length())
    return config


@contextlib.contextmanager
def _driver(args, network: Network | None = None, keep: bool = False, data: int = 0):
    """A driver on ``--port`` (checked to be ``--board``'s device if given), on the golden model, or
    on a virtual board started for the command, of :func:`_config`."""
    from host.driver import Driver

    if args.port:
        with Driver.open(args.port, baud=args.baud, config=_config(args) if args.board else None) as driver:
            yield driver
        return
    config = _config(args, network, keep, data)
    if config.depth != DeviceConfig().depth and not args.board:
        print(f"the device's buffers are deepened to {config.depth} words per bank for this network",
              file=sys.stderr)
    if args.target == "model":
        with Driver.open("model", config=config) as driver:
            yield driver
    else:
        from sim.virtual import VirtualBoard

        print("starting the virtual board (the first run builds the simulator) …", file=sys.stderr)
        with VirtualBoard(config) as url, Driver.open(url, timeout=30.0) as driver:
            yield driver


def _progress(epoch: int, epochs: int):
    """A progress bar of the epoch's steps on stderr (none when stderr is not a terminal)."""
    bar = tqdm(desc=f"epoch {epoch}/{epochs}", unit="step", disable=None, leave=True)

    def show(step: int, steps: int) -> None:
        bar.total = steps
        bar.update(step - bar.n)
        if step == steps:
            bar.close()
    return None if bar.disable else show


def _datasets(args, seed: int, state: Checkpoint | None) -> tuple:
    """``train``'s training and test sets (transformed), the input transform and the holdout record.

    The digits are split as :func:`host.data.digits` does, with no transform. A ``--data`` file is
    split by ``--test-fraction`` (or tested on ``--test``), and the features of both sets are
    standardised by a transform fitted on the training rows, or the checkpoint's when resuming.
    """
    from host import data

    if args.data is None:
        if args.test is not None or args.test_fraction is not None:
            raise ValueError("--test and --test-fraction choose the test set of --data: give --data FILE "
                             "(the digits hold out 25 % of their samples)")
        train, test = data.digits(seed=seed)
        return train, test, None, None
    if args.test is not None and args.test_fraction is not None:
        raise ValueError("give --test FILE or --test-fraction, not both")
    dataset = data.load(args.data)
    if args.test is None:
        fraction = 0.25 if args.test_fraction is None else args.test_fraction
        train, test = data.split(dataset, fraction, seed)
        holdout = data.Holdout.of(args.data, fraction, seed)
    else:
        train, test = dataset, data.load(args.test)
        holdout = data.Holdout.of(args.test)
    transform = data.Standardize.fit(train.x) if state is None else state.transform
    if transform is not None:
        train, test = transform(train), transform(test)
    return train, test, transform, holdout


def _check_replaceable(path: str | None) -> None:
    """A new run may write its checkpoint over an old checkpoint, never over another file."""
    if path is None or not Path(path).exists():
        return
    try:
        Checkpoint.load(path)
    except ValueError:
        raise ValueError(f"--checkpoint {path} exists and is not a Systolic checkpoint, so training would "
                         f"replace it: choose another path") from None


def _classes(network: Network, dataset) -> int:
    """The rows of a confusion matrix: every class the network predicts and the data holds."""
    return max(dataset.classes, _outputs(network))


def _train(args) -> None:
    from host import data
    from host.train import Trainer, confusion_matrix, data_words, starting_formats

    if args.epochs < 1:
        raise ValueError(f"--epochs must be 1 or more, not {args.epochs}")
    if args.resume:
        state = Checkpoint.load(args.checkpoint)
        _resolve(args, state)
        network, seed, formats = state.network, state.seed, state.formats
    else:
        _resolve(args, None)
        _check_replaceable(args.checkpoint)
        state, network, seed, formats = None, _network(args), args.seed, None
    train, test, transform, holdout = _datasets(args, seed, state)
    for dataset in (train, test):
        data.check_features(dataset, network.sizes[0])
        if dataset.classes > _outputs(network):
            raise data.DataError(f"{dataset.name}: labels of {dataset.classes} classes, the network tells "
                                 f"{_outputs(network)} apart: make the last layer size {dataset.classes}"
                                 if network.output is Output.SOFTMAX else
                                 f"{dataset.name}: labels of {dataset.classes} classes, a sigmoid output "
                                 f"tells 2 apart: use --output softmax")
    if args.devices:
        _train_parallel(args, state, network, seed, formats, (train, test, transform, holdout))
        return
    formats = formats or starting_formats(network, train.x, seed)
    wanted = _wants_resident(args)
    with _driver(args, network, keep=args.profile,
                 data=data_words(network, formats, train, test.x) if wanted else 0) as driver:
        resident, tests = (_resident_sets(args, driver, network, formats, train, test.x) if wanted
                           else (None, None))
        trainer = Trainer(driver, network, seed, formats, train.x, profile=args.profile, resident=resident,
                          tests=tests)
        rng, first, history = _begin(args, state, seed, trainer.load, trainer.initial_weights)
        if network.stats:
            history.setdefault("active", [])
        profiles = []
        sent = received = 0
        result = None
        for epoch in range(first, args.epochs + 1):
            began = time.monotonic()
            driver.reset_stats()
            result = trainer.train_epoch(train, rng, epoch, _progress(epoch, args.epochs))
            sent, received = sent + driver.bytes_sent, received + driver.bytes_received
            line = f"epoch {epoch}: loss {result.loss:.4f}, train accuracy {100 * result.accuracy:.2f} %"
            history["loss"].append(result.loss)
            history["accuracy"].append(result.accuracy)
            accuracy = float(np.mean(trainer.predict(test.x) == test.y))
            history["test"].append(accuracy)
            line += f", test accuracy {100 * accuracy:.2f} %"
            print(f"{line} ({time.monotonic() - began:.1f} s)")
            _report(result, history, profiles)
            if args.checkpoint:
                Checkpoint(network, trainer.weights(), epoch, seed, rng.bit_generator.state,
                           trainer.program.formats, history, transform, holdout).save(args.checkpoint)
        samples = (args.epochs - first + 1) * (len(train.x) // network.batch) * network.batch
        if samples:
            kept = ("the training set resident on the device" if trainer.resident else
                    f"for {2 * (network.sizes[0] + network.sizes[-1])} bytes of inputs and labels")
            print(f"link while training: {sent / samples:.1f} bytes in and {received / samples:.1f} out "
                  f"per sample, {kept}")
        if network.learn_slope:
            for k, s in enumerate(trainer.program.dequantize(trainer.weights())[network.layers:], 1):
                print(f"learned slopes, layer {k}: mean {s.mean():.3f}, min {s.min():.3f}, max {s.max():.3f}")
        predictions = trainer.predict(test.x)
        print(f"test accuracy on the device: {100 * np.mean(predictions == test.y):.2f} %")
        if not args.no_reference:
            _reference(network, trainer, train, test, seed, args.epochs)
        _plot(args, result, history, profiles, confusion_matrix(test.y, predictions, _classes(network, test)))


def _wants_resident(args) -> bool:
    """Whether to keep the training set on the device: ``--resident``, or by default unless
    ``--streamed`` or ``--profile`` (which reads every step back) says otherwise."""
    if args.resident and args.profile:
        raise ValueError("--profile reads every step back and streams the data: drop --resident")
    return args.resident or not (args.streamed or args.profile)


def _resident_sets(args, driver, network: Network, formats, train, tests) -> tuple:
    """``(train, tests)`` that fit the device's data memory together, else ``(train, None)``, else
    ``(None, None)`` (an error with ``--resident``)."""
    from host.train import resident_problem

    config = driver.info().config()
    for kept in (tests, None):
        problem = resident_problem(network, formats, train, config, kept)
        if problem is None:
            also = f" and {len(kept)} test samples" if kept is not None else ""
            print(f"resident on the device: {len(train)} training samples{also}", file=sys.stderr)
            return train, kept
    if args.resident:
        raise ValueError(f"--resident: {problem}: drop --resident to stream the minibatches")
    if config.data_depth:
        print(f"streaming the minibatches: {problem}", file=sys.stderr)
    return None, None


def _begin(args, state: Checkpoint | None, seed: int, load, initial) -> tuple:
    """Load the checkpoint's weights when resuming, else ``initial()``; the data-order generator, the
    first epoch and the history to go on from."""
    if state is None:
        load(initial())
        return np.random.default_rng(seed), 1, {"loss": [], "accuracy": [], "test": []}
    load(state.weights)
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng_state
    print(f"resuming after epoch {state.epoch} from {args.checkpoint}", file=sys.stderr)
    return rng, state.epoch + 1, state.history


def _train_parallel(args, state: Checkpoint | None, network: Network, seed: int, formats, sets) -> None:
    """``train --devices``: a replica on every device, weights averaged every ``--sync-every`` steps
    (:mod:`host.cluster`); epochs, checkpoints, plots and the float32 reference as on one device."""
    from host.cluster import Cluster, devices, reference, starting_point
    from host.train import confusion_matrix

    train, test, transform, holdout = sets
    if args.port or args.target == "model":
        raise ValueError("--devices names every device: drop --port and --target")
    if args.resident:
        raise ValueError("--devices streams each device's minibatches: drop --resident")
    if args.sync_every < 1:
        raise ValueError(f"--sync-every must be 1 or more steps, not {args.sync_every}")
    targets = devices(args.devices)
    chosen, start = starting_point(network, train.x, seed)
    formats = formats or chosen
    cluster = Cluster(targets, network, formats, seed, _config(args, network, keep=args.profile),
                      args.profile)
    try:
        rng, first, history = _begin(args, state, seed, cluster.load, lambda: start)
        if network.stats:
            history.setdefault("active", [])
        result, profiles = None, []
        print(f"{len(targets)} devices ({args.devices}), weights averaged every {args.sync_every} "
              f"step{'s' if args.sync_every > 1 else ''}", file=sys.stderr)
        for epoch in range(first, args.epochs + 1):
            began = time.monotonic()
            result = cluster.train_epoch(train, rng, epoch, args.sync_every)
            accuracy = float(np.mean(cluster.predict(test.x) == test.y))
            for name, value in (("loss", result.loss), ("accuracy", result.accuracy), ("test", accuracy)):
                history[name].append(value)
            print(f"epoch {epoch}: loss {result.loss:.4f}, train accuracy {100 * result.accuracy:.2f} %, "
                  f"test accuracy {100 * accuracy:.2f} % ({time.monotonic() - began:.1f} s, "
                  f"{result.syncs} averages)")
            _report(result, history, profiles)
            if args.checkpoint:
                Checkpoint(network, cluster.weights(), epoch, seed, rng.bit_generator.state,
                           cluster.formats(), history, transform, holdout).save(args.checkpoint)
        for rank, (sent, received) in enumerate(result.link if result is not None else []):
            print(f"device {rank} ({targets[rank]}): {sent} bytes sent, {received} received in the last "
                  f"epoch")
        predictions = cluster.predict(test.x)
    finally:
        cluster.close()
    print(f"test accuracy on the devices: {100 * np.mean(predictions == test.y):.2f} %")
    if not args.no_reference:
        accuracy = reference(network, formats, start, (train, test), seed, args.epochs, len(targets),
                             args.sync_every)
        print(f"test accuracy of the float32 reference (the same schedule): {100 * accuracy:.2f} %")
    _plot(args, result, history, profiles, confusion_matrix(test.y, predictions, _classes(network, test)))


def _plot(args, result, history: dict, profiles: list, confusion: np.ndarray) -> None:
    """With ``--plot``: the units' activity (``--stats``), the profiles (``--profile``), the curves
    and the ``confusion`` matrix."""
    if not args.plot:
        return
    if result is not None and result.activations is not None:
        _saved(plots.unit_activity(Path(args.plot), history["active"], result.activations))
    if profiles:
        _saved(plots.profile(Path(args.plot), profiles))
    _saved(plots.training(Path(args.plot), history, confusion))


def _report(result, history: dict, profiles: list) -> None:
    """After an epoch's line (one device's ``EpochResult`` or the devices' ``EpochSummary``): the
    formats it moved, with ``--stats`` the units' activity (kept in ``history``), with ``--profile``
    the comparison with float64 (kept in ``profiles``)."""
    from host.profile import table

    for move in result.moves:
        print(f"  format {move}")
    if result.active is not None:
        history["active"].append([a.tolist() for a in result.active])
        print(_unit_stats(result.active))
    if result.profile is not None:
        profiles.append(result.profile)
        print(table(result.profile))


def _unit_stats(active: list[np.ndarray]) -> str:
    """One line per hidden layer: how often its units were active, and how many never were."""
    from host.train import dead_fraction

    lines = []
    for k, a in enumerate(active, 1):
        dead = dead_fraction(a)
        lines.append(f"  layer {k}: units active for {100 * a.mean():.1f} % of samples on average; "
                     f"dead (never active this epoch) {round(dead * len(a))}/{len(a)} ({100 * dead:.1f} %)")
    return "\n".join(lines)


def _reference(network, trainer, train, test, seed: int, epochs: int) -> None:
    """The same network in float32, from the same initial weights, in the same data order."""
    from host.reference import Reference

    ref = Reference.from_raw(trainer.program, trainer.initial_weights())
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        ref.train_epoch(train, rng)
    print(f"test accuracy of the float32 reference: {100 * np.mean(ref.predict(test.x) == test.y):.2f} %")


def _saved(paths: list[Path]) -> None:
    print(f"plots: {', '.join(map(str, paths))}")


def _samples(args, state: Checkpoint, labelled: bool) -> tuple:
    """The samples of ``--data`` for ``state``'s network (default: the checkpoint's test rows, the
    digits test split for a run on the digits): a :class:`host.data.Dataset` if ``labelled``, else
    the inputs, from a file with or without labels; and the inputs, before the input transform."""
    from host import data

    network = state.network
    if args.data is None:
        samples = state.holdout.load() if state.holdout is not None else data.digits(seed=state.seed)[1]
        data.check_features(samples, network.sizes[0], trained=True)
        return samples, samples.x
    x, y = data.load_samples(args.data, network.sizes[0], labels=labelled)
    if not labelled:
        return x, x
    if y is None:
        raise data.DataError(f"{args.data}: no labels, {network.sizes[0]} features per sample only: eval "
                             f"compares the predictions with a label after the features (infer predicts "
                             f"without them)")
    return data.Dataset(x, y, _outputs(network), str(args.data)), x


def _on_device(args, state: Checkpoint, x, outputs: bool = False) -> np.ndarray:
    """The device's predictions (or, with ``outputs``, its output layer) for raw inputs ``x``; the
    predictions from inputs kept in the device's data memory where they fit."""
    from host.train import Trainer, data_words, resident_problem

    if state.transform is not None:
        x = state.transform.inputs(x)
    network, formats = state.network, state.formats
    with _driver(args, network, data=0 if outputs else data_words(network, formats, None, x)) as driver:
        fits = resident_problem(network, formats, None, driver.info().config(), x) is None
        trainer = Trainer(driver, network, state.seed, formats, tests=x if fits and not outputs else None)
        trainer.load(state.weights)
        return trainer.outputs(x) if outputs else trainer.predict(x)


def _predictions(args, labelled: bool) -> tuple:
    """The network of ``--checkpoint``, its samples (:func:`_samples`) and the device's predictions."""
    state = Checkpoint.load(args.checkpoint)
    samples, x = _samples(args, state, labelled)
    return state.network, samples, _on_device(args, state, x)


def _outputs(network: Network) -> int:
    """The classes ``network`` tells apart."""
    return network.sizes[-1] if network.output is Output.SOFTMAX else 2


def _infer(args) -> None:
    _, _, predictions = _predictions(args, labelled=False)
    csv = "sample,prediction\n" + "".join(f"{i},{p}\n" for i, p in enumerate(predictions))
    if args.out:
        Path(args.out).write_text(csv)
        print(f"{len(predictions)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(csv)


def _eval(args) -> None:
    from host.train import confusion_matrix

    network, dataset, predictions = _predictions(args, labelled=True)
    print(f"accuracy: {100 * np.mean(predictions == dataset.y):.2f} % of {len(dataset.y)} samples")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(confusion_matrix(dataset.y, predictions, _classes(network, dataset)))


def _export(args) -> None:
    from host import models

    state = Checkpoint.load(args.checkpoint)
    model = models.export(state, args.out, args.format)
    print(f"{args.format} model written to {args.out}")
    if args.format == "safetensors":
        print(models.pytorch_code(model, args.out), end="")
    _, x = _samples(args, state, labelled=False)
    device = _on_device(args, state, x, outputs=True)
    if args.format == "onnx":
        (ort,) = models.requires("onnxruntime")
        session = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        exported = session.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]
    else:
        exported = model.outputs(x)
    agree = np.mean(_classes_of(exported) == _classes_of(device))
    print(f"exported model against the device on {len(x)} samples: largest output difference "
          f"{np.abs(exported - device).max():.4f}, predictions agree on {100 * agree:.2f} %")


def _classes_of(outputs: np.ndarray) -> np.ndarray:
    return (outputs[:, 0] >= 0.5).astype(np.int64) if outputs.shape[1] == 1 else outputs.argmax(axis=1)


def _import(args) -> None:
    from host import data, models
    from host.compiler import compile_network

    _check_replaceable(args.out)
    path = Path(args.model)
    if path.suffix.lower() == ".safetensors":
        if args.layers is None:
            raise ValueError("a safetensors state_dict does not say the network: give --layers (and "
                             "--activation, --output if not relu and softmax)")
        hidden, output = _activation(args.activation or "relu")[0], Output[(args.output or "softmax").upper()]
        model = models.import_safetensors(path, _sizes(args.layers), hidden, output,
                                          args.slope if args.slope is not None else 0.01)
    else:
        model = models.import_onnx(path)
    samples = None if args.data is None else data.load(args.data)
    if samples is not None:
        data.check_features(samples, model.sizes[0], trained=True)
    state, errors = models.checkpoint_of(model, None if samples is None else samples.x, args.batch)
    compile_network(state.network, _config(args, state.network), formats=state.formats)   # fits, or says why
    names = [f"W{k}" for k in range(1, len(model.layers) + 1)] + [f"S{k}" for k in range(1, len(errors) -
                                                                                       len(model.layers) + 1)]
    for name, (error, largest) in zip(names, errors, strict=True):
        print(f"{name}: largest quantisation error {error:.2e} ({100 * error / max(largest, 1e-30):.3f} % "
              f"of its largest value {largest:.3g})")
    if samples is not None:
        before = np.mean(_classes_of(model.outputs(samples.x)) == samples.y)
        after = np.mean(_on_device(args, state, samples.x) == samples.y)
        print(f"accuracy on {len(samples.y)} samples of {args.data}: {100 * before:.2f} % in float, "
              f"{100 * after:.2f} % on the device")
    state.save(args.out)
    layers = ",".join(map(str, model.sizes))
    print(f"checkpoint of a {layers} network written to {args.out}: eval, infer and train --resume take it")


def _info(args) -> None:
    with _driver(args) as driver:
        info = driver.info()
    for name, value in vars(info).items():
        print(f"{name:12} {value}")


def _serve(args) -> None:
    from sim.virtual import main as serve

    serve(["--port", str(args.serve_port), "--config", json.dumps(asdict(_config(args)))])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="systolic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def board(p):
        p.add_argument("--board", choices=sorted(BOARD_DEVICES),
                       help="the device of this board, for the virtual board and the model (default: the "
                            "default 4×4 device, buffers as deep as the network needs); with --port, the "
                            "board there must be this one")

    def device(p):
        board(p)
        p.add_argument("--port", help="pyserial URL of the device: /dev/ttyUSB1, socket://127.0.0.1:N "
                                      "(default: start a virtual board)")
        p.add_argument("--baud", type=int, default=3_000_000)
        p.add_argument("--target", choices=["board", "model"], default="board",
                       help="model: the golden model in this process (bit-identical to the gateware)")

    p = sub.add_parser("info", help="what the device is")
    device(p)
    p = sub.add_parser("serve", help="run a virtual board until Ctrl-C")
    p.add_argument("--port", dest="serve_port", type=int, default=0, help="TCP port (default: any free one)")
    board(p)
    p = sub.add_parser("train", help="train a network on the device")
    device(p)
    p.add_argument("--layers", help="layer sizes, input first (default 64,32,10)")
    p.add_argument("--activation", help="hidden activation: relu (default), leaky_relu, prelu (slopes "
                                        "learned per unit), sigmoid, tanh, swish, identity")
    p.add_argument("--slope", type=float, help="leaky ReLU slope, or PReLU's initial slope "
                                               "(default 0.01, PReLU 0.25)")
    p.add_argument("--weight-bits", type=int,
                   help="precision of weights: WEIGHT_BITS − 4 fraction bits (default 16)")
    p.add_argument("--rounding", choices=list(ROUNDING),
                   help="rounding of the weight update (default stochastic)")
    p.add_argument("--stats", action="store_true", default=None,
                   help="count, per hidden unit, the samples it is active for; print dead units per epoch "
                        "(plots with --plot)")
    p.add_argument("--profile", action="store_true",
                   help="compare every step with a float64 shadow and print, per tensor and epoch, the "
                        "format, the share saturated, the share flushed to zero and the relative error "
                        "(plot with --plot)")
    p.add_argument("--output", choices=["softmax", "sigmoid"], help="output layer (default softmax)")
    p.add_argument("--epochs", type=int, default=20, help="train up to this epoch (default 20)")
    p.add_argument("--batch", type=int, help="minibatch (default 32)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.1)")
    p.add_argument("--seed", type=int, help="seed of the initial weights and the data order (default 0)")
    p.add_argument("--data", help="CSV or NPZ training data, features in any range: standardised by the "
                                  "training rows' mean and deviation (default: scikit-learn's digits)")
    p.add_argument("--test-fraction", type=float,
                   help="share of --data held out for testing, stratified by class, seeded by --seed "
                        "(default 0.25)")
    p.add_argument("--test", help="CSV or NPZ test data for --data, instead of holding out a share of it")
    p.add_argument("--checkpoint", help="write a checkpoint here after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint, with the network, minibatch, rate and seed it was "
                        "trained with (options that contradict them are refused)")
    p.add_argument("--plot", help="folder for PNG plots of the curves and the confusion matrix")
    p.add_argument("--no-reference", action="store_true", help="skip the float32 reference run")
    kept = p.add_mutually_exclusive_group()
    kept.add_argument("--resident", action="store_true",
                      help="send the training set to the device's data memory once, then only each "
                           "epoch's order of samples (default when it fits and not --profile)")
    kept.add_argument("--streamed", action="store_true", help="send every minibatch over the link")
    p.add_argument("--devices", help="train data-parallel through Ray on model:N, virtual:N or a comma-"
                                     "separated list of ports, a replica of the weights on each (needs the "
                                     "cluster extra)")
    p.add_argument("--sync-every", type=int, default=1,
                   help="with --devices: average the replicas' weights every K steps (default 1: every step)")
    for name, help_ in (("infer", "predictions for a file of inputs, as CSV"),
                        ("eval", "accuracy and confusion matrix of a checkpoint")):
        p = sub.add_parser(name, help=help_)
        device(p)
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--data", help="CSV or NPZ (default: the test rows of the checkpoint's training run)")
        if name == "infer":
            p.add_argument("--out", help="CSV file to write (default: standard output)")
    p = sub.add_parser("export", help="the trained network as a float model, ONNX or a safetensors "
                                      "state_dict, compared with the device")
    device(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=["onnx", "safetensors"], required=True)
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--data", help="samples to compare the exported model and the device on (default: the "
                                  "checkpoint's test rows)")
    p = sub.add_parser("import", help="an ONNX model, or a safetensors state_dict of Linear layers, as a "
                                      "device checkpoint")
    device(p)
    p.add_argument("model", help=".onnx file, or .safetensors with --layers")
    p.add_argument("--out", required=True, help="the checkpoint to write")
    p.add_argument("--data", help="labelled samples: the formats fit them, and the accuracy is measured in "
                                  "float and on the device")
    p.add_argument("--batch", type=int, default=32, help="minibatch of the checkpoint (default 32)")
    p.add_argument("--layers", help="a safetensors model's layer sizes, input first")
    p.add_argument("--activation", help="a safetensors model's hidden activation (default relu)")
    p.add_argument("--output", choices=["softmax", "sigmoid"], help="a safetensors model's output")
    p.add_argument("--slope", type=float, help="a safetensors model's leaky ReLU slope")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "resume", False) and not args.checkpoint:
        print("systolic: error: --resume needs --checkpoint", file=sys.stderr)
        return 2
    if getattr(args, "target", None) == "model" and args.port:
        print("systolic: error: --target model runs the golden model in this process: give --port or "
              "--target model, not both", file=sys.stderr)
        return 2
    from host.driver import DriverError

    try:
        {"train": _train, "infer": _infer, "eval": _eval, "info": _info, "serve": _serve, "export": _export,
         "import": _import}[args.command](args)
    except (ValueError, DriverError, OSError) as error:
        print(f"systolic: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
