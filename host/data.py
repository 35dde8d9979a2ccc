"""Datasets for training and inference: sklearn's digits, user CSV and NPZ files, splits, the input
transform, minibatches.

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

Splits and the input transform
------------------------------
:func:`split` holds out a stratified, seeded test share of a dataset (sklearn's ``train_test_split``;
:func:`digits` is split by it too); it refuses a class with fewer than two samples rather than split
it unevenly. :class:`Standardize` makes features of any range trainable: fitted on the training rows
only, it subtracts each feature's mean and divides by its standard deviation, and is applied to every
set the network sees afterwards (the checkpoint keeps it)::

    train, test = split(load("data.csv"), 0.25, seed=0)
    transform = Standardize.fit(train.x)
    train, test = transform(train), transform(test)

:class:`Holdout` records where a run's test rows came from (the file, its SHA-256, the fraction and
the seed), so that they can be held out again later. The digits keep their own scaling (``x / 16``)
and no transform.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Dataset", "digits", "load", "load_samples", "split", "check_features", "Standardize",
           "Holdout", "minibatches", "epoch_order", "pad", "inference_batches"]


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
                        f"(0..{classes - 1}): fix the label")
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

    bunch = load_digits()
    return split(Dataset(bunch.data / 16.0, bunch.target, 10, "digits"), test_fraction, seed)


def split(dataset: Dataset, test_fraction: float = 0.25, seed: int = 0) -> tuple[Dataset, Dataset]:
    """``(train, test)``: ``dataset`` with a share held out for testing, named ``name/train`` and
    ``name/test``.

    The split is stratified (each class keeps its share in both sets) and seeded, with sklearn's
    ``train_test_split``: the same dataset, fraction and seed give the same rows.

    Raises
    ------
    DataError
        If ``test_fraction`` is not strictly between 0 and 1, a class has fewer than two samples (it
        cannot be in both sets), or either set would hold fewer samples than there are classes.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise DataError(f"the test fraction must lie strictly between 0 and 1, not {test_fraction:g}: "
                        f"hold out a share such as 0.25")
    labels, counts = np.unique(dataset.y, return_counts=True)
    if counts.min() < 2:
        rare = int(labels[counts.argmin()])
        raise DataError(f"{dataset.name}: class {rare} has only 1 sample, too few to hold out a share of "
                        f"every class: add samples of it, or give the test set as a file of its own "
                        f"(--test FILE)")
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            dataset.x, dataset.y, test_size=test_fraction, random_state=seed, stratify=dataset.y)
    except ValueError as error:   # either set smaller than the number of classes
        reason = " ".join(str(error).split())
        raise DataError(f"{dataset.name}: cannot hold out a test fraction of {test_fraction:g} of "
                        f"{len(dataset)} samples in {len(labels)} classes ({reason}): change the "
                        f"fraction or add samples") from None
    return (Dataset(x_train, y_train, dataset.classes, f"{dataset.name}/train"),
            Dataset(x_test, y_test, dataset.classes, f"{dataset.name}/test"))


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _csv_values(path: Path) -> tuple[np.ndarray, list[int]]:
    """The numeric fields of a CSV file, a row per sample (header, blank and comment lines skipped),
    and the line number of each row."""
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
    return values, lines


def _load_csv(path: Path, classes: int | None) -> Dataset:
    values, lines = _csv_values(path)
    if values.shape[1] < 2:
        raise DataError(f"{path}: line {lines[0]} has 1 column: each line needs at least one feature "
                        f"and the label last, separated by commas")
    x, y, classes = _check(values[:, :-1], values[:, -1], classes, str(path), lambda i: f"line {lines[i]}")
    return Dataset(x, y, classes, str(path))


