"""Small building blocks shared by the topologies.

Layout convention for the whole package: a batch of series is a float tensor
``x`` of shape ``(B, C, T)`` (batch, channels, time) plus an optional long
tensor ``lengths`` of shape ``(B,)`` giving each series' true length. Steps at
``t >= lengths[b]`` are padding: every block below masks them so that padding
never changes an output and never contributes to a gradient or a statistic.
``lengths=None`` means every series is ``T`` steps long.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

POOLS = ("max", "avg", "none")


def time_mask(lengths: Tensor | None, steps: int) -> Tensor | None:
    """(B, T) boolean mask of the valid steps, or None when nothing is padded."""
    if lengths is None:
        return None
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Mean over time of (B, C, T) that ignores padding -> (B, C)."""
    mask = time_mask(lengths, x.shape[-1])
    if mask is None:
        return x.mean(dim=-1)
    mask = mask[:, None, :].to(x.dtype)
    return (x * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over (B, C, T) whose batch statistics skip padded steps."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None or not self.training:
            return super().forward(x)
        m = mask[:, None, :].to(x.dtype)  # (B, 1, T)
        count = m.sum().clamp_min(2.0)
        mean = (x * m).sum(dim=(0, 2)) / count  # (C,)
        var = (((x - mean[None, :, None]) ** 2) * m).sum(dim=(0, 2)) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * count / (count - 1)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)
        x = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return x * self.weight[None, :, None] + self.bias[None, :, None]


class ConvBlock(nn.Module):
    """Conv1d ('same' padding) -> BatchNorm -> ReLU -> optional pooling."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, pool: str = "none", pool_size: int = 1
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, padding="same", bias=False)
        self.norm = MaskedBatchNorm1d(out_channels)
        self.pool_size = pool_size if pool != "none" else 1
        if self.pool_size > 1:
            cls = nn.MaxPool1d if pool == "max" else nn.AvgPool1d
            self.pool: nn.Module = cls(self.pool_size)
        else:
            self.pool = nn.Identity()

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        mask = time_mask(lengths, x.shape[-1])
        if mask is not None:
            x = x * mask[:, None, :]  # the conv then sees zeros past the end, as 'same' padding does
        h = self.pool(F.relu(self.norm(self.conv(x), mask)))  # (B, C', T // pool_size); partial windows dropped
        if lengths is not None and self.pool_size > 1:
            lengths = torch.div(lengths, self.pool_size, rounding_mode="floor").clamp_min(1)
        return h, lengths


class ConvStack(nn.Module):
    """A list of ConvBlocks, one per entry of ``channels`` / ``kernels``."""

    def __init__(
        self,
        in_channels: int,
        channels: list[int],
        kernels: list[int],
        pool: str = "none",
        pool_size: int = 1,
        pool_layers: int | None = None,
    ) -> None:
        super().__init__()
        if len(channels) != len(kernels) or not channels:
            raise ValueError("channels and kernels need the same, non-zero, number of entries")
        pool_layers = len(channels) if pool_layers is None else pool_layers
        sizes = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            ConvBlock(sizes[i], sizes[i + 1], k, pool if i < pool_layers else "none", pool_size)
            for i, k in enumerate(kernels)
        )
        self.out_channels = channels[-1]

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x, lengths


class RecurrentBlock(nn.LSTM):
    """LSTM over (B, T, F) that returns the final hidden state(s) -> (B, out_features)."""

    def __init__(
        self, input_size: int, hidden: int, layers: int = 1, bidirectional: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__(
            input_size,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_features = hidden * (2 if bidirectional else 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if lengths is not None and bool((lengths < x.shape[1]).any()):
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = super().forward(x)  # h_n: (layers * dirs, B, H)
        dirs = 2 if self.bidirectional else 1
        return h_n[-dirs:].transpose(0, 1).reshape(h_n.shape[1], -1)  # (B, dirs * H)


class Head(nn.Module):
    """Dropout -> Linear, reshaped to ``(B, *out_shape)``.

    ``out_shape`` is ``(n_classes,)`` for classification (logits),
    ``(n_targets,)`` for regression and ``(n_targets, horizon)`` for forecasting.
    """

    def __init__(self, in_features: int, out_shape: int | tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.out_shape = (out_shape,) if isinstance(out_shape, int) else tuple(out_shape)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_features, math.prod(self.out_shape))

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(self.dropout(features)).view(-1, *self.out_shape)


def pad_to(x: Tensor, steps: int) -> Tensor:
    """Right-pad (B, C, T) with zeros to at least ``steps`` steps."""
    return F.pad(x, (0, steps - x.shape[-1])) if x.shape[-1] < steps else x


def zero_padding(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Set padded steps of (B, C, T) to zero, so whatever the caller padded with is ignored."""
    mask = time_mask(lengths, x.shape[-1])
    return x if mask is None else x * mask[:, None, :]
