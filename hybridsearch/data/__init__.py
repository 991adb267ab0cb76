"""Data: load once per worker, split train / validation / test, and batch from memory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from hybridsearch.data.arrays import DataError, Series, channel_stats, stratified_split
from hybridsearch.data.bundled import bundled_names, load_bundled

TASKS = ("classification", "regression")


@dataclass
class TaskData:
    """The three splits of one task, ready for training. Targets of classification are class indices."""

    task: str
    name: str
    train: Series
    val: Series
    test: Series
    classes: list[Any] = field(default_factory=list)

    @property
    def in_channels(self) -> int:
        return self.train.channels

    @property
    def seq_len(self) -> int:
        return self.train.steps

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else int(np.prod(self.train.y.shape[1:] or (1,)))

    def scaling(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training split: the only statistics a model may see."""
        mean, std = channel_stats(self.train)
        return mean.tolist(), std.tolist()

    def describe(self) -> str:
        sizes = f"{len(self.train)}/{len(self.val)}/{len(self.test)} train/val/test"
        kind = f"{len(self.classes)} classes" if self.task == "classification" else self.task
        return f"{self.name}: {sizes}, {self.in_channels} channel(s) x {self.seq_len} steps, {kind}"

    def loader(self, split: str, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
        """Minibatches ``(x, lengths, y)`` sliced from memory: one indexing op per batch, no collation."""
        s: Series = getattr(self, split)
        dataset = TensorDataset(torch.from_numpy(s.X), torch.from_numpy(s.lengths), torch.from_numpy(s.y))
        if shuffle:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
        else:
            sampler = SequentialSampler(dataset)
        # A last batch of one sample would break BatchNorm's training statistics: drop it.
        drop_last = shuffle and len(s) % batch_size == 1 and len(s) > 1
        return DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last), batch_size=None)

    def steps_per_epoch(self, batch_size: int) -> int:
        return max(1, math.ceil(len(self.train) / batch_size))


def _pad_to(series: Series, steps: int) -> Series:
    if series.steps >= steps:
        return series
    X = np.zeros((len(series), series.channels, steps), dtype=np.float32)
    X[:, :, : series.steps] = series.X
    return Series(X, series.lengths, series.y)


def prepare(name: str, *, task: str = "classification", val_fraction: float = 0.2, seed: int = 0) -> TaskData:
    """Load a dataset and split it; the test split is held out untouched.

    Raises:
        DataError: one line naming the dataset or value at fault.
    """
    if task not in TASKS:
        raise DataError(f"data.task: unknown task {task!r}; valid: {', '.join(TASKS)}")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction: must be between 0 and 1, got {val_fraction}")
    train, test = load_bundled(name, "train", task), load_bundled(name, "test", task)
    if train.channels != test.channels:
        raise DataError(f"data.name={name}: train has {train.channels} channels but test has {test.channels}")
    steps = max(train.steps, test.steps)
    train, test = _pad_to(train, steps), _pad_to(test, steps)
    classes: list[Any] = []
    if task == "classification":
        classes = np.unique(train.y).tolist()
        if len(classes) < 2:
            raise DataError(f"data.name={name}: a classifier needs two classes or more, found {classes}")
        unseen = sorted(set(np.unique(test.y).tolist()) - set(classes))
        if unseen:
            raise DataError(f"data.name={name}: test labels {unseen} never occur in training")
        lookup = {c: i for i, c in enumerate(classes)}
        train.y = np.array([lookup[v] for v in train.y.tolist()], dtype=np.int64)
        test.y = np.array([lookup[v] for v in test.y.tolist()], dtype=np.int64)
        fit_idx, val_idx = stratified_split(train.y, val_fraction, seed)
    else:
        train.y, test.y = train.y.astype(np.float32), test.y.astype(np.float32)
        order = np.random.default_rng(seed).permutation(len(train))
        n_val = max(1, round(val_fraction * len(train)))
        fit_idx, val_idx = np.sort(order[n_val:]), np.sort(order[:n_val])
    if len(fit_idx) < 2 or len(val_idx) < 1:
        raise DataError(f"data.name={name}: {len(train)} training series are too few to split off a validation set")
    return TaskData(task, name, train.take(fit_idx), train.take(val_idx), test, classes)


__all__ = ["DataError", "Series", "TaskData", "bundled_names", "prepare"]
