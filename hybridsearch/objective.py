"""One trial: sample -> build -> train each fold with pruning -> score out-of-fold -> record."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import optuna
import torch
from hydra.utils import instantiate
from mlflow.entities import Metric
from optuna_integration import PyTorchLightningPruningCallback

from hybridsearch import interrupt
from hybridsearch.budget import OutOfTime, TrialTimeLimit
from hybridsearch.data import TaskData
from hybridsearch.data.batches import unpadded
from hybridsearch.errors import one_line
from hybridsearch.layout import StudyLayout, fold_checkpoint_name
from hybridsearch.module import HybridModule
from hybridsearch.oof import ValidationRecorder, falls_short, trial_scores
from hybridsearch.ranking import best_trial, complete, rank_key, ranks_within, signs, trial_key
from hybridsearch.search_space import Space, count_parameters, model_arguments, sample, training_arguments
from hybridsearch.tracking import Tracker


class StopOnCtrlC(L.Callback):
    """Raises a Ctrl-C that was dropped on its way (see :mod:`hybridsearch.interrupt`) after the batch."""

    def on_train_batch_end(self, *args: Any) -> None:
        interrupt.check()


class Pruning(PyTorchLightningPruningCallback):
    """Optuna's Lightning pruning callback with fewer storage writes (one each, a millisecond on
    SQLite, was the largest cost per epoch outside the model on small data).

    A trial asks the pruner only at the epochs where it decides (``CachedPruner.decides_at``: the
    rungs of successive halving, every ``interval_steps`` past the warm-up for the percentile and
    median pruners) and reports there and at each new best value. The pruners read a trial's value
    at the deciding epoch and its best so far, so every decision is the one that a report each epoch
    gives (tests/test_pruning.py); benchmarks/pruning_interval.py measures the writes saved.

    Fold ``i`` of a cross-validated trial reports epoch ``e`` as step ``offset + e``, ``offset``
    the epochs its earlier folds trained, for pruners that rank trials at rungs
    (``CachedPruner.spans_folds``: successive halving): its resource is then the epochs it has
    trained over all folds, its later rungs fall in later folds, and the folds are spent on the
    trials that survive the first rungs. A step is the same training spent for every trial,
    whether its first fold stopped early or not.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, offset: int = 0, judge: bool = True) -> None:
        super().__init__(trial, monitor=monitor)
        self.offset, self.judge = offset, judge  # judge False: report, never ask to stop
        self.decides_at = getattr(trial.study.pruner, "decides_at", lambda step: True)
        self.maximize = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
        self.best = math.nan

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or score is None:  # the latter: Optuna's warning
            return super().on_validation_end(trainer, pl_module)
        self.report(self.offset + pl_module.current_epoch, score.item())

    def report(self, epoch: int, value: float) -> None:
        """Report ``value`` at ``epoch`` where it matters; raises ``TrialPruned`` if the pruner says so."""
        decides = self.decides_at(epoch)
        better = not value <= self.best if self.maximize else not value >= self.best  # NaN best: anything
        if better and math.isfinite(value):
            self.best = value
        elif not decides:
            return
        with interrupt.deferred():  # a write to the study's database, as the Tracker's are
            self._trial.report(value, step=epoch)
        if decides and self.judge and self._trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at epoch {epoch}.")


