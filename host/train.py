"""Training and inference on a device: the host streams minibatches, the device does the rest.

The compiled program (``host/compiler.py``) and the weights are loaded once; each training step is
then a ``WRITE`` of the minibatch and its labels and one ``RUN`` whose reply carries the per-sample
losses and predictions. Forward pass, loss gradient, back-propagation and the SGD update all run on
the device; weights cross the link only when a run starts or a checkpoint is taken.

After each epoch the formats follow the device's saturation counts (``host/exponents.py``): a moved
format rescales its weights on the device and reprograms it.

Reproducibility: the data order comes from one seeded generator, and the device's stochastic-
rounding LFSRs are reseeded from ``(seed, epoch)`` at the start of every epoch (a two-word program
after the compiled one), so a run resumed from a checkpoint at an epoch boundary ends with the same
weights as one that never stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from host.compiler import Formats, Network, Program, Resident, Write, compile_network, initial_parameters
from host.data import Dataset, epoch_order, inference_batches, minibatches
from host.exponents import Move, counts, follow, rescale
from host.profile import TensorStats, mean_stats, step_stats
from hw.isa import Opcode, Reg, TensorDescriptor, field_max, instruction
from hw.numerics import ACT, Fixed

__all__ = ["Trainer", "EpochResult", "epoch_seed", "starting_formats", "data_words", "resident_problem",
           "confusion_matrix", "dead_fraction", "COUNTER_MAX"]

COUNTER_MAX = (1 << 15) - 1
"""A device counter saturates here (16-bit words): the host drains them before they can."""


def epoch_seed(seed: int, epoch: int) -> int:
    """The LFSR seed of an epoch: a fixed function of the run's seed and the epoch number."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def starting_formats(network: Network, x, seed: int) -> Formats:
    """The formats a run of ``seed`` starts from: :meth:`Formats.choose` for inputs ``x`` and the
    initial weights of ``seed``."""
    return Formats.choose(network, x, initial_parameters(network, np.random.default_rng(seed)))