def _npz_arrays(path: Path, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an ``.npz`` file, and those of ``optional`` it has."""
    how = "save with numpy.savez(path, x=features, y=labels)"
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a valid .npz archive: {how}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = archive.files
            arrays = {k: archive[k] for k in (*names, *optional) if k in files}
    except ValueError:  # object arrays need pickle
        raise DataError(f"{path}: {' and '.join(names)} must be numeric arrays, not objects: {how}") from None
    except (OSError, EOFError, zipfile.BadZipFile):
        raise DataError(f"{path}: a damaged .npz archive: {how}") from None
    missing = [k for k in names if k not in arrays]
    if missing:
        raise DataError(f"{path}: no array {missing[0]!r} (it has {sorted(files)}): {how}")
    return arrays


def _load_npz(path: Path, classes: int | None) -> Dataset:
    arrays = _npz_arrays(path, ("x", "y"))
    x, y, classes = _check(arrays["x"], arrays["y"], classes, str(path))
    return Dataset(x, y, classes, str(path))


def _suffix(path: Path) -> str:
    """The format of the data file ``path``: ``.csv`` or ``.npz``."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {what}: give the path of a .csv or .npz file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".npz"):
        raise DataError(f"{path}: unknown format {suffix or '(no suffix)'!r}: use a .csv or .npz file")
    return suffix


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
    return (_load_csv if _suffix(path) == ".csv" else _load_npz)(path, classes)


def check_features(dataset: Dataset, n: int, trained: bool = False) -> None:
    """Raise :class:`DataError` unless ``dataset`` has ``n`` features (the network's inputs); the
    advice is for a network to train, or (``trained``) for one already trained."""
    if dataset.features != n:
        fix = (f"give data of {n} features" if trained
               else f"make the first layer size {dataset.features} or fix the data")
        raise DataError(f"{dataset.name}: {dataset.features} features per sample, the "
                        f"{'trained ' if trained else ''}network takes {n}: {fix}")


def load_samples(path: str | Path, features: int,
                 labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The samples in a ``.csv`` or ``.npz`` file for a network of ``features`` inputs, labels or not.

    A CSV line holds the features, optionally followed by a label; an NPZ holds ``x``, optionally
    ``y``. Returns the inputs, ``n × features`` float32 (checked finite), and the labels as they are
    in the file (``None`` if there are none; :class:`Dataset` checks them).

    Raises
    ------
    DataError
        As :func:`load` does, and if a sample has neither ``features`` nor ``features + 1`` columns
        (the advice says a label must follow if ``labels``, else that it may).
    """
    path = Path(path)
    if _suffix(path) == ".npz":
        arrays = _npz_arrays(path, ("x",), optional=("y",))
        x, y = arrays["x"], arrays.get("y")
    else:
        x, _ = _csv_values(path)
        x, y = (x[:, :features], x[:, features]) if x.shape[1] == features + 1 else (x, None)
    if x.ndim != 2 or x.shape[1] != features:
        found = f"{x.shape[1]} values" if x.ndim == 2 else f"shape {x.shape[1:]}"
        label = "then its label" if labels else "a label after them is allowed"
        raise DataError(f"{path}: {found} per sample, the trained network takes {features} inputs: give "
                        f"{features} features per sample ({label})")
    return _check(x, np.zeros(len(x)), 2, str(path))[0], y


@dataclass(frozen=True, eq=False)
class Standardize:
    """The input transform ``(x - mean) / scale`` per feature, fitted on training data.

    Inputs of any range then reach the device as values of about unit size, so no feature dominates
    the first layer by its units alone and the input format (:attr:`host.compiler.Formats.x`) keeps
    its fraction bits.

    Parameters
    ----------
    mean : array_like
        Subtracted from each feature (the training mean).
    scale : array_like
        Each feature is then divided by it (the training standard deviation; 1 for a constant feature).

    Raises
    ------
    ValueError
        If ``mean`` and ``scale`` are not two vectors of the same length, or a scale is not a finite
        positive number.
    """

    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        mean = np.asarray(self.mean, dtype=np.float64)
        scale = np.asarray(self.scale, dtype=np.float64)
        if mean.ndim != 1 or mean.shape != scale.shape:
            raise ValueError(f"mean and scale must be vectors of one value per feature, not shapes "
                             f"{mean.shape} and {scale.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("the means must be finite and the scales finite and positive")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def fit(cls, x) -> Standardize:
        """The transform that standardises ``x`` (a sample per row): each feature's mean and standard
        deviation over the rows, with scale 1 for a feature that is the same in every row."""
        x = np.asarray(x, dtype=np.float64)
        constant = x.min(axis=0) == x.max(axis=0)
        return cls(x.mean(axis=0), np.where(constant, 1.0, x.std(axis=0)))

    @property
    def features(self) -> int:
        return len(self.mean)

    def __call__(self, dataset: Dataset) -> Dataset:
        """``dataset`` with its features transformed.

        Raises
        ------
        DataError
            If ``dataset`` has another number of features than the data the transform was fitted on.
        """
        if dataset.features != self.features:
            raise DataError(f"{dataset.name}: {dataset.features} features per sample, the training data "
                            f"has {self.features}: give the same features in the same order")
        return Dataset(self.inputs(dataset.x), dataset.y, dataset.classes, dataset.name)

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """The inputs ``x`` (a sample per row, :attr:`features` of them) transformed, as float32."""
        return ((x - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        """The transform as JSON-ready lists (floats round-trip exactly through JSON)."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, spec: dict) -> Standardize:
        return cls(spec["mean"], spec["scale"])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Holdout:
    """Where a training run's test rows came from, to hold the same rows out again after training.

    Attributes
    ----------
    path : str
        The data file, an absolute path.
    sha256 : str
        The hex SHA-256 of its contents when training began.
    test_fraction : float or None
        The share of the file :func:`split` held out with ``seed``; ``None``: the whole file was the
        test set.
    seed : int
        The seed of the split.
    """

    path: str
    sha256: str
    test_fraction: float | None = None
    seed: int = 0

    @classmethod
    def of(cls, path: str | Path, test_fraction: float | None = None, seed: int = 0) -> Holdout:
        """The record of the file ``path`` as it is now (:func:`load` it first, for its errors)."""
        path = Path(path).resolve()
        return cls(str(path), _sha256(path), test_fraction, seed)

    def load(self) -> Dataset:
        """The test rows, as training held them out (before any input transform).

        Raises
        ------
        DataError
            If the file is gone or its contents changed since training.
        """
        path = Path(self.path)
        if not path.is_file():
            raise DataError(f"{path}: the data file of this checkpoint is gone (moved or deleted): pass "
                            f"the test data with --data")
        if _sha256(path) != self.sha256:
            raise DataError(f"{path}: the data file changed since this checkpoint was trained, so its test "
                            f"rows are lost: pass the test data with --data")
        dataset = load(path)
        return dataset if self.test_fraction is None else split(dataset, self.test_fraction, self.seed)[1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, spec: dict) -> Holdout:
        return cls(**spec)


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
    order = epoch_order(dataset, batch, rng)
    return ((dataset.x[index], dataset.y[index]) for index in order)


def epoch_order(dataset: Dataset, batch: int, rng: np.random.Generator) -> np.ndarray:
    """The sample numbers of :func:`minibatches`' epoch, a minibatch per row (``steps × batch``)."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    if batch > len(dataset):
        raise DataError(f"{dataset.name}: {len(dataset)} samples do not fill a minibatch of {batch}: "
                        f"lower the minibatch or add samples")
    order = rng.permutation(len(dataset))
    return order[:len(order) // batch * batch].reshape(-1, batch)


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
