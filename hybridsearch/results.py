"""After the search: the final model and its test scores (summary.json), the report's attachments,
the dashboard's note, and the printout that ends a command."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import optuna

from hybridsearch.data import TaskData
from hybridsearch.module import load_best
from hybridsearch.objective import primary
from hybridsearch.study import Session, best_trial, ranked


def dashboard_note(session: Session, n_workers: int) -> None:
    """The study's note in optuna-dashboard: what it searches, on what data, with what budget."""
    from optuna_dashboard import save_note

    s = session.cfg.study
    save_note(
        session.study,
        f"**Data**: {session.data.describe()}\n\n"
        f"**Metric**: {session.metric} ({session.direction})\n\n"
        f"**Topologies**: {', '.join(session.space.topologies)}\n\n"
        f"**Latest run's budget**: n_trials={s.n_trials}, timeout={s.timeout} s, "
        f"max_epochs={session.cfg.trainer.max_epochs}, workers={n_workers}, cv_folds={session.cv_folds}",
    )


def attach_report(session: Session) -> Path:
    """Write the study's report; attach its images to the MLflow parent run and the dashboard."""
    from hybridsearch.report import write_report

    page = write_report(session.study_dir)
    if session.tracker.parent_run_id:
        session.tracker.log_folder(session.tracker.parent_run_id, page.parent, "report")
    folder = dashboard_artifacts(session.cfg.study.root)
    folder.mkdir(parents=True, exist_ok=True)
    store = optuna.artifacts.FileSystemArtifactStore(str(folder))
    for image in sorted(page.parent.glob("*.png")):
        optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(image), study_or_trial=session.study, mimetype="image/png"
        )
    return page


def dashboard_artifacts(root: str) -> Path:
    """Where the dashboard finds the studies' attached plots (optuna-dashboard --artifact-dir)."""
    return Path(root) / "dashboard-artifacts"


def summarize(session: Session) -> dict[str, Any]:
    """Build the final model, score it once on the held-out test split, write summary.json.

    The best single model (``best.ckpt``) is the best trial's configuration trained again on
    training plus validation data for its best epoch count (``study.refit``), or the trial's own
    weights. The final model, which ``load_best`` returns and the registry holds, averages the top
    ``study.ensemble`` trials (``ensemble/``): steadier than any one of them when validation sets
    are small. Single-objective studies only; otherwise, and with ``study.ensemble`` below 2, the
    final model is the best single one. Every candidate's test score is in the summary.
    """
    study, data, tracker, cfg, metric = session.study, session.data, session.tracker, session.cfg, session.metric
    study_dir = session.study_dir
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    failures = Counter(t.user_attrs.get("fail_reason", "unknown") for t in trials if t.state.name == "FAIL")
    summary: dict[str, Any] = {
        "study": study.study_name,
        "data": data.describe(),
        "metric": metric,
        "direction": session.direction,
        "best_trial": None,
        "best_value": None,
        "best_params": None,
        "final": None,
        "test_metrics": None,
        "checkpoint": None,
        "mlflow_run_id": None,
        "mlflow_parent_run_id": tracker.parent_run_id,
        "storage": cfg.study.storage,
        "tracking_uri": cfg.tracking.uri,
        "trials": {state: counts.get(state, 0) for state in ("complete", "pruned", "fail", "running", "waiting")},
        "failures": dict(failures.most_common()),
    }
    shutil.rmtree(study_dir / "ensemble", ignore_errors=True)  # a former run's; load_best would prefer it
    best = best_trial(study)
    if best is not None and best.user_attrs.get("checkpoint"):
        searched = study_dir / "search.ckpt"
        shutil.copyfile(_checkpoint(session, best), searched)
        test = data.with_lookback(best.params["lookback"]) if "lookback" in best.params else data
        scores = {"search": _score(load_best(searched), test)}
        checkpoint = study_dir / "best.ckpt"
        if cfg.study.refit:
            epochs = int(best.user_attrs.get("best_epoch", cfg.trainer.max_epochs - 1)) + 1
            session.objective().refit(best.params, epochs, checkpoint)
            scores["refit"] = _score(load_best(checkpoint), test)
            summary["refit_epochs"] = epochs
        else:
            shutil.copyfile(searched, checkpoint)
        single = scores.get("refit", scores["search"])
        if cfg.study.ensemble >= 2 and len(study.directions) == 1:
            summary["ensemble"] = _ensemble(session, test)
        if len(study.directions) > 1:
            names = [metric, *cfg.study.objectives]
            summary["pareto_front"] = [
                {"trial": t.number, **dict(zip(names, t.values, strict=True)), "topology": t.params.get("topology")}
                for t in sorted(study.best_trials, key=lambda t: t.number)
            ]
        final = "ensemble" if summary.get("ensemble") else "refit" if cfg.study.refit else "search"
        if cfg.study.register and tracker.parent_run_id:
            summary["registered_model"] = {
                "name": study.study_name,
                "version": tracker.register_model(load_best(study_dir), study.study_name, test.test.X[:2]),
            }
        summary.update(
            best_trial=best.number,
            best_value=primary(best),
            best_params=best.params,
            best_attrs={k: best.user_attrs[k] for k in ("n_params", "epochs", "best_epoch") if k in best.user_attrs},
            final=final,
            test_metrics=summary["ensemble"]["test_metrics"] if final == "ensemble" else single,
            single_test_metrics=single,
            search_test_metrics=scores["search"],
            refit=bool(cfg.study.refit),
            checkpoint=str(checkpoint),
            search_checkpoint=str(searched),
            mlflow_run_id=best.user_attrs.get("mlflow_run_id"),
            baseline=test.baseline(),
        )
        if tracker.parent_run_id:
            tracker.log_metrics(
                tracker.parent_run_id,
                {
                    f"best_{metric}": primary(best),
                    **{f"test_{k}": v for k, v in summary["test_metrics"].items()},
                    **{f"single_test_{k}": v for k, v in single.items()},
                    **{f"search_test_{k}": v for k, v in scores["search"].items()},
                },
            )
            tracker.log_artifact(tracker.parent_run_id, checkpoint)
    path = study_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if tracker.parent_run_id:
        tracker.log_artifact(tracker.parent_run_id, path)
    return summary


