"""The final model: the ensemble chosen on out-of-fold predictions, each member bagged (its fold
models) or refit on all training data, the reference baseline, the test scores beside what
selection promised, and ``summary.json``.

Nothing here reads a test label before every choice is made: the ensemble's members and weights
come from OOF predictions, each member's epoch count from its own folds. The test split is then
scored once per reported model (the final one, the best single one, the baseline).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hybridsearch.budget import bag_seconds, chosen_epochs
from hybridsearch.data import TaskData
from hybridsearch.errors import one_line
from hybridsearch.layout import checkpoint_name
from hybridsearch.module import load_best
from hybridsearch.oof import OutOfFold
from hybridsearch.ranking import best_trial, primary, ranked
from hybridsearch.results._baselines import ETS, MINIROCKET, ets, minirocket
from hybridsearch.results._ensemble import Selection, criterion, ensemble_metrics, select
from hybridsearch.results._summary import Metrics, Summary
from hybridsearch.tasks import test_key

if TYPE_CHECKING:
    from hybridsearch.session import Session


def summarize(session: Session) -> Summary:
    """Build the final model, score it on the held-out test split, write ``summary.json``.

    The candidates are the top ``study.ensemble`` trials (those whose OOF predictions were kept).
    Greedy selection on their OOF predictions weights them. With ``study.final_fit=bag`` (and
    cross-validation) each selected trial's fold models are trained again to its chosen epoch and
    the final model is their weighted average (``ensemble/``), so its selection score is the OOF
    score of the very models handed over. With ``refit``, each is refit on training plus validation
    data: one selected trial is ``best.ckpt`` itself, several are averaged. ``best.ckpt`` is always
    the best trial's refit, the best single model. Multi-objective studies hand over the best trial
    by the metric, refit, and save the Pareto front.
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
        cv_folds=session.cv_folds,
        **_counts(study.get_trials(deepcopy=False)),
        topologies=_by_topology(study),
    )
    shutil.rmtree(layout.ensemble, ignore_errors=True)  # a former run's; load_best would prefer it
    best = best_trial(study)
    if best is not None:
        try:
            _final_model(session, best, summary)
        except Exception as err:  # a refit that diverges, say: the search's record still stands
            shutil.rmtree(layout.ensemble, ignore_errors=True)
            summary.final, summary.final_error = None, one_line(err)
    if cfg.study.baseline:
        summary.baselines = session.baselines or reference_baselines(session)
    if tracker.parent_run_id:
        tracker.log_metrics(tracker.parent_run_id, _parent_metrics(summary))
        if summary.checkpoint:
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


def _by_topology(study) -> dict[str, dict[str, Any]]:
    """Per topology: its trials by state, the epochs they trained, and its best selection score."""
    out: dict[str, dict[str, Any]] = {}
    best = {t.params.get("topology"): t for t in reversed(ranked(study))}  # each topology's best
    for t in study.get_trials(deepcopy=False):
        name = t.params.get("topology")
        if name is None or not t.state.is_finished():
            continue
        row = out.setdefault(name, {"trials": 0, "complete": 0, "pruned": 0, "fail": 0, "epochs": 0, "best": None})
        row["trials"] += 1
        row[t.state.name.lower()] = row.get(t.state.name.lower(), 0) + 1
        row["epochs"] += int(t.user_attrs.get("epochs", 0))
    for name, t in best.items():
        if name in out:
            out[name]["best"] = primary(t)
    return dict(sorted(out.items()))


