"""Training-time augmentation of a batch of series, on the batch's device.

Each kind is a searchable option (``space.training.augment``), kept only where it raises CV scores:
- ``jitter``: Gaussian noise of 0.03 and a per-series, per-channel scaling of N(1, 0.1), both in
  units of each channel's training spread (Um et al. 2017);
- ``warp``: window warping (Le Guennec et al. 2016): a random tenth of each series is stretched to
  twice or squeezed to half its length and the series is resampled to its own length (a padded
  series within its true length, its padding left zero).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hybridsearch.models.blocks import zero_padding

AUGMENTATIONS = ("none", "jitter", "warp")


def augment(kind: str, x: Tensor, spread: Tensor, lengths: Tensor | None = None) -> Tensor:
    """A randomly changed copy of ``x`` (B, C, T); ``spread`` (1, C, 1) is each channel's scale and
    ``lengths`` (B,), where given, each series' true length (the rest is zero padding)."""
    if kind == "none" or len(x) == 0:
        return x
    if kind == "jitter":
        scale = 1.0 + 0.1 * torch.randn(x.shape[0], x.shape[1], 1, device=x.device, dtype=x.dtype)
        mean = x.mean(dim=-1, keepdim=True)
        return (x - mean) * scale + mean + 0.03 * spread * torch.randn_like(x)
    if kind == "warp":
        return _window_warp(x, lengths)
    raise ValueError(f"augment: unknown kind {kind!r}; valid: {', '.join(AUGMENTATIONS)}")


def _window_warp(x: Tensor, lengths: Tensor | None = None, share: float = 0.1) -> Tensor:
    b, _, t = x.shape
    if t < 4:
        return x
    n = torch.full((b, 1), t, device=x.device) if lengths is None else lengths.to(x.device).view(b, 1)
    n = n.long().clamp(1, t)
    w = (share * n).round().clamp_min(2)
    short = n < 2 * w  # too short to warp: left as it is
    start = (torch.rand(b, 1, device=x.device) * (n - w)).floor()
    factor = torch.where(torch.rand(b, 1, device=x.device) < 0.5, 0.5, 2.0).to(x.dtype)
    factor = torch.where(short, 1.0, factor)
    # The warped series, as a function of source time: speed 1 outside the window, 1/factor inside.
    src = torch.arange(t, device=x.device).expand(b, t)
    inside = ((src >= start) & (src < start + w)).to(x.dtype)
    warped_time = torch.cumsum(1.0 + inside * (factor - 1.0), dim=1) - 1.0  # position of each source step
    # Resample each series to its n steps spread over its warped length, by linear interpolation.
    end = warped_time.gather(1, n - 1)
    out_pos = (src / (n - 1).clamp_min(1)).clamp(max=1).to(x.dtype) * end
    idx = torch.searchsorted(warped_time.contiguous(), out_pos.contiguous()).clamp(1, t - 1)
    lo, hi = warped_time.gather(1, idx - 1), warped_time.gather(1, idx)
    frac = ((out_pos - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1).unsqueeze(1)
    left = x.gather(2, (idx - 1).unsqueeze(1).expand_as(x))
    right = x.gather(2, idx.unsqueeze(1).expand_as(x))
    return zero_padding(left + frac * (right - left), lengths)


__all__ = ["AUGMENTATIONS", "augment"]
