"""The final model: the best single model (refit or the search's own weights), the ensemble of the
top trials, their scores on the held-out test split, and ``summary.json``."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hybridsearch.data import TaskData
from hybridsearch.layout import checkpoint_name
from hybridsearch.module import load_best
from hybridsearch.ranking import best_trial, primary, ranked
from hybridsearch.results._summary import Metrics, Summary

if TYPE_CHECKING:
    from hybridsearch.session import Session


def summarize(session: Session) -> Summary:
    """Build the final model, score it once on the held-out test split, write ``summary.json``.

    The best single model (``best.ckpt``) is the best trial's configuration trained again on
    training plus validation data for its best epoch count (``study.refit``), or the trial's own
    weights. The final model, which ``load_best`` returns and the registry holds, averages the top
    ``study.ensemble`` trials (``ensemble/``): steadier than any one of them when validation sets
    are small. Single-objective studies only; otherwise, and with ``study.ensemble`` below 2, the
    final model is the best single one. Every candidate's test score is in the summary.
    """
    study, cfg, tracker, layout = session.study, session.cfg, session.tracker, session.layout
    summary = Summary(
        study=study.study_name,
        data=session.data.describe(),
        metric=session.metric,
        direction=session.direction,
        storage=cfg.study.storage,
        tracking_uri=cfg.tracking.uri,
        mlflow_parent_run_id=tracker.parent_run_id,
        **_counts(study.get_trials(deepcopy=False)),
    )
    shutil.rmtree(layout.ensemble, ignore_errors=True)  # a former run's; load_best would prefer it
    best = best_trial(study)
    if best is not None and best.user_attrs.get("checkpoint"):
        _final_model(session, best, summary)
        if tracker.parent_run_id:
            tracker.log_metrics(
                tracker.parent_run_id,
                {
                    f"best_{session.metric}": primary(best),
                    **{f"test_{k}": v for k, v in summary.test_metrics.items()},
                    **{f"single_test_{k}": v for k, v in summary.single_test_metrics.items()},
                    **{f"search_test_{k}": v for k, v in summary.search_test_metrics.items()},
                },
            )
            tracker.log_artifact(tracker.parent_run_id, layout.best_checkpoint)
    summary.save(layout.summary)
    if tracker.parent_run_id:
        tracker.log_artifact(tracker.parent_run_id, layout.summary)
    return summary


def _counts(trials: list[FrozenTrial]) -> dict[str, Any]:
    """Trials by state, and failed trials by reason. A trial failed without a reason of its own
    lost its worker (a killed process, a machine gone silent) and was queued again."""
    counts = Counter(t.state.name.lower() for t in trials)
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials} - {None}
    failures = Counter(
        t.user_attrs.get("fail_reason") or ("worker lost; queued again" if t.number in retried else "worker lost")
        for t in trials
        if t.state == TrialState.FAIL
    )
    return {
        "trials": {state: counts.get(state, 0) for state in ("complete", "pruned", "fail", "running", "waiting")},
        "failures": dict(failures.most_common()),
    }


def _final_model(session: Session, best: FrozenTrial, summary: Summary) -> None:
    """Fill in the best trial, the best single model, the ensemble and their test scores."""
    study, cfg, layout = session.study, session.cfg, session.layout
    test = session.data.for_trial(best.params)
    shutil.copyfile(_checkpoint(session, best), layout.search_checkpoint)
    search = _score(load_best(layout.search_checkpoint), test)
    single = search
    if cfg.study.refit:
        epochs = int(best.user_attrs.get("best_epoch", cfg.trainer.max_epochs - 1)) + 1
        session.objective().refit(best.params, epochs, layout.best_checkpoint)
        single = _score(load_best(layout.best_checkpoint), test)
        summary.refit_epochs = epochs
    else:
        shutil.copyfile(layout.search_checkpoint, layout.best_checkpoint)
    if cfg.study.ensemble >= 2 and len(study.directions) == 1:
        summary.ensemble = _ensemble(session, test)
    if len(study.directions) > 1:
        names = [session.metric, *cfg.study.objectives]
        summary.pareto_front = [
            {"trial": t.number, **dict(zip(names, t.values, strict=True)), "topology": t.params.get("topology")}
            for t in sorted(study.best_trials, key=lambda t: t.number)
        ]
    summary.final = "ensemble" if summary.ensemble else "refit" if cfg.study.refit else "search"
    summary.best_trial, summary.best_value, summary.best_params = best.number, primary(best), best.params
    summary.best_attrs = {k: best.user_attrs[k] for k in ("n_params", "epochs", "best_epoch") if k in best.user_attrs}
    summary.mlflow_run_id = best.user_attrs.get("mlflow_run_id")
    summary.test_metrics = summary.ensemble["test_metrics"] if summary.ensemble else single
    summary.single_test_metrics, summary.search_test_metrics = single, search
    summary.refit = bool(cfg.study.refit)
    summary.checkpoint, summary.search_checkpoint = str(layout.best_checkpoint), str(layout.search_checkpoint)
    summary.baseline = test.baseline()
    if cfg.study.register and session.tracker.parent_run_id:
        version = session.tracker.register_model(load_best(layout.folder), study.study_name, test.test.X[:2])
        summary.registered_model = {"name": study.study_name, "version": version}


def _ensemble(session: Session, test: TaskData) -> dict[str, Any] | None:
    """Copy the checkpoints of the top ``study.ensemble`` trials to ``ensemble/`` and score their
    average once on test. The objective kept the weights of exactly the trials that ranked in the
    top ``study.ensemble`` when they finished, by the same rule, so the top trials have them unless
    a file was lost; members must read the same windows as the best trial (a searched lookback)."""
    done = ranked(session.study)
    lookback = done[0].params.get("lookback")
    members = []
    for t in done:
        if len(members) == session.cfg.study.ensemble:
            break
        if t.user_attrs.get("checkpoint") and t.params.get("lookback") == lookback:
            source = _checkpoint(session, t)
            if source.is_file():
                members.append((t.number, source))
    if len(members) < 2:
        return None
    folder = session.layout.ensemble
    folder.mkdir(parents=True)
    for number, source in members:
        shutil.copyfile(source, folder / checkpoint_name(number))
    model = load_best(session.layout.folder, ensemble=True)
    return {"trials": [number for number, _ in members], "test_metrics": _score(model, test)}


def _checkpoint(session: Session, trial: optuna.trial.FrozenTrial) -> Path:
    """A kept trial's checkpoint: where it was written, or fetched from MLflow when that trial ran
    on another machine."""
    source = Path(trial.user_attrs["checkpoint"])
    if not source.is_file() and trial.user_attrs.get("mlflow_run_id") and session.tracker is not None:
        source = session.tracker.download(trial.user_attrs["mlflow_run_id"], source.name, session.layout.trials)
    return source


def _score(model: Any, test: TaskData) -> Metrics:
    """A model's metrics on the test split."""
    return test.test_metrics(model.predict(test.test.X, test.test.lengths))
