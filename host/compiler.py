"""Compile a multilayer perceptron into a device program: instructions, buffer map and formats.

A :class:`Network` (layer sizes, hidden activation, softmax + cross-entropy or one sigmoid unit +
binary cross-entropy, minibatch, learning rate) and a :class:`DeviceConfig` give a :class:`Program`:
one instruction-memory image with these entry points,

- ``setup``: ``SET`` the leaky-ReLU slope and the LFSR seed (run once after loading; the training
  step never reseeds, so successive steps draw fresh random bits);
- ``train``: one training step on the minibatch in the buffers (forward, loss gradient ``A − Y``,
  backward, SGD with stochastic rounding), leaving per-sample losses and predictions in one
  contiguous output region that the ``RUN`` reply returns;
- ``infer``: the forward pass and predictions only;
- with resident data (:class:`Resident`), ``epoch``: ``STEPS`` training steps, each on the next
  minibatch of a sample list in the data memory (``GATHER``), leaving per-step sums of the losses
  and of the wrong predictions (:func:`_epoch`, ``docs/isa.md``).

Columns are samples (course notation). Placement follows ``docs/isa.md``, so no instruction reads
two operands from one buffer:

=========  =================================================================================
buffer     regions
=========  =================================================================================
``W``      ``W[l]``: ``n_l × (n_{l-1} + 1)``, the bias as the last column
``A``      ``[A[l]; 1]`` for ``l < L`` (``A[0] = X``; the row of ones is written at load),
           ``g'(Z[l])`` for hidden layers, the output probabilities ``A[L]``
``G``      labels ``Y``, ``Z[l]`` (overwritten by ``dZ[l]`` in the backward pass), outputs
=========  =================================================================================

Formats (:class:`Formats`): every tensor has its own power-of-two scale, raw ``q`` standing for
``q / 2**f`` with ``f`` its fraction bits, chosen by :meth:`Formats.choose` from the data and the
initial weights. Probabilities, labels, losses and ``g'(Z)`` are in :data:`numerics.ACT`
(``Fixed(16, 12)``, the format of the activation tables), and so is ``dZ[L] = A[L] − Y``. Each
instruction's shifts follow from the formats of what it reads and writes:

- ``Z[k] = W[k]·[A[k-1]; 1]``: the accumulator at ``f_W + f_A``, shifted by ``f_W + f_A − f_Z``;
  ``SOFTMAX`` shifts the logits ``Z[L]`` up by ``ACT.frac − f_Z`` (a sigmoid output by ``b_shift``);
- ``dZ[k] = (W[k+1]ᵀ·dZ[k+1]) ⊙ g'(Z[k])``: the product at ``f_W + f_dZ' + 12``, shifted to ``f_dZ``;
- ``W −= α/m · dZ·[A; 1]ᵀ``: the SGD epilogue ``((W << s) − acc·SCALE) >> s``, rounded stochastically
  (or to nearest even), with ``s`` and ``SCALE`` from :func:`sgd_multiplier` (``SET SCALE`` before
  each layer's update, as the layers' formats differ).

Two options add instructions to ``train``, both made of the same GEMM and VEC instructions:

- ``learn_slope`` (PReLU): hidden units ``a = max(z, 0) + α_i·min(z, 0)`` with one slope ``α_i`` per
  unit, learned by SGD with the weights. With ``N = min(Z, 0)``, ``R = [Z > 0]`` and
  ``E = W[l+1]ᵀ·dZ[l+1]``: the forward pass is ``A = relu(Z) + (α·1ᵀ) ⊙ N`` (a one-deep GEMM with a
  MUL epilogue broadcasts ``α``), the backward pass ``dZ = E ⊙ R + (α·1ᵀ) ⊙ (E − E ⊙ R)``, and the
  slope gradient ``Σ_j E ⊙ N`` is a product in the vector unit summed over the minibatch by the
  array in the same SGD GEMM that updates the weights (``(E ⊙ N)·1`` against ``α``).
- ``stats``: per hidden unit, a counter of the samples for which ``z > 0`` (the unit is active),
  accumulated on the device by a GEMM ``C += [Z > 0]·1`` and read by the host; 16-bit, saturating.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field

import numpy as np

from hw.config import DeviceConfig
from hw.isa import (
    COUNTERS,
    SOFTMAX_SHIFT_MAX,
    TENSORS,
    Buf,
    GatherMode,
    Opcode,
    Reg,
    Rounding,
    TensorDescriptor,
    VecOp,
    field_max,
    instruction,
)
from hw.layout import Layout
from hw.numerics import ACT, SLOPE, Act, Fixed, activation_float

__all__ = ["Output", "Network", "Formats", "Resident", "Region", "Counted", "Write", "Program",
           "compile_network",
           "deep_enough", "initial_parameters", "sgd_multiplier", "ONE_FRAC"]

_SCALE_MAX = (1 << 15) - 1
_SHIFT_MAX = 31  # b_shift field


class Output(enum.Enum):
    """The output layer and its loss."""

    SOFTMAX = "softmax"   # softmax + cross-entropy, one row per class
    SIGMOID = "sigmoid"   # one sigmoid unit + binary cross-entropy


@dataclass(frozen=True)
class Network:
    """A multilayer perceptron and how to train it.

    Parameters
    ----------
    sizes : tuple[int, ...]
        Units per layer, inputs first: ``(64, 32, 10)`` is 64 inputs, 32 hidden units, 10 classes.
    hidden : Act
        Activation of the hidden layers.
    output : Output
        Softmax + cross-entropy (two or more classes) or sigmoid + binary cross-entropy (one unit).
    batch : int
        Samples per minibatch, ``m``.
    learning_rate : float
        SGD step ``α``.
    slope : float
        Negative-side slope of ``Act.LEAKY_RELU`` (the initial slope of every unit with
        ``learn_slope``).
    learn_slope : bool
        PReLU: ``Act.LEAKY_RELU`` with one slope per hidden unit, learned on the device.
    weight_bits : int
        Precision of weights, biases and slopes (5 … 16): their formats (:class:`Formats`) drop
        ``16 − weight_bits`` fraction bits.
    rounding : Rounding
        Rounding of the weight update: ``STOCHASTIC`` (unbiased) or ``NEAREST_EVEN``.
    stats : bool
        Count, per hidden unit, the samples it is active for (:attr:`Program.counters`).

    Raises
    ------
    ValueError
        If a field is out of range.
    """

    sizes: tuple[int, ...]
    hidden: Act = Act.RELU
    output: Output = Output.SOFTMAX
    batch: int = 32
    learning_rate: float = 0.1
    slope: float = 0.01
    learn_slope: bool = False
    weight_bits: int = 16
    rounding: Rounding = Rounding.STOCHASTIC
    stats: bool = False

    def __post_init__(self):
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes must list at least inputs and outputs, all positive: {self.sizes}")
        if self.output == Output.SOFTMAX and self.sizes[-1] < 2:
            raise ValueError("softmax needs at least 2 classes: use Output.SIGMOID for one unit")
        if self.output == Output.SIGMOID and self.sizes[-1] != 1:
            raise ValueError(f"a sigmoid output has 1 unit, not {self.sizes[-1]}: use Output.SOFTMAX")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, not {self.batch}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, not {self.learning_rate}")
        if self.learn_slope and self.hidden != Act.LEAKY_RELU:
            raise ValueError(f"learn_slope (PReLU) learns the slope of Act.LEAKY_RELU, not of "
                             f"{Act(self.hidden).name}: set hidden=Act.LEAKY_RELU")
        if not 5 <= self.weight_bits <= 16:
            raise ValueError(f"weight_bits must be 5 … 16, not {self.weight_bits}")

    @property
    def layers(self) -> int:
        """Weight layers, ``L``."""
        return len(self.sizes) - 1


ONE_FRAC = 14
"""Fraction bits of the constant rows and columns of ones (``1.0`` is ``2**14``)."""

_FRAC_MAX = 14    # a tensor that meets a row of ones (inputs, activations) keeps 1.0 representable
_HEADROOM = 8     # room to grow over the largest value at the start of training
_ACT_MAX, _LOGITS_MAX, _WEIGHT_MAX = 10, 9, 13   # the least range a format leaves to grow into
_WORD = 16


def _frac(largest: float, headroom: float, lo: int, hi: int) -> int:
    """The most fraction bits, within ``lo … hi``, that keep ``headroom·largest`` in a 16-bit word."""
    largest = float(largest) * headroom
    if not np.isfinite(largest):
        raise ValueError("cannot choose a format for values that are not finite: clean the data first")
    integer = max(0, math.ceil(math.log2(largest))) if largest > 0 else 0
    return int(min(hi, max(lo, _WORD - 1 - integer)))


@dataclass(frozen=True)
class Formats:
    """The power-of-two scale of every tensor of a program: fraction bits in a 16-bit word.

    Tuples are indexed by layer, ``[k - 1]`` for layer ``k``. ``Z[k]`` and ``A[k]`` of a hidden layer
    share :attr:`a` (ReLU, leaky ReLU, PReLU, identity and swish, computed as ``z·σ(z)``, keep any scale;
    sigmoid and tanh read their tables in :data:`numerics.ACT`, so :attr:`a` is ``ACT.frac`` for them).
    Probabilities, labels, losses, ``g'(Z)`` and ``dZ[L] = A[L] − Y`` are in ``ACT``.

    Attributes
    ----------
    x : int
        Inputs ``A[0]``.
    a : tuple[int, ...]
        ``Z[k]`` and ``A[k]`` of the hidden layers ``k = 1 … L−1``.
    logits : int
        ``Z[L]``, ``ACT.frac − 7 … ACT.frac`` (``SOFTMAX`` shifts them into ``ACT``).
    w : tuple[int, ...]
        ``W[k]`` (with its bias column), ``k = 1 … L``.
    dz : tuple[int, ...]
        ``dZ[k]`` of the hidden layers ``k = 1 … L−1``.
    slope : int
        The learned PReLU slopes.
    """

    x: int
    a: tuple[int, ...]
    logits: int
    w: tuple[int, ...]
    dz: tuple[int, ...]
    slope: int

    def __post_init__(self):
        for name in ("a", "w", "dz"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.w) != len(self.a) + 1 or len(self.dz) != len(self.a):
            raise ValueError(f"formats of {len(self.w)} weight layers need {len(self.w) - 1} hidden "
                             f"entries of a and dz, not {len(self.a)} and {len(self.dz)}")
        for name, value, lo, hi in [("x", self.x, 0, _FRAC_MAX), ("logits", self.logits,
                                    ACT.frac - SOFTMAX_SHIFT_MAX, ACT.frac), ("slope", self.slope, 0, 15),
                                    *(("a", v, 0, _FRAC_MAX) for v in self.a),
                                    *(("w", v, 0, 15) for v in self.w), *(("dz", v, 0, 15) for v in self.dz)]:
            if not lo <= value <= hi:
                raise ValueError(f"Formats.{name} = {value} is outside {lo} … {hi} fraction bits")

    @classmethod
    def choose(cls, net: Network, x=None, params: list[np.ndarray] | None = None) -> Formats:
        """Formats for training ``net`` on inputs ``x`` (a sample per row) from the real initial
        parameters ``params`` (:func:`initial_parameters`).

        The inputs get the most fraction bits that hold ``x`` (``[−1, 1]`` without ``x``). The other
        tensors get room to grow through training: at most 10 fraction bits for activations (±32), 9
        for logits (±64), 13 for weights (±4); fewer where the largest value in a float64 forward pass
        of the initial weights over ``x``, times a headroom (8 for activations, 32 for logits, which
        grow all through training on separable data, 4 for weights), needs more range. Hidden
        gradients get the most fraction bits (8 … 15) that hold twice the largest ``|dZ|`` of a float64
        backward pass. ``weight_bits`` below 16 drops fraction bits of the weights and slopes.
        """
        from host.reference import forward

        drop = _WORD - net.weight_bits
        table = net.hidden in (Act.SIGMOID, Act.TANH)
        hidden = net.layers - 1
        fx = _FRAC_MAX if x is None else _frac(np.abs(x).max(initial=0), 1.0, 0, _FRAC_MAX)
        a, logits, w, dz = [_ACT_MAX] * hidden, _LOGITS_MAX, [_WEIGHT_MAX] * net.layers, [13] * hidden
        if x is not None and params is not None:
            x = np.asarray(x, dtype=np.float64)
            x = x[::max(1, len(x) // 512)]   # an even sample of the data for the passes
            params = [np.asarray(p, dtype=np.float64) for p in params]
            _, zs, _ = forward(net, params, x)
            a = [_frac(np.abs(z).max(), _HEADROOM, 0, _ACT_MAX) for z in zs[:-1]]
            logits = _frac(np.abs(zs[-1]).max(), 4 * _HEADROOM, ACT.frac - SOFTMAX_SHIFT_MAX, _LOGITS_MAX)
            w = [_frac(np.abs(p).max(), 4, 0, _WEIGHT_MAX) for p in params[:net.layers]]
            dz = [_frac(g, 2, 8, 15) for g in _hidden_gradients(net, params, x)]
        a = [ACT.frac if table else f for f in a]   # sigmoid and tanh read their tables in ACT
        return cls(fx, a, logits, [max(f - drop, 0) for f in w], dz, max(14 - drop, 0))

    def act(self, k: int) -> int:
        """Fraction bits of ``A[k]`` (``A[0]`` the inputs), ``k < L``."""
        return self.x if k == 0 else self.a[k - 1]

    def z(self, k: int) -> int:
        """Fraction bits of ``Z[k]``."""
        return self.logits if k == len(self.w) else self.a[k - 1]

    def grad(self, k: int) -> int:
        """Fraction bits of ``dZ[k]``."""
        return ACT.frac if k == len(self.w) else self.dz[k - 1]

    def bounds(self, net: Network, field: str) -> tuple[int, int]:
        """The fraction bits a format of ``field`` (``a``, ``logits``, ``w``, ``dz``) may move within
        while training: down to what the fields allow, up to the least range :meth:`choose` leaves."""
        return {"a": (0, _ACT_MAX), "logits": (ACT.frac - SOFTMAX_SHIFT_MAX, _LOGITS_MAX),
                "w": (0, max(_WEIGHT_MAX - (_WORD - net.weight_bits), 0)), "dz": (0, 15)}[field]

    def of(self, field: str, index: int) -> int:
        """Fraction bits of ``field`` (``index`` into a per-layer tuple, ignored for ``logits``)."""
        value = getattr(self, field)
        return value[index] if isinstance(value, tuple) else value

    def moved(self, field: str, index: int, frac: int) -> Formats:
        """These formats with ``field`` (``index``) at ``frac`` fraction bits."""
        value = getattr(self, field)
        if isinstance(value, tuple):
            frac = value[:index] + (frac,) + value[index + 1:]
        return dataclasses.replace(self, **{field: frac})

    def parameters(self, net: Network) -> list[Fixed]:
        """The formats of ``Program.parameters``: the weights, then the learned slopes."""
        slopes = net.layers - 1 if net.learn_slope else 0
        return [Fixed(_WORD, f) for f in self.w] + [Fixed(_WORD, self.slope)] * slopes

    def quantize(self, net: Network, parameters: list[np.ndarray]) -> list[np.ndarray]:
        """Raw device parameters of ``net`` from real ones (weights, then slopes), rounded and saturated."""
        return [f.quantize(p) for f, p in zip(self.parameters(net), parameters, strict=True)]

    def dequantize(self, net: Network, raw: list[np.ndarray]) -> list[np.ndarray]:
        """Real parameters of ``net`` from raw device ones."""
        return [f.dequantize(r) for f, r in zip(self.parameters(net), raw, strict=True)]


def _hidden_gradients(net: Network, params: list[np.ndarray], x) -> list[float]:
    """The largest ``|dZ[k]|`` of each hidden layer in float64 backward passes of ``x`` with every
    sample given each label in turn, so that the largest errors show."""
    from host.reference import forward

    inputs, zs, p = forward(net, params, x)
    classes = max(net.sizes[-1], 2)
    largest = [0.0] * (net.layers - 1)
    for label in range(classes):
        if net.output == Output.SOFTMAX:
            dz = p - (np.arange(len(p))[:, None] == label)
        else:
            dz = p - label
        for k in range(net.layers, 1, -1):
            da = params[k - 1][:, :-1].T @ dz
            slope = params[net.layers + k - 2] if net.learn_slope else net.slope
            g = (np.where(zs[k - 2] > 0, 1, slope) if net.learn_slope
                 else activation_float(net.hidden, True, zs[k - 2], net.slope))
            dz = da * g
            largest[k - 2] = max(largest[k - 2], float(np.abs(dz).max()))
    return largest


@dataclass(frozen=True)
class Resident:
    """Data kept in the device's data memory ``D``: the inputs of ``samples`` training and ``tests``
    test samples, two signed bytes to a word (each raw input ``byte << shift``) if ``packed``, else a
    word each; the training samples' class numbers; the list of the test samples, which one ``RUN``
    of :attr:`Program.assess` predicts; and a sample list of ``steps`` training minibatches, which
    one ``RUN`` of :attr:`Program.epoch` trains on.
    """

    samples: int
    packed: bool
    shift: int
    steps: int
    tests: int = 0

    @classmethod
    def of(cls, raw, steps: int, tests: int = 0) -> Resident:
        """How raw inputs ``raw`` (samples × inputs, 16-bit words; the last ``tests`` of them test
        samples) keep: packed with the largest shift (at most 8) that loses nothing, else a word each."""
        raw = np.asarray(raw, dtype=np.int64)
        for shift in range(8, -1, -1):
            if np.all(raw % (1 << shift) == 0) and np.all(np.abs((raw >> shift) + 0.5) < 128):
                return cls(len(raw) - tests, True, shift, steps, tests)
        return cls(len(raw) - tests, False, 0, steps, tests)

    def test_steps(self, batch: int) -> int:
        """Minibatches of the test samples, the last one padded."""
        return -(-self.tests // batch)

    def words_per_sample(self, inputs: int) -> int:
        return (inputs + 1) // 2 if self.packed else inputs

    def pack(self, raw) -> np.ndarray:
        """The flat ``D`` words of raw inputs ``raw`` (samples × inputs), a sample after another."""
        raw = np.asarray(raw, dtype=np.int64)
        if not self.packed:
            return raw.ravel()
        bytes_ = raw >> self.shift
        if bytes_.shape[1] % 2:
            bytes_ = np.concatenate([bytes_, np.zeros((len(bytes_), 1), dtype=np.int64)], axis=1)
        words = (bytes_[:, 0::2] & 0xFF) | ((bytes_[:, 1::2] & 0xFF) << 8)
        return ((words ^ 0x8000) - 0x8000).ravel()


@dataclass(frozen=True)
class Region:
    """A matrix in a buffer: ``rows × cols`` at ``base`` with rows ``pitch`` addresses apart.

    Its words are the contiguous flat range ``[first, first + words)`` (``hw.layout``), in which the
    elements sit skewed; :meth:`pack` and :meth:`unpack` convert.
    """

    buf: Buf
    base: int
    rows: int
    cols: int
    pitch: int
    banks: int

    @property
    def first(self) -> int:
        return self.base * self.banks

    @property
    def words(self) -> int:
        return self.rows * self.pitch * self.banks

    def view(self, rows: int | None = None, cols: int | None = None) -> Region:
        """The top-left ``rows × cols`` corner, with this region's pitch (the skew is unchanged)."""
        return Region(self.buf, self.base, rows or self.rows, cols or self.cols, self.pitch, self.banks)

    def _where(self, shape: tuple[int, int]):
        p, q = np.indices(shape)
        bank, address = Layout(self.banks).locate(p, q, 0, self.pitch)
        return address * self.banks + bank

    def pack(self, matrix) -> np.ndarray:
        """The flat words of ``matrix`` (the top rows of this region, raw 16-bit) from :attr:`first` on.

        Fewer rows than the region write only those rows' words; unused words are zero.
        """
        matrix = np.asarray(matrix, dtype=np.int64)
        if matrix.shape[1] != self.cols or matrix.shape[0] > self.rows:
            raise ValueError(f"a {matrix.shape} matrix does not fit a {self.rows}×{self.cols} region")
        words = np.zeros(matrix.shape[0] * self.pitch * self.banks, dtype=np.int64)
        words[self._where(matrix.shape)] = matrix
        return words

    def row(self, r: int, values) -> tuple[int, np.ndarray]:
        """The first flat word and the words of row ``r`` alone set to ``values`` (a row is a
        contiguous run of ``pitch·banks`` words; words past the last column are zero)."""
        words = np.zeros(self.pitch * self.banks, dtype=np.int64)
        q = np.arange(self.cols)
        words[q // self.banks * self.banks + (r + q) % self.banks] = values
        return (self.base + r * self.pitch) * self.banks, words

    def unpack(self, words) -> np.ndarray:
        """The matrix from its flat words (as :meth:`pack` lays them out)."""
        return np.asarray(words, dtype=np.int64)[self._where((self.rows, self.cols))]

    def descriptor(self) -> dict:
        """The region's :class:`hw.isa.TensorDescriptor` fields."""
        return {name: getattr(self, name) for name in TensorDescriptor().members}

    def tensor(self, t: int) -> int:
        """The ``TENSOR`` instruction loading this region into register ``t``."""
        return instruction(Opcode.TENSOR, tensor={"t": t, **self.descriptor()})


@dataclass(frozen=True)
class Counted:
    """A tensor whose results the device counts in a saturation counter while training.

    Attributes
    ----------
    name : str
        ``Z1``, ``W2``, ``dZ1``, … (``Z[L]`` is the logits).
    field, index : str, int
        Where :class:`Formats` keeps its format (:meth:`Formats.of`).
    counter : int
        The saturation counter (1 …).
    elements : int
        Results counted per training step.
    region : Region
        Where the ``count`` entry point reads the counter into: 2 × 1, saturated then top bit used.
    """

    name: str
    field: str
    index: int
    counter: int
    elements: int
    region: Region


Write = tuple[Buf, int, np.ndarray]
"""A ``WRITE``: buffer, first flat word, the words."""


@dataclass(frozen=True)
class Program:
    """A compiled network: the instruction-memory image, its entry points and the buffer map.

    Attributes
    ----------
    words : tuple[int, ...]
        Instructions from address 0 (``PROGRAM`` them at 0).
    setup, train, infer : int
        Entry points (see the module docstring).
    weights : tuple[Region, ...]
        ``W[l]`` for ``l = 1 … L`` (index ``l - 1``), bias last column.
    slopes : tuple[Region, ...]
        With ``learn_slope``: the slopes ``α[l]`` (``n_l × 1``) of the hidden layers; else empty.
    counters : tuple[Region, ...]
        With ``stats``: per hidden layer, ``n_l × 1`` counts of samples with ``z > 0``; else empty.
    inputs : tuple[Region, ...]
        ``[A[l]; 1]`` for ``l = 0 … L-1``; ``inputs[0]`` holds the minibatch.
    constants : tuple[tuple[Region, int], ...]
        Regions every element of which is one raw value, written at load (rows and columns of ones,
        a zero row).
    counted : tuple[Counted, ...]
        The tensors ``train`` counts saturations of (at most ``COUNTERS - 1``: the logits, the hidden
        ``Z``, the weights, then the hidden ``dZ``; tables' inputs are not counted).
    count : int
        Entry point that reads every counter of :attr:`counted` into its region, clearing it
        (``setup`` clears them too).
    labels, losses, predictions : Region
        ``Y`` (one-hot, or 0/1 for a sigmoid output), and the two rows of the output region.
    resident : Resident or None
        With resident data, how it sits in ``D``; :attr:`epoch` is then the entry point that trains
        on the ``resident.steps`` minibatches of the sample list (after ``SET STEPS``), and
        :attr:`data` maps ``X``, ``labels``, ``order`` and ``tests`` in ``D``, and ``sums`` the per-step
        sums of losses and of wrong predictions it leaves (:meth:`decode_sums`); with resident test
        samples, :attr:`assess` is the entry point that predicts them all into :attr:`predicted`, a
        row a minibatch (:meth:`decode_assess`).
    regions : dict[str, Region]
        Every region by name (``W1``, ``A0``, ``D1``, ``Z2``, ``Y``, ``loss``, ``prediction``, …).
    output : tuple[Buf, int, int]
        ``(buf, first flat word, count)`` for ``RUN``: losses then predictions, one read.
    """

    network: Network
    config: DeviceConfig
    formats: Formats
    words: tuple[int, ...]
    setup: int
    train: int
    infer: int
    weights: tuple[Region, ...]
    slopes: tuple[Region, ...]
    counters: tuple[Region, ...]
    constants: tuple[tuple[Region, int], ...]
    inputs: tuple[Region, ...]
    counted: tuple[Counted, ...]
    count: int
    labels: Region
    losses: Region
    predictions: Region
    regions: dict[str, Region] = field(repr=False)
    resident: Resident | None = None
    epoch: int | None = None
    data: dict[str, Region] = field(default_factory=dict, repr=False)
    sums: tuple[Region, ...] = ()
    assess: int | None = None
    predicted: Region | None = None

    @property
    def parameters(self) -> tuple[Region, ...]:
        """What training changes: :attr:`weights`, then :attr:`slopes`."""
        return self.weights + self.slopes

    @property
    def output(self) -> tuple[Buf, int, int]:
        count = self.predictions.first + self.network.batch - self.losses.first
        return self.losses.buf, self.losses.first, count

    @property
    def parameter_formats(self) -> list[Fixed]:
        """The format of each of :attr:`parameters`."""
        return self.formats.parameters(self.network)

    def quantize(self, parameters: list[np.ndarray]) -> list[np.ndarray]:
        """Raw device parameters from real ones (:attr:`parameters` order), rounded and saturated."""
        return self.formats.quantize(self.network, parameters)

    def dequantize(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        """Real parameters from raw device ones."""
        return self.formats.dequantize(self.network, raw)

    def effective_rates(self) -> list[float]:
        """The learning rate each weight layer's update applies: ``α`` after rounding the SGD
        multiplier (:func:`sgd_multiplier`)."""
        m, fmt = self.network.batch, self.formats
        rates = []
        for k in range(1, self.network.layers + 1):
            change = 2.0 ** (fmt.w[k - 1] - fmt.grad(k) - fmt.act(k - 1))
            shift, scale = sgd_multiplier(self.network.learning_rate / m * change)
            rates.append(scale * 2.0 ** -shift / change * m)
        return rates

    def initial_weights(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Raw :func:`initial_parameters`."""
        return self.quantize(initial_parameters(self.network, rng))

    def load_writes(self, parameters: list[np.ndarray]) -> list[Write]:
        """The ``WRITE``s that load raw ``parameters`` (:attr:`parameters`), the :attr:`constants` and
        cleared :attr:`counters`."""
        if len(parameters) != len(self.parameters):
            raise ValueError(f"{len(self.parameters)} parameter arrays expected (weights, then slopes), "
                             f"not {len(parameters)}")
        writes = [(r.buf, r.first, r.pack(w)) for r, w in zip(self.parameters, parameters, strict=True)]
        writes += self.ones_rows()
        writes += [(r.buf, r.first, r.pack(np.full((r.rows, r.cols), value))) for r, value in self.constants]
        return writes + self.clear_counters()

    def ones_rows(self) -> list[Write]:
        """The ``WRITE``s of the rows of ones below the inputs ``A[k]``, ``1.0`` in ``A[k]``'s format."""
        return [(r.buf, *r.row(r.rows - 1, np.full(r.cols, 1 << self.formats.act(k))))
                for k, r in enumerate(self.inputs)]

    def clear_counters(self) -> list[Write]:
        """The ``WRITE``s that zero the :attr:`counters`."""
        return [(r.buf, r.first, r.pack(np.zeros((r.rows, 1), dtype=np.int64))) for r in self.counters]

    def batch_writes(self, x, y=None) -> list[Write]:
        """The ``WRITE``s of a minibatch: ``x`` is ``m × n_0`` (a sample per row) in real units,
        ``y`` the ``m`` class numbers (0/1 for a sigmoid output), or ``None`` for inference."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.network.batch, self.network.sizes[0]):
            raise ValueError(f"x must be {self.network.batch}×{self.network.sizes[0]} "
                             f"(batch × inputs), not {x.shape}")
        r = self.inputs[0]
        writes = [(r.buf, r.first, r.pack(Fixed(16, self.formats.x).quantize(x.T)))]
        if y is not None:
            writes.append((self.labels.buf, self.labels.first, self.labels.pack(self.one_hot(y))))
        return writes

    def one_hot(self, y) -> np.ndarray:
        """Raw labels ``Y`` (``n_L × m`` in ACT) of class numbers ``y``."""
        y = np.asarray(y, dtype=np.int64)
        classes = self.labels.rows
        if y.shape != (self.network.batch,) or y.min() < 0 or y.max() >= max(classes, 2):
            raise ValueError(f"y must be {self.network.batch} class numbers in 0..{max(classes, 2) - 1}")
        if classes == 1:
            return (y * ACT.one)[None, :]
        return (np.arange(classes)[:, None] == y[None, :]) * ACT.one

    def decode_output(self, words) -> tuple[np.ndarray, np.ndarray]:
        """``(losses, predictions)`` from the words a ``RUN`` returns: real losses, class numbers."""
        words = np.asarray(words, dtype=np.int64)
        m, start = self.network.batch, self.predictions.first - self.losses.first
        losses = ACT.dequantize(words[:m])
        predictions = words[start:start + m]
        if self.network.output == Output.SIGMOID:
            predictions = (predictions >= ACT.one >> 1).astype(np.int64)
        return losses, predictions

    def data_writes(self, x, y, tests=None) -> list[Write]:
        """The ``WRITE``s that put the training set (``x`` in real units, a sample per row, ``y`` its
        class numbers) and the test inputs ``tests`` in ``D``, with the list of the test samples."""
        tests = np.zeros((0, self.network.sizes[0])) if tests is None else np.asarray(tests)
        raw = Fixed(16, self.formats.x).quantize(np.concatenate([np.asarray(x, dtype=np.float64), tests]))
        resident = self.resident
        if Resident.of(raw, resident.steps, len(tests)) != resident:
            raise ValueError("these samples are not the ones the program was compiled for: compile "
                             "with Resident.of their raw inputs")
        writes = [(Buf.D, self.data["X"].first, resident.pack(raw))]
        if resident.samples:
            writes.append((Buf.D, self.data["labels"].first, np.asarray(y, dtype=np.int64)))
        if resident.tests:
            listed = np.full(resident.test_steps(self.network.batch) * self.network.batch, resident.samples)
            listed[:resident.tests] = np.arange(resident.samples, resident.samples + resident.tests)
            writes.append((Buf.D, self.data["tests"].first, listed))
        return writes

    def order_writes(self, order) -> list[Write]:
        """The ``WRITE`` of a sample list: ``order`` holds up to ``resident.steps`` minibatches of sample
        numbers, one per row."""
        order = np.asarray(order, dtype=np.int64)
        steps = self.resident.steps
        if order.ndim != 2 or order.shape[1] != self.network.batch or not 1 <= len(order) <= steps:
            raise ValueError(f"a sample list is up to {self.resident.steps} rows of {self.network.batch} "
                             f"sample numbers, not {order.shape}")
        return [(Buf.D, self.data["order"].first, order.ravel())]

    def sums_output(self, steps: int) -> tuple[Buf, int, int]:
        """``RUN``'s output after :attr:`epoch` ran ``steps`` steps: the words from the first step's
        sum of losses to the last step's sum of wrong predictions."""
        loss, wrong = self.sums
        return loss.buf, loss.first, wrong.first + steps * wrong.banks - loss.first

    def assess_output(self) -> tuple[Buf, int, int]:
        """``RUN``'s output after :attr:`assess`: every test minibatch's row of predictions."""
        r, steps = self.predicted, self.resident.test_steps(self.network.batch)
        return r.buf, r.first, steps * r.pitch * r.banks

    def decode_assess(self, words) -> np.ndarray:
        """Class numbers of the resident test samples from the words of :meth:`assess_output`: row
        ``k`` of the predictions sits at ``base + k·pitch`` with the skew of a row 0."""
        r = self.predicted
        row = r.pitch * r.banks
        words = np.asarray(words, dtype=np.int64)
        predictions = np.concatenate([r.view(rows=1).unpack(words[k * row:(k + 1) * row])[0]
                                      for k in range(len(words) // row)])[:self.resident.tests]
        if self.network.output == Output.SIGMOID:
            predictions = (predictions >= ACT.one >> 1).astype(np.int64)
        return predictions

    def decode_sums(self, words, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Per step, the sum of the losses (real) and the number of wrong predictions, from the words
        of :meth:`sums_output`: step ``k``'s sums sit at address ``base + k`` of bank 0."""
        loss, wrong = self.sums
        words = np.asarray(words, dtype=np.int64)
        scale = 2.0 ** (_sum_shift(self.network.batch) - ACT.frac)
        start = wrong.first - loss.first
        return (words[:steps * loss.banks:loss.banks] * scale,
                np.rint(words[start::wrong.banks][:steps] * scale).astype(np.int64))


class _Emitter:
    """Instruction words with tensor registers allocated on demand (least recently used evicted)."""

    def __init__(self):
        self.words: list[int] = []
        self.entry()

    def entry(self) -> int:
        """Start an entry point: registers are unknown there. Returns its address."""
        self.pinned: dict[int, Region] = {}
        return self.loop_start()

    def loop_start(self) -> int:
        """Start a loop body: every register but the pinned ones is unknown there (a later ``LOOP``
        comes back with whatever the body left). Returns its address."""
        self.loaded: dict[int, Region] = {}
        self.used: list[int] = []
        return len(self.words)

    def pin(self, region: Region) -> int:
        """Load ``region`` into a register that stays it until the next entry point (``ADVANCE`` may
        move it): a loop's sample list and results."""
        reg = max(t for t in range(TENSORS) if t not in self.pinned and t not in self.loaded)
        self.pinned[reg] = region
        self.words.append(region.tensor(reg))
        return reg

    def _regs(self, *regions: Region) -> list[int]:
        regs = []
        for region in regions:
            pinned = next((t for t, r in self.pinned.items() if r == region), None)
            if pinned is not None:
                regs.append(pinned)
                continue
            reg = next((t for t, r in self.loaded.items() if r == region), None)
            if reg is None:
                free = [t for t in range(TENSORS) if t not in self.loaded and t not in self.pinned]
                reg = free[0] if free else next(t for t in self.used if t not in regs)
                self.loaded[reg] = region
                self.words.append(region.tensor(reg))
            if reg in self.used:
                self.used.remove(reg)
            self.used.append(reg)
            regs.append(reg)
        return regs

    def gemm(self, a: Region, b: Region, out: Region, epi: dict, c: Region | None = None,
             ta: bool = False, tb: bool = False) -> None:
        ra, rb, ro, *rc = self._regs(a, b, out, *([c] if c is not None else []))
        self.words.append(instruction(Opcode.GEMM, gemm={
            "a": ra, "ta": ta, "b": rb, "tb": tb, "c": rc[0] if rc else 0, "use_c": bool(rc),
            "out": ro, "epi": epi}))

    def vec(self, a: Region, out: Region, epi: dict, b: Region | None = None) -> None:
        ra, ro, *rb = self._regs(a, out, *([b] if b is not None else []))
        self.words.append(instruction(Opcode.VEC, vec={
            "a": ra, "b": rb[0] if rb else 0, "use_b": bool(rb), "out": ro, "epi": epi}))

    def unary(self, op: Opcode, a: Region, out: Region) -> None:
        ra, ro = self._regs(a, out)
        self.words.append(instruction(op, unary={"a": ra, "out": ro}))

    def loss(self, a: Region, y: Region, out: Region) -> None:
        ra, ry, ro = self._regs(a, y, out)
        self.words.append(instruction(Opcode.LOSS, loss={"a": ra, "y": ry, "out": ro}))

    def gather(self, src: Region, idx: Region, out: Region, mode: GatherMode, shift: int = 0) -> None:
        rs, ri, ro = self._regs(src, idx, out)
        self.words.append(instruction(Opcode.GATHER, gather={"src": rs, "idx": ri, "out": ro, "mode": mode,
                                                             "shift": shift}))

    def advance(self, region: Region, delta: int) -> None:
        (reg,) = self._regs(region)
        self.words.append(instruction(Opcode.ADVANCE, advance={"t": reg, "delta": delta}))

    def loop(self, target: int) -> None:
        self.words.append(instruction(Opcode.LOOP, loop={"target": target}))

    def set(self, reg: Reg, value: int) -> None:
        self.words.append(instruction(Opcode.SET, set={"reg": reg, "value": value & 0xFFFFFFFF}))

    def end(self) -> None:
        self.words.append(instruction(Opcode.END))


def _epi(op: VecOp = VecOp.ADD, act: Act = Act.IDENTITY, deriv: bool = False, shift: int = 0,
         b_shift: int = 0, round: Rounding = Rounding.NEAREST_EVEN, counter: int = 0,
         read_counter: bool = False) -> dict:
    return {"op": op, "act": int(act), "deriv": deriv, "round": round, "shift": shift, "b_shift": b_shift,
            "counter": counter, "read_counter": read_counter}


def initial_parameters(net: Network, rng: np.random.Generator) -> list[np.ndarray]:
    """Real initial parameters (``Program.parameters`` order): He (ReLU family, swish) or Glorot
    (others, and the output layer) normal weights, zero biases, every learned slope at ``net.slope``."""
    out = []
    for k, (fan_in, fan_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:], strict=True), 1):
        he = k < net.layers and net.hidden in (Act.RELU, Act.LEAKY_RELU, Act.SWISH)
        std = math.sqrt(2 / fan_in) if he else math.sqrt(2 / (fan_in + fan_out))
        out.append(np.concatenate([rng.normal(0, std, (fan_out, fan_in)), np.zeros((fan_out, 1))], axis=1))
    slopes = net.layers - 1 if net.learn_slope else 0
    return out + [np.full((n, 1), net.slope) for n in net.sizes[1:1 + slopes]]


def sgd_multiplier(rate: float) -> tuple[int, int]:
    """``(shift, scale)`` with ``scale·2**−shift`` nearest ``rate``: the largest shift (at most 31, the
    ``b_shift`` field) that keeps ``scale`` within the 15 bits of ``SET SCALE``."""
    shift = min(_SHIFT_MAX, math.floor(math.log2(_SCALE_MAX / rate)))
    scale = round(rate * 2 ** shift)
    if scale < 1:
        raise ValueError(f"the SGD step {rate:.3g} (learning rate / batch, in the formats' units) is "
                         f"too small for the SGD multiplier: raise the learning rate or shrink the minibatch")
    if scale > _SCALE_MAX:
        raise ValueError(f"the SGD step {rate:.3g} is too large for the SGD multiplier: lower the "
                         f"learning rate")
    return shift, scale


class _Allocator:
    """Bump allocation of regions in the three buffers."""

    def __init__(self, config: DeviceConfig):
        self.config, self.layout = config, Layout(config.banks)
        self.top = dict.fromkeys(Buf, 0)
        self.regions: dict[str, Region] = {}

    def __call__(self, name: str, buf: Buf, rows: int, cols: int) -> Region:
        region = Region(buf, self.top[buf], rows, cols, self.layout.pitch(cols), self.config.banks)
        for what, value in region.descriptor().items():
            largest = field_max(TensorDescriptor(), what)
            if what != "buf" and value > largest:
                raise ValueError(f"{name} needs {what} {value}, past the TENSOR field's {largest}: shrink "
                                 f"the layer sizes or the minibatch")
        self.top[buf] += rows * region.pitch
        if self.top[buf] > self.config.depth:
            raise ValueError(f"buffer {buf.name} needs more than its {self.config.depth} words per bank "
                             f"(at {name}): shrink the minibatch or the layer sizes, or use a deeper device")
        self.regions[name] = region
        return region


def _check_fits(net: Network, config: DeviceConfig) -> None:
    m, sizes = net.batch, net.sizes
    k = max([n + 1 for n in sizes[:-1]] + list(sizes[1:]) + [m])
    if k > config.k_max:
        raise ValueError(f"a GEMM of depth {k} exceeds k_max = {config.k_max}: shrink the minibatch "
                         f"or the layer sizes")
    if sizes[-1] > config.max_rows:
        raise ValueError(f"{sizes[-1]} outputs exceed the softmax unit's max_rows = {config.max_rows}: "
                         f"use fewer classes")


def _sum_shift(m: int) -> int:
    """The shift that keeps a sum of ``m`` words in a word."""
    return (m - 1).bit_length()


@dataclass(frozen=True)
class _EpochRegions:
    """What the ``epoch`` entry point reads and writes besides a training step's regions: the data
    map in ``D``, a row of the step's class numbers (softmax) or guesses (sigmoid: ``[P ≥ ½]``), two
    copies of the guess minus the label (the operands of their square), the wrong-prediction row,
    a column of ones, the sigmoid's threshold row, and the per-step sums of losses and of wrongs; with
    test samples, the rows of their predictions (``assess``)."""

    net: Network
    resident: Resident
    data: dict[str, Region]
    x: Region
    labels: Region
    probs: Region
    predictions: Region
    losses: Region
    row: Region
    d1: Region
    d2: Region
    wrong: Region
    ones: Region
    half: Region | None
    sums: tuple[Region, Region]
    predicted: Region | None

    @classmethod
    def allocate(cls, alloc: _Allocator, net: Network, config: DeviceConfig, resident: Resident, x: Region,
                 labels: Region, probs: Region, predictions: Region, losses: Region) -> _EpochRegions:
        m, n, tests = net.batch, resident.samples, resident.tests
        limit = field_max(TensorDescriptor(), "rows")
        if n + tests > limit or resident.steps > limit:
            raise ValueError(f"{n + tests} resident samples, or a sample list of {resident.steps} "
                             f"minibatches, exceed the {limit} rows a tensor describes: stream the data "
                             f"(--streamed)")
        wps = resident.words_per_sample(net.sizes[0])
        data = {"X": Region(Buf.D, 0, n + tests, wps, wps, 1)}
        # A step's ADVANCE leaves its tensors one step on, so each list has a step to spare at its end.
        end = data["X"].base + (n + tests) * wps
        for name, rows, cols in (("labels", n, 1), ("order", resident.steps + 1, m),
                                 ("tests", resident.test_steps(m) + 1, m)):
            if rows > 1 or name == "labels" and rows:
                data[name] = Region(Buf.D, end, rows, cols, cols, 1)
                end += rows * cols
        if end > config.data_depth:
            raise ValueError(f"resident data needs {end} words of the data memory, the device has "
                             f"{config.data_depth}: stream the data (--streamed) or use fewer samples")
        sigmoid = net.output == Output.SIGMOID
        return cls(net, resident, data, x.view(rows=net.sizes[0]), labels, probs, predictions, losses,
                   row=alloc("row", Buf.W if sigmoid else Buf.A, 1, m), d1=alloc("d1", Buf.W, 1, m),
                   d2=alloc("d2", Buf.A, 1, m), wrong=alloc("wrong", Buf.G, 1, m),
                   ones=alloc("1c", Buf.W, m, 1), half=alloc("half", Buf.W, 1, m) if sigmoid else None,
                   sums=tuple(alloc(name, Buf.A, resident.steps + 1, 1) for name in ("Σloss", "Σwrong")),
                   predicted=alloc("P", Buf.G, resident.test_steps(m) + 1, m) if tests else None)

    def constants(self) -> list[tuple[Region, int]]:
        return [(self.ones, 1 << ONE_FRAC)] + ([(self.half, (ACT.one >> 1) - 1)] if self.half else [])


def _epoch(emit: _Emitter, r: _EpochRegions, train_step) -> int:
    """Emit the ``epoch`` entry point: ``STEPS`` training steps, each on the next minibatch of the
    sample list in ``D``, leaving each step's sums of losses and of wrong predictions (in ``ACT``,
    shifted down by :func:`_sum_shift`). Returns its address."""
    m, softmax = r.net.batch, r.net.output == Output.SOFTMAX
    entry = emit.entry()
    idx, sums = r.data["order"].view(rows=1), [total.view(rows=1) for total in r.sums]
    for region in (idx, *sums):
        emit.pin(region)
    body = emit.loop_start()
    emit.gather(r.data["X"], idx, r.x, GatherMode.BYTES if r.resident.packed else GatherMode.WORDS,
                r.resident.shift)
    emit.gather(r.data["labels"], idx, r.labels, GatherMode.ONEHOT)
    if softmax:
        emit.gather(r.data["labels"], idx, r.row, GatherMode.WORDS)            # the class numbers
    train_step()
    if softmax:
        guess, label = r.predictions, r.row
    else:
        guess, label = r.row, r.labels
        emit.vec(r.probs, guess, _epi(op=VecOp.SUB, act=Act.RELU, deriv=True), b=r.half)   # [P ≥ ½]
    for out in (r.d1, r.d2):
        emit.vec(guess, out, _epi(op=VecOp.SUB), b=label)
    emit.vec(r.d1, r.wrong, _epi(op=VecOp.MUL, shift=0 if softmax else ACT.frac, act=Act.RELU, deriv=True),
             b=r.d2)                                                                   # [(guess − y)² > 0]
    for row, total in zip((r.losses, r.wrong), sums, strict=True):
        emit.gemm(row, r.ones, total, _epi(shift=ONE_FRAC + _sum_shift(m)))
        emit.advance(total, 1)
    emit.advance(idx, m)
    emit.loop(body)
    emit.end()
    return entry


def _assess(emit: _Emitter, r: _EpochRegions, forward) -> int:
    """Emit the ``assess`` entry point: ``STEPS`` forward passes, each on the next minibatch of the
    test list in ``D``, each minibatch's predictions copied to the next row of ``predicted``. Returns
    its address."""
    entry = emit.entry()
    idx, row = r.data["tests"].view(rows=1), r.predicted.view(rows=1)
    for region in (idx, row):
        emit.pin(region)
    body = emit.loop_start()
    emit.gather(r.data["X"], idx, r.x, GatherMode.BYTES if r.resident.packed else GatherMode.WORDS,
                r.resident.shift)
    forward()
    emit.vec(r.predictions, row, _epi())
    emit.advance(row, r.predicted.pitch)
    emit.advance(idx, r.net.batch)
    emit.loop(body)
    emit.end()
    return entry


def deep_enough(net: Network, config: DeviceConfig, keep: bool = False) -> DeviceConfig:
    """``config``, its buffers deepened to the power of two of words per bank that ``net`` needs (compiled
    with ``keep`` or not) if it needs more than ``config.depth``."""
    regions = compile_network(net, dataclasses.replace(config, depth=1 << 16), keep=keep).regions.values()
    need = max(r.base + r.rows * r.pitch for r in regions)
    return config if need <= config.depth else dataclasses.replace(config, depth=1 << (need - 1).bit_length())


def compile_network(net: Network, config: DeviceConfig, seed: int = 1, formats: Formats | None = None,
                    keep: bool = False, resident: Resident | None = None) -> Program:
    """Compile ``net`` for ``config``; ``seed`` is the LFSR seed ``setup`` loads.

    ``formats`` default to :meth:`Formats.choose` without data. With ``keep`` the backward pass writes
    each ``dZ[k]`` to a region of its own (``dZ1`` …) instead of over ``Z[k]``, so that a profiler can
    read every tensor of a step after it; the arithmetic is the same. With ``resident`` the program
    also has an ``epoch`` entry that trains on data in ``D`` (:class:`Resident`, :func:`_epoch`).

    Raises
    ------
    ValueError
        If the network does not fit the device (buffer words, ``k_max``, ``max_rows``, the
        instruction memory, the ``RUN`` reply): the message says what to shrink.
    """
    _check_fits(net, config)
    fmt = formats if formats is not None else Formats.choose(net)
    if len(fmt.w) != net.layers:
        raise ValueError(f"formats for {len(fmt.w)} weight layers do not fit a net of {net.layers}")
    m, sizes, last = net.batch, net.sizes, net.layers
    hidden = range(1, last)
    alloc = _Allocator(config)
    weights = [alloc(f"W{k}", Buf.W, sizes[k], sizes[k - 1] + 1) for k in range(1, last + 1)]
    inputs = [alloc(f"A{k}", Buf.A, sizes[k] + 1, m) for k in range(last)]
    derivs = {k: alloc(f"D{k}", Buf.A, sizes[k], m) for k in hidden}
    probs = alloc(f"A{last}", Buf.A, sizes[last], m)
    labels = alloc("Y", Buf.G, sizes[last], m)
    z = {k: alloc(f"Z{k}", Buf.G, sizes[k], m) for k in range(1, last + 1)}
    dz = {k: alloc(f"dZ{k}", Buf.G, sizes[k], m) for k in range(1, last + 1)} if keep else z
    losses = alloc("loss", Buf.G, 1, m)
    predictions = alloc("prediction", Buf.G, 1, m)
    prelu = net.learn_slope and last > 1
    slopes = [alloc(f"S{k}", Buf.A, sizes[k], 1) for k in hidden] if prelu else []
    negative = {k: alloc(f"N{k}", Buf.W, sizes[k], m) for k in hidden} if prelu else {}
    counters = [alloc(f"C{k}", Buf.W, sizes[k], 1) for k in hidden] if net.stats else []
    # [Z > 0] is D[k] for ReLU and PReLU; other activations need a region of their own.
    own = net.stats and net.hidden != Act.RELU and not prelu
    active = {k: alloc(f"R{k}", Buf.A, sizes[k], m) if own else derivs[k] for k in hidden}
    # Constant ones: rows to broadcast the slopes (one beside each operand buffer they meet), a
    # column to sum over the minibatch.
    ones_g = alloc("1G", Buf.G, 1, m) if prelu else None
    ones_w = alloc("1W", Buf.W, 1, m) if prelu else None
    ones_m = alloc("1m", Buf.G, m, 1) if prelu or (net.stats and last > 1) else None
    ones = [r for r in (ones_g, ones_w, ones_m) if r is not None]
    # A sigmoid output reads its table in ACT: logits with fewer fraction bits are shifted up in
    # the VEC that applies it, ``0 + (Z << s)``, whose first operand is this zero row.
    lift = ACT.frac - fmt.logits
    # Swish is z·σ(z), and its derivative σ(z) + z·σ'(z): σ and σ' read their tables in ACT (flat
    # beyond ±8, so Z shifted up into ACT may saturate there), the products keep Z's own range.
    swish = net.hidden == Act.SWISH and not prelu
    zero_rows = max([sizes[last] if net.output == Output.SIGMOID else 0]
                    + [sizes[k] for k in hidden if swish])
    zero = alloc("0", Buf.W, zero_rows, m) if zero_rows else None
    scratch = alloc("T", Buf.W, zero_rows, m) if swish and len(hidden) else None
    # The saturation counters, in order of need: the logits, the hidden Z (not a table's input, which
    # saturates harmlessly where the table is flat), the weights, the hidden gradients.
    wanted = [("Z", "logits", last, last, sizes[last] * m)]
    if net.hidden not in (Act.SIGMOID, Act.TANH):
        wanted += [("Z", "a", k - 1, k, sizes[k] * m) for k in hidden]
    wanted += [("W", "w", k - 1, k, sizes[k] * (sizes[k - 1] + 1)) for k in range(1, last + 1)]
    wanted += [("dZ", "dz", k - 1, k, sizes[k] * m) for k in hidden]
    counted = [Counted(f"{kind}{k}", name, index, c, elements, alloc(f"count{c}", Buf.G, 2, 1))
               for c, (kind, name, index, k, elements) in enumerate(wanted[:COUNTERS - 1], 1)]
    counter_of = {c.name: c.counter for c in counted}
    epoch_regions = (_EpochRegions.allocate(alloc, net, config, resident, inputs[0], labels, probs,
                                            predictions, losses) if resident is not None else None)
    reply = 7 + 2 * (predictions.first + m - losses.first)
    if reply > config.max_payload:
        raise ValueError(f"the RUN reply of {reply} bytes exceeds max_payload = {config.max_payload}: "
                         f"shrink the minibatch")

    g = net.hidden
    emit = _Emitter()

    def read_counters() -> None:
        for c in counted:
            emit.vec(c.region, c.region, _epi(counter=c.counter, read_counter=True))

    setup = emit.entry()
    emit.set(Reg.SLOPE, int(SLOPE.quantize(net.slope)))
    emit.set(Reg.SEED, seed)
    read_counters()
    emit.end()

    def sgd(a: Region, b: Region, c: Region, tb: bool, acc_frac: int, c_frac: int, counter: int = 0) -> None:
        """``c −= α/m · a·b`` (``a·bᵀ`` with ``tb``), rounded as ``net.rounding`` says; the product is
        at ``acc_frac`` fraction bits and ``c`` at ``c_frac``."""
        shift, scale = sgd_multiplier(net.learning_rate / m * 2.0 ** (c_frac - acc_frac))
        emit.set(Reg.SCALE, scale)
        emit.gemm(a, b, c, _epi(op=VecOp.SGD, shift=shift, b_shift=shift, round=net.rounding,
                                counter=counter), c=c, tb=tb)

    def broadcast_slope(k: int, ones_row: Region, c: Region, out: Region) -> None:
        """``out = (α[k]·1ᵀ) ⊙ c`` in ``c``'s format: a one-deep GEMM, its MUL epilogue times ``c``."""
        emit.gemm(slopes[k - 1], ones_row, out, _epi(op=VecOp.MUL, shift=fmt.slope + ONE_FRAC), c=c)

    def table(act: Act, deriv: bool, k: int, out: Region) -> None:
        """``out = act(Z[k])`` (or ``act'``) in ACT, ``Z[k]`` shifted up into ACT as the first operand."""
        up = ACT.frac - fmt.z(k)
        if up:
            emit.vec(zero.view(rows=sizes[k]), out, _epi(act=act, deriv=deriv, b_shift=up), b=z[k])
        else:
            emit.vec(z[k], out, _epi(act=act, deriv=deriv))

    def hidden_forward(k: int, training: bool) -> None:
        """``A[k] = g(Z[k])`` from ``Z[k]``, and when ``training`` the ``g'(Z[k])`` backward needs."""
        a = inputs[k].view(rows=sizes[k])
        if swish:
            s, t = derivs[k], scratch.view(rows=sizes[k])
            table(Act.SIGMOID, False, k, s)                                        # S = σ(Z)
            emit.vec(z[k], a, _epi(op=VecOp.MUL, shift=ACT.frac), b=s)           # A = Z ⊙ S
            if training:
                table(Act.SIGMOID, True, k, t)                                     # T = σ'(Z)
                emit.vec(t, t, _epi(op=VecOp.MUL, shift=fmt.z(k)), b=z[k])        # T = Z ⊙ T
                emit.vec(s, s, _epi(), b=t)                                        # g' = S + T
        elif not prelu:
            emit.vec(z[k], a, _epi(act=g))
            if training:
                emit.vec(z[k], derivs[k], _epi(act=g, deriv=True))
        else:
            emit.vec(z[k], a, _epi(act=Act.RELU))                          # P = relu(Z)
            emit.vec(z[k], negative[k], _epi(op=VecOp.SUB), b=a)          # N = Z − P = min(Z, 0)
            if training:
                emit.vec(z[k], derivs[k], _epi(act=Act.RELU, deriv=True))  # R = [Z > 0]
            broadcast_slope(k, ones_g, negative[k], z[k])                  # (α·1ᵀ) ⊙ N over Z
            emit.vec(z[k], a, _epi(), b=a)                                 # A = P + (α·1ᵀ) ⊙ N
        if training and net.stats:
            if own:
                emit.vec(z[k], active[k], _epi(act=Act.RELU, deriv=True))
            emit.gemm(active[k], ones_m, counters[k - 1],                   # C += [Z > 0]·1
                      _epi(shift=ACT.frac + ONE_FRAC, b_shift=ACT.frac + ONE_FRAC), c=counters[k - 1])

    def hidden_backward(k: int) -> None:
        """``dZ[k]`` from ``dZ[k+1]``, before ``W[k+1]`` changes; PReLU's slopes step."""
        w = weights[k].view(cols=sizes[k])
        product = fmt.w[k] + fmt.grad(k + 1)         # Wᵀ·dZ[k+1]
        d, counter = dz[k], counter_of.get(f"dZ{k}", 0)
        if not prelu:
            emit.gemm(w, dz[k + 1], d, _epi(op=VecOp.MUL, shift=product + ACT.frac - fmt.grad(k),
                                            counter=counter), c=derivs[k], ta=True)
            return
        e = fmt.grad(k)                              # E and its products are kept in dZ[k]'s format
        emit.gemm(w, dz[k + 1], d, _epi(shift=product - e, counter=counter), ta=True)  # E = Wᵀ·dZ[k+1]
        emit.vec(d, negative[k], _epi(op=VecOp.MUL, shift=fmt.z(k)), b=negative[k])  # E ⊙ N
        emit.vec(d, derivs[k], _epi(op=VecOp.MUL, shift=ACT.frac), b=derivs[k])      # E ⊙ R
        emit.vec(d, d, _epi(op=VecOp.SUB), b=derivs[k])                 # E − E ⊙ R
        broadcast_slope(k, ones_w, d, d)                                 # (α·1ᵀ) ⊙ (E − E ⊙ R)
        emit.vec(d, d, _epi(), b=derivs[k])                              # dZ = … + E ⊙ R
        sgd(negative[k], ones_m, slopes[k - 1], False, e + ONE_FRAC, fmt.slope)  # α −= α/m·(E ⊙ N)·1

    def head() -> None:
        """Output probabilities and predictions from ``Z[L]``."""
        if net.output == Output.SOFTMAX:
            ra, ro = emit._regs(z[last], probs)
            emit.words.append(instruction(Opcode.SOFTMAX, softmax={"a": ra, "out": ro, "shift": lift}))
            emit.unary(Opcode.ARGMAX, probs, predictions)
        else:
            table(Act.SIGMOID, False, last, probs)
            emit.vec(probs, predictions, _epi())

    def forward(training: bool) -> None:
        for k in range(1, last + 1):
            shift = fmt.w[k - 1] + fmt.act(k - 1) - fmt.z(k)
            if k < last and not training and not prelu and not swish:  # g in the GEMM's epilogue
                emit.gemm(weights[k - 1], inputs[k - 1], inputs[k].view(rows=sizes[k]),
                          _epi(shift=shift, act=g))
                continue
            emit.gemm(weights[k - 1], inputs[k - 1], z[k],
                      _epi(shift=shift, counter=counter_of.get(f"Z{k}", 0) if training else 0))
            if k < last:
                hidden_forward(k, training)
        head()

    def train_step() -> None:
        forward(training=True)
        emit.loss(probs, labels, losses)
        emit.vec(probs, dz[last], _epi(op=VecOp.SUB), b=labels)  # dZ[L] = A[L] - Y
        for k in range(last, 0, -1):
            if k > 1:
                hidden_backward(k - 1)
            sgd(dz[k], inputs[k - 1], weights[k - 1], True, fmt.grad(k) + fmt.act(k - 1), fmt.w[k - 1],
                counter_of.get(f"W{k}", 0))

    train = emit.entry()
    train_step()
    emit.end()
    epoch = _epoch(emit, epoch_regions, train_step) if resident is not None and resident.samples else None

    infer = emit.entry()
    forward(training=False)
    emit.end()

    count = emit.entry()
    read_counters()
    emit.end()
    assess = (_assess(emit, epoch_regions, lambda: forward(training=False))
              if resident is not None and resident.tests else None)

    if len(emit.words) > config.imem:
        raise ValueError(f"the program needs {len(emit.words)} instructions, the instruction memory "
                         f"holds {config.imem}: use fewer layers or a device with a larger imem")
    constants = [(r, 1 << ONE_FRAC) for r in ones] + ([(zero, 0)] if zero else [])
    if epoch_regions is not None:
        constants += epoch_regions.constants()
    return Program(net, config, fmt, tuple(emit.words), setup, train, infer, tuple(weights),
                   tuple(slopes), tuple(counters), tuple(constants), tuple(inputs), tuple(counted), count,
                   labels, losses, predictions, alloc.regions, resident, epoch,
                   epoch_regions.data if epoch_regions else {}, epoch_regions.sums if epoch_regions else (),
                   assess, epoch_regions.predicted if epoch_regions else None)
