"""Typed schema of the Hydra config, registered in the ConfigStore.

A misspelt key or a wrongly typed value (``study.n_trials=abc``) then fails
while Hydra composes the config, before anything runs. The YAML in ``conf/``
holds the values; this file holds their types and meaning.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException


@dataclass
class StudyConfig:
    name: str = "timeseries"  # Optuna study, MLflow experiment and folder studies/<name>/
    n_trials: int | None = 30  # finished trials to add in this invocation; null: until study.timeout
    timeout: float | None = None  # seconds; stop starting new trials after this
    seed: int | None = 0  # sampler seed; also seeds each trial's weights and batches
    root: str = "studies"  # where embedded storage, MLflow data and study folders live
    storage: str = "sqlite:///${study.root}/optuna.db"  # any Optuna storage URL (sqlite, postgresql)
    metric: str | None = None  # validation metric to optimise; default by task (val_acc, val_rmse)
    direction: str | None = None  # maximize | minimize; default by metric
    enqueue: list[Any] = field(default_factory=list)  # parameter sets to try first in a new study
    objectives: list[str] = field(default_factory=list)  # minimised after the metric: n_params, latency_ms
    n_workers: int | None = None  # worker processes; null: one per GPU (x workers_per_gpu), else 1
    gpus: list[int] | None = None  # GPU ids to use; null: every visible GPU
    workers_per_gpu: int = 1
    refit: bool = True  # after the search, retrain the best on train + validation data: the best single model
    ensemble: int = 10  # final model: the top k trials averaged; <2 (or multi-objective): the best single model
    report: bool = True  # write studies/<name>/report/ (HTML, PNG) and attach it to MLflow and the dashboard
    register: bool = True  # register the final model in MLflow's Model Registry under the study's name
    heartbeat_interval: int = 20  # seconds between a running trial's heartbeats
    grace_period: int = 60  # a trial silent this long is failed and queued again


@dataclass
class DataConfig:
    """What to learn from; see the README's "Your own data" for the file layouts."""

    name: str | None = "GunPoint"  # a dataset aeon bundles (ignored when path is set)
    task: str = "classification"  # classification | regression | forecasting
    path: str | None = None  # your file: .npz, .csv, .parquet or .ts
    test_path: str | None = None  # a held-out test file; otherwise a seeded split of path
    layout: str = "wide"  # CSV / Parquet: wide (a row per series) | long (a row per series and step)
    label: str = "label"  # column of the class label or regression target
    id: str = "id"  # long layout: column naming the series
    time: str | None = "time"  # long layout and forecasting: column ordering the steps
    columns: list[str] | None = None  # value columns (default: all others)
    targets: list[str] | None = None  # forecasting: channels to forecast (default: all)
    missing: str = "error"  # NaN / inf values: error | drop | fill
    val_fraction: float = 0.2  # of the training split; stratified for classification, last part for forecasting
    test_fraction: float = 0.2  # held out when no test split is given
    # k > 1: score each trial by k-fold cross-validation of training + validation data; auto: 5 folds
    # below 500 labelled series (else one validation split), 1 for forecasting
    cv_folds: Any = "auto"
    lookback: int = 24  # forecasting: steps each window reads (can be searched: space.data.lookback)
    horizon: int = 12  # forecasting: steps to forecast
    season: int | None = None  # forecasting: seasonal period of the naive baseline and MASE


@dataclass
class TrackingConfig:
    uri: str = "sqlite:///${study.root}/mlflow.db"  # MLflow tracking URI (sqlite or http://server)
    artifact_location: str | None = "${study.root}/mlartifacts"  # for new experiments; null lets a server choose


@dataclass
class TrainerConfig:
    """Keyword arguments of ``lightning.pytorch.Trainer``, for each trial."""

    _target_: str = "lightning.pytorch.Trainer"
    max_epochs: int = 100
    min_epochs: int | None = None
    accelerator: str = "auto"
    devices: Any = 1
    precision: Any = "32-true"
    gradient_clip_val: float | None = None
    deterministic: bool = False
    enable_progress_bar: bool = False  # one study-wide progress bar instead
    enable_model_summary: bool = False
    log_every_n_steps: int = 50


@dataclass
class Config:
    study: StudyConfig = field(default_factory=StudyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    callbacks: dict[str, Any] = field(default_factory=dict)  # Lightning callbacks per trial, by _target_
    space: Any = None  # the search space, validated by hybridsearch.search_space
    sampler: Any = None  # an optuna sampler, by _target_
    pruner: Any = None  # an optuna pruner, by _target_


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)


_DETAIL = ("full_key:", "reference_type=", "object_type=", "provider=")


def _one_line(err: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages, without their internals, on one line."""
    parts: list[str] = []
    for e in (err, err.__cause__):
        for line in str(e or "").splitlines():
            line = line.strip()
            if line.startswith("Config search path"):
                break
            if line and not line.startswith(_DETAIL) and line not in parts:
                parts.append(line)
    return " ".join(parts) or type(err).__name__


def one_line_errors(main: Callable[[], None]) -> Callable[[], None]:
    """Turn a config error raised while Hydra composes (a misspelt key, a wrong type, an unknown
    config group option) into one line on stderr and exit code 2. ``HYDRA_FULL_ERROR=1`` keeps
    Hydra's own report with its stack trace."""

    @functools.wraps(main)
    def wrapper() -> None:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return main()
        os.environ["HYDRA_FULL_ERROR"] = "1"  # makes Hydra raise instead of printing a report
        try:
            return main()
        except (HydraException, OmegaConfBaseException) as err:
            print(f"error: {_one_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