class RecordDevice(L.Callback):
    """Writes the device a trial's tensors sit on when its training starts, so that pruned and
    failed trials say where they ran too."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trial.set_user_attr("device", str(pl_module.device))
        if os.environ.get("CUDA_VISIBLE_DEVICES"):  # the GPU this worker was pinned to
            self.trial.set_user_attr("gpu", os.environ["CUDA_VISIBLE_DEVICES"])


class EpochMetrics(L.Callback):
    """Sends each epoch's train and validation metrics to the trial's MLflow run, batched so logging stays cheap."""

    def __init__(self, tracker: Tracker, run_id: str, flush_every_s: float = 10.0) -> None:
        self.tracker, self.run_id, self.flush_every_s = tracker, run_id, flush_every_s
        self.buffer: list[Metric] = []
        self.last_flush = time.monotonic()

    def _collect(self, trainer: L.Trainer, prefix: str) -> None:
        now = int(time.time() * 1000)
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefix):
                self.buffer.append(Metric(key, float(value), now, trainer.current_epoch))
        if time.monotonic() - self.last_flush > self.flush_every_s:
            self.flush()

    @interrupt.deferred()
    def flush(self) -> None:
        for i in range(0, len(self.buffer), 1000):  # MLflow's batch limit
            self.tracker.client.log_batch(self.run_id, metrics=self.buffer[i : i + 1000])
        self.buffer.clear()
        self.last_flush = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._collect(trainer, "val_")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._collect(trainer, "train_")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.flush()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.flush()


def module_for(params: Mapping[str, Any], data: TaskData, *, max_epochs: int) -> HybridModule:
    """The LightningModule of a trial's parameters, with the scaling of ``data``'s training split;
    ``max_epochs`` sets its learning-rate schedule's length."""
    x_mean, x_std = data.scaling()
    y_mean, y_std = data.target_scaling()
    return HybridModule(
        dict(params),
        task=data.task.name,
        in_channels=data.in_channels,
        n_outputs=data.n_outputs,
        seq_len=data.seq_len,
        classes=data.classes,
        x_mean=x_mean,
        x_std=x_std,
        length_scaling=data.length_scaling(),
        y_mean=y_mean,
        y_std=y_std,
        targets=data.forecast.targets if data.forecast else None,
        max_epochs=max_epochs,
        **{k: v for k, v in training_arguments(params).items() if k != "batch_size"},
    )


