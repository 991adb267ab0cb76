"""Check the config, create or resume the study, run its trials (then hybridsearch.results sums up)."""

from __future__ import annotations

import logging
import math
import sys
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from tqdm.auto import tqdm

from hybridsearch.data import DataError, TaskData, prepare
from hybridsearch.objective import EXTRA_OBJECTIVES, Objective, primary
from hybridsearch.search_space import Space, SpaceError, parse_space, sample
from hybridsearch.storage import CachedPruner, StorageError, first_line, open_storage
from hybridsearch.tracking import Tracker, TrackingError

DEFAULT_METRIC = {
    "classification": ("val_acc", "maximize"),
    "regression": ("val_rmse", "minimize"),
    "forecasting": ("val_mae", "minimize"),
}


class ConfigError(ValueError):
    """A bad setting; one line naming the key."""


USER_ERRORS = (ConfigError, SpaceError, DataError, StorageError, TrackingError)


def quiet_libraries() -> None:
    """One progress bar for the study; keep warnings that matter, drop per-trial chatter."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)  # its warning about pickle: we choose pickle
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for message in (
        ".*does not have many workers.*",
        ".*number of training batches.*",
        ".*LeafSpec.*",
        ".*no `val_dataloader`.*",
    ):
        warnings.filterwarnings("ignore", message=message)


def _settings(cfg: DictConfig) -> tuple[str, str]:
    """Check the study settings; return (metric, direction)."""
    s = cfg.study
    if s.n_trials is not None and s.n_trials < 0:
        raise ConfigError(f"study.n_trials: must be 0 or more, got {s.n_trials}")
    if s.timeout is not None and s.timeout <= 0:
        raise ConfigError(f"study.timeout: must be a positive number of seconds or null, got {s.timeout}")
    if not s.name or "/" in s.name:
        raise ConfigError(f"study.name: must be a non-empty name without '/', got {s.name!r}")
    if cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs: must be 1 or more, got {cfg.trainer.max_epochs}")
    task = cfg.data.task
    if task not in DEFAULT_METRIC:
        raise ConfigError(f"data.task: unknown task {task!r}; valid: {', '.join(DEFAULT_METRIC)}")
    metric, direction = DEFAULT_METRIC[task]
    metric = s.metric or metric
    direction = s.direction or ("maximize" if metric.endswith(("acc", "r2")) else direction)
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"study.direction: must be maximize or minimize, got {direction!r}")
    for name in s.objectives:
        if name not in EXTRA_OBJECTIVES:
            raise ConfigError(f"study.objectives: unknown objective {name!r}; valid: {', '.join(EXTRA_OBJECTIVES)}")
    return metric, direction


def _instantiate(cfg: DictConfig, key: str, **kwargs: Any) -> Any:
    try:
        return instantiate(cfg[key], **kwargs)
    except Exception as err:
        raise ConfigError(f"{key}: cannot build {cfg[key].get('_target_')!r}: {first_line(err)}") from None


def _check_enqueue(cfg: DictConfig, space: Space) -> list[dict[str, Any]]:
    """The ``study.enqueue`` designs that this search space can hold.

    A design for a topology outside the search, or with a value outside a narrowed range, is
    skipped: it is a head start, not a requirement. One that lacks a parameter is an error.
    """
    trials = []
    specs = {p.name: p for p in space.params}
    for i, params in enumerate(OmegaConf.to_container(cfg.study.enqueue, resolve=True) or []):
        if params.get("topology") not in space.topologies:
            continue
        try:
            sampled = sample(optuna.trial.FixedTrial(params), space)
        except (ValueError, KeyError) as err:
            raise ConfigError(f"study.enqueue[{i}]: {first_line(err)}") from None
        if all(
            specs[name.rsplit("_", 1)[0] if name not in specs else name].contains(value)
            for name, value in sampled.items()
            if name != "topology"
        ):
            trials.append(params)
    return trials


def _check_data_space(space: Space, data: TaskData) -> None:
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


def _load_study(cfg: DictConfig, storage: RDBStorage, data: TaskData, metric: str, direction: str) -> optuna.Study:
    """Create the study, or resume it after checking that it searches the same task."""
    name = cfg.study.name
    identity = {"dataset": data.name, "task": data.task, "metric": metric}
    objectives = list(cfg.study.get("objectives") or [])
    directions = [direction] + ["minimize"] * len(objectives)
    exists = name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    if exists:
        for key, value in identity.items():
            stored = study.user_attrs.get(key)
            if stored is not None and stored != value:
                raise ConfigError(
                    f"study.name={name}: this study searched {key}={stored}, not {value}; "
                    "pick another study.name for a new search"
                )
        stored = [d.name.lower() for d in study.directions]
        if stored[0] != direction:
            raise ConfigError(f"study.direction: study {name!r} is {stored[0]}, not {direction}")
        if len(stored) != len(directions) or study.metric_names not in (None, [metric, *objectives]):
            raise ConfigError(
                f"study.objectives: study {name!r} optimises {study.metric_names or [metric]}, not "
                f"{[metric, *objectives]}; pick another study.name"
            )
    else:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.set_user_attr("data", data.describe())
        study.set_metric_names([metric, *objectives])
    return study


class Progress:
    """One live line for the study: trials done / pruned / failed, best value, elapsed time.

    Counts this invocation's trials, read from the storage, so it serves one in-process worker
    (as an optuna callback) and worker processes (polled) alike.
    """

    def __init__(self, total: int | None, metric: str, invocation: str) -> None:
        self.metric, self.invocation = metric, invocation
        self.counts: Counter[str] = Counter()
        self.bar = tqdm(total=total, desc="trials", unit="trial", dynamic_ncols=True, file=sys.stderr)

    def update(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        self.counts = Counter(t.state.name for t in trials if t.user_attrs.get("invocation") == self.invocation)
        best = best_trial(study)
        c = self.counts
        self.bar.n = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
        if self.bar.total is not None and self.bar.n > self.bar.total:
            self.bar.total = self.bar.n  # parallel workers finish the trials they had started
        self.bar.set_postfix_str(
            f"complete {c['COMPLETE']}, pruned {c['PRUNED']}, failed {c['FAIL']}, running {c['RUNNING']} | "
            f"best {self.metric} {'-' if best is None else f'{primary(best):.4f}'}"
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.update(study)

    def close(self) -> None:
        self.bar.close()


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The trial whose model is ``best.ckpt``: the best validation metric; among equal scores
    (accuracy on a small validation set ties often), the smallest further objectives (so the trial
    is on the Pareto front of a multi-objective study), then the lowest validation loss."""
    return next(iter(ranked(study)), None)


