"""How a trial is scored: out-of-fold (OOF) predictions at one epoch count shared by all its folds.

Each fold records its validation outputs at every epoch. The trial's epoch count is chosen once,
on the fold-averaged validation curve (by :mod:`hybridsearch.ranking`'s rule), and its score is
the metric of the OOF predictions at that epoch: every series of the pool predicted by the model
that did not train on it. One choice over a curve averaged across folds, instead of each fold's
own best epoch, keeps the score from promising more than test delivers; the OOF predictions are
also what the ensemble is selected on (:mod:`hybridsearch.results._ensemble`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from hybridsearch.ranking import rank_key, signs
from hybridsearch.tasks import Task


class ValidationRecorder(L.Callback):
    """Records, at each epoch's validation, the model's raw outputs (logits or values, in the
    validation split's order, as :class:`hybridsearch.module.HybridModule` keeps them in
    ``validation_outputs``) and the monitored metric and loss."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.outputs: list[np.ndarray] = []  # one (n_val, ...) array per epoch
        self.values: list[float] = []
        self.losses: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the module's own epoch-end hook, which logs the metrics and keeps the outputs.
        if trainer.sanity_checking:
            return
        self.outputs.append(pl_module.validation_outputs.float().cpu().numpy())
        metrics = trainer.callback_metrics
        self.values.append(float(metrics.get(self.monitor, math.nan)))
        self.losses.append(float(metrics.get("val_loss", math.inf)))

    @property
    def epochs(self) -> int:
        return len(self.outputs)


def choose_epoch(folds: Sequence[ValidationRecorder], direction: str) -> int:
    """The one epoch (0-based) for every fold: the best of the fold-averaged validation curve,
    ties to the lower mean loss, then the earlier epoch. Only epochs every fold reached count."""
    n = min(f.epochs for f in folds)
    if n == 0:
        raise RuntimeError("no validation epoch was recorded")
    s = signs([direction])
    keys = []
    for e in range(n):
        value = float(np.mean([f.values[e] for f in folds]))
        loss = float(np.mean([f.losses[e] for f in folds]))
        if math.isfinite(value):
            keys.append(rank_key((value,), s, loss if math.isfinite(loss) else math.inf, e))
    if not keys:
        raise RuntimeError(f"no finite validation metric in {n} epochs")
    return int(min(keys)[-1])


def falls_short(folds: Sequence[ValidationRecorder], bar: float, direction: str) -> float | None:
    """What the folds trained so far score (the fold-averaged metric at their chosen epoch) if it is
    worse than ``bar``, else None. Fold metrics are float32, so a tie within 1e-6 is no shortfall
    (folds of 0.9 and 0.7 average a hair below a fold of 0.8)."""
    value = float(np.mean([f.values[choose_epoch(folds, direction)] for f in folds]))
    worse = value < bar if direction == "maximize" else value > bar
    return value if worse and not math.isclose(value, bar, rel_tol=1e-6) else None


def assemble(folds: Sequence[ValidationRecorder], indices: Sequence[np.ndarray], n: int, epoch: int) -> np.ndarray:
    """The OOF predictions at ``epoch``, in the pool's order (``indices[i]``: fold i's validation rows)."""
    first = folds[0].outputs[epoch]
    pred = np.empty((n, *first.shape[1:]), dtype=np.float32)
    for fold, index in zip(folds, indices, strict=True):
        pred[index] = fold.outputs[epoch]
    return pred


def oof_metrics(task: Task, pred: np.ndarray, y: np.ndarray, y_std: torch.Tensor) -> dict[str, float]:
    """The validation metrics (``val_loss``, ``val_acc`` or ``val_mae``/``val_rmse``) of OOF outputs."""
    with torch.no_grad():
        metrics = task.metrics(torch.from_numpy(pred), torch.from_numpy(y), y_std.cpu(), "val")
    return {k: float(v) for k, v in metrics.items()}


@dataclass
class OutOfFold:
    """A trial's OOF outputs and the targets they predict, saved beside the study's trials."""

    pred: np.ndarray  # raw outputs: logits (classification) or values
    y: np.ndarray

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(f, pred=self.pred, y=self.y)
        return path

    @classmethod
    def load(cls, path: str | Path) -> OutOfFold:
        with np.load(path) as f:
            return cls(f["pred"], f["y"])


def trial_scores(
    task: Task, folds: Sequence[ValidationRecorder], indices: Sequence[np.ndarray], y: np.ndarray, direction: str, y_std
) -> tuple[int, OutOfFold, dict[str, Any]]:
    """A trial's chosen epoch, its OOF predictions and their metrics."""
    epoch = choose_epoch(folds, direction)
    oof = OutOfFold(assemble(folds, indices, len(y), epoch), y)
    return epoch, oof, oof_metrics(task, oof.pred, y, y_std)
