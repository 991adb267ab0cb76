"""Minibatches from tensors that sit on the training device: one copy per split, then indexing.

A split of UCR size is a few megabytes, so it moves to the GPU once and every batch is indexed
there: no loader workers, no collation, no host-to-device copy per step. Whether a batch holds a
padded series is decided from a host copy of the lengths, so no step waits on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from hybridsearch.data.arrays import Series


class Batches:
    """Minibatches ``(x, lengths, y)`` of a split, for ``Trainer.fit``; ``lengths`` is None in a
    batch whose series are all full length (the model's unmasked fast path).

    Args:
        series: the split.
        batch_size: series per batch.
        shuffle: a new order each epoch, from ``seed``.
        device: where the tensors live (the trainer's root device).
    """

    def __init__(
        self,
        series: Series,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.x = torch.from_numpy(series.X).to(self.device)  # (n, C, T)
        self.lengths = torch.from_numpy(series.lengths).to(self.device)  # (n,)
        self.y = torch.from_numpy(series.y).to(self.device)  # (n,) classes, (n, targets) or (n, targets, horizon)
        self.padded = series.lengths < series.steps  # on the host: which series are padded
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)
        # A last batch of one series would break BatchNorm's training statistics: drop it.
        self.drop_last = shuffle and len(series) % batch_size == 1 and len(series) > 1

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor | None, Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            padded = bool(self.padded[index.numpy()].any())  # a host array: no device sync
            on_device = index.to(self.device, non_blocking=True)
            yield self.x[on_device], self.lengths[on_device] if padded else None, self.y[on_device]


def unpadded(lengths: np.ndarray | None, steps: int) -> bool:
    """Whether host-side ``lengths`` say no series is padded (so the model may skip masking)."""
    return lengths is None or bool((np.asarray(lengths) >= steps).all())