def ranked(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Complete trials, best first, by the rule of :func:`best_trial`."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
    return sorted(
        done,
        key=lambda t: (
            *(-s * v for s, v in zip(signs, t.values, strict=True)),
            t.user_attrs.get("val_loss", math.inf),
            t.number,
        ),
    )


def finished(trials: list[optuna.trial.FrozenTrial], invocation: str) -> int:
    """Trials of one invocation that count towards its ``study.n_trials``: complete, pruned, or
    failed by their own error. A trial failed because its worker died is retried, not counted.
    """
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return sum(
        t.user_attrs.get("invocation") == invocation
        and (t.state in done or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs))
        for t in trials
    )


class StopAt:
    """Stops a worker once its invocation has finished ``n_trials``, whichever of its workers ran them.

    Commands run on other machines against the same study add their own ``n_trials`` each.
    """

    def __init__(self, n_trials: int, invocation: str) -> None:
        self.n_trials, self.invocation = n_trials, invocation

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if finished(study.get_trials(deepcopy=False), self.invocation) >= self.n_trials:
            study.stop()


@dataclass
class Session:
    """Everything one process needs to run trials of a study, loaded and checked once."""

    cfg: DictConfig
    space: Space
    data: TaskData
    metric: str
    direction: str
    study: optuna.Study
    tracker: Tracker
    enqueue: list[dict[str, Any]]
    cv_folds: int = 1  # data.cv_folds, "auto" resolved for this data
    invocation: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # tags this command's trials

    @property
    def study_dir(self) -> Path:
        return Path(self.cfg.study.root) / self.cfg.study.name

    def objective(self) -> Objective:
        return Objective(
            data=self.data,
            space=self.space,
            trainer_cfg=OmegaConf.to_container(self.cfg.trainer, resolve=True),
            callbacks_cfg=OmegaConf.to_container(self.cfg.callbacks, resolve=True),
            metric=self.metric,
            direction=self.direction,
            study_dir=self.study_dir,
            tracker=self.tracker,
            seed=self.cfg.study.seed,
            invocation=self.invocation,
            cv_folds=self.cv_folds,
            keep=max(1, self.cfg.study.ensemble),
            objectives=tuple(self.cfg.study.objectives),
        )

    def optimize(self, *, n_trials: int | None, deadline: float | None, worker: int = 0, callbacks=()) -> None:
        """Run trials in this process until this invocation has ``n_trials`` finished trials or time is up."""
        cfg = self.cfg
        n_before = len(self.study.trials)
        seed = cfg.study.seed
        seed_kwargs = {"seed": seed + n_before + 7919 * worker} if seed is not None and "seed" in cfg.sampler else {}
        self.study.sampler = _instantiate(cfg, "sampler", **seed_kwargs)  # a resumed study continues, not repeats
        timeout = None if deadline is None else max(0.0, deadline - time.time())
        stop = [StopAt(n_trials, self.invocation)] if n_trials is not None else []
        if n_trials is not None and finished(self.study.trials, self.invocation) >= n_trials:
            return
        self.study.optimize(
            self.objective(), timeout=timeout, callbacks=[*stop, *callbacks], catch=(Exception,), gc_after_trial=False
        )


