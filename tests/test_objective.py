"""The objective's bookkeeping, driven through optuna's ask/tell and optimize with training stubbed out,
plus one real two-epoch trial."""

import os
import signal
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from helpers import load
from mlflow import MlflowClient
from omegaconf import OmegaConf

from hybridsearch import interrupt
from hybridsearch.errors import ConfigError
from hybridsearch.layout import StudyLayout
from hybridsearch.objective import Objective
from hybridsearch.oof import OutOfFold
from hybridsearch.progress import Progress
from hybridsearch.search_space import parse_space
from hybridsearch.session import StopAt, _load_study, claimed, finished
from hybridsearch.tracking import Tracker

SPACE = parse_space(yaml.safe_load((Path(__file__).parents[1] / "conf" / "space" / "default.yaml").read_text()))
TRAINER = {
    "_target_": "lightning.pytorch.Trainer",
    "max_epochs": 2,
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


@pytest.fixture(scope="module")
def data():
    return load("ItalyPowerDemand")


@pytest.fixture(scope="module")
def tracker(tmp_path_factory) -> Tracker:
    root = tmp_path_factory.mktemp("mlflow")
    t = Tracker(f"sqlite:///{root}/mlflow.db", "bookkeeping", str(root / "artifacts"))
    t.start_parent("parent", params={}, tags={})
    return t


def make_objective(data, tracker, tmp_path, **kwargs) -> Objective:
    return Objective(
        data=data,
        space=SPACE,
        trainer_cfg=TRAINER,
        callbacks_cfg={},
        metric="val_acc",
        direction="maximize",
        layout=StudyLayout.of(tmp_path, "study"),
        tracker=tracker,
        **kwargs,
    )


def test_failed_trial_keeps_its_reason_in_optuna_and_mlflow_and_the_study_goes_on(data, tracker, tmp_path, monkeypatch):
    outcomes = iter([FloatingPointError("training loss is nan at epoch 3"), 0.5, 0.75])

    def fake_train(self, trial, params, run_id):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome, {"epochs": 1}

    monkeypatch.setattr(Objective, "_train", fake_train)
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(data, tracker, tmp_path), n_trials=3, catch=(Exception,))
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE"]
    failed = study.trials[0]
    assert failed.user_attrs["fail_reason"] == "FloatingPointError: training loss is nan at epoch 3"
    run = tracker.client.get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["state"] == "FAIL"
    assert "nan at epoch 3" in run.data.tags["fail_reason"]
    assert run.data.tags["mlflow.parentRunId"] == tracker.parent_run_id
    done = tracker.client.get_run(study.trials[2].user_attrs["mlflow_run_id"])
    assert done.info.status == "FINISHED" and done.data.tags["trial_number"] == "2"
    assert set(study.trials[2].params) <= set(done.data.params)
    assert study.best_value == 0.75


def test_pruned_trial_is_tagged_pruned(data, tracker, tmp_path, monkeypatch):
    def prune(self, trial, params, run_id):
        raise optuna.TrialPruned("epoch 4")

    monkeypatch.setattr(Objective, "_train", prune)
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(data, tracker, tmp_path), n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED"
    run = tracker.client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.tags["state"] == "PRUNED" and run.info.status == "KILLED"


def test_trial_records_only_the_parameters_of_its_topology(data, tracker, tmp_path, monkeypatch):
    monkeypatch.setattr(Objective, "_train", lambda self, trial, params, run_id: (0.5, {}))
    study = optuna.create_study(direction="maximize")
    objective = make_objective(data, tracker, tmp_path)
    study.enqueue_trial({"topology": "conv_gated", "patch_len": 32})
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.user_attrs["topology"] == "conv_gated"
    assert "conv_layers" not in trial.params and "fusion" not in trial.params
    # ItalyPowerDemand has 24 steps: the 32-step window is clamped and the trial says so.
    assert trial.user_attrs["adjustments"] == ["patch_len 32 -> 24: longer than the series"]


CASCADE = {
    "topology": "cascade",
    "conv_layers": 1,
    "conv_channels_1": 16,
    "conv_kernel_1": 3,
    "pool": "none",
    "lstm_hidden": 16,
    "lstm_layers": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "lr": 1e-2,
    "weight_decay": 1e-5,
    "batch_size": 16,
}


