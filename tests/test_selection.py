"""Honest selection: the ensemble is chosen on out-of-fold predictions, and no test label enters any choice."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ITALY, one_worker
from hydra import compose, initialize_config_module

from hybridsearch.config import register_configs
from hybridsearch.results._ensemble import criterion, select
from hybridsearch.tasks import CLASSIFICATION, REGRESSION

ONE = torch.ones(1, 1)


def logits(labels: np.ndarray, confidence: float = 2.0, classes: int = 2) -> np.ndarray:
    out = np.zeros((len(labels), classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = confidence
    return out


CRITERIA = [("val_acc", "maximize"), ("val_loss", "minimize")]


def test_classification_is_selected_on_log_loss_and_values_on_the_study_metric() -> None:
    assert criterion(CLASSIFICATION, "val_acc", "maximize") == ("val_loss", "minimize")
    assert criterion(REGRESSION, "val_mae", "minimize") == ("val_mae", "minimize")


@pytest.mark.parametrize(("metric", "direction"), CRITERIA)
def test_selection_leaves_out_a_candidate_that_only_adds_error(metric: str, direction: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.where(rng.random(200) < 0.85, y, 1 - y)  # 85% right
    other = np.where(rng.random(200) < 0.80, y, 1 - y)  # 80% right, its errors elsewhere
    wrong = 1 - y  # always wrong, and confident about it
    preds = [logits(good), logits(wrong, 5.0), logits(other)]
    choice = select(CLASSIFICATION, preds, y, metric=metric, direction=direction, y_std=ONE)
    assert choice.weights[1] == 0.0
    assert choice.weights.sum() == pytest.approx(1.0)
    assert choice.metrics["val_acc"] >= np.mean(good == y) - 1e-6  # never worse on OOF data than the best alone


@pytest.mark.parametrize(("metric", "direction"), CRITERIA)
def test_selection_averages_candidates_whose_errors_differ(metric: str, direction: str) -> None:
    y = np.arange(300) % 2
    # Each candidate errs on a different third; the vote of all three is always right.
    preds = []
    for third in range(3):
        labels = y.copy()
        labels[third * 100 : (third + 1) * 100] = 1 - labels[third * 100 : (third + 1) * 100]
        preds.append(logits(labels))
    choice = select(CLASSIFICATION, preds, y, metric=metric, direction=direction, y_std=ONE)
    assert (choice.weights > 0).all() and choice.metrics["val_acc"] == 1.0


def test_selection_of_values_minimises_the_metric() -> None:
    y = np.linspace(0, 1, 50).astype(np.float32)[:, None]
    close, far = y + 0.1, y + 5.0
    choice = select(REGRESSION, [far, close], y, metric="val_rmse", direction="minimize", y_std=ONE)
    assert choice.weights.tolist() == [0.0, 1.0] and choice.metrics["val_rmse"] == pytest.approx(0.1, abs=1e-5)


def test_a_weighted_ensemble_loads_with_its_weights(tmp_path: Path) -> None:
    import lightning as L

    from hybridsearch.layout import StudyLayout, checkpoint_name
    from hybridsearch.module import EnsembleModule, HybridModule, load_best

    layout = StudyLayout.of(tmp_path, "s")
    layout.ensemble.mkdir(parents=True)
    params = {"topology": "fcn", "conv_layers": 1, "conv_channels_1": 8, "conv_kernel_1": 3}
    members = []
    for number in (3, 7):
        torch.manual_seed(number)
        module = HybridModule(params, in_channels=1, n_outputs=2, seq_len=24, classes=["a", "b"]).eval()
        members.append(module)
        checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
        torch.save(
            {**checkpoint, "pytorch-lightning_version": L.__version__}, layout.ensemble / checkpoint_name(number)
        )
    layout.ensemble_weights.write_text(json.dumps({checkpoint_name(3): 0.75, checkpoint_name(7): 0.25}))
    model = load_best(layout.folder)
    assert isinstance(model, EnsembleModule) and model.weights.tolist() == [0.75, 0.25]
    x = torch.randn(5, 1, 24)
    with torch.no_grad():
        expected = 0.75 * members[0](x).softmax(-1) + 0.25 * members[1](x).softmax(-1)
        torch.testing.assert_close(model(x).softmax(-1), expected)


def run(root: Path, permute_test: bool, monkeypatch, *extra: str) -> dict:
    """A small study in this process; with ``permute_test`` the test labels are shuffled first."""
    from hybridsearch import checks
    from hybridsearch.study import run_study

    real = checks.prepare

    def prepare(cfg, *, seed):
        data = real(cfg, seed=seed)
        if permute_test:
            data.test.y[:] = np.random.default_rng(1).permutation(data.test.y)
        return data

    monkeypatch.setattr(checks, "prepare", prepare)
    register_configs()
    with initialize_config_module("hybridsearch.conf", version_base="1.3"):
        cfg = compose(
            "config",
            overrides=one_worker(
                (
                    *ITALY,
                    f"study.root={root}",
                    "study.name=honest",
                    "study.n_trials=4",
                    "trainer.max_epochs=3",
                    "study.ensemble=4",
                    "study.report=false",
                    "study.register=false",
                    "study.baseline=false",
                    "pruner=none",
                    *extra,
                )
            ),
        )
    summary = run_study(cfg)
    import optuna

    study = optuna.load_study(study_name="honest", storage=f"sqlite:///{root}/optuna.db")
    return {
        "summary": summary,
        "values": [t.value for t in study.trials],
        "epochs": [t.user_attrs["best_epoch"] for t in study.trials],
        "oof": {p.name: p.read_bytes() for p in sorted((root / "honest" / "trials").glob("*.oof.npz"))},
    }


@pytest.mark.slow
def test_permuting_the_test_labels_changes_no_choice(tmp_path: Path, monkeypatch) -> None:
    plain = run(tmp_path / "plain", False, monkeypatch)
    permuted = run(tmp_path / "permuted", True, monkeypatch)
    a, b = plain["summary"], permuted["summary"]
    assert a.best_trial == b.best_trial and a.best_params == b.best_params
    assert plain["values"] == permuted["values"] and plain["epochs"] == permuted["epochs"]
    assert plain["oof"] == permuted["oof"] and plain["oof"]
    assert a.ensemble["trials"] == b.ensemble["trials"] and a.ensemble["weights"] == b.ensemble["weights"]
    assert a.selection_score == b.selection_score
    assert a.test_metrics != b.test_metrics  # the test labels did change, and only the test scores show it


@pytest.mark.slow
def test_out_of_time_the_final_model_is_the_best_trials_bag_whose_time_was_reserved(tmp_path: Path, monkeypatch):
    from hybridsearch.results import _final

    real = _final._select

    def select(session, best, test):  # another trial weighs most
        other = next(t.number for t in session.study.trials if t.number != best.number and t.value is not None)
        chosen = {"trials": [other, best.number], "weights": [0.7, 0.3], "oof_metrics": {"val_acc": 2.0}}
        return {**real(session, best, test), **chosen}  # an OOF score no model delivers

    monkeypatch.setattr(_final, "_select", select)
    monkeypatch.setattr(_final, "bag_seconds", lambda trial, folds: 1e9)  # no other member's bag fits the time
    s = run(tmp_path, False, monkeypatch, "study.timeout=3600")["summary"]
    assert s.ensemble["trials"] == [s.best_trial] and s.ensemble["weights"] == [1.0]
    assert (tmp_path / "honest" / "ensemble" / f"trial-{s.best_trial:05d}-fold-0.ckpt").exists()
    assert list(s.ensemble["left_out"].values()) == ["out of time"]
    # The selection score is the delivered model's (the best trial alone), not the one selected.
    assert s.selection_score == pytest.approx(s.best_value, abs=1e-6)