class Objective:
    """The function Optuna calls for each trial.

    Args:
        data: the task's splits, loaded once per worker.
        space: the parsed search space.
        trainer_cfg: keyword arguments of ``lightning.Trainer`` (with ``_target_``).
        callbacks_cfg: extra Lightning callbacks by name (with ``_target_``), built fresh each trial.
        metric, direction: what to optimise, e.g. ``val_acc`` / ``maximize``.
        layout: the study's files; kept trials' checkpoints go to its ``trials/``.
        tracker: MLflow bookkeeping, or None.
        seed: base seed; trial ``n`` initialises its weights and shuffles its batches with ``seed + n``.
        fold_seed: seeds the folds, the same for every trial of the study.
        invocation: id of the command running this trial, recorded on the trial.
        cv_folds: with k > 1, each trial trains k models, one per fold of training plus validation
            data, and is scored on their out-of-fold predictions at one shared epoch count (the
            first fold reports to the pruner, and with successive halving the others after it):
            steadier than one small validation split.
        keep: OOF predictions are kept for trials that rank in the study's top ``keep`` when they
            finish (the rule of :mod:`hybridsearch.ranking`): the ensemble's candidates.
        objectives: further objectives, minimised after the metric (multi-objective search):
            ``n_params``, ``latency_ms`` (milliseconds per series, predicting the validation set).
            Optuna cannot prune multi-objective trials, so none are pruned.
        stop_folds: forgiving early stopping of cross-validation (Bergman, Purucker and Hutter,
            "Don't Waste Your Time: Early Stopping Cross-Validation", AutoML 2024): after each fold
            but the last, a trial whose folds so far score worse than the best trial's worst fold
            is pruned, its attribute ``cv_stopped`` saying so: it would seldom have become the best.
            A topology's hearing (``unheard``) is set against the best trial of its own topology.
    """

    def __init__(
        self,
        *,
        data: TaskData,
        space: Space,
        trainer_cfg: Mapping[str, Any],
        callbacks_cfg: Mapping[str, Any],
        metric: str,
        direction: str,
        layout: StudyLayout,
        tracker: Tracker | None = None,
        seed: int | None = 0,
        fold_seed: int = 0,
        invocation: str = "",
        cv_folds: int = 1,
        keep: int = 1,
        objectives: tuple[str, ...] = (),
        stop_folds: bool = False,
    ) -> None:
        self.data, self.space, self.metric, self.direction = data, space, metric, direction
        self.trainer_cfg, self.callbacks_cfg = trainer_cfg, callbacks_cfg
        self.layout, self.tracker, self.seed, self.fold_seed = layout, tracker, seed, fold_seed
        self.invocation, self.cv_folds, self.keep = invocation, cv_folds, max(1, keep)
        self.objectives, self.stop_folds = tuple(objectives), stop_folds
        self.time_left: Callable[[], float] | None = None  # the search's clock: trials stop when it runs out
        self.time_limit: float | None = None  # seconds one trial may train, all folds (study.trial_time_limit)
        # (study, topology) -> whether that topology's next trial trains unpruned (TopologyShare.unheard)
        self.unheard: Callable[[optuna.Study, str], bool] | None = None

    def build(self, params: Mapping[str, Any], data: TaskData | None = None) -> HybridModule:
        """The LightningModule for a set of trial parameters, scaled to ``data``'s training split."""
        return module_for(params, data or self.data.for_trial(params), max_epochs=self.epoch_limit(params))

    def epoch_limit(self, params: Mapping[str, Any]) -> int:
        """A trial's most epochs: ``trainer.max_epochs``, or fewer where ``trainer.max_steps`` (optimiser
        steps over the training split) is reached first, as Lightning's Trainer counts them. Small
        data then trains for many epochs and large data for few, at about the same number of steps.
        Every fold and the refit share it, so that they follow one learning-rate schedule."""
        max_epochs, max_steps = int(self.trainer_cfg["max_epochs"]), int(self.trainer_cfg.get("max_steps") or -1)
        if max_steps <= 0:
            return max_epochs
        n_train = len(self.data.for_trial(params).train.y)
        steps_per_epoch = math.ceil(n_train / int(params.get("batch_size", 32)))
        return max(1, min(max_epochs, math.ceil(max_steps / steps_per_epoch)))

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        run_id: str | None = None

        def finish(state: str, reason: str | None = None) -> None:
            if run_id and self.tracker:
                self.tracker.end_trial(run_id, state, attrs=trial.user_attrs, reason=reason)

        with interrupt.raising():  # Ctrl-C raises from here on, and the trial records it
            try:  # whatever stops the trial is recorded on it, Ctrl-C included
                interrupt.check()
                trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
                trial.set_user_attr("invocation", self.invocation)
                params = sample(trial, self.space)
                _, notes = model_arguments(params, self.data.for_trial(params).seq_len)
                if notes:
                    trial.set_user_attr("adjustments", notes)
                trial.set_user_attr("topology", params["topology"])
                run_id = self.tracker.start_trial(trial.number, params) if self.tracker else None
                if run_id:
                    trial.set_user_attr("mlflow_run_id", run_id)
                value, attrs = self._train(trial, params, run_id)
            except optuna.TrialPruned:
                finish("PRUNED")
                raise
            except (KeyboardInterrupt, SystemExit):
                trial.set_user_attr("fail_reason", "interrupted")
                finish("FAIL", reason="interrupted")
                raise KeyboardInterrupt from None  # optuna then marks the trial FAIL and stops
            except Exception as err:
                reason = one_line(err)
                trial.set_user_attr("fail_reason", reason)
                finish("FAIL", reason=reason)
                raise
            finally:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if run_id and self.tracker:
            self.tracker.end_trial(run_id, "COMPLETE", attrs=attrs)
        return (value, *(float(attrs[name]) for name in self.objectives)) if self.objectives else value

    def fit(
        self,
        params: Mapping[str, Any],
        data: TaskData,
        *,
        seed: int | None,
        callbacks: list[L.Callback] = (),
        max_epochs: int | None = None,
        validate: bool = True,
        stop_early: bool = True,
    ) -> tuple[HybridModule, L.Trainer]:
        """Train one model of ``params`` on ``data``'s training split, validating each epoch unless
        ``validate`` is off; ``stop_early`` adds the configured callbacks (early stopping)."""
        if seed is not None:
            L.seed_everything(seed, workers=True, verbose=False)
        module = self.build(params, data)
        batch_size = int(params.get("batch_size", 32))
        overrides = {"max_epochs": max_epochs or self.epoch_limit(params), "max_steps": -1}
        extra = [instantiate(c) for c in self.callbacks_cfg.values() if c] if validate and stop_early else []
        trainer: L.Trainer = instantiate(
            {**self.trainer_cfg, **overrides},
            callbacks=[*callbacks, *extra],
            logger=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if validate else 0,
        )
        device = trainer.strategy.root_device  # the data moves there once, not per batch
        val = data.batches("val", max(batch_size, 256), device=device) if validate else None
        trainer.fit(module, data.batches("train", batch_size, shuffle=True, seed=seed or 0, device=device), val)
        return module, trainer

    def _train(self, trial: optuna.Trial, params: Mapping[str, Any], run_id: str | None) -> tuple[float, dict]:
        """Train every fold, choose one epoch count on the fold-averaged curve, score the OOF
        predictions at it (:mod:`hybridsearch.oof`). The first fold logs each epoch to MLflow and
        may stop early; the others train as many epochs as it did. The first fold reports to the
        pruner, and the others too where the pruner's rungs span folds (:class:`Pruning`)."""
        seed = None if self.seed is None else self.seed + trial.number
        data = self.data.for_trial(params)
        pool, indices, splits = data.validation_pool(self.cv_folds, self.fold_seed)
        spans_folds = getattr(trial.study.pruner, "spans_folds", False)
        judge = not (self.unheard and self.unheard(trial.study, params["topology"]))
        if not judge:
            trial.set_user_attr("unpruned", "its topology had fewer than its share of complete trials")
        # the first fold's share of study.trial_time_limit; the other folds train as many epochs
        timer = None if self.time_limit is None else TrialTimeLimit(self.time_limit / len(splits))
        start = time.perf_counter()
        recorders: list[ValidationRecorder] = []
        epochs: int | None = None
        for i, split in enumerate(splits):
            recorder = ValidationRecorder(self.metric)
            callbacks: list[L.Callback] = [recorder, StopOnCtrlC()]
            if self.time_left is not None:
                callbacks.append(OutOfTime(self.time_left))
            if i == 0:
                callbacks.append(RecordDevice(trial))
                if timer is not None:
                    callbacks.append(timer)
                if run_id and self.tracker:
                    callbacks.append(EpochMetrics(self.tracker, run_id))
            if not self.objectives and (i == 0 or spans_folds):  # Optuna prunes single-objective studies only
                callbacks.append(Pruning(trial, self.metric, offset=sum(r.epochs for r in recorders), judge=judge))
            recorders.append(recorder)
            try:
                module, _ = self.fit(
                    params,
                    split,
                    seed=None if seed is None else seed + 1000 * i,
                    callbacks=callbacks,
                    max_epochs=epochs,
                    stop_early=i == 0,
                )
                if self.stop_folds and not self.objectives and i < len(splits) - 1:
                    self._stop_folds(trial, recorders, len(splits), None if judge else params["topology"])
            except optuna.TrialPruned:
                trial.set_user_attr("epochs", sum(r.epochs for r in recorders))  # what the budget paid for it
                raise
            if i == 0 and timer is not None and timer.stopped:
                trial.set_user_attr(
                    "time_limited",
                    f"trained {recorder.epochs} of {self.epoch_limit(params)} epochs a fold: "
                    f"study.trial_time_limit={self.time_limit:g}s over {len(splits)} fold(s)",
                )
            epochs = epochs or recorder.epochs
        epoch, oof, metrics = trial_scores(data.task, recorders, indices, pool.y, self.direction, module.y_std)
        value = metrics.get(self.metric)
        if value is None:  # a metric the OOF predictions do not give: the fold-averaged curve's
            value = float(np.mean([r.values[epoch] for r in recorders]))
        if not math.isfinite(value):
            raise RuntimeError(f"no finite {self.metric} was measured in {epochs} epochs")
        trained = sum(r.epochs for r in recorders)
        attrs = {
            "n_params": count_parameters(module),
            "epochs": trained,
            "seconds_per_epoch": round((time.perf_counter() - start) / max(1, trained), 4),
            "best_epoch": epoch,  # the one epoch (0-based) of every fold; a refit trains best_epoch + 1
            "val_loss": metrics["val_loss"],  # OOF loss: breaks ties between equal scores
        }
        if len(recorders) > 1:
            attrs["fold_values"] = [r.values[epoch] for r in recorders]
        for key, val in attrs.items():
            trial.set_user_attr(key, val)
        if "latency_ms" in self.objectives:
            attrs["latency_ms"] = latency_ms(module, data)
            trial.set_user_attr("latency_ms", attrs["latency_ms"])
        if self._ranks_in_top_keep(trial, (value, *(float(attrs[name]) for name in self.objectives))):
            path = oof.save(self.layout.trial_oof(trial.number))
            trial.set_user_attr("oof", str(path))
            if run_id and self.tracker:  # other machines of the study find it here
                self.tracker.log_artifact(run_id, path)
        return value, {**trial.user_attrs, self.metric: value}

    def refit(self, params: Mapping[str, Any], epochs: int, path: Path) -> HybridModule:
        """The final model: ``params`` trained on training plus validation data for ``epochs`` epochs,
        saved to ``path``."""
        data = self.data.for_trial(params).merged()
        module, trainer = self.fit(params, data, seed=self.seed, max_epochs=max(1, epochs), validate=False)
        trainer.save_checkpoint(path, weights_only=True)
        return module.eval()

    def bag(self, number: int, params: Mapping[str, Any], epochs: int, folder: Path) -> list[Path]:
        """Trial ``number``'s cross-validation fold models, trained again (same folds, seeds and
        schedule) for ``epochs`` epochs, its chosen epoch count: the models whose out-of-fold
        predictions scored it. Saved to ``folder``; their paths."""
        seed = None if self.seed is None else self.seed + number
        _, _, splits = self.data.for_trial(params).validation_pool(self.cv_folds, self.fold_seed)
        paths = []
        for i, split in enumerate(splits):
            _, trainer = self.fit(
                params, split, seed=None if seed is None else seed + 1000 * i, max_epochs=max(1, epochs), validate=False
            )
            paths.append(folder / fold_checkpoint_name(number, i))
            trainer.save_checkpoint(paths[-1], weights_only=True)
        return paths

    def _stop_folds(
        self, trial: optuna.Trial, folds: list[ValidationRecorder], k: int, topology: str | None = None
    ) -> None:
        """Prunes the trial if its ``folds`` so far score worse than the best trial's worst fold. With
        ``topology`` (a hearing, :class:`~hybridsearch.budget.TopologyShare`) the bar is the worst fold
        of that topology's best trial: a hearing is judged within its topology, never against one that
        learns faster."""
        best = best_trial(trial.study, topology)
        bests = best.user_attrs.get("fold_values") if best else None
        if not bests:
            return
        bar = min(bests) if self.direction == "maximize" else max(bests)
        value = falls_short(folds, bar, self.direction)
        if value is not None:
            whose = f"the best {topology} trial" if topology else "the best trial"
            reason = (
                f"cross-validation stopped after {len(folds)} of {k} folds: {self.metric} {value:.4g} "
                f"is worse than the worst fold of {whose} (#{best.number}), {bar:.4g}"
            )
            trial.set_user_attr("cv_stopped", reason)
            raise optuna.TrialPruned(reason)

    def _ranks_in_top_keep(self, trial: optuna.Trial, values: tuple[float, ...]) -> bool:
        """Whether the trial ranks among the study's top ``keep`` complete trials: its weights are
        then worth keeping, for the best model or the ensemble."""
        s = signs(trial.study.directions)
        key = rank_key(values, s, trial.user_attrs.get("val_loss", math.inf), trial.number)
        return ranks_within(key, (trial_key(t, s) for t in complete(trial.study)), self.keep)


@torch.no_grad()
def latency_ms(module: HybridModule, data: TaskData, repeats: int = 3) -> float:
    """Milliseconds per series to predict the validation split in one batch (best of ``repeats``),
    waiting for the device to finish each time (CUDA runs asynchronously)."""
    module.eval()
    x = torch.from_numpy(data.val.X).to(module.device)
    lengths = None if unpadded(data.val.lengths, data.seq_len) else torch.from_numpy(data.val.lengths).to(x.device)
    module(x, lengths)  # warm-up: the first call pays for allocations
    synchronize(x.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        module(x, lengths)
        synchronize(x.device)
        times.append(time.perf_counter() - start)
    return round(1000 * min(times) / max(1, len(x)), 4)


def synchronize(device: torch.device) -> None:
    """Wait for the kernels queued on a CUDA device (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
