"""The reference every study is measured against, scored on the search's own folds (or windows) and on
test, so the printout can say whether the search beat a strong non-deep baseline: MiniRocket (aeon)
for classification and regression, AutoETS (aeon) for forecasting."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hybridsearch.data import TaskData
from hybridsearch.data.forecasting import forecast_metrics

MINIROCKET = "minirocket"
ETS = "ets"


def _minirocket(data: TaskData, seed: int) -> Any:
    if data.task.classifies:
        from aeon.classification.convolution_based import MiniRocketClassifier

        return MiniRocketClassifier(random_state=seed, n_jobs=1)
    from aeon.regression.convolution_based import MiniRocketRegressor

    return MiniRocketRegressor(random_state=seed, n_jobs=1)


def minirocket(data: TaskData, cv_folds: int, fold_seed: int, seed: int = 0) -> dict[str, Any] | None:
    """MiniRocket's scores: ``cv`` out of fold, on the same validation pool and folds as every
    trial; ``test`` after fitting on training plus validation data. None for forecasting (see :func:`ets`)."""
    if data.task.windows:
        return None
    start = time.perf_counter()

    def labels(predicted: np.ndarray) -> np.ndarray:  # class indices -> the original labels
        if not data.task.classifies:
            return np.asarray(predicted, dtype=np.float32)
        return np.asarray(data.classes, dtype=object)[np.asarray(predicted, dtype=int)].astype(type(data.classes[0]))

    pool, indices, splits = data.validation_pool(cv_folds, fold_seed)
    predicted = [None] * len(pool)
    for index, split in zip(indices, splits, strict=True):
        fold_pred = labels(_minirocket(data, seed).fit(split.train.X, split.train.y).predict(split.val.X))
        for i, p in zip(index, fold_pred, strict=True):
            predicted[i] = p
    merged = data.merged().train
    test_pred = labels(_minirocket(data, seed).fit(merged.X, merged.y).predict(data.test.X))
    return {
        "cv": data.metrics(pool.y, np.asarray(predicted)),
        "test": data.test_metrics(test_pred),
        "seconds": round(time.perf_counter() - start, 1),
    }


def ets(data: TaskData) -> dict[str, Any] | None:
    """Forecasting's reference: AutoETS on the same windows, ``cv`` on the validation windows
    (the search's validation split) and ``test`` on the test windows."""
    if data.forecast is None:
        return None
    start = time.perf_counter()
    f, lookback = data.forecast, data.seq_len
    scale = f.mase_scale()
    return {
        "cv": forecast_metrics(f.ets(lookback, "val"), data.val.y, scale),
        "test": forecast_metrics(f.ets(lookback, "test"), data.test.y, scale),
        "seconds": round(time.perf_counter() - start, 1),
    }