def _final_model(session: Session, best: FrozenTrial, summary: Summary) -> None:
    """Fill in the best trial, the ensemble, the refit models and their test scores."""
    study, cfg, layout = session.study, session.cfg, session.layout
    test = session.data.for_trial(best.params)
    summary.best_trial, summary.best_value, summary.best_params = best.number, primary(best), best.params
    summary.best_attrs = {k: best.user_attrs[k] for k in ("n_params", "epochs", "best_epoch") if k in best.user_attrs}
    summary.mlflow_run_id = best.user_attrs.get("mlflow_run_id")
    summary.refit_epochs = chosen_epochs(best, cfg.trainer.max_epochs)
    session.objective().refit(best.params, summary.refit_epochs, layout.best_checkpoint)
    summary.checkpoint = str(layout.best_checkpoint)
    summary.single_test_metrics = _score(load_best(layout.best_checkpoint), test)
    summary.final, summary.test_metrics, summary.selection_score = "best", summary.single_test_metrics, primary(best)
    if len(study.directions) > 1:
        names = [session.metric, *cfg.study.objectives]
        summary.pareto_front = [
            {"trial": t.number, **dict(zip(names, t.values, strict=True)), "topology": t.params.get("topology")}
            for t in sorted(study.best_trials, key=lambda t: t.number)
        ]
    else:
        summary.ensemble = _ensemble(session, best, test)
        if summary.ensemble and summary.ensemble.get("test_metrics"):
            summary.final, summary.test_metrics = "ensemble", summary.ensemble["test_metrics"]
            summary.selection_score = summary.ensemble["oof_metrics"][session.metric]
    key = test_key(session.metric)
    if key in summary.test_metrics and summary.selection_score is not None:
        summary.optimism = {"metric": key, "value": summary.selection_score - summary.test_metrics[key]}
    if test.forecast is not None:
        summary.baseline = test.baseline()
    if cfg.study.register and session.tracker.parent_run_id:
        version = session.tracker.register_model(load_best(layout.folder), study.study_name, test.test.X[:2])
        summary.registered_model = {"name": study.study_name, "version": version}


def _ensemble(session: Session, best: FrozenTrial, test: TaskData) -> dict[str, Any] | None:
    """Greedy selection over the top ``study.ensemble`` trials' OOF predictions, then each selected
    trial as a predictor in ``ensemble/`` (its bagged fold models, or its refit) with its weight,
    scored once on test. None when the final model is the best trial's refit alone."""
    cfg = session.cfg
    bag = cfg.study.final_fit == "bag" and session.cv_folds > 1
    result = _select(session, best, test) if cfg.study.ensemble >= 2 else None
    if result is None and not bag:
        return None
    if result is None:  # the best trial alone, bagged
        metrics = {session.metric: primary(best), "val_loss": best.user_attrs.get("val_loss")}
        result = {"trials": [best.number], "weights": [1.0], "oof_metrics": metrics, "candidates": [best.number]}
    result["fit"] = "bag" if bag else "refit"
    members = dict(zip(result["trials"], result["weights"], strict=True))
    if len(members) < 2 and not bag:
        return result  # the best single model, refit, is the final one
    trials = {t.number: t for t in session.study.get_trials(deepcopy=False)}
    folder = session.layout.ensemble
    folder.mkdir(parents=True)
    files: dict[str, float] = {}
    kept: dict[int, float] = {}
    # The best trial first (the search left time for its bag), then the heaviest, while time is left;
    # if no member fits, the best trial alone.
    order: list[tuple[int, float | None]] = sorted(members.items(), key=lambda m: (m[0] != best.number, -m[1]))
    if bag and best.number not in members:
        order.append((best.number, None))
    for number, weight in order:
        t = trials[number]
        if weight is None:  # the fallback
            if kept:
                break
            weight = 1.0
            result["oof_metrics"] = {session.metric: primary(best), "val_loss": best.user_attrs.get("val_loss")}
        late = session.deadline is not None and time.time() + bag_seconds(t, session.cv_folds) > session.deadline
        if bag and late and number != best.number:
            result.setdefault("left_out", {})[number] = "out of time"
            continue
        try:
            if bag:
                paths = session.objective().bag(number, t.params, chosen_epochs(t, cfg.trainer.max_epochs), folder)
            elif number == best.number:
                paths = [folder / checkpoint_name(number)]
                shutil.copyfile(session.layout.best_checkpoint, paths[0])
            else:
                paths = [folder / checkpoint_name(number)]
                session.objective().refit(t.params, chosen_epochs(t, cfg.trainer.max_epochs), paths[0])
        except Exception as err:  # a member whose training diverges is left out
            result.setdefault("left_out", {})[number] = one_line(err)
            continue
        kept[number] = weight
        files |= {p.name: weight / len(paths) for p in paths}
    if not kept or (not bag and len(kept) < 2):
        shutil.rmtree(folder)
        return result
    total = sum(kept.values())
    result["trials"], result["weights"] = list(kept), [round(w / total, 4) for w in kept.values()]
    if kept != members:  # members were left out: the score is the one of the ensemble delivered
        delivered = _oof_score(session, [trials[n] for n in kept], result["weights"], test)
        result["oof_metrics"] = delivered or result["oof_metrics"]
    weights = {name: w / total for name, w in files.items()}
    session.layout.ensemble_weights.write_text(json.dumps(weights, indent=2) + "\n")
    result["test_metrics"] = _score(load_best(session.layout.folder, ensemble=True), test)
    return result


