"""Datasets: digits, CSV and NPZ files with their error messages, splits, the input transform, the
holdout record, minibatches, padding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host.data import (
    DataError,
    Dataset,
    Holdout,
    Standardize,
    check_features,
    digits,
    inference_batches,
    load,
    minibatches,
    pad,
    split,
)


def small(n: int = 10, features: int = 3, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(rng.normal(0, 1, (n, features)), np.arange(n) % classes, classes, "small")


# -- digits ------------------------------------------------------------------------------------------

def test_digits_shapes_range_and_stratified_split():
    train, test = digits()
    assert (len(train), len(test)) == (1347, 450)
    for d in (train, test):
        assert d.x.dtype == np.float32 and d.y.dtype == np.int64
        assert d.features == 64 and d.classes == 10
        assert d.x.min() == 0 and d.x.max() == 1
    share = np.bincount(train.y) / len(train) - np.bincount(test.y) / len(test)
    assert np.abs(share).max() < 0.01


def test_digits_split_is_seeded():
    a, b, c = digits(seed=1)[1], digits(seed=1)[1], digits(seed=2)[1]
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)
    assert len(digits(test_fraction=0.5)[1]) == 899


# -- files -------------------------------------------------------------------------------------------

def test_csv_round_trip_with_and_without_header(tmp_path):
    d = small()
    body = "\n".join(",".join([*(f"{v!r}" for v in row), str(label)]) for row, label in zip(
        d.x.tolist(), d.y, strict=True))
    (tmp_path / "plain.csv").write_text(body + "\r\n\n", encoding="utf-8-sig")
    (tmp_path / "header.csv").write_text("# exported\nf0,f1,f2,label\n" + body)
    for name in ("plain.csv", "header.csv"):
        got = load(tmp_path / name)
        assert np.array_equal(got.x, d.x) and np.array_equal(got.y, d.y)
        assert got.classes == 3 and got.name.endswith(name)


def test_npz_round_trip(tmp_path):
    d = small()
    np.savez(tmp_path / "d.npz", x=d.x, y=d.y.astype(np.float64))
    got = load(tmp_path / "d.npz", classes=5)
    assert np.array_equal(got.x, d.x) and np.array_equal(got.y, d.y) and got.classes == 5


@pytest.mark.parametrize("name, text, match", [
    ("empty.csv", "", "empty file"),
    ("blank.csv", "\n# comment\n\n", "empty file"),
    ("header.csv", "a,b,label\n", "a header but no samples"),
    ("ragged.csv", "1,2,0\n3,4,1\n5,1\n", "line 3 has 2 columns, line 1 has 3"),
    ("onecol.csv", "1\n2\n", "line 1 has 1 column"),
    ("commas.csv", "1,2,0\n,,\n", r"line 2, column 1 is '', not a number"),
    ("text.csv", "a,b,label\n1,2,0\n3,x,1\n", r"line 3, column 2 is 'x', not a number"),
    ("nan.csv", "1,2,0\n3,nan,1\n", "line 2 has a NaN or infinite feature"),
    ("inf.csv", "1,2,0\n\n3,-inf,1\n", "line 3 has a NaN or infinite feature"),
    ("frac.csv", "1,2,0\n3,4,1.5\n", "line 2 has label 1.5, not a whole number"),
    ("negative.csv", "1,2,-1\n3,4,1\n", "line 1 has the negative label -1"),
    ("oneclass.csv", "1,2,0\n3,4,0\n", "1 class: a classifier needs labels of at least 2"),
    ("data.txt", "1,2,0\n", "unknown format '.txt': use a .csv or .npz"),
])
def test_bad_csv_raises(tmp_path, name, text, match):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=match):
        load(tmp_path / name)


def test_label_out_of_range_raises(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,0\n3,4,1\n5,6,3\n")
    with pytest.raises(DataError, match=r"line 3 has label 3, out of range for 3 classes \(0..2\)"):
        load(tmp_path / "d.csv", classes=3)


def test_missing_file_and_directory_raise(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "absent.csv")
    with pytest.raises(DataError, match="is a directory"):
        load(tmp_path)


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.ones((4, 2))}, "no array 'y'"),
    ({"x": np.ones(4), "y": np.arange(4)}, "x must be 2-D"),
    ({"x": np.ones((4, 2)), "y": np.arange(3)}, "one label per sample, 4"),
    ({"x": np.ones((0, 2)), "y": np.arange(0)}, "no samples"),
    ({"x": np.array([[1, 2], [3, np.inf]]), "y": np.arange(2)}, "sample 1 has a NaN or infinite"),
    ({"x": np.ones((2, 2)), "y": np.array([0, -3])}, "sample 1 has the negative label -3"),
    ({"x": np.array([["a", "b"]]), "y": np.arange(1)}, "numeric arrays"),
    ({"x": np.array([[1, None]], dtype=object), "y": np.arange(1)}, "numeric arrays, not objects"),
])
def test_bad_npz_raises(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load(tmp_path / "d.npz")


def test_corrupt_npz_raises(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a valid .npz archive"):
        load(tmp_path / "d.npz")


def test_data_error_is_a_value_error_of_one_line(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,0\n3,4\n")
    with pytest.raises(ValueError) as info:
        load(tmp_path / "d.csv")
    assert "\n" not in str(info.value)


def test_check_features():
    check_features(small(), 3)
    with pytest.raises(DataError, match="3 features per sample, the network takes 64"):
        check_features(small(), 64)


# -- splits -----------------------------------------------------------------------------------------

def test_split_is_stratified_seeded_and_named():
    d = Dataset(np.arange(200, dtype=float)[:, None], np.arange(200) % 4 // 3, 2, "d")   # 3:1 classes
    train, test = split(d, 0.2, seed=1)
    assert (len(train), len(test)) == (160, 40) and (train.name, test.name) == ("d/train", "d/test")
    assert list(np.bincount(test.y)) == [30, 10] and train.classes == test.classes == 2
    assert sorted(np.concatenate([train.x[:, 0], test.x[:, 0]])) == list(range(200))
    assert np.array_equal(test.x, split(d, 0.2, seed=1)[1].x)
    assert not np.array_equal(test.x, split(d, 0.2, seed=2)[1].x)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.25])
def test_split_refuses_a_fraction_outside_0_1(fraction):
    with pytest.raises(DataError, match=f"strictly between 0 and 1, not {fraction:g}"):
        split(small(), fraction)


def test_split_refuses_what_it_cannot_stratify():
    lonely = Dataset(np.ones((9, 2)), [0, 0, 0, 0, 1, 1, 1, 1, 2], 3, "lonely")
    with pytest.raises(DataError, match="lonely: class 2 has only 1 sample, too few"):
        split(lonely)
    with pytest.raises(DataError, match="cannot hold out a test fraction of 0.1 of 10 samples in 3 classes"):
        split(small(), 0.1)


# -- the input transform -----------------------------------------------------------------------------

def raw(n: int = 50) -> Dataset:
    """Features in the thousands with offsets, and a constant one."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (n, 3)) * [1000, 20, 5000] + [3000, -700, 250_000]
    return Dataset(np.column_stack([x, np.full(n, 42.0)]), np.arange(n) % 2, 2, "raw")


