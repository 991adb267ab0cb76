"""The study in optuna-dashboard and MLflow: the study's note and the commands that open them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hybridsearch.layout import StudyLayout

if TYPE_CHECKING:
    from hybridsearch.session import Session


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


def dashboard_commands(storage: str, tracking_uri: str, root: str | Path = "studies") -> list[str]:
    """The commands that open the study in optuna-dashboard and in MLflow's UI."""
    artifacts = StudyLayout.of(root, "").dashboard_artifacts
    mlflow = (
        f"open {tracking_uri}"
        if tracking_uri.startswith("http")
        else f"mlflow ui --backend-store-uri {tracking_uri} --port 5000"
    )
    return [f"optuna-dashboard {storage} --artifact-dir {artifacts} --port 8080", mlflow]
