from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import load

from hybridsearch.data import DataError, bundled
from hybridsearch.data.files import load_panel, load_series

EXAMPLES = Path(__file__).parents[2] / "examples" / "data"


# Bundled data -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", bundled("classification"))
def test_every_bundled_classification_dataset_loads_offline(name: str) -> None:
    data = load(name)
    assert len(data.classes) >= 2
    assert len(data.train) and len(data.val) and len(data.test)
    assert data.train.X.shape[1:] == data.test.X.shape[1:]


def test_unequal_lengths_are_padded_with_their_lengths_kept() -> None:
    data = load("JapaneseVowels")
    assert data.in_channels == 12
    lengths = np.concatenate([data.train.lengths, data.val.lengths, data.test.lengths])
    assert lengths.min() < lengths.max() == data.seq_len
    short = int(np.argmin(data.train.lengths))
    assert np.all(data.train.X[short, :, data.train.lengths[short] :] == 0)
    # what a model is told of the lengths: their log's mean and spread over the training split
    log = np.log(data.train.lengths)
    assert np.allclose(data.length_scaling(), (log.mean(), log.std()))
    assert load("GunPoint").length_scaling() is None  # one length: nothing to tell
    assert load("JapaneseVowels", length_feature=False).length_scaling() is None


def test_bundled_regression_and_forecasting() -> None:
    covid = load("Covid3Month", task="regression")
    assert covid.train.y.dtype == np.float32 and covid.n_outputs == 1
    airline = load("airline", task="forecasting", lookback=24, horizon=12)
    assert airline.train.X.shape[1:] == (1, 24) and airline.train.y.shape[1:] == (1, 12)
    assert airline.n_outputs == (1, 12)
    assert load("uschange", task="forecasting", lookback=8, horizon=4).in_channels == 5


def test_unknown_name_lists_the_offline_names_at_once() -> None:
    with pytest.raises(DataError, match="offline names: ACSF1, ArrowHead, BasicMotions"):
        load("Adiac")
    with pytest.raises(DataError, match="offline names: airline"):
        load("sunspots", task="forecasting")


# Splits and scaling -------------------------------------------------------------------------


def test_validation_split_is_stratified_and_seeded() -> None:
    data = load("BasicMotions", seed=3)
    assert sorted(np.unique(data.val.y).tolist()) == [0, 1, 2, 3]
    counts = np.bincount(data.val.y)
    assert counts.max() - counts.min() <= 1
    again = load("BasicMotions", seed=3)
    np.testing.assert_array_equal(data.val.X, again.val.X)
    assert not np.array_equal(load("BasicMotions", seed=4).val.X, data.val.X)


def test_given_test_split_is_held_out_untouched() -> None:
    data = load("ItalyPowerDemand")
    from aeon.datasets import load_classification

    X_test, y_test = load_classification("ItalyPowerDemand", split="test")
    np.testing.assert_allclose(data.test.X, X_test.astype(np.float32))
    assert np.array(data.classes, dtype=object)[data.test.y].tolist() == y_test.tolist()


def test_scaling_comes_from_the_training_split_only() -> None:
    data = load("BasicMotions")  # raw accelerometer values, not z-normalised per series
    mean, std = data.scaling()
    np.testing.assert_allclose(mean, data.train.X.mean(axis=(0, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std, data.train.X.std(axis=(0, 2)), rtol=1e-4)
    for other in (data.val, data.test):
        everything = np.concatenate([data.train.X, other.X]).mean(axis=(0, 2))
        assert not np.allclose(mean, everything, rtol=1e-3)


def test_forecasting_windows_are_chronological_and_never_leak() -> None:
    data = load("airline", task="forecasting", lookback=12, horizon=6)
    f = data.forecast
    values = f.values[0]

    def target_starts(split) -> list[int]:
        # locate each window's horizon in the series
        return [
            int(np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(values, 6) == y[0], axis=1))[0])
            for y in split.y
        ]

    train, val, test = (target_starts(getattr(data, s)) for s in ("train", "val", "test"))
    assert max(train) + 6 <= f.train_end <= min(val)
    assert max(val) + 6 <= f.val_end <= min(test)
    assert max(test) + 6 == values.shape[0]
    assert train == sorted(train) and val == sorted(val)
    # y_mean / y_std of the targets come from training windows only
    assert data.target_scaling()[0][0] == pytest.approx(float(data.train.y.mean()))


def test_seasonal_naive_baseline_repeats_last_season() -> None:
    data = load("airline", task="forecasting", lookback=24, horizon=12, season=12)
    naive = data.forecast.seasonal_naive(24)
    np.testing.assert_allclose(naive[:, 0, :], data.test.X[:, 0, -12:])  # horizon 12 = one season back
    metrics = data.baseline()
    assert set(metrics) == {"mae", "rmse", "smape", "mase"} and metrics["mae"] > 0


