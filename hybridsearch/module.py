"""The one LightningModule: wraps any topology with its loss, metrics, optimiser, scaling and labels."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from hybridsearch.augment import augment
from hybridsearch.data.batches import unpadded
from hybridsearch.layout import StudyLayout
from hybridsearch.search_space import build_model
from hybridsearch.tasks import Task, task_named


class HybridModule(L.LightningModule):
    """A searched model, ready for ``Trainer.fit``, ``Trainer.predict`` and :meth:`predict`.

    Args:
        params: the trial's parameters (``topology`` plus hyperparameters).
        task: 'classification', 'regression' or 'forecasting' (see :mod:`hybridsearch.tasks`).
        in_channels, n_outputs, seq_len: the data's dimensions.
        classes: original labels, index i being class i (classification).
        x_mean, x_std: per-channel input scaling fitted on the training split.
        length_scaling: mean and std of the log true length of the training series, for data of
            unequal lengths: each series' scaled log length then enters the model as one more
            input channel (the topologies mask padding, and would otherwise not see the length).
        y_mean, y_std: per-target scaling of regression targets / forecast channels (training split).
        targets: forecasting: the input channels that are forecast.
        lr, weight_decay: AdamW settings; ``max_epochs`` sets the cosine schedule's length.
        warmup: share of ``max_epochs`` over which the learning rate rises linearly before the cosine.
        label_smoothing: of the training cross-entropy (classification; validation is scored without).
        augment: training-time augmentation of each batch (:mod:`hybridsearch.augment`).

    Example:
        >>> m = HybridModule({"topology": "fcn"}, in_channels=1, n_outputs=2, seq_len=30, classes=["a", "b"])
        >>> m.predict(np.zeros((4, 1, 30))).shape
        (4,)
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        task: str = "classification",
        in_channels: int,
        n_outputs: int | Sequence[int],
        seq_len: int,
        classes: Sequence[Any] | None = None,
        x_mean: Sequence[float] | None = None,
        x_std: Sequence[float] | None = None,
        length_scaling: Sequence[float] | None = None,
        y_mean: Sequence[float] | None = None,
        y_std: Sequence[float] | None = None,
        targets: Sequence[int] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_epochs: int = 100,
        warmup: float = 0.0,
        label_smoothing: float = 0.0,
        augment: str = "none",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.task: Task = task_named(task)
        out = n_outputs if isinstance(n_outputs, int) else tuple(n_outputs)
        self.length_scaling = None if length_scaling is None else (float(length_scaling[0]), float(length_scaling[1]))
        width = in_channels + (self.length_scaling is not None)
        self.model = build_model(dict(params), in_channels=width, n_outputs=out, seq_len=seq_len)
        self.classes = list(classes or [])
        mean = torch.tensor(x_mean if x_mean is not None else [0.0] * in_channels, dtype=torch.float32)
        std = torch.tensor(x_std if x_std is not None else [1.0] * in_channels, dtype=torch.float32)
        self.register_buffer("x_mean", mean.view(1, -1, 1))
        self.register_buffer("x_std", std.view(1, -1, 1))
        # Target statistics: regression (1, targets); forecasting (1, target channels, 1).
        view = self.task.target_view
        self.register_buffer("y_mean", torch.tensor(y_mean if y_mean is not None else [0.0]).view(*view))
        self.register_buffer("y_std", torch.tensor(y_std if y_std is not None else [1.0]).view(*view))
        self.register_buffer("targets", torch.tensor(list(targets or range(in_channels)), dtype=torch.long))
        self.seq_len = seq_len

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Raw series (B, C, T) -> logits (classification) or predictions in the targets' own units.

        Forecasting normalises each window by its own mean and spread and restores them on the
        output (RevIN, Kim et al. 2022), so a trend that leaves the training range is followed.
        """
        if self.task.windows:
            mu = x.mean(dim=-1, keepdim=True)  # (B, C, 1)
            sd = x.std(dim=-1, keepdim=True).clamp_min(1e-5) if x.shape[-1] > 1 else torch.ones_like(mu)
            out = self.model((x - mu) / sd, lengths)  # (B, targets, horizon)
            return out * sd[:, self.targets] + mu[:, self.targets]
        out = self.model(self._with_length((x - self.x_mean) / self.x_std, lengths), lengths)
        return out if self.task.classifies else out * self.y_std + self.y_mean  # (B, classes) or (B, targets)

    def _with_length(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, C, T) -> (B, C + 1, T) with each series' scaled log length as a constant channel."""
        if self.length_scaling is None:
            return x
        mean, std = self.length_scaling
        n = torch.full_like(x[:, 0, 0], x.shape[-1]) if lengths is None else lengths.to(x.dtype)  # (B,)
        channel = ((n.log() - mean) / std)[:, None, None].expand(-1, 1, x.shape[-1])
        return torch.cat([x, channel], dim=1)

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        return self.task.loss(out, y, self.y_std)

    def on_train_epoch_start(self) -> None:
        # The epoch's running sums, updated in place: assigning a Module attribute at every batch
        # costs more than the update itself on small models.
        self._epoch = {
            "loss_sum": torch.zeros((), device=self.device),
            "seen": torch.zeros((), device=self.device),
            "finite": torch.ones((), dtype=torch.bool, device=self.device),
        }

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        x, lengths, y = batch
        if self.hparams.augment != "none":
            x = augment(self.hparams.augment, x, self.x_std, lengths)
        loss = self.task.loss(self(x, lengths), y, self.y_std, smoothing=float(self.hparams.label_smoothing))
        # Nothing here waits on the device: the loss is checked on it, and read once an epoch.
        # Summed here and logged once, at the epoch's last batch: self.log at every step costs as
        # much as a small model's optimiser step.
        epoch = self._epoch
        epoch["finite"].logical_and_(torch.isfinite(loss))
        epoch["loss_sum"].add_(loss.detach() * len(x))
        epoch["seen"].add_(len(x))
        if self.trainer.is_last_batch:
            self.log("train_loss", epoch["loss_sum"] / epoch["seen"], on_step=False, on_epoch=True, batch_size=1)
        return loss

    def on_train_epoch_end(self) -> None:
        if not bool(self._epoch["finite"]):  # the epoch's one host synchronisation
            raise FloatingPointError(f"training loss is not finite at epoch {self.current_epoch}")

    def on_validation_epoch_start(self) -> None:
        self._val: list[tuple[Tensor, Tensor]] = []

    def validation_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """Returns the batch's raw outputs; the metrics are logged once, over the whole validation
        split, at the epoch's end, which keeps its outputs in ``validation_outputs``."""
        x, lengths, y = batch
        out = self(x, lengths).detach()
        self._val.append((out, y))
        return out

    def on_validation_epoch_end(self) -> None:
        out, y = (torch.cat(parts) for parts in zip(*self._val, strict=True))
        self.validation_outputs = out  # the whole split's raw outputs, in its order (for OOF scoring)
        self.log_dict(self.task.metrics(out, y, self.y_std, "val"), batch_size=len(y))

    def test_step(self, batch: Sequence[Tensor], batch_idx: int) -> None:
        x, lengths, y = batch
        self.log_dict(self.task.metrics(self(x, lengths), y, self.y_std, "test"), batch_size=len(x))

    def predict_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """Class probabilities (classification) or predicted values, for ``Trainer.predict``."""
        x, lengths = batch[0], batch[1] if len(batch) > 1 else None
        return self.task.output(self(x, lengths))

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        total = max(1, self.hparams.max_epochs)
        warm = min(total - 1, math.ceil(float(self.hparams.warmup) * total))

        def factor(epoch: int) -> float:  # linear warm-up, then cosine to zero at max_epochs
            if epoch < warm:
                return (epoch + 1) / (warm + 1)
            return 0.5 * (1.0 + math.cos(math.pi * (epoch - warm) / max(1, total - warm)))

        schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": schedule}

    @torch.no_grad()
    def predict(self, X: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """Predict from a NumPy array (n, channels, time): labels in the original label space, or values."""
        return _predict(self, X, lengths, batch_size)


class EnsembleModule(L.LightningModule):
    """Several trained models as one: class probabilities (or values) averaged with ``weights``
    (equal when not given).

    Each member keeps its own scaling; all share the task and the labels. ``Trainer.predict``
    gives the averaged probabilities; ``Trainer.fit`` fine-tunes every member.
    """

    def __init__(self, members: Sequence[HybridModule], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if weights is not None and (len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0):
            raise ValueError(f"an ensemble needs one non-negative weight per member, got {list(weights)}")
        self.members = torch.nn.ModuleList(members)
        w = torch.tensor(weights if weights is not None else [1.0] * len(members), dtype=torch.float32)
        self.register_buffer("weights", w / w.sum())
        self.task = members[0].task
        self.classes = members[0].classes
        # What callers read off a single model: the data's shape and the task.
        self.hparams.update({k: members[0].hparams[k] for k in ("task", "in_channels", "n_outputs", "seq_len")})

    @property
    def targets(self) -> Tensor:
        """Forecasting: the input channels that are forecast (the same for every member)."""
        return self.members[0].targets

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Classification: the log of the members' mean class probabilities, so that, as for one
        model's logits, ``softmax`` gives probabilities; otherwise the mean prediction."""
        return self.task.average([m(x, lengths) for m in self.members], self.weights)

    def predict_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        x, lengths = batch[0], batch[1] if len(batch) > 1 else None
        return self.task.output(self(x, lengths))

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        """Fine-tuning with ``Trainer.fit``: every member learns from the batch on its own loss."""
        x, lengths, y = batch
        loss = torch.stack([m._loss(m(x, lengths), y) for m in self.members]).mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        lr = min(float(m.hparams.lr) for m in self.members)
        return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=float(self.members[0].hparams.weight_decay))

    @torch.no_grad()
    def predict(self, X: np.ndarray, lengths: np.ndarray | None = None, batch_size: int = 256) -> np.ndarray:
        """As :meth:`HybridModule.predict`, from the averaged output."""
        return _predict(self, X, lengths, batch_size)


@torch.no_grad()
def _predict(
    module: HybridModule | EnsembleModule, X: np.ndarray, lengths: np.ndarray | None, batch_size: int
) -> np.ndarray:
    """Batched prediction from NumPy: labels in the original label space (classification), or values."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[1] != module.hparams.in_channels:
        raise ValueError(f"X must have shape (n, {module.hparams.in_channels}, time), got {X.shape}")
    was_training = module.training
    module.eval()
    outs = []
    for i in range(0, len(X), batch_size):
        x = torch.from_numpy(X[i : i + batch_size]).to(module.device)
        part = None if lengths is None else lengths[i : i + batch_size]
        lens = None if unpadded(part, X.shape[-1]) else torch.as_tensor(part, device=module.device)
        outs.append(module(x, lens).cpu())
    module.train(was_training)
    out = torch.cat(outs).numpy()
    if module.task.classifies:
        return np.asarray(module.classes, dtype=object)[out.argmax(axis=-1)].astype(type(module.classes[0]))
    return out


def load_best(
    path: str | Path, map_location: str | torch.device = "cpu", *, ensemble: bool | None = None
) -> HybridModule | EnsembleModule:
    """Load the final model of a study, or one checkpoint.

    Args:
        path: a study folder (``studies/<name>``) or a checkpoint file.
        ensemble: for a study folder: None (default) gives the study's final model, the ensemble
            of its top trials (``ensemble/``) when it has one, else ``best.ckpt``; True insists on
            the ensemble; False gives the best single model, ``best.ckpt``.

    Example:
        >>> model = load_best("studies/timeseries")  # doctest: +SKIP
        >>> model.predict(X)  # labels in the original label space  # doctest: +SKIP
    """
    path = Path(path)
    layout = StudyLayout.at(path)
    members = sorted(layout.ensemble.glob("*.ckpt")) if path.is_dir() and ensemble is not False else []
    if ensemble and not members:
        raise FileNotFoundError(f"{layout.ensemble}: no ensemble here; is study.ensemble 2 or more?")
    if members:
        weights = json.loads(layout.ensemble_weights.read_text()) if layout.ensemble_weights.exists() else {}
        return EnsembleModule(
            [load_best(m, map_location) for m in members], [weights.get(m.name, 1.0) for m in members]
        ).eval()
    ckpt = layout.best_checkpoint if path.is_dir() else path
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt}: no best model here; has the study completed a trial?")
    # Lightning's load_from_checkpoint, called on the class as it asks, through the function it
    # wraps (``__func__``): the wrapper's check that it was not called on an instance walks the
    # whole call stack with source lines (inspect.stack()): in a 2-trial GunPoint command, which
    # loads 16 checkpoints (a bag loads one per fold), 1.19 s of its 22 s, against none this way.
    module = HybridModule.load_from_checkpoint.__func__(HybridModule, ckpt, map_location=map_location)
    return module.eval()
