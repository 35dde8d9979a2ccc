"""Datasets for training and inference: sklearn's digits, user CSV and NPZ files, minibatches.

Layout
------
A :class:`Dataset` holds ``x``, ``n × features`` float32 with **a sample per row** (the host's
layout; :meth:`host.compiler.Program.batch_writes` transposes to the device's columns), and ``y``,
``n`` int64 class numbers ``0 … classes - 1`` (0/1 for a network with one sigmoid output).

Files (:func:`load`)
--------------------
- ``.csv``: UTF-8 text, a sample per line, features then the label in the **last** column,
  comma-separated.
  The first line is a header when any of its fields is not a number. Blank lines and lines
  starting with ``#`` (as ``numpy.savetxt`` writes a header) are skipped.
- ``.npz``: arrays ``x`` (``n × features``) and ``y`` (``n``), as ``numpy.savez(path, x=x, y=y)``
  writes them.

Every problem with the data raises :class:`DataError` with a one-line message that says what to
change.

Input range
-----------
The device quantises inputs to :data:`hw.numerics.ACT`, whose range is [-8, 8): larger values
saturate silently. :func:`check_range` rejects such data; :func:`fit_scale` gives the power of two
to divide the features by (fit it on the training set and apply it to both sets)::

    s = fit_scale(train.x)
    train, test = train.scaled(s), test.scaled(s)
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw.numerics import ACT

__all__ = ["DataError", "Dataset", "digits", "load", "check_features", "check_range", "fit_scale",
           "minibatches", "pad", "inference_batches", "INPUT_RANGE"]

INPUT_RANGE = (float(ACT.dequantize(ACT.min)), float(ACT.dequantize(ACT.max)))
"""The smallest and largest input the device represents (:data:`hw.numerics.ACT`)."""


class DataError(ValueError):
    """Data that cannot be used as given; the message says what to change."""


def _sample(i: int) -> str:
    return f"sample {i}"


def _check(x, y, classes: int | None, name: str,
           where: Callable[[int], str] = _sample) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate features and labels; return them as float32 and int64 arrays, and the class count.

    ``classes=None`` infers it as the largest label plus one; ``where(i)`` names sample ``i``.
    """
    try:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: x and y must be numeric arrays") from None
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError(f"{name}: x must be 2-D, a sample per row with at least one feature, not shape "
                        f"{x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{name}: no samples: provide at least one")
    if y.shape != (x.shape[0],):
        raise DataError(f"{name}: y must hold one label per sample, {x.shape[0]}, not shape {y.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        i = int(bad.argmax())
        raise DataError(f"{name}: {where(i)} has a NaN or infinite feature: remove or repair it")
    bad = ~np.isfinite(y) | (y != np.round(y))
    if bad.any():
        i = int(bad.argmax())
        raise DataError(f"{name}: {where(i)} has label {y[i]:g}, not a whole number: labels are class "
                        f"numbers 0, 1, 2, …")
    if (y < 0).any():
        i = int((y < 0).argmax())
        raise DataError(f"{name}: {where(i)} has the negative label {y[i]:g}: number the classes from 0")
    top = int(y.max())
    if classes is None:
        classes = top + 1
    elif top >= classes:
        i = int(y.argmax())
        raise DataError(f"{name}: {where(i)} has label {top}, out of range for {classes} classes "
                        f"(0..{classes - 1}): fix the label or raise the class count")
    if classes < 2:
        raise DataError(f"{name}: {classes} class: a classifier needs labels of at least 2 classes")
    return x.astype(np.float32), y.astype(np.int64), int(classes)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Labelled samples (see the module docstring for the layout).

    Parameters
    ----------
    x : numpy.ndarray
        ``n × features`` float32, a sample per row.
    y : numpy.ndarray
        ``n`` int64 class numbers in ``0 … classes - 1``.
    classes : int
        Number of classes, at least 2.
    name : str
        Where the data came from, quoted in messages.

    Raises
    ------
    DataError
        If the shapes disagree, a value is NaN or infinite, or a label is not a class number.
    """

    x: np.ndarray
    y: np.ndarray
    classes: int
    name: str = "data"

    def __post_init__(self):
        x, y, classes = _check(self.x, self.y, self.classes, self.name)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def features(self) -> int:
        return self.x.shape[1]

    def scaled(self, divisor: float) -> Dataset:
        """This dataset with the features divided by ``divisor`` (see :func:`fit_scale`)."""
        return Dataset(self.x / np.float32(divisor), self.y, self.classes, self.name)


def digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
    """sklearn's 8×8 handwritten digits (1797 samples, 64 features in [0, 1], 10 classes).

    Parameters
    ----------
    test_fraction : float
        Share of the samples held out for testing.
    seed : int
        Seed of the split, which is stratified: each class keeps its share in both sets.

    Returns
    -------
    (train, test) : tuple[Dataset, Dataset]
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data / 16.0, bunch.target, test_size=test_fraction, random_state=seed, stratify=bunch.target)
    return Dataset(x_train, y_train, 10, "digits/train"), Dataset(x_test, y_test, 10, "digits/test")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _load_csv(path: Path, classes: int | None) -> Dataset:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text: save the CSV as UTF-8") from None
    rows, lines = [], []
    reader = csv.reader(io.StringIO(text))
    for fields in reader:
        blank = len(fields) <= 1 and not "".join(fields).strip()
        if blank or fields[0].lstrip().startswith("#"):
            continue
        rows.append([f.strip() for f in fields])
        lines.append(reader.line_num)
    if not rows:
        raise DataError(f"{path}: empty file: write a sample per line, features then the label")
    width, first = len(rows[0]), lines[0]
    if width < 2:
        raise DataError(f"{path}: line {first} has {width} column: each line needs at least one feature "
                        f"and the label last, separated by commas")
    for fields, line in zip(rows, lines, strict=True):
        if len(fields) != width:
            raise DataError(f"{path}: line {line} has {len(fields)} columns, line {first} has {width}: "
                            f"every line needs the same features and the label last")
    if not all(_is_number(f) for f in rows[0]):
        rows, lines = rows[1:], lines[1:]
        if not rows:
            raise DataError(f"{path}: a header but no samples: add a sample per line after it")
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        line, col, field = next((line, col, f) for fields, line in zip(rows, lines, strict=True)
                                for col, f in enumerate(fields, 1) if not _is_number(f))
        raise DataError(f"{path}: line {line}, column {col} is {field!r}, not a number: "
                        f"every field after the header must be numeric") from None
    x, y, classes = _check(values[:, :-1], values[:, -1], classes, str(path), lambda i: f"line {lines[i]}")
    return Dataset(x, y, classes, str(path))