# The user's files ---------------------------------------------------------------------------


def test_every_file_format_gives_the_same_series() -> None:
    npz = load_panel(EXAMPLES / "gestures.npz")
    wide_csv = load_panel(EXAMPLES / "wide.csv")
    wide_parquet = load_panel(EXAMPLES / "wide.parquet")
    long_csv = load_panel(EXAMPLES / "long.csv", layout="long")
    ts = load_panel(EXAMPLES / "gestures.ts")
    assert npz.X.shape == (48, 2, 32) and long_csv.X.shape == (48, 2, 32)
    np.testing.assert_array_equal(wide_csv.lengths, npz.lengths)
    np.testing.assert_allclose(wide_csv.X[:, 0], npz.X[:, 0], atol=1e-5)
    np.testing.assert_allclose(wide_parquet.X, wide_csv.X, atol=1e-5)
    order = np.argsort([int(i[1:]) for i in sorted(f"s{k}" for k in range(48))])  # ids sort as text
    np.testing.assert_allclose(long_csv.X[order], npz.X, atol=1e-5)
    assert long_csv.y[order].tolist() == npz.y.tolist()
    np.testing.assert_allclose(ts.X[:, 0], npz.X[:, 0, :24], atol=1e-5)


def test_a_user_file_gets_a_seeded_stratified_test_split_or_a_given_test_file(tmp_path: Path) -> None:
    data = load(path=str(EXAMPLES / "gestures.npz"))
    assert len(data.train) + len(data.val) + len(data.test) == 48
    assert sorted(np.unique(data.test.y).tolist()) == [0, 1, 2]
    X, y = np.load(EXAMPLES / "gestures.npz")["X"], np.load(EXAMPLES / "gestures.npz")["y"]
    np.savez(tmp_path / "test.npz", X=X[:5], y=y[:5])
    held = load(path=str(EXAMPLES / "gestures.npz"), test_path=str(tmp_path / "test.npz"))
    np.testing.assert_allclose(held.test.X, X[:5])
    assert len(held.train) + len(held.val) == 48


def test_forecasting_from_a_csv_with_a_time_column() -> None:
    data = load(
        path=str(EXAMPLES / "sales.csv"),
        task="forecasting",
        columns=["sales", "price"],
        targets=["sales"],
        lookback=12,
        horizon=6,
        season=12,
    )
    assert data.in_channels == 2 and data.n_outputs == (1, 6)
    assert load_series(EXAMPLES / "sales.csv").shape == (2, 96)


# Bad data: one line naming the file, column or value ------------------------------------------


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_file() -> None:
    with pytest.raises(DataError) as err:
        load(path="nowhere/data.npz")
    assert "nowhere/data.npz: no such file" in one_line(err)


