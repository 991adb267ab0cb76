"""The hybrid CNN+LSTM topologies, and two single-family references.

Every class has the same constructor: ``(in_channels, n_outputs, seq_len, *,
hyperparameters...)`` and the same ``forward(x, lengths=None)`` with ``x`` of
shape ``(B, C, T)`` (see :mod:`hybridsearch.models.blocks`). ``n_outputs`` is
an int (classes or regression targets) or a tuple such as ``(targets,
horizon)`` for forecasting; the output has shape ``(B, *n_outputs)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from hybridsearch.models.blocks import (
    ConvStack,
    Head,
    RecurrentBlock,
    masked_mean,
    pad_to,
    time_mask,
    zero_padding,
)

Shape = int | tuple[int, ...]


def windows(x: Tensor, lengths: Tensor | None, size: int, stride: int) -> tuple[Tensor, Tensor | None]:
    """Cut (B, C, T) into windows of ``size`` steps every ``stride`` steps -> (B, N, C, size), with
    each series' number of windows.

    The windows cover every step: a series' last window is zero-padded past its end (a series
    shorter than one window is one such window), so no step is dropped, and padding a batch to
    more steps changes no series' windows.
    """
    n = 1 + max(0, -(-(x.shape[-1] - size) // stride))  # windows that cover the T steps
    x = pad_to(zero_padding(x, lengths), (n - 1) * stride + size)
    w = x.unfold(-1, size, stride).transpose(1, 2)  # (B, N, C, size)
    if lengths is None:
        return w, None
    return w, (torch.div(lengths - size + stride - 1, stride, rounding_mode="floor") + 1).clamp(1, n)


def fold_steps(x: Tensor, lengths: Tensor | None, size: int) -> tuple[Tensor, Tensor | None]:
    """(B, C, T) -> (B, ceil(T / size), C * size): every ``size`` steps read as one step of
    ``C * size`` features (non-overlapping :func:`windows`, flattened), with each series' number
    of such steps."""
    w, n_valid = windows(x, lengths, size, size)  # (B, N, C, size)
    return w.flatten(2), n_valid


class FeatureExtractor(nn.Module):
    """LRCN (Donahue et al. 2015): a small CNN embeds each window; an LSTM reads the embeddings."""

    def __init__(
        self,
        in_channels: int,
        n_outputs: Shape,
        seq_len: int,
        *,
        patch_len: int = 16,
        patch_overlap: float = 0.0,
        conv_channels: Sequence[int] = (32,),
        conv_kernel: Sequence[int] = (3,),
        pool: str = "max",
        pool_size: int = 2,
        pool_layers: int | None = None,
        lstm_hidden: int = 64,
        lstm_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_len = patch_len
        self.stride = max(1, round(patch_len * (1.0 - patch_overlap)))
        self.cnn = ConvStack(in_channels, list(conv_channels), list(conv_kernel), pool, pool_size, pool_layers)
        self.lstm = RecurrentBlock(self.cnn.out_channels, lstm_hidden, lstm_layers, bidirectional, dropout)
        self.head = Head(self.lstm.out_features, n_outputs, dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        w, n_valid = windows(x, lengths, self.patch_len, self.stride)  # (B, N, C, P)
        B, N, C, P = w.shape
        w_lengths = None
        if n_valid is not None:  # whole padding windows are masked out of the CNN's statistics
            w_lengths = (time_mask(n_valid, N).long() * P).reshape(B * N)
        h, _ = self.cnn(w.reshape(B * N, C, P), w_lengths)  # (B * N, C', P')
        v = h.mean(dim=-1).view(B, N, -1)  # (B, N, C')
        return self.head(self.lstm(v, n_valid))


class Fusion(nn.Module):
    """Fuse a CNN feature vector ``a`` and an LSTM feature vector ``b``: concat, sum or a learned gate."""

    MODES = ("concat", "sum", "gate")

    def __init__(self, mode: str, a_features: int, b_features: int) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"fusion must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        concat = mode == "concat"
        self.project = nn.Identity() if concat else nn.Linear(b_features, a_features)
        self.gate = nn.Linear(2 * a_features, a_features) if mode == "gate" else None
        self.out_features = a_features + b_features if concat else a_features

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        b = self.project(b)
        if self.mode == "concat":
            return torch.cat([a, b], dim=-1)
        if self.gate is None:
            return a + b
        g = torch.sigmoid(self.gate(torch.cat([a, b], dim=-1)))
        return g * a + (1 - g) * b


class Parallel(nn.Module):
    """LSTM-FCN (Karim et al. 2017): a CNN branch and an LSTM branch read the same input, then fuse.

    With ``dimension_shuffle`` the LSTM reads the series transposed, as in the
    paper: ``C`` steps of ``seq_len`` values each, so input is zero-padded (or
    must fit) to ``seq_len`` steps. Without it, the LSTM reads windows of
    ``lstm_patch`` steps as one step each: hundreds of raw steps make a slow
    recurrence that learns little, so long series are cut short before it, as
    the LRCN's windows and DeepConvLSTM's pooling do (PickupGestureWiimoteZ,
    361 steps: the enqueued design's out-of-fold accuracy 0.72 on raw steps,
    0.78 on windows of 8 in half the time; benchmarks/results/recipe.md).
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: Shape,
        seq_len: int,
        *,
        conv_channels: Sequence[int] = (128, 256, 128),
        conv_kernel: Sequence[int] = (7, 5, 3),
        lstm_hidden: int = 64,
        lstm_layers: int = 1,
        bidirectional: bool = False,
        dimension_shuffle: bool = False,
        lstm_patch: int = 1,
        fusion: str = "concat",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.dimension_shuffle = dimension_shuffle
        self.lstm_patch = max(1, lstm_patch)
        self.cnn = ConvStack(in_channels, list(conv_channels), list(conv_kernel))
        lstm_input = seq_len if dimension_shuffle else in_channels * self.lstm_patch
        self.lstm = RecurrentBlock(lstm_input, lstm_hidden, lstm_layers, bidirectional, dropout)
        self.lstm_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fusion = Fusion(fusion, self.cnn.out_channels, self.lstm.out_features)
        self.head = Head(self.fusion.out_features, n_outputs, dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h, h_lengths = self.cnn(x, lengths)
        a = masked_mean(h, h_lengths)  # (B, C')
        if self.dimension_shuffle:
            if x.shape[-1] > self.seq_len:
                raise ValueError(f"series of {x.shape[-1]} steps exceed seq_len={self.seq_len}")
            b = self.lstm(pad_to(zero_padding(x, lengths), self.seq_len))  # (B, C, seq_len): C steps
        else:
            b = self.lstm(*fold_steps(x, lengths, self.lstm_patch))  # (B, T / lstm_patch, C * lstm_patch)
        return self.head(self.fusion(a, self.lstm_dropout(b)))


class Cascade(nn.Module):
    """DeepConvLSTM (Ordonez & Roggen 2016): conv + pooling over the series, an LSTM over the feature map."""

    def __init__(
        self,
        in_channels: int,
        n_outputs: Shape,
        seq_len: int,
        *,
        conv_channels: Sequence[int] = (64, 64),
        conv_kernel: Sequence[int] = (5, 5),
        pool: str = "max",
        pool_size: int = 2,
        pool_layers: int | None = None,
        lstm_hidden: int = 64,
        lstm_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cnn = ConvStack(in_channels, list(conv_channels), list(conv_kernel), pool, pool_size, pool_layers)
        self.lstm = RecurrentBlock(self.cnn.out_channels, lstm_hidden, lstm_layers, bidirectional, dropout)
        self.head = Head(self.lstm.out_features, n_outputs, dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h, h_lengths = self.cnn(x, lengths)  # (B, C', T')
        return self.head(self.lstm(h.transpose(1, 2), h_lengths))  # LSTM over (B, T', C')


class ConvLSTMLayer(nn.Module):
    """One ConvLSTM layer (Shi et al. 2015) over a sequence of 1-D feature maps.

    Input ``(B, N, C, P)``: N steps, each a map of C channels over P positions.
    The input-to-gate convolution runs for all N steps in one call; the loop
    only adds the state-to-gate convolution and applies the gates. With
    ``norm``, the input-to-gate maps are group-normalised, one group per gate,
    as a layer-normalised LSTM (Ba et al. 2016) normalises its input's share.
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int, norm: bool = True) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_conv = nn.Conv1d(in_channels, 4 * hidden, kernel, padding="same")
        self.input_norm = nn.GroupNorm(4, 4 * hidden) if norm else nn.Identity()
        self.state_conv = nn.Conv1d(hidden, 4 * hidden, kernel, padding="same", bias=False)

    def forward(self, x: Tensor, n_valid: Tensor | None = None) -> Tensor:
        B, N, C, P = x.shape
        H = self.hidden
        gates_x = self.input_norm(self.input_conv(x.reshape(B * N, C, P))).view(B, N, 4 * H, P)
        h = x.new_zeros(B, H, P)
        c = x.new_zeros(B, H, P)
        valid = None if n_valid is None else time_mask(n_valid, N)[:, :, None, None]  # (B, N, 1, 1)
        outputs = []
        for t in range(N):
            gates = gates_x[:, t] + self.state_conv(h)  # (B, 4H, P)
            ifo = torch.sigmoid(gates[:, : 3 * H])
            i, f, o = ifo.chunk(3, dim=1)
            c_new = f * c + i * torch.tanh(gates[:, 3 * H :])
            h_new = o * torch.tanh(c_new)
            if valid is not None:  # a finished series keeps its last state
                h_new = torch.where(valid[:, t], h_new, h)
                c_new = torch.where(valid[:, t], c_new, c)
            h, c = h_new, c_new
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (B, N, H, P)


class ConvGated(nn.Module):
    """ConvLSTM (Shi et al. 2015): convolutions inside the LSTM gates; the state is a feature map.

    The series is cut into non-overlapping windows of ``patch_len`` steps; each
    window is one step of the recurrence. As Shi et al. turn each 4x4 image
    patch into a 16-channel pixel, every ``patch_fold`` neighbouring steps of a
    window are folded into channels, so the state is a map of ``lstm_hidden``
    channels over ``patch_len / patch_fold`` positions: the gates' convolutions
    then cost ``patch_fold`` times less. ``gate_norm`` normalises each layer's
    input-to-gate maps (:class:`ConvLSTMLayer`); it is not searched by default.
    ``bidirectional`` adds a layer reading each series backwards beside each
    layer, as a bidirectional LSTM does (the next layer reads both); the head
    reads both directions' final states.
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: Shape,
        seq_len: int,
        *,
        patch_len: int = 16,
        patch_fold: int = 4,
        gate_kernel: int = 3,
        lstm_hidden: int = 32,
        lstm_layers: int = 1,
        dropout: float = 0.0,
        gate_norm: bool = True,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.fold = max(1, min(patch_fold, patch_len))
        self.patch_len = -(-patch_len // self.fold) * self.fold  # a whole number of folds
        dirs = 2 if bidirectional else 1
        sizes = [in_channels * self.fold] + [dirs * lstm_hidden] * lstm_layers
        self.layers = nn.ModuleList(
            ConvLSTMLayer(sizes[i], lstm_hidden, gate_kernel, gate_norm) for i in range(lstm_layers)
        )
        self.backward_layers = nn.ModuleList(
            ConvLSTMLayer(sizes[i], lstm_hidden, gate_kernel, gate_norm)
            for i in range(lstm_layers if bidirectional else 0)
        )
        self.head = Head(dirs * lstm_hidden, n_outputs, dropout)

    def steps(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(B, C, T) -> the recurrence's input (B, N, C * fold, patch_len / fold), with each series' steps."""
        seq, n_valid = windows(x, lengths, self.patch_len, self.patch_len)  # (B, N, C, P)
        B, N, C, P = seq.shape
        f = self.fold
        return seq.reshape(B, N, C, P // f, f).transpose(3, 4).reshape(B, N, C * f, P // f), n_valid

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        seq, n_valid = self.steps(x, lengths)  # (B, N, C*f, P/f)
        if not self.backward_layers:
            for layer in self.layers:
                seq = layer(seq, n_valid)  # (B, N, H, P)
            return self.head(seq[:, -1].mean(dim=-1))  # a finished series carried its last state to the end
        for forward, backward in zip(self.layers, self.backward_layers, strict=True):
            ahead = forward(seq, n_valid)
            back = reverse(backward(reverse(seq, n_valid), n_valid), n_valid)  # (B, N, H, P) in time order
            seq = torch.cat([ahead, back], dim=2)  # (B, N, 2H, P)
        # the forward state after the last step, the backward one after the first
        return self.head(torch.cat([ahead[:, -1], back[:, 0]], dim=1).mean(dim=-1))


def reverse(seq: Tensor, n_valid: Tensor | None) -> Tensor:
    """(B, N, ...) with each series' first ``n_valid`` steps in reverse order; its padding stays last."""
    if n_valid is None:
        return seq.flip(1)
    steps = torch.arange(seq.shape[1], device=seq.device)[None, :]
    order = torch.where(steps < n_valid[:, None], n_valid[:, None] - 1 - steps, steps)  # (B, N)
    return seq.gather(1, order.view(*order.shape, *[1] * (seq.dim() - 2)).expand_as(seq))


class LSTMOnly(nn.Module):
    """Reference: an LSTM over the raw series, no convolution."""

    def __init__(
        self,
        in_channels: int,
        n_outputs: Shape,
        seq_len: int,
        *,
        lstm_hidden: int = 64,
        lstm_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.lstm = RecurrentBlock(in_channels, lstm_hidden, lstm_layers, bidirectional, dropout)
        self.head = Head(self.lstm.out_features, n_outputs, dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.lstm(x.transpose(1, 2), lengths))  # (B, T, C)


class FCN(nn.Module):
    """Reference: a fully convolutional network (Wang et al. 2017), no recurrence."""

    def __init__(
        self,
        in_channels: int,
        n_outputs: Shape,
        seq_len: int,
        *,
        conv_channels: Sequence[int] = (128, 256, 128),
        conv_kernel: Sequence[int] = (7, 5, 3),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cnn = ConvStack(in_channels, list(conv_channels), list(conv_kernel))
        self.head = Head(self.cnn.out_channels, n_outputs, dropout)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h, h_lengths = self.cnn(x, lengths)
        return self.head(masked_mean(h, h_lengths))


TOPOLOGIES: dict[str, type[nn.Module]] = {
    "feature_extractor": FeatureExtractor,
    "parallel": Parallel,
    "cascade": Cascade,
    "conv_gated": ConvGated,
    "lstm": LSTMOnly,
    "fcn": FCN,
}
HYBRIDS = ("feature_extractor", "parallel", "cascade", "conv_gated")
