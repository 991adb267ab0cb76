"""Forecasting: a series becomes sliding windows, ``lookback`` steps in and ``horizon`` steps out.

The series is split chronologically into train, validation and test. A window belongs to the
split that holds its whole horizon, so no training target lies in validation or test, and no
validation target in test. A window's lookback may reach back into earlier splits: that is the
past, known at the time of the forecast. Scaling statistics come from the training part only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridsearch.data.arrays import DataError, Series


@dataclass(eq=False)  # hashed by identity: windows are cached per (series, lookback)
class ForecastSeries:
    """One series (channels, time) with its chronological split points."""

    name: str
    values: np.ndarray  # (C, T)
    targets: list[int]  # channels to forecast
    horizon: int
    season: int
    train_end: int  # train targets lie in [0, train_end)
    val_end: int  # validation targets in [train_end, val_end); test targets in [val_end, T)

    def windows(self, lookback: int, split: str) -> Series:
        """All windows of a split -> X (n, C, lookback), y (n, targets, horizon)."""
        start, end = {"train": (0, self.train_end), "val": (self.train_end, self.val_end)}.get(
            split, (self.val_end, self.values.shape[1])
        )
        first = max(start, lookback)  # first target index
        starts = np.arange(first, end - self.horizon + 1)
        if len(starts) == 0:
            need = lookback + self.horizon if start == 0 else self.horizon
            raise DataError(
                f"data: {self.name}'s {split} part ({end - start} steps) holds no window of "
                f"lookback {lookback} + horizon {self.horizon} (needs {need} steps); "
                "lower data.lookback or data.horizon, or give a longer series"
            )
        X = np.stack([self.values[:, t - lookback : t] for t in starts]).astype(np.float32)
        y = np.stack([self.values[self.targets, t : t + self.horizon] for t in starts]).astype(np.float32)
        return Series(X, np.full(len(X), lookback, dtype=np.int64), y)

    def starts(self, lookback: int, split: str) -> np.ndarray:
        """Where the targets of each window of a split begin (its forecast origins)."""
        start, end = {"train": (0, self.train_end), "val": (self.train_end, self.val_end)}.get(
            split, (self.val_end, self.values.shape[1])
        )
        return np.arange(max(start, lookback), end - self.horizon + 1)

    def test_starts(self, lookback: int) -> np.ndarray:
        return self.starts(lookback, "test")

    def ets(self, lookback: int, split: str) -> np.ndarray:
        """AutoETS (aeon) forecasts of every window of a split, each fitted on the whole history
        before the window's origin: (n, targets, horizon)."""
        from aeon.forecasting.stats import AutoETS

        season = self.season if self.season > 1 else None
        out = []
        for t in self.starts(lookback, split):
            history = self.values[self.targets, :t].astype(np.float64)
            out.append([AutoETS(seasonal_period=season).iterative_forecast(h, self.horizon) for h in history])
        return np.asarray(out, dtype=np.float32)

    def seasonal_naive(self, lookback: int) -> np.ndarray:
        """The seasonal-naive forecast of every test window: the value one season (or more) earlier."""
        m, h = self.season, np.arange(self.horizon)
        lags = m * (h // m + 1)  # (horizon,)
        return np.stack([self.values[self.targets][:, t + h - lags] for t in self.test_starts(lookback)])

    def mase_scale(self) -> np.ndarray:
        """Per-target in-sample MAE of the seasonal-naive forecast on the training part (MASE's denominator)."""
        train = self.values[self.targets, : self.train_end]
        m = self.season if train.shape[1] > self.season else 1
        scale = np.abs(train[:, m:] - train[:, :-m]).mean(axis=1)
        return np.where(scale > 0, scale, 1.0)


def split_points(n_steps: int, val_fraction: float, test_fraction: float, horizon: int) -> tuple[int, int]:
    """Chronological split points; validation and test each hold at least one horizon."""
    n_test = max(horizon, round(test_fraction * n_steps))
    n_val = max(horizon, round(val_fraction * n_steps))
    return n_steps - n_test - n_val, n_steps - n_test


def forecast_metrics(pred: np.ndarray, truth: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, sMAPE (percent) and MASE of forecasts (n, targets, horizon)."""
    err = pred - truth
    denom = np.abs(pred) + np.abs(truth)
    smape = np.where(denom > 0, 2 * np.abs(err) / np.where(denom > 0, denom, 1), 0.0)
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "smape": float(100 * smape.mean()),
        "mase": float((np.abs(err) / scale[None, :, None]).mean()),
    }