def _load_npz(path: Path, classes: int | None) -> Dataset:
    how = "save with numpy.savez(path, x=features, y=labels)"
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid .npz archive: {how}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = archive.files
            arrays = {k: archive[k] for k in ("x", "y") if k in files}
    except ValueError:  # object arrays need pickle
        raise DataError(f"{path}: x and y must be numeric arrays, not objects: {how}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: no array {missing[0]!r} (it has {sorted(files)}): {how}")
    x, y, classes = _check(arrays["x"], arrays["y"], classes, str(path))
    return Dataset(x, y, classes, str(path))


def load(path: str | Path, classes: int | None = None) -> Dataset:
    """A dataset from a ``.csv`` or ``.npz`` file (formats in the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its suffix selects the format.
    classes : int, optional
        The number of classes; by default the largest label plus one.

    Raises
    ------
    DataError
        If the file is missing, empty, ragged, not numeric, holds NaN or infinite values, or its
        labels are not class numbers (at least 2 classes, below ``classes``).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {what}: give the path of a .csv or .npz file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path, classes)
    if suffix == ".npz":
        return _load_npz(path, classes)
    raise DataError(f"{path}: unknown format {suffix or '(no suffix)'!r}: use a .csv or .npz file")


def check_features(dataset: Dataset, n: int) -> None:
    """Raise :class:`DataError` unless ``dataset`` has ``n`` features (the network's inputs)."""
    if dataset.features != n:
        raise DataError(f"{dataset.name}: {dataset.features} features per sample, the network takes {n}: "
                        f"make the first layer size {dataset.features} or fix the data")


def _in_range(x: np.ndarray) -> np.ndarray:
    lo, hi = INPUT_RANGE
    return (x >= lo) & (x <= hi)


def check_range(dataset: Dataset) -> None:
    """Raise :class:`DataError` if a feature lies outside :data:`INPUT_RANGE` (it would saturate)."""
    inside = _in_range(dataset.x)
    if not inside.all():
        i, j = np.argwhere(~inside)[0]
        raise DataError(f"{dataset.name}: sample {i} feature {j} is {dataset.x[i, j]:g}, outside the "
                        f"device's input range [-8, 8): divide the features by "
                        f"fit_scale(x) = {fit_scale(dataset.x):g} or standardise them")


def fit_scale(x) -> float:
    """The smallest power of two ``s ≥ 1`` with every value of ``x / s`` in :data:`INPUT_RANGE`.

    A power of two changes no mantissa, so scaling loses nothing before quantisation.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise DataError("fit_scale needs finite values: remove NaN and infinite features first")
    peak = float(np.abs(x).max(initial=0.0))
    k = max(0, math.ceil(math.log2(peak / -INPUT_RANGE[0]))) if peak > 0 else 0
    while not _in_range(x / 2.0**k).all():
        k += 1
    return 2.0**k


def minibatches(dataset: Dataset, batch: int,
                rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One training epoch: ``(x, y)`` minibatches of exactly ``batch`` samples in a random order.

    The order is ``rng.permutation(len(dataset))``; the last ``len(dataset) % batch`` samples of it
    are dropped, because the device program has a fixed minibatch (a new order each epoch lets every
    sample take part). Two generators with the same seed give the same batches, so the device and
    :class:`host.reference.Reference` can see identical data.

    Raises
    ------
    DataError
        If the dataset holds fewer samples than one minibatch.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    if batch > len(dataset):
        raise DataError(f"{dataset.name}: {len(dataset)} samples do not fill a minibatch of {batch}: "
                        f"lower the minibatch or add samples")
    order = rng.permutation(len(dataset))

    def epoch() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(len(order) // batch):
            index = order[k * batch:(k + 1) * batch]
            yield dataset.x[index], dataset.y[index]

    return epoch()


def pad(x: np.ndarray, batch: int) -> tuple[np.ndarray, int]:
    """``x`` (at most ``batch`` samples) padded with rows of zeros to ``batch``, and its real count."""
    real = len(x)
    if not 1 <= real <= batch:
        raise ValueError(f"pad takes 1..{batch} samples, not {real}")
    return np.concatenate([x, np.zeros((batch - real, *x.shape[1:]), dtype=x.dtype)]), real


def inference_batches(x: np.ndarray, batch: int) -> Iterator[tuple[np.ndarray, int]]:
    """``(x, real)`` minibatches of ``x`` in order for inference, the last one padded (see :func:`pad`).

    Keep the first ``real`` predictions of each, so every sample gets exactly one::

        np.concatenate([infer(xb)[:real] for xb, real in inference_batches(test.x, batch)])
    """
    for k in range(0, len(x), batch):
        yield pad(x[k:k + batch], batch)
