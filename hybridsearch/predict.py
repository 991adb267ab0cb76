"""Predict with a study's final model, from the same file formats as training.

    python -m hybridsearch.predict studies/<name> input.(npz|csv|parquet|ts) [-o predictions.csv]

Classification and regression read labelled-series files as training did (the label column may
be absent) and write one row per series: ``prediction``, and for classification one probability
column per class. Forecasting reads a series (CSV / Parquet with the time column, or .npz) and
forecasts the ``horizon`` steps after its end from its last ``lookback`` steps. The column names
and layout come from the study's own data config; bad input ends with one line and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from hybridsearch.data.arrays import Series, handle_missing
from hybridsearch.data.files import load_panel, load_series
from hybridsearch.errors import DataError, command_line
from hybridsearch.layout import StudyLayout
from hybridsearch.tasks import TASKS

if TYPE_CHECKING:
    from hybridsearch.module import HybridModule


def _panel(path: Path, data_cfg: dict) -> Series:
    """Series to predict, read as training read them; the label column may be absent."""
    return load_panel(
        path,
        layout=data_cfg.get("layout", "wide"),
        label=data_cfg.get("label", "label"),
        id_column=data_cfg.get("id", "id"),
        time=data_cfg.get("time"),
        columns=data_cfg.get("columns"),
        labelled=False,
    )


def predict_file(study_dir: str | Path, path: str | Path) -> pd.DataFrame:
    """Predictions for the series in ``path`` with the final model of the study in ``study_dir``."""
    layout, path = StudyLayout.at(study_dir), Path(path)
    if not layout.config.exists():
        raise DataError(f"{layout.folder}: not a study folder (no config.yaml)")
    data_cfg = OmegaConf.to_container(OmegaConf.load(layout.config).data, resolve=True)
    if TASKS[data_cfg.get("task", "classification")].windows:  # a forecast of one series
        values = load_series(path, time=data_cfg.get("time"), columns=data_cfg.get("columns"))
        return _forecast(_load_model(layout), path, values, data_cfg)
    series = handle_missing(_panel(path, data_cfg), data_cfg.get("missing", "error"), source=str(path))
    model = _load_model(layout)
    channels = model.hparams.in_channels
    if series.channels != channels:
        raise DataError(f"{path}: series have {series.channels} channels but the model reads {channels}")
    seq_len = model.hparams.seq_len
    X = series.X
    if X.shape[2] < seq_len:  # shorter than training: pad, the lengths keep the truth
        X = np.pad(X, ((0, 0), (0, 0), (0, seq_len - X.shape[2])))
    try:
        predicted = model.predict(X, series.lengths)
    except ValueError as err:  # e.g. series longer than a model that reads a fixed length
        raise DataError(f"{path}: {err}") from None
    frame = pd.DataFrame({"prediction": list(predicted)})
    if model.task.classifies:
        with torch.no_grad():
            probabilities = model(torch.from_numpy(X), torch.from_numpy(series.lengths)).softmax(-1).numpy()
        for i, label in enumerate(model.classes):
            frame[f"p_{label}"] = probabilities[:, i]
    return frame


def _load_model(layout: StudyLayout) -> HybridModule:
    """The study's final model; Lightning loads here, after the input was read (a bad file fails in seconds)."""
    from hybridsearch.module import load_best

    return load_best(layout.folder)


def _forecast(model: HybridModule, path: Path, values: np.ndarray, data_cfg: dict) -> pd.DataFrame:
    lookback, channels = model.hparams.seq_len, model.hparams.in_channels
    if values.shape[0] != channels:
        raise DataError(f"{path}: {values.shape[0]} channels but the model reads {channels}")
    if values.shape[1] < lookback:
        raise DataError(f"{path}: {values.shape[1]} steps, fewer than the model's lookback of {lookback}")
    if not np.isfinite(values[:, -lookback:]).all():
        raise DataError(f"{path}: NaN or infinite values in the last {lookback} steps")
    forecast = model.predict(values[None, :, -lookback:].astype(np.float32))[0]  # (targets, horizon)
    targets = model.targets.tolist()
    names = data_cfg.get("columns") or [str(i) for i in range(channels)]
    return pd.DataFrame(
        {"step": np.arange(1, forecast.shape[1] + 1)} | {str(names[t]): forecast[i] for i, t in enumerate(targets)}
    )


@command_line
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hybridsearch.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study_dir", help="a study folder, studies/<name>")
    parser.add_argument("input", help="series to predict: .npz, .csv, .parquet or .ts")
    parser.add_argument("-o", "--output", default="predictions.csv", help="CSV to write (default predictions.csv)")
    args = parser.parse_args(argv)
    frame = predict_file(args.study_dir, args.input)
    frame.to_csv(args.output, index=False)
    print(f"{len(frame)} prediction row(s) -> {args.output}")


if __name__ == "__main__":
    main()