def open_session(cfg: DictConfig, *, create: bool = True) -> Session:
    """Check everything a user can get wrong, then load the data and open storage and tracking.

    Settings, search space, sampler, pruner and data are checked before the storage is touched.
    ``create=False`` (a worker process) expects the study to exist.
    """
    quiet_libraries()
    metric, direction = _settings(cfg)
    space = parse_space(OmegaConf.to_container(cfg.space, resolve=True))
    enqueue = _check_enqueue(cfg, space)
    pruner = _instantiate(cfg, "pruner")
    _instantiate(cfg, "sampler")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    cv_setting = data_cfg.pop("cv_folds")
    data = prepare(**data_cfg, seed=cfg.study.seed or 0)
    cv_folds = resolve_cv_folds(cv_setting, data)
    _check_data_space(space, data)
    storage = open_storage(cfg.study.storage, cfg.study.heartbeat_interval, cfg.study.grace_period)
    tracker = Tracker(cfg.tracking.uri, cfg.study.name, cfg.tracking.artifact_location)
    if create:
        study = _load_study(cfg, storage, data, metric, direction)
    else:
        study = optuna.load_study(study_name=cfg.study.name, storage=storage)
    study.pruner = CachedPruner(pruner)
    return Session(cfg, space, data, metric, direction, study, tracker, enqueue, cv_folds)


AUTO_CV = (5, 500)  # data.cv_folds=auto: 5 folds below 500 labelled training series


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


def run_study(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) the study that ``cfg`` describes and return its summary.

    ``study.n_trials`` more trials are added, by one worker in this process or by worker
    processes (one per GPU, or CPU workers sharing the cores) that pull trials from the study.
    """
    from hybridsearch import workers
    from hybridsearch.results import attach_report, dashboard_note, summarize

    session = open_session(cfg)
    devices = workers.plan(cfg.study.n_workers, cfg.study.gpus, cfg.study.workers_per_gpu)
    study, data = session.study, session.data
    n_before = len(study.trials)
    if n_before == 0:
        for params in session.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    session.study_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if cfg.study.timeout is None else time.time() + cfg.study.timeout
    session.tracker.start_parent(
        f"{cfg.study.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        params={
            "data": data.name,
            "topologies": ",".join(session.space.topologies),
            "n_trials": cfg.study.n_trials,
            "n_workers": len(devices),
            "cv_folds": session.cv_folds,
        },
        tags={"optuna_storage": cfg.study.storage, "optuna_study": cfg.study.name, "data": data.describe()},
    )
    where = (
        ""
        if devices == [None]
        else f"; {len(devices)} workers on " + ", ".join("cpu" if d is None else f"gpu {d}" for d in devices)
    )
    scoring = f"; each trial scored by {session.cv_folds}-fold cross-validation" if session.cv_folds > 1 else ""
    print(
        f"study {cfg.study.name!r}: {data.describe()}{scoring}; "
        f"{n_before} earlier trial(s) in {cfg.study.storage}{where}"
    )
    OmegaConf.save(cfg, session.study_dir / "config.yaml", resolve=True)  # what the report re-reads
    dashboard_note(session, len(devices))
    progress = Progress(cfg.study.n_trials, session.metric, session.invocation)
    status = "FAILED"
    try:
        try:
            if devices == [None]:
                session.optimize(n_trials=cfg.study.n_trials, deadline=deadline, callbacks=[progress])
            else:
                workers.launch(session, devices, deadline=deadline, progress=progress)
        finally:
            progress.close()
        summary = summarize(session)
        if cfg.study.report and summary["best_trial"] is not None:
            summary["report"] = str(attach_report(session))
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        session.tracker.end_parent(status)
    return summary


def main(cfg: DictConfig) -> None:
    """The command line's task: run, print the report; bad input is one line on stderr and exit code 2."""
    try:
        summary = run_study(cfg)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume the study", file=sys.stderr)
        raise SystemExit(130) from None
    from hybridsearch.results import printout

    print(printout(summary))