def test_standardize_fits_the_training_rows():
    d = raw()
    t = Standardize.fit(d.x)
    z = t(d)
    assert z.x.dtype == np.float32 and np.array_equal(z.y, d.y) and z.name == "raw"
    assert np.allclose(z.x[:, :3].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(z.x[:, :3].std(axis=0), 1, atol=1e-5)
    assert t.scale[3] == 1 and not z.x[:, 3].any()     # a constant feature: scale 1, centred to 0
    other = t(Dataset(d.x[:5] + 1000, d.y[:5], 2))      # another set takes the training statistics
    assert np.allclose(other.x[:, 0], z.x[:5, 0] + 1000 / t.scale[0], atol=1e-5)


def test_standardize_refuses_other_features():
    t = Standardize.fit(raw().x)
    with pytest.raises(DataError, match="small: 3 features per sample, the training data has 4"):
        t(small())
    with pytest.raises(ValueError, match="finite and positive"):
        Standardize([0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="one value per feature"):
        Standardize([0.0, 1.0], [1.0])


def test_standardize_round_trips_through_json():
    d = raw()
    t = Standardize.fit(d.x)
    back = Standardize.from_dict(json.loads(json.dumps(t.to_dict())))
    assert np.array_equal(back.mean, t.mean) and np.array_equal(back.scale, t.scale)
    assert np.array_equal(back(d).x, t(d).x)


# -- the holdout record ------------------------------------------------------------------------------

def test_holdout_holds_out_the_same_rows_until_the_file_changes(tmp_path):
    d = raw()
    path = tmp_path / "raw.csv"
    np.savetxt(path, np.column_stack([d.x, d.y]), delimiter=",")
    test = split(load(path), 0.3, seed=4)[1]
    record = Holdout.of(tmp_path / "." / "raw.csv", 0.3, 4)
    assert record.path == str(path.resolve()) and len(record.sha256) == 64
    assert Holdout.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    again = record.load()
    assert np.array_equal(again.x, test.x) and np.array_equal(again.y, test.y)
    whole = Holdout.of(path).load()                     # no fraction: the whole file is the test set
    assert np.array_equal(whole.x, d.x)
    path.write_text(path.read_text() + "1,2,3,4,0\n")
    with pytest.raises(DataError, match="changed since this checkpoint was trained.*pass the test data"):
        record.load()
    path.unlink()
    with pytest.raises(DataError, match="gone.*pass the test data with --data"):
        record.load()


# -- minibatches -------------------------------------------------------------------------------------

def test_minibatches_cover_each_sample_at_most_once():
    d = Dataset(np.arange(103, dtype=float)[:, None], np.arange(103) % 2, 2)
    batches = list(minibatches(d, 10, np.random.default_rng(0)))
    assert len(batches) == 10 and all(x.shape == (10, 1) and y.shape == (10,) for x, y in batches)
    seen = np.concatenate([x[:, 0] for x, _ in batches]).astype(int)
    assert len(set(seen)) == 100
    assert all(np.array_equal(y, x[:, 0].astype(int) % 2) for x, y in batches)


def test_minibatches_are_seeded():
    d = small(50)
    a, b, c = (list(minibatches(d, 8, np.random.default_rng(s))) for s in (1, 1, 2))
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(a, c, strict=True))
    rng = np.random.default_rng(1)
    first, second = list(minibatches(d, 8, rng)), list(minibatches(d, 8, rng))
    assert not np.array_equal(first[0][0], second[0][0])   # a new order each epoch


def test_minibatch_larger_than_dataset_raises():
    with pytest.raises(DataError, match="10 samples do not fill a minibatch of 32"):
        minibatches(small(), 32, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch must be at least 1"):
        minibatches(small(), 0, np.random.default_rng(0))


def test_inference_batches_pad_the_last():
    x = np.arange(23, dtype=np.float32).reshape(-1, 1) + 1
    batches = list(inference_batches(x, 8))
    assert [real for _, real in batches] == [8, 8, 7]
    assert all(xb.shape == (8, 1) and xb.dtype == np.float32 for xb, _ in batches)
    assert np.array_equal(np.concatenate([xb[:real] for xb, real in batches]), x)
    assert not batches[-1][0][7:].any()
    padded, real = pad(x[:8], 8)
    assert real == 8 and np.array_equal(padded, x[:8])
    with pytest.raises(ValueError, match="1..8 samples"):
        pad(x[:9], 8)
