"""What differs between tasks, in one object each: loss, metrics, output transform, default metric.

``TASKS[name]`` is the strategy for ``data.task``: classification of whole series, regression of a
value per series, forecasting of a series' next steps. Code elsewhere asks the task, never
compares its name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Task:
    """A task's behaviour.

    Attributes:
        name: the ``data.task`` value.
        metric, direction: the validation metric a study optimises by default, and its direction.
        classifies: targets are class indices, predictions labels, outputs logits.
        windows: the data are windows cut from one long series (forecasting).
        target_view: the shape of the per-target scaling buffers, broadcast against a batch's targets.
    """

    name: str
    metric: str
    direction: str
    classifies: bool = False
    windows: bool = False
    target_view: tuple[int, ...] = (1, -1)

    def __str__(self) -> str:
        return self.name

    def loss(self, out: Tensor, y: Tensor, y_std: Tensor, smoothing: float = 0.0) -> Tensor:
        """Training loss: cross-entropy (with label smoothing if asked), or MSE in units of each
        target's training spread."""
        if self.classifies:
            return F.cross_entropy(out, y, label_smoothing=smoothing)  # out (B, classes), y (B,)
        # y: (B,) or (B, targets) for regression, (B, targets, horizon) for forecasting; out: the same
        # values, maybe with a trailing 1. The error goes to y_std's layout, (B, targets) against
        # (1, targets) or (B, targets, horizon) against (1, targets, 1), so each target is scaled by its own spread.
        err = (out.reshape(y.shape) - y).reshape(len(y), *y_std.shape[1:-1], -1)
        return (err / y_std).pow(2).mean()

    def metrics(self, out: Tensor, y: Tensor, y_std: Tensor, prefix: str) -> dict[str, Tensor]:
        """The loss and the task's metrics of one batch, named ``<prefix>_<metric>``."""
        metrics = {f"{prefix}_loss": self.loss(out, y, y_std)}
        if self.classifies:
            metrics[f"{prefix}_acc"] = (out.argmax(dim=-1) == y).float().mean()
        else:
            err = out.reshape(y.shape) - y
            metrics[f"{prefix}_mae"] = err.abs().mean()
            metrics[f"{prefix}_rmse"] = err.pow(2).mean().sqrt()
        return metrics

    def output(self, out: Tensor) -> Tensor:
        """What a prediction hands over: class probabilities, or values in the targets' units."""
        return out.softmax(dim=-1) if self.classifies else out

    def average(self, outs: list[Tensor], weights: Tensor | None = None) -> Tensor:
        """Several models' outputs as one: the log of the (weighted) mean probabilities (so that,
        as for one model's logits, ``softmax`` gives probabilities), or the (weighted) mean value."""
        stacked = torch.stack([o.softmax(dim=-1) for o in outs] if self.classifies else outs)  # (members, B, ...)
        w = torch.full((len(outs),), 1.0 / len(outs)) if weights is None else weights / weights.sum()
        mean = (stacked * w.to(stacked).view(-1, *([1] * (stacked.dim() - 1)))).sum(dim=0)
        return mean.log() if self.classifies else mean


CLASSIFICATION = Task("classification", "val_acc", "maximize", classifies=True)
REGRESSION = Task("regression", "val_rmse", "minimize")
FORECASTING = Task("forecasting", "val_mae", "minimize", windows=True, target_view=(1, -1, 1))
TASKS = {t.name: t for t in (CLASSIFICATION, REGRESSION, FORECASTING)}


TEST_KEYS = {"val_acc": "accuracy", "val_mae": "mae", "val_rmse": "rmse"}


def test_key(metric: str) -> str | None:
    """The test metric that a validation metric estimates (``val_acc`` -> ``accuracy``)."""
    return TEST_KEYS.get(metric)


def task_named(name: str | Task) -> Task:
    """The task for a ``data.task`` value; a :class:`KeyError` names the valid ones."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid: {', '.join(TASKS)}") from None


__all__ = ["CLASSIFICATION", "FORECASTING", "REGRESSION", "TASKS", "Task", "task_named", "test_key"]
