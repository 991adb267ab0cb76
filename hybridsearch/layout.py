"""Where a study's files live: every path of ``studies/<name>/``, named in one place.

studies/                      study.root
  optuna.db, mlflow.db        the default storage and tracking store (set in the config)
  dashboard-artifacts/        plots attached to studies in optuna-dashboard
  <name>/
    config.yaml               the composed config of the latest command (the report re-reads it)
    worker-config.yaml        the same, handed to worker processes
    summary.json              what the latest command found (:class:`hybridsearch.results.Summary`)
    trials/trial-00012.oof.npz   out-of-fold predictions of the trials ranked in the top ``study.ensemble``
    best.ckpt                    the best trial, refit on training + validation data
    ensemble/trial-00012-fold-0.ckpt  the final model's members: each selected trial's fold models (bag),
    ensemble/trial-00012.ckpt    or its refit (study.final_fit=refit)
    ensemble/weights.json        their weights, chosen on the out-of-fold predictions
    report/                   report.html and its PNG images
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def checkpoint_name(number: int) -> str:
    """An ensemble member's checkpoint file name."""
    return f"trial-{number:05d}.ckpt"


def fold_checkpoint_name(number: int, fold: int) -> str:
    """A bagged ensemble member's file name: one fold model of a trial."""
    return f"trial-{number:05d}-fold-{fold}.ckpt"


@dataclass(frozen=True)
class StudyLayout:
    """The files of the study ``name`` under ``root`` (``study.root``)."""

    root: Path
    name: str

    @classmethod
    def of(cls, root: str | Path, name: str) -> StudyLayout:
        return cls(Path(root), name)

    @classmethod
    def at(cls, folder: str | Path) -> StudyLayout:
        """The layout of an existing study folder, ``<root>/<name>``."""
        folder = Path(folder)
        return cls(folder.parent, folder.name)

    @property
    def folder(self) -> Path:
        return self.root / self.name

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def worker_config(self) -> Path:
        return self.folder / "worker-config.yaml"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def trials(self) -> Path:
        return self.folder / "trials"

    def trial_oof(self, number: int) -> Path:
        """A kept trial's out-of-fold predictions (:class:`hybridsearch.oof.OutOfFold`)."""
        return self.trials / f"trial-{number:05d}.oof.npz"

    @property
    def best_checkpoint(self) -> Path:
        return self.folder / "best.ckpt"

    @property
    def ensemble(self) -> Path:
        return self.folder / "ensemble"

    @property
    def ensemble_weights(self) -> Path:
        return self.ensemble / "weights.json"

    @property
    def report(self) -> Path:
        return self.folder / "report"

    @property
    def dashboard_artifacts(self) -> Path:
        """Where optuna-dashboard finds the plots attached to studies (``--artifact-dir``)."""
        return self.root / "dashboard-artifacts"
