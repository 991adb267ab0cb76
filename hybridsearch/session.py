"""One process's view of a study, checked and loaded once: settings, search space, data, storage,
tracking, and the trial loop that stops at this command's ``study.n_trials``.

:func:`open_session` checks everything a user can get wrong before any storage is touched, so
bad input ends with one line and no study data written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from hybridsearch import interrupt
from hybridsearch.budget import SearchClock, TopologyShare
from hybridsearch.checks import Checked, build, check, trial_time_limit
from hybridsearch.data import TaskData
from hybridsearch.errors import ConfigError
from hybridsearch.layout import StudyLayout
from hybridsearch.objective import Objective
from hybridsearch.search_space import Space
from hybridsearch.storage import CachedPruner
from hybridsearch.tracking import Tracker

# What a resumed study must share with the one stored, and how a refusal names it. Trials scored on
# other data would otherwise enter the ensemble (their out-of-fold rows could be today's test rows).
IDENTITY = {
    "dataset": "dataset",
    "task": "data.task",
    "metric": "metric",
    "data_hash": "data contents (hash of the splits)",
    "split_seed": "split and fold seed (study.seed)",
    "cv_folds": "data.cv_folds",
}


def _load_study(
    cfg: DictConfig, storage: RDBStorage, data: TaskData, metric: str, direction: str, cv_folds: int = 1
) -> optuna.Study:
    """Create the study, or resume it after checking that it searches the same task on the same data."""
    name = cfg.study.name
    identity = {
        "dataset": data.name,
        "task": data.task.name,
        "metric": metric,
        "data_hash": data.fingerprint(),
        "split_seed": cfg.study.get("seed") or 0,
        "cv_folds": cv_folds,
    }
    objectives = list(cfg.study.get("objectives") or [])
    directions = [direction] + ["minimize"] * len(objectives)
    exists = name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    if exists:
        for key, value in identity.items():
            stored = study.user_attrs.get(key)
            if stored is not None and stored != value:
                raise ConfigError(
                    f"study.name={name}: this study searched other data: its {IDENTITY[key]} is {stored}, "
                    f"not {value}; pick another study.name for a new search"
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


def claimed(trials: list[optuna.trial.FrozenTrial], invocation: str) -> int:
    """Trials of one invocation that are :func:`finished` or running: a worker starts another only
    while these are fewer than ``study.n_trials``, so another worker's running trial is not run twice."""
    running = sum(t.user_attrs.get("invocation") == invocation and t.state == TrialState.RUNNING for t in trials)
    return finished(trials, invocation) + running


class StopAt:
    """Stops a worker once its invocation has ``n_trials`` finished or running (:func:`claimed`),
    whichever of its workers ran them.

    Commands run on other machines against the same study add their own ``n_trials`` each.
    """

    def __init__(self, n_trials: int, invocation: str) -> None:
        self.n_trials, self.invocation = n_trials, invocation

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if claimed(study.get_trials(deepcopy=False), self.invocation) >= self.n_trials:
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
    baselines: dict[str, Any] | None = None  # the reference's scores, measured before the search
    deadline: float | None = None  # when the command should end (time.time()); None: no limit

    @property
    def fold_seed(self) -> int:
        """Seeds the cross-validation folds, once for the study: every trial is scored on the same folds."""
        return self.cfg.study.seed or 0

    @property
    def layout(self) -> StudyLayout:
        return StudyLayout.of(self.cfg.study.root, self.cfg.study.name)

    def objective(self) -> Objective:
        return Objective(
            data=self.data,
            space=self.space,
            trainer_cfg=OmegaConf.to_container(self.cfg.trainer, resolve=True),
            callbacks_cfg=OmegaConf.to_container(self.cfg.callbacks, resolve=True),
            metric=self.metric,
            direction=self.direction,
            layout=self.layout,
            tracker=self.tracker,
            seed=self.cfg.study.seed,
            fold_seed=self.fold_seed,
            invocation=self.invocation,
            cv_folds=self.cv_folds,
            keep=max(1, self.cfg.study.ensemble),
            objectives=tuple(self.cfg.study.objectives),
            stop_folds=self.cfg.study.stop_folds,
        )

    def optimize(self, *, n_trials: int | None, deadline: float | None, worker: int = 0, callbacks=()) -> None:
        """Run trials in this process until this invocation has ``n_trials`` finished trials or time is up."""
        cfg = self.cfg
        n_before = len(self.study.trials)
        seed = cfg.study.seed
        seed_kwargs = {"seed": seed + n_before + 7919 * worker} if seed is not None and "seed" in cfg.sampler else {}
        self.study.sampler = build(cfg, "sampler", **seed_kwargs)  # a resumed study continues, not repeats
        clock = SearchClock(deadline, cfg.study.ensemble, self.cv_folds, bag=cfg.study.final_fit == "bag")
        clock.update(self.study)
        timeout = None if deadline is None else max(0.0, clock.left())
        stop = [StopAt(n_trials, self.invocation)] if n_trials is not None else []
        if n_trials is not None and claimed(self.study.trials, self.invocation) >= n_trials:
            return
        if timeout == 0.0:
            return

        def more(study: optuna.Study) -> bool:  # whether this command starts another trial
            done = n_trials is not None and claimed(study.get_trials(deepcopy=False), self.invocation) >= n_trials
            return not done and clock.left() > 0

        share = TopologyShare(self.space.topologies, cfg.study.topology_share, more)
        objective = self.objective()
        objective.time_left = clock.left if deadline is not None else None
        objective.unheard = share.unheard
        objective.time_limit = trial_time_limit(cfg.study.trial_time_limit, cfg.study.timeout)
        self.study.optimize(
            objective,
            timeout=timeout,
            callbacks=[clock, *stop, share, interrupt.stop_study, *callbacks],
            catch=(Exception,),
            gc_after_trial=False,
        )


def open_session(cfg: DictConfig, *, create: bool = True, checked: Checked | None = None) -> Session:
    """Check everything a user can get wrong and open storage and tracking
    (:func:`hybridsearch.checks.check`, unless ``checked`` says it was), then load the study.
    ``create=False`` (a worker process) expects the study to exist.
    """
    c = checked or check(cfg)
    if create:
        study = _load_study(cfg, c.storage, c.data, c.metric, c.direction, c.cv_folds)
    else:
        study = optuna.load_study(study_name=cfg.study.name, storage=c.storage)
    study.pruner = CachedPruner(c.pruner)
    return Session(cfg, c.space, c.data, c.metric, c.direction, study, c.tracker, c.enqueue, c.cv_folds)