def _select(session: Session, best: FrozenTrial, test: TaskData) -> dict[str, Any] | None:
    """Greedy selection over the top ``study.ensemble`` trials' OOF predictions: the selected trials
    and weights, their OOF metrics. None when fewer than two candidates have OOF predictions."""
    lookback = best.params.get("lookback")  # members read the same windows
    candidates, preds = [], []
    for t in ranked(session.study)[: session.cfg.study.ensemble]:
        path = _oof_file(session, t)
        if path is not None and t.params.get("lookback") == lookback:
            candidates.append(t)
            preds.append(OutOfFold.load(path))
    if len(candidates) < 2:
        return None
    y = preds[0].y
    if any(p.y.shape != y.shape or not np.array_equal(p.y, y) for p in preds):
        raise RuntimeError("the kept trials' out-of-fold targets differ; were they scored on other data?")
    metric, direction = criterion(test.task, session.metric, session.direction)
    choice: Selection = select(
        test.task, [p.pred for p in preds], y, metric=metric, direction=direction, y_std=_target_spread(test)
    )
    members = [(t, float(w)) for t, w in zip(candidates, choice.weights, strict=True) if w > 0]
    return {
        "trials": [t.number for t, _ in members],
        "weights": [round(w, 4) for _, w in members],
        "oof_metrics": choice.metrics,
        "candidates": [t.number for t in candidates],
    }


def _oof_score(session: Session, members: list[FrozenTrial], weights: list[float], test: TaskData) -> dict | None:
    """The OOF metrics of the ensemble of ``members`` with ``weights``; None if one has no OOF file."""
    paths = [_oof_file(session, t) for t in members]
    if None in paths:
        return None
    preds = [OutOfFold.load(path) for path in paths]
    return ensemble_metrics(test.task, [p.pred for p in preds], weights, preds[0].y, _target_spread(test))


def _target_spread(data: TaskData) -> torch.Tensor:
    """Each target's spread in the pool, the unit of the OOF loss of values (1 for classes)."""
    _, std = data.merged().target_scaling()
    return torch.tensor(std if std is not None else [1.0], dtype=torch.float32).view(*data.task.target_view)


def _oof_file(session: Session, trial: FrozenTrial) -> Path | None:
    """A kept trial's OOF predictions: where they were written, or fetched from MLflow when the
    trial ran on another machine."""
    if not trial.user_attrs.get("oof"):
        return None
    source = Path(trial.user_attrs["oof"])
    if not source.is_file() and trial.user_attrs.get("mlflow_run_id") and session.tracker is not None:
        source = session.tracker.download(trial.user_attrs["mlflow_run_id"], source.name, session.layout.trials)
    return source if source.is_file() else None


def reference_baselines(session: Session) -> dict[str, Any]:
    """The reference on the study's own folds (or windows) and test split: MiniRocket, or AutoETS
    for forecasting."""
    data = session.data
    if data.task.windows:
        return {ETS: ets(data)}
    return {MINIROCKET: minirocket(data, session.cv_folds, session.fold_seed, seed=session.cfg.study.seed or 0)}


def _parent_metrics(summary: Summary) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if summary.best_value is not None:
        metrics[f"best_{summary.metric}"] = summary.best_value
        if summary.selection_score is not None:
            metrics["selection_score"] = summary.selection_score
        metrics |= {f"test_{k}": v for k, v in (summary.test_metrics or {}).items()}
        metrics |= {f"single_test_{k}": v for k, v in (summary.single_test_metrics or {}).items()}
    for name, scores in (summary.baselines or {}).items():
        for split in ("cv", "test"):
            metrics |= {f"{name}_{split}_{k}": v for k, v in scores.get(split, {}).items()}
    return metrics


def _score(model: Any, test: TaskData) -> Metrics:
    """A model's metrics on the test split."""
    return test.test_metrics(model.predict(test.test.X, test.test.lengths))
