"""In-memory series: padding, label encoding, splits and scaling statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybridsearch.errors import DataError


@dataclass
class Series:
    """A set of series ``X`` of shape (n, C, T), zero-padded to T, with true ``lengths`` and targets ``y``."""

    X: np.ndarray
    lengths: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.X)

    def take(self, index: np.ndarray) -> Series:
        return Series(self.X[index], self.lengths[index], self.y[index])

    @property
    def channels(self) -> int:
        return self.X.shape[1]

    @property
    def steps(self) -> int:
        return self.X.shape[2]


def pad_series(X: np.ndarray | Sequence[np.ndarray], y: np.ndarray, *, source: str) -> Series:
    """Stack (n, C, T) or a list of (C, T_i) arrays into a zero-padded float32 array with lengths."""
    if isinstance(X, np.ndarray) and X.ndim == 3:
        arr = X.astype(np.float32, copy=False)
        lengths = np.full(len(arr), arr.shape[2], dtype=np.int64)
    else:
        items = [np.asarray(x, dtype=np.float32) for x in X]
        if not items or any(x.ndim != 2 for x in items):
            raise DataError(f"{source}: expected series of shape (channels, time)")
        channels = {x.shape[0] for x in items}
        if len(channels) > 1:
            raise DataError(f"{source}: series have different channel counts {sorted(channels)}")
        lengths = np.array([x.shape[1] for x in items], dtype=np.int64)
        arr = np.zeros((len(items), items[0].shape[0], lengths.max()), dtype=np.float32)
        for i, x in enumerate(items):
            arr[i, :, : x.shape[1]] = x
    if len(arr) != len(y):
        raise DataError(f"{source}: {len(arr)} series but {len(y)} targets")
    return Series(arr, lengths, y)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``fraction`` of each class in val (at least one where the class has two)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_val = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def channel_stats(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over the valid (unpadded) steps."""
    mask = np.arange(series.steps)[None, :] < series.lengths[:, None]  # (n, T)
    values = np.where(mask[:, None, :], series.X, np.nan)
    mean = np.nanmean(values, axis=(0, 2))
    std = np.nanstd(values, axis=(0, 2))
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


MISSING = ("error", "drop", "fill")


def handle_missing(series: Series, policy: str, *, source: str) -> Series:
    """Apply the ``data.missing`` policy to NaN / infinite values inside the series' true lengths.

    'error' (the default) refuses them, 'drop' removes the series holding any, 'fill' carries the
    last finite value forward (and the first one backward).
    """
    if policy not in MISSING:
        raise DataError(f"data.missing: unknown policy {policy!r}; valid: {', '.join(MISSING)}")
    valid = np.arange(series.steps)[None, None, :] < series.lengths[:, None, None]
    bad = ~np.isfinite(series.X) & valid
    targets_bad = ~np.isfinite(series.y.astype(np.float64)) if series.y.dtype.kind == "f" else None
    if not bad.any() and (targets_bad is None or not targets_bad.any()):
        return series
    rows = bad.any(axis=(1, 2))
    if targets_bad is not None:
        rows |= targets_bad.reshape(len(series), -1).any(axis=1)
    if policy == "error":
        first = int(np.flatnonzero(rows)[0])
        raise DataError(
            f"{source}: {int(rows.sum())} series hold NaN or infinite values (first: row {first}); "
            "set data.missing=drop or data.missing=fill"
        )
    if policy == "drop" or (targets_bad is not None and targets_bad.any()):
        kept = series.take(np.flatnonzero(~rows))
        if len(kept) == 0:
            raise DataError(f"{source}: every series holds NaN or infinite values; nothing left to train on")
        return kept
    X = series.X.copy()
    X[bad] = np.nan
    for i in np.flatnonzero(rows):
        X[i, :, : series.lengths[i]] = fill_gaps(X[i, :, : series.lengths[i]])
    return Series(X, series.lengths, series.y)


def fill_gaps(values: np.ndarray) -> np.ndarray:
    """Forward- then backward-fill NaN along the last axis of (C, T); an all-NaN channel becomes 0."""
    out = values.copy()
    for channel in out:
        idx = np.where(np.isfinite(channel), np.arange(len(channel)), 0)
        np.maximum.accumulate(idx, out=idx)
        channel[:] = channel[idx]
        finite = np.flatnonzero(np.isfinite(channel))
        channel[: finite[0] if len(finite) else len(channel)] = channel[finite[0]] if len(finite) else 0.0
    return out
