"""Everything a user can get wrong in a study's settings, search space and data, checked before
Lightning loads: ``python -m hybridsearch`` ends bad input with one line in seconds, not after
the ten that importing the training stack takes on a small machine. The study's storage and the
MLflow tracking store are opened last, once everything else has passed: no storage is touched
before then, and a URL that cannot be used ends the command as quickly as a typo.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hybridsearch.config import data_config
from hybridsearch.data import TaskData, prepare
from hybridsearch.errors import ConfigError, DataError, SpaceError, first_line
from hybridsearch.progress import quiet_libraries
from hybridsearch.search_space import Space, parse_space, sample
from hybridsearch.storage import open_storage
from hybridsearch.tasks import TASKS

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

    from hybridsearch.tracking import Tracker

EXTRA_OBJECTIVES = ("n_params", "latency_ms")  # optional objectives after the metric, all minimised
TRIAL_SHARE = 0.1  # study.trial_time_limit=auto: a tenth of study.timeout (auto-sklearn's default share)
AUTO_CV = (5, 500)  # data.cv_folds=auto: 5 folds below 500 labelled training series


@dataclass(frozen=True)
class Checked:
    """A config that passed :func:`check`, with what checking it built."""

    metric: str
    direction: str
    space: Space
    enqueue: list[dict[str, Any]]  # the study.enqueue designs this space can hold
    pruner: optuna.pruners.BasePruner
    data: TaskData
    cv_folds: int  # data.cv_folds, "auto" resolved for this data
    storage: RDBStorage  # study.storage, opened
    tracker: Tracker  # tracking.uri, opened, with the study's experiment


def check(cfg: DictConfig) -> Checked:
    """Check the settings, search space, sampler, pruner and data of ``cfg`` and load the data;
    then open the storage and the tracking store."""
    metric, direction = settings(cfg)
    space = parse_space(OmegaConf.to_container(cfg.space, resolve=True))
    enqueue = check_enqueue(cfg, space)
    pruner = build(cfg, "pruner")
    build(cfg, "sampler")
    data_cfg = data_config(cfg.data)
    data = prepare(data_cfg, seed=cfg.study.seed or 0)
    cv_folds = resolve_cv_folds(data_cfg.cv_folds, data)
    check_data_space(space, data)
    storage = open_storage(cfg.study.storage, cfg.study.heartbeat_interval, cfg.study.grace_period)
    from hybridsearch.tracking import Tracker  # MLflow loads once the settings have passed

    with quiet_libraries():  # again: importing MLflow set its loggers to INFO ("Creating initial ... tables")
        tracker = Tracker(cfg.tracking.uri, cfg.study.name, cfg.tracking.artifact_location)
    return Checked(metric, direction, space, enqueue, pruner, data, cv_folds, storage, tracker)


def settings(cfg: DictConfig) -> tuple[str, str]:
    """Check the study settings; return (metric, direction)."""
    s = cfg.study
    if s.n_trials is not None and s.n_trials < 0:
        raise ConfigError(f"study.n_trials: must be 0 or more, got {s.n_trials}")
    if s.timeout is not None and s.timeout <= 0:
        raise ConfigError(f"study.timeout: must be a positive number of seconds or null, got {s.timeout}")
    if not s.name or "/" in s.name:
        raise ConfigError(f"study.name: must be a non-empty name without '/', got {s.name!r}")
    trial_time_limit(s.trial_time_limit, s.timeout)  # one line naming the key if it is not valid
    if s.final_fit not in ("bag", "refit"):
        raise ConfigError(f"study.final_fit: must be 'bag' or 'refit', got {s.final_fit!r}")
    if cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs: must be 1 or more, got {cfg.trainer.max_epochs}")
    task = TASKS.get(cfg.data.task)
    if task is None:
        raise ConfigError(f"data.task: unknown task {cfg.data.task!r}; valid: {', '.join(TASKS)}")
    metric, direction = task.metric, task.direction
    metric = s.metric or metric
    direction = s.direction or ("maximize" if metric.endswith(("acc", "r2")) else direction)
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"study.direction: must be maximize or minimize, got {direction!r}")
    for name in s.objectives:
        if name not in EXTRA_OBJECTIVES:
            raise ConfigError(f"study.objectives: unknown objective {name!r}; valid: {', '.join(EXTRA_OBJECTIVES)}")
    return metric, direction


def build(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    """The sampler or pruner that ``cfg[key]`` names (Optuna's notes on experimental arguments,
    such as TPE's ``group``, left out), or a one-line error naming ``key``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return instantiate(cfg[key], **kwargs)
    except Exception as err:
        raise ConfigError(f"{key}: cannot build {cfg[key].get('_target_')!r}: {first_line(err)}") from None


def check_enqueue(cfg: DictConfig, space: Space) -> list[dict[str, Any]]:
    """The ``study.enqueue`` designs that this search space can hold.

    A design for a topology outside the search, or with a value outside a narrowed range, is
    skipped: it is a head start, not a requirement. One that lacks a model parameter is an error;
    a training option it lacks (one added to the space, such as ``augment``) is left to the sampler,
    as Optuna does with the parameters an enqueued trial leaves out.
    """
    trials = []
    specs = {p.name: p for p in space.params}
    for i, params in enumerate(OmegaConf.to_container(cfg.study.enqueue, resolve=True) or []):
        if params.get("topology") not in space.topologies:
            continue
        left_out = {p.name: p.choices[0] if p.type == "categorical" else p.low for p in space.training}
        try:
            with warnings.catch_warnings():  # "out of the range": checked below, and skipped, not an error
                warnings.simplefilter("ignore", UserWarning)
                sampled = sample(optuna.trial.FixedTrial({**left_out, **params}), space)
        except (ValueError, KeyError) as err:
            raise ConfigError(f"study.enqueue[{i}]: {first_line(err)}") from None
        if all(
            specs[name.rsplit("_", 1)[0] if name not in specs else name].contains(value)
            for name, value in sampled.items()
            if name != "topology"
        ):
            trials.append(params)
    return trials


def check_data_space(space: Space, data: TaskData) -> None:
    """A searched lookback needs a forecasting task, and every value of it must fit the series."""
    for p in space.data:
        if data.forecast is None:
            raise SpaceError(f"space.data.{p.name}: only forecasting windows its data; remove it for {data.task}")
        values = p.choices if p.type == "categorical" else (p.low, p.high)
        for value in values:
            try:
                data.with_lookback(int(value))
            except DataError as err:
                raise SpaceError(f"space.data.{p.name}={value}: {err}") from None


def resolve_cv_folds(setting: Any, data: TaskData) -> int:
    """``data.cv_folds``: a number of folds, or ``auto``: 5-fold cross-validation when training plus
    validation data hold fewer than 500 series (a 20% split would then validate on fewer than 100,
    a score too noisy to rank trials by), else the one validation split. Forecasting validates on
    the latest part of the series, so always on one split."""
    if setting == "auto":
        k, below = AUTO_CV
        return k if data.forecast is None and len(data.train) + len(data.val) < below else 1
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"data.cv_folds: must be 'auto' or a whole number of 1 or more; got {setting!r}")
    if setting > 1 and data.forecast is not None:
        raise ConfigError(f"data.cv_folds: forecasting validates on its latest steps; use 1, not {setting}")
    return setting


def trial_time_limit(setting: Any, timeout: float | None) -> float | None:
    """``study.trial_time_limit``: seconds, or ``auto`` (a tenth of ``timeout``; no limit without
    one), or None (no limit). A study of 10 minutes then spends at most a minute on one trial, so
    that a large dataset's first trials cannot take the whole budget before the others are heard."""
    if setting is None:
        return None
    if setting == "auto":
        return None if timeout is None else TRIAL_SHARE * float(timeout)
    if isinstance(setting, bool) or not isinstance(setting, int | float) or setting <= 0:
        raise ConfigError(
            f"study.trial_time_limit: must be 'auto', null or a positive number of seconds; got {setting!r}"
        )
    return float(setting)
