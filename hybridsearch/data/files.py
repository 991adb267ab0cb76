"""The user's own files: NumPy .npz, CSV and Parquet (wide or long layout), and UCR/UEA .ts.

Layouts for CSV and Parquet (column names are set in the data config):

- ``wide``: one row per series, a ``label`` column and one column per time step
  (univariate; trailing empty cells mark a shorter series).
- ``long``: one row per series, time step: an ``id`` column, a ``time`` column,
  one column per channel, and a ``label`` column constant within each series.
- forecasting: one row per time step, a ``time`` column and one column per channel.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybridsearch.data.arrays import DataError, Series, pad_series

FORMATS = (".npz", ".csv", ".parquet", ".ts")


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() not in FORMATS:
        raise DataError(f"{path}: unknown format {path.suffix or '(none)'}; use one of {', '.join(FORMATS)}")
    return path


def read_table(path: Path):  # -> pandas.DataFrame
    import pandas as pd

    try:
        return pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as err:
        reason = " ".join(str(err).split())[:200]
        raise DataError(f"{path}: cannot read it as {path.suffix.lstrip('.').upper()}: {reason}") from None


def _require(frame, path: Path, columns: Sequence[str | None], what: str) -> None:
    for column in columns:
        if column is not None and column not in frame.columns:
            raise DataError(f"{path}: no {what} column {column!r}; columns are {list(frame.columns)[:20]}")


def _numeric(frame, path: Path, columns: Sequence[str]) -> np.ndarray:
    import pandas as pd

    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce")
    text = frame[list(columns)].notna() & values.isna()
    if text.to_numpy().any():
        row, col = np.argwhere(text.to_numpy())[0]
        raise DataError(
            f"{path}: column {columns[col]!r} row {row} holds a non-number: {frame.iloc[row][columns[col]]!r}"
        )
    return values.to_numpy(dtype=np.float64)


def load_panel(
    path: str | Path,
    *,
    layout: str = "wide",
    label: str = "label",
    id_column: str = "id",
    time: str | None = "time",
    columns: Sequence[str] | None = None,
    labelled: bool = True,
) -> Series:
    """Load a set of labelled series from a user's file.

    ``labelled=False`` (new series to predict) lets the label be absent; ``y`` is then zeros.
    """
    path = _check_path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, labelled)
    if suffix == ".ts":
        return _load_ts(path)
    frame = read_table(path)
    if not labelled and label not in frame.columns:
        frame = frame.assign(**{label: 0})
    _require(frame, path, [label], "label")
    if layout == "wide":
        value_columns = list(columns) if columns else [c for c in frame.columns if c != label]
        _require(frame, path, value_columns, "value")
        values = _numeric(frame, path, value_columns)  # (n, T)
        lengths = np.array([_true_length(row) for row in values], dtype=np.int64)
        X = np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf)
        for i, n in enumerate(lengths):  # NaN inside a series stays NaN, for data.missing to decide
            X[i, :n] = values[i, :n]
        X = X[:, None, :].astype(np.float32)
        return Series(X, lengths, frame[label].to_numpy())
    if layout == "long":
        _require(frame, path, [id_column, time], "id / time")
        value_columns = list(columns) if columns else [c for c in frame.columns if c not in (label, id_column, time)]
        _require(frame, path, value_columns, "value")
        frame = frame.sort_values([id_column, time], kind="stable")
        items, labels = [], []
        for key, group in frame.groupby(id_column, sort=False):
            if group[label].nunique(dropna=False) > 1:
                raise DataError(f"{path}: series {key!r} has more than one {label!r} value")
            items.append(_numeric(group, path, value_columns).T)  # (C, T_i)
            labels.append(group[label].iloc[0])
        return pad_series(items, np.asarray(labels), source=str(path))
    raise DataError(f"data.layout: unknown layout {layout!r}; valid: wide, long")


def _true_length(row: np.ndarray) -> int:
    """Steps up to the last finite value: trailing empty cells pad a shorter series."""
    finite = np.flatnonzero(~np.isnan(row))
    return int(finite[-1]) + 1 if len(finite) else 0


def _load_npz(path: Path, labelled: bool = True) -> Series:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz archive (not a zip file); write it with numpy.savez")
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except Exception as err:
        raise DataError(f"{path}: not a readable .npz archive: {' '.join(str(err).split())[:200]}") from None
    if not {"X", "y"} <= keys and (labelled or "X" not in keys):
        raise DataError(f"{path}: needs arrays 'X' (n, channels, time) and 'y' (n,); found {sorted(keys)}")
    try:
        X = archive["X"]
        y = archive["y"] if "y" in keys else np.zeros(len(X))
    except ValueError:
        raise DataError(
            f"{path}: X is ragged (an object array); store X padded to (n, channels, time) with a 'lengths' array"
        ) from None
    if X.ndim == 2:
        X = X[:, None, :]
    if X.ndim != 3:
        raise DataError(f"{path}: X must have shape (n, channels, time), got {X.shape}")
    lengths = archive["lengths"].astype(np.int64) if "lengths" in keys else np.full(len(X), X.shape[2], np.int64)
    if len(lengths) != len(X) or (lengths < 1).any() or (lengths > X.shape[2]).any():
        raise DataError(f"{path}: 'lengths' must give one length in 1..{X.shape[2]} per series")
    X = X.astype(np.float32)
    if len(X) != len(y):
        raise DataError(f"{path}: {len(X)} series in X but {len(y)} values in y")
    X *= (np.arange(X.shape[2])[None, :] < lengths[:, None])[:, None, :]  # whatever padded, now zeros
    return Series(X, lengths, y)


def _load_ts(path: Path) -> Series:
    from aeon.datasets import load_from_ts_file

    try:
        X, y = load_from_ts_file(str(path))
    except Exception as err:
        raise DataError(f"{path}: not a readable .ts file: {' '.join(str(err).split())[:200]}") from None
    return pad_series(X, np.asarray(y), source=str(path))


def load_series(path: str | Path, *, time: str | None = "time", columns: Sequence[str] | None = None) -> np.ndarray:
    """Load one (possibly multivariate) series for forecasting -> (channels, time), ordered by ``time``."""
    path = _check_path(path)
    if path.suffix.lower() == ".npz":
        archive = np.load(path, allow_pickle=False)
        key = "series" if "series" in archive.files else archive.files[0]
        values = np.atleast_2d(archive[key]).astype(np.float64)
        return values
    if path.suffix.lower() == ".ts":
        raise DataError(f"{path}: .ts files hold labelled series; give a forecasting series as CSV, Parquet or .npz")
    frame = read_table(path)
    _require(frame, path, [time], "time")
    if time is not None:
        frame = frame.sort_values(time, kind="stable")
    value_columns = list(columns) if columns else [c for c in frame.columns if c != time]
    _require(frame, path, value_columns, "value")
    if not value_columns:
        raise DataError(f"{path}: no value columns besides {time!r}")
    return _numeric(frame, path, value_columns).T
