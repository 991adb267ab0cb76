"""Data: load once per worker, split train / validation / test, and batch from memory.

Tasks: ``classification`` and ``regression`` of whole series, and ``forecasting`` of a series'
next ``horizon`` steps. Sources: a dataset aeon bundles (``name``) or the user's file (``path``,
optionally ``test_path``); see :mod:`hybridsearch.data.files` for the layouts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from hybridsearch.config import DataConfig
from hybridsearch.data.arrays import Series, channel_stats, fill_gaps, handle_missing, stratified_split
from hybridsearch.data.batches import Batches
from hybridsearch.data.bundled import FORECAST_SERIES, bundled_names, load_bundled, load_bundled_series
from hybridsearch.data.files import load_panel, load_series
from hybridsearch.data.forecasting import ForecastSeries, forecast_metrics, split_points
from hybridsearch.errors import DataError
from hybridsearch.tasks import FORECASTING, TASKS, Task


@dataclass
class TaskData:
    """The three splits of one task, ready for training. Classification targets are class indices."""

    task: Task
    name: str
    train: Series
    val: Series
    test: Series
    classes: list[Any] = field(default_factory=list)
    forecast: ForecastSeries | None = None  # forecasting only: the series the windows come from
    length_feature: bool = True  # unequal lengths: the model is given each series' length (data.length_feature)

    @property
    def in_channels(self) -> int:
        return self.train.channels

    @property
    def seq_len(self) -> int:
        return self.train.steps

    @property
    def n_outputs(self) -> int | tuple[int, ...]:
        if self.task.classifies:
            return len(self.classes)
        shape = self.train.y.shape[1:]
        return tuple(int(s) for s in shape) if len(shape) > 1 else int(shape[0]) if shape else 1

    def scaling(self) -> tuple[list[float], list[float]]:
        """Per-channel input mean and std of the training split: the only statistics a model may see."""
        mean, std = channel_stats(self.train)
        return mean.tolist(), std.tolist()

    def length_scaling(self) -> tuple[float, float] | None:
        """Mean and std of the log of the training series' true lengths, or None where they are all
        one length. The models mask padding, so without the length channel these scale, only a
        recurrence that learns to count steps could tell a short series from a long one; and the
        lengths of unequal-length data often tell the classes apart."""
        lengths = self.train.lengths
        if not self.length_feature or self.task.windows or lengths.min() == lengths.max():
            return None
        log = np.log(lengths.astype(np.float64))
        return float(log.mean()), float(max(log.std(), 1e-3))

    def target_scaling(self) -> tuple[list[float], list[float]] | tuple[None, None]:
        """Mean and std of each regression target / forecast channel, from the training split."""
        if self.task.classifies:
            return None, None
        # forecasting y (n, targets, horizon): a statistic per target; regression y (n,) or (n, targets)
        y = self.train.y if self.task.windows else self.train.y.reshape(len(self.train), -1)
        axes = (0, 2) if self.task.windows else (0,)
        mean, std = y.mean(axis=axes), y.std(axis=axes)
        return mean.tolist(), np.where(std > 1e-8, std, 1.0).tolist()

    def with_lookback(self, lookback: int) -> TaskData:
        """Forecasting: the same series cut into windows of another lookback (for a searched lookback)."""
        if self.forecast is None or lookback == self.seq_len:
            return self
        return _windowed(self.forecast, lookback)

    def for_trial(self, params: Mapping[str, Any]) -> TaskData:
        """A trial's data: forecasting windows follow a searched ``lookback``."""
        return self.with_lookback(int(params["lookback"])) if "lookback" in params else self

    def merged(self) -> TaskData:
        """Training and validation data as one training split (for the final refit)."""
        both = Series(*(np.concatenate([getattr(self.train, k), getattr(self.val, k)]) for k in ("X", "lengths", "y")))
        return replace(self, train=both)

    def fold_indices(self, k: int, seed: int) -> list[np.ndarray]:
        """The validation rows of each of k folds of the pool (training plus validation data),
        stratified for classification. The same ``seed`` gives the same folds to every trial."""
        if self.forecast is not None:
            raise DataError("data.cv_folds: forecasting validates on the latest part of the series; use 1")
        pool = self.merged().train
        rng = np.random.default_rng(seed)
        fold_of = np.empty(len(pool), dtype=np.int64)
        groups = (
            [np.flatnonzero(pool.y == c) for c in np.unique(pool.y)] if self.task.classifies else [np.arange(len(pool))]
        )
        offset = 0
        for idx in groups:  # deal each class round-robin over the folds
            idx = rng.permutation(idx)
            fold_of[idx] = (np.arange(len(idx)) + offset) % k
            offset += len(idx)
        return [np.flatnonzero(fold_of == i) for i in range(k)]

    def folds(self, k: int, seed: int) -> list[TaskData]:
        """k train / validation splits of the pool, by :meth:`fold_indices`."""
        pool = self.merged().train
        every = np.arange(len(pool))
        return [
            replace(self, train=pool.take(np.setdiff1d(every, val)), val=pool.take(val))
            for val in self.fold_indices(k, seed)
        ]

    def validation_pool(self, k: int, seed: int) -> tuple[Series, list[np.ndarray], list[TaskData]]:
        """What a trial is scored on: the series its validation predictions cover, each split's
        rows in it, and the splits. k > 1: the k folds of training plus validation data; k = 1:
        the validation split alone."""
        if k > 1:
            return self.merged().train, self.fold_indices(k, seed), self.folds(k, seed)
        return self.val, [np.arange(len(self.val))], [self]

    def fingerprint(self) -> str:
        """A hash of the splits' contents and labels: another file, changed contents, another
        split seed or task all change it."""
        import hashlib

        digest = hashlib.sha256(self.task.name.encode())
        for series in (self.train, self.val, self.test):
            for array in (series.X, series.lengths, series.y):
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(repr(self.classes).encode())
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        sizes = f"{len(self.train)}/{len(self.val)}/{len(self.test)} train/val/test"
        if self.task.classifies:
            kind = f"{len(self.classes)} classes"
        elif self.forecast is not None:
            kind = f"forecasting {self.forecast.horizon} steps of {len(self.forecast.targets)} channel(s)"
        else:
            kind = "regression"
        return f"{self.name}: {sizes}, {self.in_channels} channel(s) x {self.seq_len} steps, {kind}"

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0, device="cpu") -> Batches:
        """Minibatches ``(x, lengths, y)`` of a split, indexed on ``device`` (:mod:`.batches`)."""
        return Batches(getattr(self, split), batch_size, shuffle=shuffle, seed=seed, device=device)

    def baseline(self) -> dict[str, float] | None:
        """Forecasting: the seasonal-naive forecast's test metrics, on the same test windows."""
        if self.forecast is None:
            return None
        f = self.forecast
        return forecast_metrics(f.seasonal_naive(self.seq_len), self.test.y, f.mase_scale())

    def test_metrics(self, predictions: np.ndarray) -> dict[str, float]:
        """Metrics of predictions on the test split (labels, values or forecasts in original units)."""
        return self.metrics(self.test.y, predictions)

    def metrics(self, y: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
        """Metrics of predictions (labels, values or forecasts in original units) against stored
        targets ``y`` (class indices, values or forecast windows)."""
        if self.task.classifies:
            truth = np.asarray(self.classes, dtype=object)[y].astype(predictions.dtype)
            return {"accuracy": float((predictions == truth).mean())}
        if self.forecast is not None:
            return forecast_metrics(predictions.reshape(y.shape), y, self.forecast.mase_scale())
        err = predictions.reshape(y.shape) - y
        total = float(((y - y.mean(axis=0)) ** 2).sum()) or 1.0
        return {
            "mae": float(np.abs(err).mean()),
            "rmse": float(np.sqrt((err**2).mean())),
            "r2": 1.0 - float((err**2).sum()) / total,
        }


def _pad_to(series: Series, steps: int) -> Series:
    if series.steps >= steps:
        return series
    X = np.zeros((len(series), series.channels, steps), dtype=np.float32)
    X[:, :, : series.steps] = series.X
    return replace(series, X=X)


@cache
def _windowed(forecast: ForecastSeries, lookback: int) -> TaskData:
    splits = {split: forecast.windows(lookback, split) for split in ("train", "val", "test")}
    return TaskData(FORECASTING, forecast.name, forecast=forecast, **splits)


def _encode(train: Series, test: Series, source: str) -> tuple[Series, Series, list[Any]]:
    classes = np.unique(train.y).tolist()
    if len(classes) < 2:
        raise DataError(f"{source}: a classifier needs two classes or more, found only {classes}")
    unseen = sorted(set(np.unique(test.y).tolist()) - set(classes))
    if unseen:
        raise DataError(f"{source}: test labels {unseen[:5]} never occur in training")
    lookup = {c: i for i, c in enumerate(classes)}
    encode = np.vectorize(lookup.__getitem__, otypes=[np.int64])
    return replace(train, y=encode(train.y)), replace(test, y=encode(test.y)), classes


def _split(y: np.ndarray, fraction: float, seed: int, stratified: bool, what: str, source: str):
    if stratified:
        keep, held = stratified_split(y, fraction, seed)
    else:
        order = np.random.default_rng(seed).permutation(len(y))
        n_held = max(1, round(fraction * len(y)))
        keep, held = np.sort(order[n_held:]), np.sort(order[:n_held])
    if len(keep) < 2 or len(held) < 1:
        raise DataError(f"{source}: {len(y)} series are too few to split off a {what} set; give more data")
    return keep, held


def _check_fraction(key: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise DataError(f"data.{key}: must be between 0 and 1, got {value}")


def prepare(cfg: DataConfig | None = None, *, seed: int = 0) -> TaskData:
    """Load the data that ``cfg`` (the ``data`` config) describes and split it; a given test split
    is held out untouched. ``seed`` seeds the validation split, and the test split when none is given.

    Example:
        >>> data = prepare(DataConfig(name="ItalyPowerDemand"))
        >>> data.describe()
        'ItalyPowerDemand: 53/14/1029 train/val/test, 1 channel(s) x 24 steps, 2 classes'

    Raises:
        DataError: one line naming the dataset, file, column or value at fault.
    """
    cfg = cfg or DataConfig()
    if cfg.task not in TASKS:
        raise DataError(f"data.task: unknown task {cfg.task!r}; valid: {', '.join(TASKS)}")
    task = TASKS[cfg.task]
    _check_fraction("val_fraction", cfg.val_fraction)
    _check_fraction("test_fraction", cfg.test_fraction)
    if cfg.path is None and cfg.name is None:
        raise DataError("data: give data.name (a bundled dataset) or data.path (your file)")
    if task.windows:
        return _prepare_forecast(cfg)
    source = str(cfg.path or cfg.name)
    if cfg.path is not None:
        read = {"layout": cfg.layout, "label": cfg.label, "id_column": cfg.id, "time": cfg.time, "columns": cfg.columns}
        train = load_panel(cfg.path, **read)
        test = load_panel(cfg.test_path, **read) if cfg.test_path else None
    else:
        train, test = load_bundled(cfg.name, "train", cfg.task), load_bundled(cfg.name, "test", cfg.task)
    train = handle_missing(train, cfg.missing, source=source)
    if test is not None:
        test = handle_missing(test, cfg.missing, source=str(cfg.test_path or cfg.name))
    if not task.classifies:
        train = replace(train, y=_as_float(train.y, source))
        test = test if test is None else replace(test, y=_as_float(test.y, cfg.test_path or cfg.name))
    if task.classifies and len(np.unique(train.y)) < 2:
        raise DataError(f"{source}: a classifier needs two classes or more, found only {np.unique(train.y).tolist()}")
    if test is None:  # no test split given: hold one out, seeded
        keep, held = _split(train.y, cfg.test_fraction, seed + 1, task.classifies, "test", source)
        train, test = train.take(keep), train.take(held)
    if train.channels != test.channels:
        raise DataError(
            f"{cfg.test_path or cfg.name}: test series have {test.channels} channels but training has {train.channels}"
        )
    steps = max(train.steps, test.steps)
    train, test = _pad_to(train, steps), _pad_to(test, steps)
    classes: list[Any] = []
    if task.classifies:
        train, test, classes = _encode(train, test, source)
    fit_idx, val_idx = _split(train.y, cfg.val_fraction, seed, task.classifies, "validation", source)
    return TaskData(
        task, source, train.take(fit_idx), train.take(val_idx), test, classes, length_feature=cfg.length_feature
    )


def _as_float(y: np.ndarray, source: Any) -> np.ndarray:
    try:
        return np.asarray(y, dtype=np.float32)
    except ValueError:
        raise DataError(f"{source}: regression targets must be numbers, got e.g. {y[:3].tolist()}") from None


def _prepare_forecast(cfg: DataConfig) -> TaskData:
    lookback, horizon = cfg.lookback, cfg.horizon
    if lookback < 1 or horizon < 1:
        raise DataError(f"data.lookback and data.horizon: must be 1 or more, got {lookback} and {horizon}")
    if cfg.path is not None:
        values, default_season, label = load_series(cfg.path, time=cfg.time, columns=cfg.columns), 1, str(cfg.path)
    else:
        values, default_season = load_bundled_series(cfg.name)
        label = cfg.name
    if not np.isfinite(values).all():
        if cfg.missing == "error":
            raise DataError(f"{label}: the series holds NaN or infinite values; set data.missing=fill")
        values = fill_gaps(np.where(np.isfinite(values), values, np.nan))
    channel_names = list(cfg.columns) if cfg.columns else list(range(values.shape[0]))
    target_idx = list(range(values.shape[0]))
    if cfg.targets:
        lookup = {str(c): i for i, c in enumerate(channel_names)}
        missing_targets = [t for t in cfg.targets if str(t) not in lookup]
        if missing_targets:
            raise DataError(f"data.targets: {missing_targets} are not channels of {label}; channels: {channel_names}")
        target_idx = [lookup[str(t)] for t in cfg.targets]
    n_steps = values.shape[1]
    train_end, val_end = split_points(n_steps, cfg.val_fraction, cfg.test_fraction, horizon)
    if train_end < lookback + horizon:
        raise DataError(
            f"{label}: {n_steps} steps are too few for lookback {lookback} + horizon {horizon} in the training part "
            f"({train_end} steps after validation and test); lower data.lookback or data.horizon"
        )
    forecast = ForecastSeries(
        str(label), values.astype(np.float32), target_idx, horizon, cfg.season or default_season, train_end, val_end
    )
    return _windowed(forecast, lookback)


def bundled(task: str) -> tuple[str, ...]:
    """Names of the datasets aeon bundles for a task."""
    return tuple(FORECAST_SERIES) if TASKS[task].windows else bundled_names(task)


__all__ = ["DataConfig", "DataError", "Series", "TaskData", "bundled", "prepare"]
