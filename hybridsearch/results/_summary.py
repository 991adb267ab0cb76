"""What a command found, as one typed record: :class:`Summary`, written to ``summary.json``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Metrics = dict[str, float]


@dataclass
class Summary:
    """The study's outcome after a command: trial counts, the best trial, the final model and its
    test scores. ``summary.json`` holds it field for field; the printout, the report and the
    benchmarks read it back with :meth:`load`."""

    study: str
    data: str
    metric: str
    direction: str
    storage: str
    tracking_uri: str
    trials: dict[str, int] = field(default_factory=dict)  # complete, pruned, fail, running, waiting
    failures: dict[str, int] = field(default_factory=dict)  # reason -> how many failed trials
    # topology -> {"trials", "complete", "pruned", "fail", "epochs", "best"}: did each one get a hearing?
    topologies: dict[str, dict[str, Any]] = field(default_factory=dict)
    mlflow_parent_run_id: str | None = None
    cv_folds: int = 1  # folds each trial was scored on (1: the validation split)
    # The best trial, by hybridsearch.ranking; None until a trial completes.
    best_trial: int | None = None
    best_value: float | None = None  # its validation score (the cross-validated mean with cv_folds > 1)
    best_params: dict[str, Any] | None = None
    best_attrs: dict[str, Any] | None = None  # n_params, epochs, best_epoch
    mlflow_run_id: str | None = None  # the best trial's run
    # The final model (what load_best returns): "ensemble" or "best" (the best trial, refit).
    final: str | None = None
    final_error: str | None = None  # why the final model could not be built (its refit diverged, say)
    test_metrics: Metrics | None = None  # the final model's
    selection_score: float | None = None  # what selection promised for it: its OOF metric
    optimism: dict[str, Any] | None = None  # {"metric": "accuracy", "value": selection score - test}
    single_test_metrics: Metrics | None = None  # the best single model's, best.ckpt
    refit_epochs: int | None = None  # the best trial's chosen epoch count, trained again on all training data
    checkpoint: str | None = None  # best.ckpt
    # {"trials", "weights", "oof_metrics", "candidates", "test_metrics"}: greedy selection on OOF predictions
    ensemble: dict[str, Any] | None = None
    pareto_front: list[dict[str, Any]] | None = None  # multi-objective studies
    baselines: dict[str, Any] | None = None  # {"minirocket": {"cv": {...}, "test": {...}, "seconds": s}}
    baseline: Metrics | None = None  # forecasting: seasonal naive on the same test windows
    registered_model: dict[str, Any] | None = None  # MLflow Model Registry name and version
    report: str | None = None  # report.html

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Summary:
        """A summary written by :meth:`save` (fields it does not know are ignored)."""
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})