def _layout(network: Network, formats: Formats, data: Dataset | None, tests=None) -> Resident:
    """How the training set ``data`` and the test inputs ``tests`` (either may be ``None``) keep in a
    data memory, with a whole epoch to a ``RUN``."""
    parts = [np.zeros((0, network.sizes[0]))] + [np.asarray(p, dtype=np.float64) for p in
                                                  (None if data is None else data.x, tests) if p is not None]
    raw = Fixed(16, formats.x).quantize(np.concatenate(parts))
    samples = 0 if data is None else len(data)
    return Resident.of(raw, samples // network.batch, 0 if tests is None else len(tests))


def _fixed_words(network: Network, layout: Resident) -> int:
    """Words of the data memory besides the training sample list: inputs, class numbers, test list."""
    m = network.batch
    words = (layout.samples + layout.tests) * layout.words_per_sample(network.sizes[0]) + layout.samples
    return words + ((layout.test_steps(m) + 1) * m if layout.tests else 0)


def data_words(network: Network, formats: Formats, data: Dataset | None, tests=None) -> int:
    """Words of data memory that keep ``data`` (and the test inputs ``tests``) resident with a whole
    epoch to a ``RUN``."""
    layout = _layout(network, formats, data, tests)
    return _fixed_words(network, layout) + ((layout.steps + 1) * network.batch if layout.samples else 0)


def resident_problem(network: Network, formats: Formats, data: Dataset | None, config,
                     tests=None) -> str | None:
    """Why ``data`` and ``tests`` cannot be resident on a device of ``config`` (``None``: they can)."""
    return _problem(network, _layout(network, formats, data, tests), config)


def _problem(network: Network, layout: Resident, config) -> str | None:
    rows = field_max(TensorDescriptor(), "rows")
    count = layout.samples + layout.tests
    if count > rows:
        return f"{count} samples exceed the {rows} rows a tensor describes"
    need = _fixed_words(network, layout) + (2 * network.batch if layout.samples else 0)
    if need > config.data_depth:
        return (f"{count} samples of {network.sizes[0]} inputs and their lists need {need} words of data "
                f"memory, the device has {config.data_depth}")
    return None


def _resident(network: Network, formats: Formats, data: Dataset | None, config, tests=None) -> Resident:
    """How ``data`` and ``tests`` sit in ``config``'s data memory, with the longest training sample
    list (steps to a ``RUN``) that fits the epoch, the memory left and, with ``stats``, the unit
    counters' range.

    Raises
    ------
    ValueError
        If they do not fit (:func:`resident_problem`).
    """
    m, layout = network.batch, _layout(network, formats, data, tests)
    problem = _problem(network, layout, config)
    if problem:
        raise ValueError(f"{problem}: stream the data (--streamed)")
    room = (config.data_depth - _fixed_words(network, layout)) // m - 1
    steps = min(layout.steps, room, COUNTER_MAX // m if network.stats else room)
    return dataclasses.replace(layout, steps=steps)


def confusion_matrix(y, predictions, classes: int) -> np.ndarray:
    """``c[i, j]``: samples of class ``i`` predicted as ``j``."""
    c = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(c, (np.asarray(y), np.asarray(predictions)), 1)
    return c


def dead_fraction(active) -> float:
    """The share of a layer's units that were active for no sample (``active``: per-unit counts or
    fractions, as :attr:`EpochResult.active` holds them)."""
    return float(np.mean(np.asarray(active) == 0))


@dataclass
class EpochResult:
    loss: float       # mean per-sample loss of the epoch's training steps, as the device computed it
    accuracy: float   # fraction of training samples the device predicted right during the epoch
    # With Network.stats, per hidden layer: for each unit the fraction of the epoch's samples for
    # which it was active (z > 0), from the device's counters, and A[l] of the epoch's last minibatch.
    active: list[np.ndarray] | None = None
    activations: list[np.ndarray] | None = None
    # With profiling, each tensor's comparison with the float64 shadow, averaged over the epoch's steps.
    profile: dict[str, TensorStats] | None = None
    # The formats moved after the epoch, from the device's saturation counts (host/exponents.py).
    moves: list[Move] | None = None


class Trainer:
    """A network compiled for, loaded into and trained on one device.

    Parameters
    ----------
    driver : host.driver.Driver
        An open connection to a board, the virtual board or the golden model.
    network : Network
    seed : int
        Seed of the data order, the initial weights and the LFSRs.
    formats : Formats, optional
        The tensors' formats (a checkpoint's, to resume); by default :meth:`Formats.choose` picks
        them from ``x``, the training inputs, and the initial weights.
    x : array_like, optional
        Training inputs, a sample per row, for the choice of formats.
    resident : Dataset, optional
        The training set, to keep on the device (``--resident``): sent once, in the data memory, after
        which :meth:`train_epoch` sends only each epoch's order of samples and reads back sums per
        step. It must be the set :meth:`train_epoch` is given.
    tests : array_like, optional
        Test inputs to keep on the device beside it: :meth:`predict` of exactly these inputs then
        sends none of them. Both need a device whose data memory holds them
        (:func:`resident_problem`).
    profile : bool
        Compare every training step with a float64 shadow (:mod:`host.profile`):
        :attr:`EpochResult.profile`, or :meth:`take_profiles` when driven step by step. Reads every
        tensor back after each step, so the link carries far more than training needs.

    Raises
    ------
    ValueError
        If the network does not fit the device (the message says what to shrink).
    """

    def __init__(self, driver, network: Network, seed: int = 0, formats: Formats | None = None,
                 x=None, profile: bool = False, resident: Dataset | None = None, tests=None):
        self.driver, self.network, self.seed, self.profile = driver, network, seed, profile
        self._profiles: list[dict[str, TensorStats]] = []
        self._known: list[np.ndarray] | None = None   # the parameters after the last profiled step
        self.config = driver.info().config()
        if formats is None:
            formats = starting_formats(network, x, seed)
        self.resident, self._tests = None, None if tests is None else np.asarray(tests)
        if resident is not None or tests is not None:
            self.resident = _resident(network, formats, resident, self.config, tests)
        self._compile(formats)
        if self.resident is not None:
            x = np.zeros((0, network.sizes[0])) if resident is None else resident.x
            self.write(self.program.data_writes(x, None if resident is None else resident.y, tests))

    def _compile(self, formats: Formats, loaded: tuple[int, ...] = ()) -> None:
        """Compile for ``formats`` and program the device (buffers are left as they are), only the
        instructions that differ from the ``loaded`` ones."""
        self.program: Program = compile_network(self.network, self.config, seed=self.seed, formats=formats,
                                                keep=self.profile, resident=self.resident)
        self.reseed_at = len(self.program.words)
        self._known = None
        if self.reseed_at + 2 > self.config.imem:
            raise ValueError(f"the program needs {self.reseed_at + 2} instructions, the device holds "
                             f"{self.config.imem}: use fewer layers")
        words = self.program.words
        differ = [a >= len(loaded) or loaded[a] != word for a, word in enumerate(words)] + [False]
        start = None
        for a, new in enumerate(differ):
            if new and start is None:
                start = a
            elif not new and start is not None:
                self.driver.program(list(words[start:a]), start)
                start = None

    def load(self, weights: list[np.ndarray]) -> None:
        """Put raw parameters (``Program.parameters``: weights, then learned slopes), the constants and
        cleared counters on the device and set its registers."""
        self.write(self.program.load_writes(weights))
        self.driver.run(self.program.setup)
        self._known = None

    def initial_weights(self) -> list[np.ndarray]:
        return self.program.initial_weights(np.random.default_rng(self.seed))

    def weights(self) -> list[np.ndarray]:
        """The raw parameters (weights, then learned slopes) as they are on the device now."""
        return [self._read(r) for r in self.program.parameters]

    def write(self, writes: list[Write]) -> None:
        """Send ``writes`` (of :class:`host.compiler.Program`) to the device."""
        for buf, addr, words in writes:
            self.driver.write(buf, addr, words)

    def _read(self, region) -> np.ndarray:
        return region.unpack(self.driver.read(region.buf, region.first, region.words))

    def drain_counters(self, totals: list[np.ndarray]) -> None:
        """Add the device's active-unit counters to ``totals`` and clear them (they are zero after
        :meth:`load`, and every epoch ends with a drain, so each epoch starts from zero)."""
        for total, region in zip(totals, self.program.counters, strict=True):
            total += self._read(region)[:, 0]
        self.write(self.program.clear_counters())

    def activations(self) -> list[np.ndarray]:
        """Each hidden layer's activations ``A[l]`` of the last minibatch, in real units."""
        fmt = self.program.formats
        return [self._read(r)[:-1] / 2.0 ** fmt.act(k) for k, r in enumerate(self.program.inputs[1:], 1)]

    def saturation(self) -> dict[str, tuple[int, int]]:
        """Read and clear the saturation counters: ``{tensor: (saturated, top bit used)}`` since the
        last read (or :meth:`load`)."""
        if self.program.counted:
            self.driver.run(self.program.count)
        return counts(self.program, self.driver.read)

    def follow(self, steps: int) -> list[Move]:
        """Move the formats as the saturation counts of the last ``steps`` training steps say: the
        weights are rescaled on the device and the program recompiled. Returns the moves."""
        formats, moves = follow(self.program, self.saturation(), steps)
        if moves:
            self.move(formats)
        return moves

    def move(self, formats: Formats) -> None:
        """Change to ``formats``: the parameters whose format moved rescaled on the device, the rows
        of ones below the inputs rewritten, the instructions that changed reprogrammed."""
        before = self.program
        self._compile(formats, before.words)
        for old, new, region in zip(before.parameter_formats, self.program.parameter_formats,
                                    self.program.parameters, strict=True):
            if old.frac != new.frac:
                self.write([(region.buf, region.first, region.pack(rescale(self._read(region), old.frac,
                                                                            new.frac)))])
        self.write(self.program.ones_rows())

    def set_parameters(self, raw: list[np.ndarray]) -> None:
        """Overwrite the parameters on the device (the rest of its state, counters included, stays)."""
        self.write([(r.buf, r.first, r.pack(w)) for r, w in zip(self.program.parameters, raw, strict=True)])
        self._known = None

    def reseed(self, seed: int) -> None:
        """Reseed the device's stochastic-rounding LFSRs."""
        self._set(Reg.SEED, seed)

    def _set(self, reg: Reg, value: int) -> None:
        """Set a run-time register, with a two-instruction program after the compiled one."""
        self.driver.program([instruction(Opcode.SET, set={"reg": reg, "value": value}),
                             instruction(Opcode.END)], self.reseed_at)
        self.driver.run(self.reseed_at)

    def train_step(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """One SGD step on the minibatch ``x``, ``y``: the losses and the predictions made before it.
        With profiling, the step's comparison with its float64 shadow goes to :meth:`take_profiles`."""
        before = (self._known or self.weights()) if self.profile else None
        self.write(self.program.batch_writes(x, y))
        out = self.program.decode_output(self.driver.run(self.program.train, self.program.output).words)
        if self.profile:
            stats, self._known = step_stats(self.program, self._read, before, x, y)
            self._profiles.append(stats)
        return out

    def take_profiles(self) -> list[dict[str, TensorStats]]:
        """The profiles of the steps trained since the last call (:mod:`host.profile`)."""
        taken, self._profiles = self._profiles, []
        return taken

    def train_epoch(self, data: Dataset, rng: np.random.Generator, epoch: int,
                    progress: Callable[[int, int], None] | None = None) -> EpochResult:
        """One pass over ``data`` in shuffled full minibatches (:func:`host.data.minibatches`), streamed
        or, with resident data, taken from the device's data memory in the same order."""
        self.reseed(epoch_seed(self.seed, epoch))
        m, steps = self.network.batch, len(data) // self.network.batch
        counts = [np.zeros(r.rows, dtype=np.int64) for r in self.program.counters]
        drain = COUNTER_MAX // m   # steps before a 16-bit counter could saturate
        self.take_profiles()
        if self.resident is not None and self.resident.samples:
            losses, right = self._resident_epoch(data, rng, counts, progress)
        else:
            losses, right = [], 0
            for step, (x, y) in enumerate(minibatches(data, m, rng), 1):
                loss, predictions = self.train_step(x, y)
                losses.append(loss.mean())
                right += int((predictions == y).sum())
                if counts and (step % drain == 0 or step == steps):
                    self.drain_counters(counts)
                if progress:
                    progress(step, steps)
        profiles = self.take_profiles()
        result = EpochResult(float(np.mean(losses)), right / (steps * m),
                             profile=mean_stats(profiles) if profiles else None)
        if counts:
            result.active = [c / (steps * m) for c in counts]
            result.activations = self.activations()
        result.moves = self.follow(steps)
        return result

    def _resident_epoch(self, data: Dataset, rng: np.random.Generator, counts: list[np.ndarray],
                        progress) -> tuple[list[float], int]:
        """The epoch's steps on the resident data, ``resident.steps`` to a ``RUN``: each step's mean
        loss and the right predictions made before the steps."""
        if len(data) != self.resident.samples:
            raise ValueError(f"the device holds {self.resident.samples} resident samples, not the "
                             f"{len(data)} given: train on the set the trainer was made with")
        order, m = epoch_order(data, self.network.batch, rng), self.network.batch
        losses, wrong = [], 0
        for first in range(0, len(order), self.resident.steps):
            chunk = order[first:first + self.resident.steps]
            self.write(self.program.order_writes(chunk))
            self._set(Reg.STEPS, len(chunk))
            words = self.driver.run(self.program.epoch, self.program.sums_output(len(chunk))).words
            loss, missed = self.program.decode_sums(words, len(chunk))
            losses += list(loss / m)
            wrong += int(missed.sum())
            if counts:
                self.drain_counters(counts)
            if progress:
                progress(first + len(chunk), len(order))
        return losses, len(order) * m - wrong

    def outputs(self, x) -> np.ndarray:
        """The output layer's values for every sample of ``x`` (softmax probabilities, or the sigmoid),
        ``samples × outputs``, read from the device after each minibatch."""
        region = self.program.regions[f"A{self.network.layers}"]
        out = []
        for batch, real in inference_batches(np.asarray(x), self.network.batch):
            self.write(self.program.batch_writes(batch))
            self.driver.run(self.program.infer, self.program.output)
            out.append(ACT.dequantize(self._read(region))[:, :real].T)
        return np.concatenate(out)

    def predict(self, x) -> np.ndarray:
        """Class numbers for every sample of ``x`` (the last minibatch padded, its padding dropped);
        for the resident test inputs, one ``RUN`` of the program's ``assess`` entry point."""
        if self._tests is not None and np.array_equal(np.asarray(x), self._tests):
            self._set(Reg.STEPS, self.resident.test_steps(self.network.batch))
            return self.program.decode_assess(self.driver.run(self.program.assess,
                                                              self.program.assess_output()).words)
        out = []
        for batch, real in inference_batches(np.asarray(x), self.network.batch):
            self.write(self.program.batch_writes(batch))
            result = self.driver.run(self.program.infer, self.program.output)
            out.append(self.program.decode_output(result.words)[1][:real])   # no losses when inferring
        return np.concatenate(out)
