"""The ensemble: greedy selection with replacement on out-of-fold predictions (Caruana et al. 2004).

Starting from nothing, each round adds the candidate (repeats allowed) whose addition gives the
best OOF score of the averaged prediction; the weights are how often each was added. The rounds
are cut at the best score seen (as AutoGluon does), so the ensemble is never worse on OOF data
than the best single candidate, and a candidate that only adds error gets no weight.

Classification selects on the OOF log loss, not on accuracy (:func:`criterion`). On small pools
accuracy moves in steps of one series, and greedy rounds on it fit noise: in nested selection on
the development studies' saved OOF predictions (``benchmarks/ensemble_selection.py``: choose on
half the series, score on the other half) both delivered the same accuracy, but accuracy promised
0.025 more than it delivered and log loss 0.006, with the lower delivered log loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hybridsearch.oof import oof_metrics
from hybridsearch.ranking import rank_key, signs
from hybridsearch.tasks import Task


@dataclass
class Selection:
    """Weights of the candidates (summing to 1; 0 for those left out) and the ensemble's OOF metrics."""

    weights: np.ndarray
    metrics: dict[str, float]


def combine(task: Task, preds: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted ensemble's raw output, as :class:`hybridsearch.module.EnsembleModule` computes it."""
    outs = [torch.from_numpy(p) for p in preds]
    return task.average(outs, torch.tensor(np.asarray(weights, dtype=np.float32))).numpy()


def ensemble_metrics(
    task: Task, preds: Sequence[np.ndarray], weights: Sequence[float], y: np.ndarray, y_std: torch.Tensor
) -> dict[str, float]:
    """The OOF metrics of the weighted ensemble of candidates' OOF outputs ``preds``."""
    return oof_metrics(task, combine(task, preds, weights), y, y_std)


def criterion(task: Task, metric: str, direction: str) -> tuple[str, str]:
    """What greedy selection optimises: the log loss for classes, else the study's own metric."""
    return ("val_loss", "minimize") if task.classifies else (metric, direction)


def select(
    task: Task,
    preds: Sequence[np.ndarray],
    y: np.ndarray,
    *,
    metric: str,
    direction: str,
    y_std: torch.Tensor,
    rounds: int = 25,
) -> Selection:
    """Greedy ensemble selection over candidates' OOF outputs ``preds`` against targets ``y``.

    Scores follow :mod:`hybridsearch.ranking`: ``metric`` first, then the OOF loss.
    """
    if not preds:
        raise ValueError("ensemble selection needs at least one candidate")
    s = signs([direction])
    counts = np.zeros(len(preds))
    best_key, best_counts, best_metrics = None, counts.copy(), {}
    for r in range(rounds):
        trials = []
        for i in range(len(preds)):
            trial = counts.copy()
            trial[i] += 1
            members = [j for j in range(len(preds)) if trial[j]]
            m = ensemble_metrics(task, [preds[j] for j in members], trial[members], y, y_std)
            trials.append((rank_key((m[metric],), s, m["val_loss"], i), i, m))
        key, chosen, metrics = min(trials, key=lambda t: t[0])
        counts[chosen] += 1
        key = (*key[:-1], r)  # among equal scores, the earlier (smaller) ensemble
        if best_key is None or key < best_key:
            best_key, best_counts, best_metrics = key, counts.copy(), metrics
    return Selection(best_counts / best_counts.sum(), best_metrics)
