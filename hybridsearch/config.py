"""Typed schema of the Hydra config, registered in the ConfigStore.

A misspelt key or a wrongly typed value (``study.n_trials=abc``) then fails
while Hydra composes the config, before anything runs. The YAML in ``conf/``
holds the values; this file holds their types and meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclass
class StudyConfig:
    name: str = "timeseries"  # Optuna study, MLflow experiment and folder studies/<name>/
    n_trials: int | None = 30  # finished trials to add in this invocation; null: until study.timeout
    timeout: float | None = None  # seconds for the whole command: the search stops in time for the final model
    # seconds one trial may train, all its folds together (as auto-sklearn's per_run_time_limit):
    # its first fold stops at this over the folds, and the others train as many epochs. auto: a
    # tenth of study.timeout (no limit without one); null: no limit
    trial_time_limit: Any = "auto"
    # after each fold but the last, prune a trial whose folds so far score worse than the best
    # trial's worst fold (forgiving early stopping of cross-validation, Bergman et al. 2024)
    stop_folds: bool = True
    seed: int | None = 0  # sampler seed; also seeds each trial's weights and batches
    root: str = "studies"  # where embedded storage, MLflow data and study folders live
    storage: str = "sqlite:///${study.root}/optuna.db"  # any Optuna storage URL (sqlite, postgresql)
    metric: str | None = None  # validation metric to optimise; default by task (val_acc, val_rmse)
    direction: str | None = None  # maximize | minimize; default by metric
    enqueue: list[Any] = field(default_factory=list)  # parameter sets to try first in a new study
    objectives: list[str] = field(default_factory=list)  # minimised after the metric: n_params, latency_ms
    n_workers: int | None = None  # worker processes; null: workers_per_gpu on each GPU, else one per core (up to 8)
    gpus: list[int] | None = None  # GPU ids to use; null: every visible GPU
    workers_per_gpu: Any = "auto"  # auto: 8, or fewer where the cores would give each worker less than 2
    # final model: greedy selection on the out-of-fold predictions of the top k trials; <2 (or
    # multi-objective): the best trial alone
    ensemble: int = 10
    # how each selected trial becomes a predictor: bag (its cross-validation fold models, trained
    # again to its chosen epoch: the very models its out-of-fold score measured) or refit (one
    # model on training + validation data, which no score measured). One validation split: refit
    final_fit: str = "bag"
    baseline: bool = True  # score MiniRocket on the same folds and on test, beside the search
    topology_share: float = 0.15  # each searched topology's least share of the trials, and of the complete ones
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
    # unequal lengths: each series' log length is one more input channel (the models mask padding, so
    # this is how they see it); false: where test lengths mean nothing, e.g. cut by another rule
    length_feature: bool = True
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
    # -1: off. Otherwise each trial's epochs are capped where this many optimiser steps are reached
    # (the training split's batches per epoch x epochs), so small data trains for more epochs.
    max_steps: int = -1
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
class ParamSpec:
    """One searched parameter of ``space.model``, ``space.training`` or ``space.data``."""

    type: str = MISSING  # categorical | int | float
    choices: list[Any] | None = None  # categorical
    low: float | None = None  # int, float
    high: float | None = None
    log: bool = False  # sample on a log scale
    step: float | None = None
    topologies: list[str] | None = None  # sampled only for these (default: every topology that takes it)
    when: dict[str, Any] | None = None  # sampled only when an earlier parameter took one of these values
    per_layer: str | None = None  # one value per layer, counted by this int parameter


@dataclass
class SpaceConfig:
    """The search space (``conf/space/default.yaml``), checked in depth by ``hybridsearch.search_space``."""

    topology: list[str] = field(default_factory=list)
    model: dict[str, ParamSpec] = field(default_factory=dict)
    # Untyped here, so that an option can be added from the command line
    # (``+space.training.augment={type: categorical, choices: [none, warp]}``): OmegaConf cannot turn
    # a new mapping into a ParamSpec. ``hybridsearch.search_space`` checks them before any trial runs.
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    study: StudyConfig = field(default_factory=StudyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    callbacks: dict[str, Any] = field(default_factory=dict)  # Lightning callbacks per trial, by _target_
    space: SpaceConfig = field(default_factory=SpaceConfig)
    sampler: Any = None  # an optuna sampler, by _target_
    pruner: Any = None  # an optuna pruner, by _target_


def register_configs() -> None:
    ConfigStore.instance().store(name="schema", node=Config)


def data_config(node: Any) -> DataConfig:
    """The ``data`` node of a composed or saved config as a :class:`DataConfig`."""
    return DataConfig(**OmegaConf.to_container(node, resolve=True))