def test_a_real_trial_reports_each_epoch_and_keeps_its_out_of_fold_predictions(data, tracker, tmp_path):
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(CASCADE)
    study.optimize(make_objective(data, tracker, tmp_path), n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "COMPLETE", trial.user_attrs
    assert trial.intermediate_values.keys() == {0, 1}  # one report per epoch, for the pruner
    # One split: the score is the validation predictions' accuracy at the chosen epoch.
    epoch = trial.user_attrs["best_epoch"]
    assert trial.value == pytest.approx(trial.intermediate_values[epoch])
    assert trial.value == max(trial.intermediate_values.values())
    assert trial.user_attrs["epochs"] == 2 and trial.user_attrs["n_params"] > 0
    assert trial.user_attrs["device"] == "cpu"  # written when training started
    oof = OutOfFold.load(trial.user_attrs["oof"])
    assert oof.pred.shape == (len(data.val), 2) and (oof.y == data.val.y).all()
    assert np.mean(oof.pred.argmax(-1) == oof.y) == pytest.approx(trial.value)
    history = tracker.client.get_metric_history(trial.user_attrs["mlflow_run_id"], "val_acc")
    assert [m.step for m in history] == [0, 1]
    assert [m.value for m in history] == pytest.approx([trial.intermediate_values[0], trial.intermediate_values[1]])
    assert len(tracker.client.get_metric_history(trial.user_attrs["mlflow_run_id"], "train_loss")) == 2


def test_progress_counts_this_invocations_states_and_shows_the_best_value():
    study = optuna.create_study(direction="maximize")
    other = study.ask()  # another machine's trial: not counted
    other.set_user_attr("invocation", "elsewhere")
    study.tell(other, 0.1)
    progress = Progress(3, "val_acc", invocation="mine")
    for value, state in [(0.5, "COMPLETE"), (None, "PRUNED"), (0.9, "COMPLETE")]:
        trial = study.ask()
        trial.set_user_attr("invocation", "mine")
        study.tell(trial, value, state=optuna.trial.TrialState[state])
        progress(study, study.trials[-1])
    assert progress.counts == {"COMPLETE": 2, "PRUNED": 1}
    assert progress.bar.n == 3
    assert "best val_acc 0.9000" in progress.bar.postfix
    progress.close()


def test_stop_at_counts_only_this_invocations_finished_trials():
    study = optuna.create_study()
    stop = StopAt(2, "mine")
    for invocation, state in [("mine", "COMPLETE"), ("other", "COMPLETE"), ("mine", "FAIL"), ("mine", "PRUNED")]:
        trial = study.ask()
        trial.set_user_attr("invocation", invocation)
        study.tell(trial, 0.0 if state == "COMPLETE" else None, state=optuna.trial.TrialState[state])
    # a FAIL without a reason is a lost worker's trial, queued again: it does not count
    assert finished(study.trials, "mine") == 2
    failed = study.ask()
    failed.set_user_attr("invocation", "mine")
    failed.set_user_attr("fail_reason", "ValueError: x")  # the trial's own error: it counts
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    assert finished(study.trials, "mine") == 3
    stopped = []
    study.stop = lambda: stopped.append(True)
    stop(study, study.trials[-1])
    assert stopped


def test_stop_at_counts_another_workers_running_trial_so_n_trials_is_not_overrun():
    study = optuna.create_study()
    stop = StopAt(3, "mine")
    stopped = []
    study.stop = lambda: stopped.append(True)
    for _ in range(2):
        done = study.ask()
        done.set_user_attr("invocation", "mine")
        study.tell(done, 0.5)
    stop(study, study.trials[-1])
    assert not stopped and claimed(study.trials, "mine") == 2  # a third trial may start
    running = study.ask()  # another worker's trial, still training
    assert claimed(study.trials, "mine") == 2  # not this invocation's until the objective marks it
    running.set_user_attr("invocation", "mine")
    assert finished(study.trials, "mine") == 2 and claimed(study.trials, "mine") == 3
    stop(study, study.trials[-2])
    assert stopped  # the running trial is the third: no fourth starts


def test_resuming_refuses_a_study_of_other_data(data, tmp_path):
    from dataclasses import replace

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    cfg = OmegaConf.create({"study": {"name": "s", "seed": 0}})
    study = _load_study(cfg, storage, data, "val_acc", "maximize", 5)
    study.add_trial(optuna.trial.create_trial(value=0.5))
    again = _load_study(cfg, storage, data, "val_acc", "maximize", 5)
    assert len(again.trials) == 1 and again.user_attrs["dataset"] == "ItalyPowerDemand"
    with pytest.raises(ConfigError, match="its dataset is ItalyPowerDemand, not GunPoint"):
        _load_study(cfg, storage, load("GunPoint"), "val_acc", "maximize", 5)
    # The same name, other contents: one training label changed.
    y = data.train.y.copy()
    y[0] = 1 - y[0]
    changed = replace(data, train=replace(data.train, y=y))
    with pytest.raises(ConfigError, match=r"data contents \(hash of the splits\)"):
        _load_study(cfg, storage, changed, "val_acc", "maximize", 5)
    with pytest.raises(ConfigError, match=r"study\.seed"):
        _load_study(OmegaConf.create({"study": {"name": "s", "seed": 1}}), storage, data, "val_acc", "maximize", 5)
    with pytest.raises(ConfigError, match=r"data\.cv_folds"):
        _load_study(cfg, storage, data, "val_acc", "maximize", 3)
    with pytest.raises(ConfigError, match=r"study\.direction"):
        _load_study(cfg, storage, data, "val_acc", "minimize", 5)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 1


def test_mlflow_metrics_land_in_the_tracker(tracker):
    run_id = tracker.start_trial(99, {"topology": "lstm"})
    tracker.log_metrics(run_id, {"x": 1.0}, step=3)
    assert MlflowClient(tracker.uri).get_metric_history(run_id, "x")[0].step == 3


def test_cross_validated_trial_scores_its_out_of_fold_predictions_at_one_epoch(data, tracker, tmp_path):
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(CASCADE)
    study.optimize(make_objective(data, tracker, tmp_path, cv_folds=3), n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "COMPLETE", trial.user_attrs
    folds = trial.user_attrs["fold_values"]  # each fold's accuracy at the one chosen epoch
    sizes = [len(i) for i in data.fold_indices(3, 0)]
    assert len(folds) == 3
    assert trial.value == pytest.approx(sum(f * n for f, n in zip(folds, sizes, strict=True)) / sum(sizes))
    assert trial.user_attrs["epochs"] == 6  # 2 epochs per fold
    assert trial.intermediate_values.keys() == {0, 1}  # the first fold reports each epoch, for pruning
    oof = OutOfFold.load(trial.user_attrs["oof"])
    assert len(oof.y) == len(data.train) + len(data.val)  # every series of the pool, predicted once
    assert np.mean(oof.pred.argmax(-1) == oof.y) == pytest.approx(trial.value)


def test_every_fold_trains_the_epochs_of_the_first_which_may_stop_early(data, tracker, tmp_path, monkeypatch):
    from hybridsearch.oof import ValidationRecorder

    epochs = []
    real = ValidationRecorder.on_validation_end

    def record(self, trainer, pl_module):
        real(self, trainer, pl_module)
        epochs.append((id(self), trainer.current_epoch))

    monkeypatch.setattr(ValidationRecorder, "on_validation_end", record)
    trainer = {**TRAINER, "max_epochs": 30}
    stop = {
        "stop": {
            "_target_": "lightning.pytorch.callbacks.EarlyStopping",
            "monitor": "val_loss",
            "patience": 1,
            "min_delta": 10.0,
        }
    }  # stops after 2 epochs: no epoch improves the loss by 10
    objective = make_objective(data, tracker, tmp_path, cv_folds=3)
    objective.trainer_cfg, objective.callbacks_cfg = trainer, stop
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(CASCADE)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state.name == "COMPLETE", study.trials[0].user_attrs
    per_fold = {}
    for recorder, epoch in epochs:
        per_fold.setdefault(recorder, []).append(epoch)
    assert [len(v) for v in per_fold.values()] == [2, 2, 2]  # one epoch count for all folds
    assert study.trials[0].user_attrs["best_epoch"] in (0, 1)


def test_successive_halving_counts_epochs_over_folds_and_may_stop_a_trial_in_a_later_fold(data, tracker, tmp_path):
    from hybridsearch.storage import CachedPruner

    class PruneInTheSecondFold(optuna.pruners.SuccessiveHalvingPruner):
        def prune(self, study, trial):  # rungs at steps 1, 2, 4: fold 0's second epoch, fold 1's first, ...
            return trial.last_step >= 2  # 2 epochs a fold: step 2 is the second fold's first epoch

    objective = make_objective(data, tracker, tmp_path, cv_folds=3)
    runs = {}
    for name, pruner in [
        ("halving", PruneInTheSecondFold(min_resource=1, reduction_factor=2)),
        ("percentile", optuna.pruners.PercentilePruner(25.0, n_startup_trials=0, n_warmup_steps=0)),
    ]:
        study = optuna.create_study(direction="maximize", pruner=CachedPruner(pruner))
        study.enqueue_trial(CASCADE)
        study.optimize(objective, n_trials=1)
        runs[name] = study.trials[0]
    halved = runs["halving"]
    assert halved.state.name == "PRUNED" and max(halved.intermediate_values) == 2
    assert halved.user_attrs["epochs"] == 3  # fold 0's two epochs and fold 1's first: its folds were not all spent
    assert runs["percentile"].state.name == "COMPLETE"  # the percentile pruner judges the first fold only
    assert max(runs["percentile"].intermediate_values) <= 1


def test_stop_folds_prunes_a_trial_whose_folds_so_far_fall_below_the_best_trials_worst_fold(data, tracker, tmp_path):
    def run(
        worst_fold_of_the_best: float, stop_folds: bool = True, unheard: bool = False, best_of: str = "parallel"
    ) -> optuna.trial.FrozenTrial:
        objective = make_objective(data, tracker, tmp_path, cv_folds=3, stop_folds=stop_folds)
        objective.metric, objective.direction = "val_loss", "minimize"  # a loss is never 0: ranks certainly
        objective.unheard = lambda study, topology: unheard
        study = optuna.create_study(direction="minimize")
        best = {"fold_values": [0.0, worst_fold_of_the_best, 0.0], "val_loss": 0.0}
        topology = {"topology": optuna.distributions.CategoricalDistribution(["parallel", "cascade"])}
        study.add_trial(
            optuna.trial.create_trial(value=0.0, user_attrs=best, params={"topology": best_of}, distributions=topology)
        )
        study.enqueue_trial(CASCADE)
        study.optimize(objective, n_trials=1)
        return study.trials[-1]

    stopped = run(0.0)
    assert stopped.state.name == "PRUNED"
    assert stopped.user_attrs["epochs"] == 2  # the first fold's 2 epochs; the other two folds were not spent
    assert "after 1 of 3 folds" in stopped.user_attrs["cv_stopped"]
    assert "best trial (#0), 0" in stopped.user_attrs["cv_stopped"]
    assert run(1e9).state.name == "COMPLETE"  # better than the best trial's worst fold: forgiven
    assert run(0.0, stop_folds=False).state.name == "COMPLETE"
    # a topology's hearing is set against its own topology only: none here
    assert run(0.0, unheard=True).state.name == "COMPLETE"
    heard_within = run(0.0, unheard=True, best_of="cascade")  # the trial is a cascade
    assert heard_within.state.name == "PRUNED"
    assert "best cascade trial (#0), 0" in heard_within.user_attrs["cv_stopped"]


def test_folds_that_tie_the_bar_in_float32_do_not_fall_short():
    from hybridsearch.oof import ValidationRecorder, falls_short

    def fold(*values: float) -> ValidationRecorder:
        r = ValidationRecorder("val_acc")
        r.values, r.losses = [float(np.float32(v)) for v in values], [1.0] * len(values)
        r.outputs = [np.zeros((1, 2))] * len(values)  # one validation per epoch
        return r

    bar = float(np.float32(0.8))
    assert falls_short([fold(0.9), fold(0.7)], bar, "maximize") is None  # 0.79999998 against 0.80000001
    assert falls_short([fold(0.5, 0.9), fold(0.6, 0.8)], bar, "maximize") is None  # at the folds' best epoch, 0.85
    assert falls_short([fold(0.9), fold(0.6)], bar, "maximize") == pytest.approx(0.75)
    assert falls_short([fold(0.9), fold(0.6)], bar, "minimize") is None


def test_every_trial_is_scored_on_the_same_folds(data, tracker, tmp_path, monkeypatch):
    from hybridsearch.data import TaskData

    seen = []
    real = TaskData.validation_pool

    def spy(self, k, seed):
        seen.append([i.tolist() for i in real(self, k, seed)[1]])
        return real(self, k, seed)

    monkeypatch.setattr(TaskData, "validation_pool", spy)
    study = optuna.create_study(direction="maximize")
    for lr in (1e-2, 1e-3):
        study.enqueue_trial({**CASCADE, "lr": lr})
    study.optimize(make_objective(data, tracker, tmp_path, cv_folds=3, seed=7, fold_seed=7), n_trials=2)
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0] == [i.tolist() for i in data.fold_indices(3, 7)]
    assert seen[0] != [i.tolist() for i in data.fold_indices(3, 8)]  # the seed matters


def test_refit_trains_on_training_plus_validation_data(data, tracker, tmp_path):
    objective = make_objective(data, tracker, tmp_path)
    model = objective.refit(CASCADE, epochs=2, path=tmp_path / "refit.ckpt")
    assert (tmp_path / "refit.ckpt").exists()
    assert model.predict(data.test.X).shape == (len(data.test),)
    merged = data.merged()
    assert model.x_mean.flatten().tolist() == pytest.approx(merged.scaling()[0])


def test_cached_pruner_decides_as_its_pruner_while_reading_the_study_once_per_trial(monkeypatch):
    from hybridsearch.storage import CachedPruner

    inner = optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", pruner=CachedPruner(inner))
    reference = optuna.create_study(direction="maximize", pruner=inner)
    for s in (study, reference):
        for curve in ([0.5, 0.6, 0.7], [0.4, 0.8, 0.9], [0.6, 0.7, 0.8]):
            trial = s.ask()
            for step, value in enumerate(curve):
                trial.report(value, step)
            s.tell(trial, curve[-1])
    reads = []
    real = optuna.Study.get_trials
    monkeypatch.setattr(optuna.Study, "get_trials", lambda self, *a, **k: reads.append(1) or real(self, *a, **k))
    decisions = {}
    for name, s in (("cached", study), ("plain", reference)):
        trial = s.ask()
        decisions[name] = []
        for step, value in enumerate([0.55, 0.3, 0.2]):
            trial.report(value, step)
            decisions[name].append(trial.should_prune())
        if name == "cached":
            cached_reads, reads[:] = len(reads), []
    assert decisions["cached"] == decisions["plain"] and any(decisions["plain"])
    assert cached_reads == 1 and len(reads) == 3  # once per trial, instead of at every step


def test_ensemble_averages_its_members_probabilities(data):

    from hybridsearch.module import EnsembleModule, HybridModule

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(
            HybridModule(
                {"topology": "fcn", "conv_layers": 1, "conv_channels_1": 8, "conv_kernel_1": 3},
                in_channels=1,
                n_outputs=2,
                seq_len=24,
                classes=data.classes,
            ).eval()
        )
    ensemble = EnsembleModule(members).eval()
    x = torch.from_numpy(data.test.X[:16])
    with torch.no_grad():
        mean = (members[0](x).softmax(-1) + members[1](x).softmax(-1)) / 2
        torch.testing.assert_close(ensemble(x).softmax(-1), mean)  # log-probabilities, like logits
        torch.testing.assert_close(ensemble.predict_step((x,), 0), mean)
    labels = ensemble.predict(data.test.X[:16])
    assert labels.tolist() == [data.classes[i] for i in mean.argmax(-1).tolist()]


def test_one_rule_ranks_trials_and_epochs_and_picks_the_weights_to_keep(data, tracker, tmp_path, monkeypatch):
    """Equal accuracies (common on small validation sets) are ordered by validation loss, the same
    way by the ranking, the checkpoint keeper and the best epoch."""
    from hybridsearch.oof import ValidationRecorder, choose_epoch
    from hybridsearch.ranking import best_trial, ranked

    outcomes = iter([(0.9, 0.5), (0.9, 0.3), (0.8, 0.1), (0.9, 0.4)])  # (accuracy, val_loss)

    def fake_train(self, trial, params, run_id):
        value, loss = next(outcomes)
        trial.set_user_attr("val_loss", loss)
        if self._ranks_in_top_keep(trial, (value,)):
            trial.set_user_attr("oof", f"trial-{trial.number}")
        return value, {}

    monkeypatch.setattr(Objective, "_train", fake_train)
    study = optuna.create_study(direction="maximize")
    study.optimize(make_objective(data, tracker, tmp_path, keep=2), n_trials=4)
    assert [t.number for t in ranked(study)] == [1, 3, 0, 2]
    assert best_trial(study).number == 1
    # Kept when they finished in the top 2: #0 (first), #1 (ahead of #0), not #2, #3 (ahead of #0).
    assert [t.number for t in study.trials if "oof" in t.user_attrs] == [0, 1, 3]

    # The epoch shared by a trial's folds: the fold-averaged curve's best, by the same rule.
    folds = []
    for curve in ([(0.9, 0.5), (0.9, 0.3), (0.8, 0.1), (0.9, 0.3)], [(0.9, 0.5), (0.9, 0.3), (1.0, 0.1), (0.9, 0.3)]):
        recorder = ValidationRecorder("val_acc")
        recorder.outputs = [np.zeros((1, 2))] * len(curve)
        recorder.values, recorder.losses = [a for a, _ in curve], [loss for _, loss in curve]
        folds.append(recorder)
    assert choose_epoch(folds[:1], "maximize") == 1  # the earlier of two equal epochs
    assert choose_epoch(folds, "maximize") == 2  # the fold-averaged curve, not one fold's


def test_cv_folds_auto_cross_validates_small_training_sets_only() -> None:
    from dataclasses import replace

    import numpy as np

    from hybridsearch.checks import resolve_cv_folds

    small = load("GunPoint")  # 50 labelled series
    large = replace(small, train=small.train.take(np.arange(600) % len(small.train)))
    assert resolve_cv_folds("auto", small) == 5
    assert resolve_cv_folds("auto", large) == 1
    assert resolve_cv_folds("auto", load("airline", task="forecasting")) == 1
    assert resolve_cv_folds(3, small) == 3
    for bad in (0, "5", 2.5, True):
        with pytest.raises(ConfigError, match=r"data\.cv_folds"):
            resolve_cv_folds(bad, small)


def test_a_bag_is_the_very_fold_models_whose_out_of_fold_predictions_scored_the_trial(data, tracker, tmp_path):
    from hybridsearch.module import load_best

    objective = make_objective(data, tracker, tmp_path, cv_folds=3, seed=3)
    objective.trainer_cfg = {**TRAINER, "max_epochs": 4}
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(CASCADE)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    oof = OutOfFold.load(trial.user_attrs["oof"])
    paths = objective.bag(trial.number, trial.params, trial.user_attrs["best_epoch"] + 1, tmp_path)
    assert [p.name for p in paths] == [f"trial-00000-fold-{i}.ckpt" for i in range(3)]
    pool, indices, _ = data.validation_pool(3, 0)
    for path, rows in zip(paths, indices, strict=True):
        model = load_best(path)
        with torch.no_grad():
            logits = model(torch.from_numpy(pool.X[rows]))
        assert logits.numpy() == pytest.approx(oof.pred[rows], abs=1e-4)  # the same model, retrained


class CtrlCWhileSampling(optuna.samplers.RandomSampler):
    """Ctrl-C lands inside ``study.ask()``: the trial exists, its sampling is under way."""

    def before_trial(self, study, trial):
        super().before_trial(study, trial)
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_inside_optunas_ask_fails_the_new_trial_as_interrupted_and_stops(data, tracker, tmp_path, monkeypatch):
    monkeypatch.setattr(Objective, "_train", lambda self, trial, params, run_id: (0.5, {"epochs": 1}))
    study = optuna.create_study(direction="maximize", sampler=CtrlCWhileSampling(seed=0))
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        study.optimize(make_objective(data, tracker, tmp_path), n_trials=5, callbacks=[interrupt.stop_study])
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]  # none left RUNNING
    assert study.trials[1].user_attrs["fail_reason"] == "interrupted"


def test_ctrl_c_after_a_trial_stops_the_study_before_the_next(data, tracker, tmp_path, monkeypatch):
    monkeypatch.setattr(Objective, "_train", lambda self, trial, params, run_id: (0.5, {"epochs": 1}))

    def ctrl_c(study, trial):  # Ctrl-C while Optuna runs the callbacks of trial 0
        if trial.number == 0:
            os.kill(os.getpid(), signal.SIGINT)

    study = optuna.create_study(direction="maximize")
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        study.optimize(make_objective(data, tracker, tmp_path), n_trials=5, callbacks=[ctrl_c, interrupt.stop_study])
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