def test_unknown_or_unreadable_format(tmp_path: Path) -> None:
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"unknown format \.xlsx"):
        load(path=str(tmp_path / "data.xlsx"))
    (tmp_path / "broken.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataError) as err:
        load(path=str(tmp_path / "broken.npz"))
    assert "broken.npz: not a readable .npz" in one_line(err)
    (tmp_path / "broken.parquet").write_text("label,t0\na,1\n")
    with pytest.raises(DataError, match="cannot read it as PARQUET"):
        load(path=str(tmp_path / "broken.parquet"))


def test_nan_values_fail_unless_dropped_or_filled(tmp_path: Path) -> None:
    X, y = np.load(EXAMPLES / "gestures.npz")["X"].copy(), np.load(EXAMPLES / "gestures.npz")["y"]
    X[3, 1, 5] = np.nan
    X[7, 0, 2] = np.inf
    np.savez(tmp_path / "nan.npz", X=X, y=y)
    with pytest.raises(DataError) as err:
        load(path=str(tmp_path / "nan.npz"))
    assert "2 series hold NaN or infinite values (first: row 3)" in one_line(err)
    dropped = load(path=str(tmp_path / "nan.npz"), missing="drop")
    assert len(dropped.train) + len(dropped.val) + len(dropped.test) == 46
    filled = load(path=str(tmp_path / "nan.npz"), missing="fill")
    assert len(filled.train) + len(filled.val) + len(filled.test) == 48
    assert all(np.isfinite(s.X).all() for s in (filled.train, filled.val, filled.test))


def test_ragged_arrays_without_lengths(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((1, 5)), np.zeros((1, 7))
    np.savez(tmp_path / "ragged.npz", X=ragged, y=np.array([0, 1]))
    with pytest.raises(DataError) as err:
        load(path=str(tmp_path / "ragged.npz"))
    assert "ragged" in one_line(err) and "'lengths'" in one_line(err)


def test_missing_label_target_or_time_column(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load(path=str(EXAMPLES / "wide.csv"), label="class")
    assert "wide.csv: no label column 'class'" in one_line(err)
    with pytest.raises(DataError, match="no id / time column 'step'"):
        load(path=str(EXAMPLES / "long.csv"), layout="long", time="step")
    with pytest.raises(DataError, match=r"sales\.csv: no time column 'date'"):
        load(path=str(EXAMPLES / "sales.csv"), task="forecasting", time="date")
    with pytest.raises(DataError, match=r"data\.targets: \['revenue'\]"):
        load(
            path=str(EXAMPLES / "sales.csv"),
            task="forecasting",
            columns=["sales"],
            targets=["revenue"],
            lookback=12,
            horizon=6,
        )


def test_single_class(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", X=np.random.rand(20, 1, 10), y=np.array(["a"] * 20))
    with pytest.raises(DataError) as err:
        load(path=str(tmp_path / "one.npz"))
    assert "two classes or more, found only ['a']" in one_line(err)


def test_fewer_samples_than_the_splits_need(tmp_path: Path) -> None:
    np.savez(tmp_path / "tiny.npz", X=np.random.rand(3, 1, 10), y=np.array(["a", "b", "a"]))
    with pytest.raises(DataError) as err:
        load(path=str(tmp_path / "tiny.npz"))
    assert "too few to split off" in one_line(err)


def test_series_shorter_than_lookback_plus_horizon() -> None:
    with pytest.raises(DataError) as err:
        load("airline", task="forecasting", lookback=80, horizon=12)
    assert "airline: 144 steps are too few for lookback 80 + horizon 12" in one_line(err)


def test_mismatched_channels_between_train_and_test(tmp_path: Path) -> None:
    np.savez(tmp_path / "test.npz", X=np.random.rand(6, 3, 32), y=np.array(["wave", "ramp", "bump"] * 2))
    with pytest.raises(DataError) as err:
        load(path=str(EXAMPLES / "gestures.npz"), test_path=str(tmp_path / "test.npz"))
    assert "test series have 3 channels but training has 2" in one_line(err)


def test_non_numeric_value_is_named(tmp_path: Path) -> None:
    frame = pd.read_csv(EXAMPLES / "wide.csv")
    frame["t7"] = frame["t7"].astype(object)
    frame.loc[4, "t7"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError) as err:
        load(path=str(tmp_path / "bad.csv"))
    assert "column 't7' row 4 holds a non-number: 'oops'" in one_line(err)


def test_folds_partition_training_and_validation_data_by_class() -> None:
    data = load("BasicMotions")
    folds = data.folds(4, seed=0)
    pool = len(data.train) + len(data.val)
    assert [len(f.train) + len(f.val) for f in folds] == [pool] * 4
    seen = np.concatenate([f.val.X for f in folds])
    assert len(seen) == pool and len(np.unique(seen.reshape(pool, -1), axis=0)) == pool  # each series once
    for f in folds:
        assert sorted(np.unique(f.val.y).tolist()) == [0, 1, 2, 3]  # stratified
        np.testing.assert_array_equal(f.test.X, data.test.X)  # the test split never moves
    with pytest.raises(DataError, match="cv_folds"):
        load("airline", task="forecasting").folds(3, 0)


def test_merged_training_data_adds_validation_to_training() -> None:
    data = load("GunPoint")
    merged = data.merged()
    assert len(merged.train) == len(data.train) + len(data.val)
    np.testing.assert_array_equal(merged.test.X, data.test.X)


def test_series_to_predict_may_come_without_labels(tmp_path: Path) -> None:
    X = np.load(EXAMPLES / "gestures.npz")["X"]
    np.savez(tmp_path / "new.npz", X=X[:4])
    assert load_panel(tmp_path / "new.npz", labelled=False).X.shape == (4, 2, 32)
    with pytest.raises(DataError, match="needs arrays 'X'"):
        load_panel(tmp_path / "new.npz")  # training data must be labelled
    pd.read_csv(EXAMPLES / "wide.csv").drop(columns="label").to_csv(tmp_path / "new.csv", index=False)
    unlabelled = load_panel(tmp_path / "new.csv", labelled=False)
    np.testing.assert_allclose(unlabelled.X, load_panel(EXAMPLES / "wide.csv").X)
    with pytest.raises(DataError, match="no label column"):
        load_panel(tmp_path / "new.csv")