def _ensemble(session: Session, test: TaskData) -> dict[str, Any] | None:
    """Copy the checkpoints of the top ``study.ensemble`` trials that kept their weights (a trial
    that ranked lower when it finished did not) to ``ensemble/``; score their average once on test."""
    done = [t for t in ranked(session.study) if t.user_attrs.get("checkpoint")]  # weights kept
    lookback = [t.params.get("lookback") for t in done[:1]]
    folder = session.study_dir / "ensemble"
    folder.mkdir(parents=True)
    members: list[int] = []
    for t in (t for t in done if t.params.get("lookback") == lookback[0]):
        if len(members) == session.cfg.study.ensemble:
            break
        source = _checkpoint(session, t)
        if source.is_file():
            shutil.copyfile(source, folder / f"trial-{t.number:05d}.ckpt")
            members.append(t.number)
    if len(members) < 2:
        shutil.rmtree(folder)
        return None
    model = load_best(session.study_dir, ensemble=True)
    return {"trials": members, "test_metrics": _score(model, test)}


def _checkpoint(session: Session, trial: optuna.trial.FrozenTrial) -> Path:
    """A kept trial's checkpoint: where it was written, or fetched from MLflow when that trial ran
    on another machine."""
    source = Path(trial.user_attrs["checkpoint"])
    if not source.is_file() and trial.user_attrs.get("mlflow_run_id"):
        source = session.tracker.download(trial.user_attrs["mlflow_run_id"], source.name, session.study_dir / "trials")
    return source


def _score(model: Any, test: TaskData) -> dict[str, float]:
    """A model's metrics on the test split, scored once."""
    return test.test_metrics(model.predict(test.test.X, test.test.lengths))


def dashboard_commands(storage: str, tracking_uri: str, root: str = "studies") -> list[str]:
    mlflow = (
        f"open {tracking_uri}"
        if tracking_uri.startswith("http")
        else f"mlflow ui --backend-store-uri {tracking_uri} --port 5000"
    )
    return [f"optuna-dashboard {storage} --artifact-dir {dashboard_artifacts(root)} --port 8080", mlflow]


def printout(summary: dict[str, Any]) -> str:
    """The final printout: best architecture, its scores, and how to look at the study."""
    t = summary["trials"]
    lines = [
        f"\nstudy {summary['study']!r}: {t['complete']} complete, {t['pruned']} pruned, {t['fail']} failed",
    ]
    for reason, n in summary["failures"].items():
        lines.append(f"  failed x{n}: {reason}")
    if summary["best_trial"] is None:
        lines.append("no trial completed yet: no best model")
    else:
        params = dict(summary["best_params"])
        topology = params.pop("topology")

        def scores(metrics: dict[str, float]) -> str:
            return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())

        single = summary.get("single_test_metrics") or summary["test_metrics"]
        lines += [
            f"best trial #{summary['best_trial']}: {topology}",
            "  " + " ".join(f"{k}={_fmt(v)}" for k, v in params.items()),
            f"  validation {summary['metric']} {summary['best_value']:.4f} | test {scores(single)}",
        ]
        if summary.get("refit"):
            lines[-1] += f" (refit on train + validation, {summary['refit_epochs']} epochs)"
            lines.append(f"  the search-time model itself: test {scores(summary['search_test_metrics'])}")
        if summary.get("pareto_front"):
            front = summary["pareto_front"]
            lines.append(
                f"  Pareto front of {summary['metric']} and {', '.join(list(front[0])[2:-1])}: "
                f"trials {', '.join(str(t['trial']) for t in front)} (summary.json, report)"
            )
        if summary.get("baseline"):
            lines.append(f"  seasonal-naive baseline on the same test windows: {scores(summary['baseline'])}")
        if summary.get("final") == "ensemble":
            e = summary["ensemble"]
            lines.append(f"final model: the top {len(e['trials'])} trials averaged: test {scores(e['test_metrics'])}")
        else:
            lines.append("final model: the best trial's")
        folder = str(Path(summary["checkpoint"]).parent)
        lines.append(f"  load it: hybridsearch.load_best({folder!r})  (the best single model: ensemble=False)")
    if summary.get("report"):
        lines.append(f"report: {summary['report']}")
    lines.append("dashboards:")
    root = str(Path(summary["checkpoint"]).parent.parent) if summary.get("checkpoint") else "studies"
    lines += [f"  {c}" for c in dashboard_commands(summary["storage"], summary["tracking_uri"], root)]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
