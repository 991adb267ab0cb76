"""End to end: the command line in a subprocess, in a temporary folder, with a tiny budget."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from helpers import QUICK, TINY, one_error_line, run_cli
from mlflow import MlflowClient

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_storage_mlflow_summary_and_load_best_agree(tiny_study) -> None:
    cwd, first, second = tiny_study
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((cwd / "studies" / "tiny" / "summary.json").read_text())
    assert summary["study"] == "tiny" and summary["metric"] == "val_acc" and summary["direction"] == "maximize"
    assert summary["storage"] == "sqlite:///studies/optuna.db"

    # Optuna: the second run added its trials to the same study.
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{cwd}/studies/optuna.db")
    assert len(study.trials) == 5
    assert sum(summary["trials"].values()) == 5
    assert summary["best_value"] == pytest.approx(study.best_value)
    ties = [t for t in study.trials if t.value == study.best_value]
    chosen = study.trials[summary["best_trial"]]  # among equal scores, the lowest validation loss
    assert chosen in ties and chosen.user_attrs["val_loss"] == min(t.user_attrs["val_loss"] for t in ties)
    assert summary["best_params"] == chosen.params and "topology" in summary["best_params"]

    # MLflow: one experiment, a parent run per invocation, a nested run per trial with the trial's state.
    client = MlflowClient(f"sqlite:///{cwd}/studies/mlflow.db")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2 and len(children) == 5
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {p.info.run_id for p in parents}
    by_number = {int(r.data.tags["trial_number"]): r for r in children}
    for trial in study.trials:
        run = by_number[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.tags["state"] == trial.state.name
        assert run.data.params["topology"] == trial.params["topology"]
        assert client.get_metric_history(run.info.run_id, "val_acc")
    assert summary["mlflow_run_id"] == chosen.user_attrs["mlflow_run_id"]
    parent = client.get_run(summary["mlflow_parent_run_id"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best.ckpt", "summary.json"} <= artifacts
    assert parent.data.metrics["test_accuracy"] == pytest.approx(summary["test_metrics"]["accuracy"])

    # The best model reloads and scores what the summary says on the test split.
    from aeon.datasets import load_classification

    from hybridsearch import EnsembleModule, HybridModule, load_best

    model = load_best(cwd / "studies" / "tiny")
    X, y = load_classification("ItalyPowerDemand", split="test")
    assert np.mean(model.predict(X) == y) == pytest.approx(summary["test_metrics"]["accuracy"])
    assert summary["checkpoint"] == "studies/tiny/best.ckpt"
    # The best trial, refit on train + validation data for its chosen epoch count: best.ckpt.
    assert summary["refit_epochs"] == summary["best_attrs"]["best_epoch"] + 1
    single = load_best(cwd / "studies" / "tiny", ensemble=False)
    assert isinstance(single, HybridModule)
    assert np.mean(single.predict(X) == y) == pytest.approx(summary["single_test_metrics"]["accuracy"])
    # study.ensemble (10 by default): greedy selection on the candidates' out-of-fold predictions.
    ensemble = summary["ensemble"]
    assert set(ensemble["trials"]) <= set(ensemble["candidates"]) and sum(ensemble["weights"]) == pytest.approx(
        1.0, abs=1e-3
    )
    assert summary["best_trial"] in ensemble["candidates"] and len(ensemble["candidates"]) >= 2
    # study.final_fit=bag (the default): each selected trial is its 5 fold models, trained again to
    # its chosen epoch, so the final model is an ensemble even of one trial.
    assert ensemble["fit"] == "bag" and summary["cv_folds"] == 5
    assert summary["final"] == "ensemble" and isinstance(model, EnsembleModule)
    assert len(model.members) == 5 * len(ensemble["trials"])
    by_number = [w / 5 for _, w in sorted(zip(ensemble["trials"], ensemble["weights"], strict=True)) for _ in range(5)]
    assert model.weights.tolist() == pytest.approx(by_number, abs=1e-3)  # members load in trial, then fold order
    assert summary["test_metrics"] == ensemble["test_metrics"]
    assert summary["selection_score"] == pytest.approx(ensemble["oof_metrics"]["val_acc"])
    optimism = summary["optimism"]
    assert optimism["metric"] == "accuracy"
    assert optimism["value"] == pytest.approx(summary["selection_score"] - summary["test_metrics"]["accuracy"])
    # The reference baseline, on the same folds and on test.
    rocket = summary["baselines"]["minirocket"]
    assert set(rocket["cv"]) == set(rocket["test"]) == {"accuracy"}
    assert parent.data.metrics["minirocket_test_accuracy"] == pytest.approx(rocket["test"]["accuracy"])

    # The final printout names the best architecture and the dashboard commands.
    out = second.stdout
    assert f"best trial #{summary['best_trial']}: {summary['best_params']['topology']}" in out
    assert "optuna-dashboard sqlite:///studies/optuna.db" in out
    assert "mlflow ui --backend-store-uri sqlite:///studies/mlflow.db" in out
    assert "0 earlier trial(s)" in first.stdout and "3 earlier trial(s)" in second.stdout
    assert f"reference MiniRocket (same folds): CV accuracy {rocket['cv']['accuracy']:.4f}" in out
    assert "optimism (selection - test): accuracy" in out
    assert "Successfully registered model" not in second.stderr and "Created version" not in second.stderr
    assert "INFO mlflow" not in first.stderr  # MLflow's notes on creating its tables (the first run does)


@pytest.mark.slow
def test_readme_reuse_snippet_runs(tiny_study) -> None:
    cwd, first, _ = tiny_study
    assert first.returncode == 0
    snippet = re.search(r"```python\n(# reuse.*?)```", README.read_text(), re.S)
    assert snippet, "README lacks the reuse snippet"
    code = snippet.group(1).replace('"studies/timeseries"', '"studies/tiny"')
    code = code.replace('"GunPoint"', '"ItalyPowerDemand"')
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy" in result.stdout


BAD = [
    (["study.n_trails=3"], "n_trails"),
    (["study.n_trials=abc"], "study.n_trials"),
    (["study.n_trials=-2"], "study.n_trials"),
    (["data.name=NoSuchData"], "NoSuchData"),
    (["study.storage=sqlite:///studies/optuna.db/inside-a-file.db"], "study.storage"),
    (["study.storage=postgresql://user:pw@127.0.0.1:9/optuna"], "study.storage"),
    (["tracking.uri=http://127.0.0.1:9"], "tracking.uri"),
    (["space.topology=[parallel,transformer]"], "transformer"),
    (["+study=nosuchstudy"], "nosuchstudy"),
    (["space.model.lstm_hidden.hihg=64"], "hihg"),  # the space's schema, while Hydra composes
    (["space.training.lr.low=abc"], "space.training.lr.low"),
    (["study.trial_time_limit=-5"], "study.trial_time_limit"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("override", "named"), BAD)
def test_bad_input_is_one_line_exit_nonzero_and_leaves_the_study_alone(tiny_copy, override, named) -> None:
    db = tiny_copy / "studies" / "optuna.db"
    before = len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials)
    summary = (tiny_copy / "studies" / "tiny" / "summary.json").read_bytes()
    result = run_cli(tiny_copy, *TINY, *override)
    assert result.returncode == 2
    assert named in one_error_line(result)
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}").trials) == before
    assert (tiny_copy / "studies" / "tiny" / "summary.json").read_bytes() == summary


EXAMPLES = Path(__file__).parents[1] / "examples" / "data"


@pytest.mark.slow
def test_forecast_study_reports_the_seasonal_naive_baseline(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "+study=forecast", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "studies" / "forecast" / "summary.json").read_text())
    assert summary["metric"] == "val_mae" and summary["direction"] == "minimize"
    assert set(summary["test_metrics"]) == {"mae", "rmse", "smape", "mase"}
    assert set(summary["baseline"]) == {"mae", "rmse", "smape", "mase"}
    assert "lookback" in summary["best_params"]
    assert "seasonal-naive baseline on the same test windows: mae" in result.stdout
    # The statistical reference on the same windows: AutoETS, on validation (CV) and test.
    ets = summary["baselines"]["ets"]
    assert set(ets["cv"]) == set(ets["test"]) == {"mae", "rmse", "smape", "mase"}
    assert f"reference AutoETS (same windows): CV mae {ets['cv']['mae']:.4f}" in result.stdout
    from hybridsearch import load_best

    model = load_best(tmp_path / "studies" / "forecast")
    lookback = summary["best_params"]["lookback"]
    assert model.predict(np.random.rand(3, 1, lookback) * 100 + 300).shape == (3, 1, 12)


@pytest.mark.slow
def test_user_file_regression_study(tmp_path: Path) -> None:
    X = np.random.default_rng(0).standard_normal((60, 2, 20)).astype(np.float32)
    np.savez(tmp_path / "reg.npz", X=X, y=X[:, 0].mean(axis=1) * 3 + 1)
    result = run_cli(tmp_path, "+study=regression", f"data.path={tmp_path / 'reg.npz'}", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "studies" / "regression" / "summary.json").read_text())
    assert summary["metric"] == "val_rmse" and set(summary["test_metrics"]) == {"mae", "rmse", "r2"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.path=missing.npz", "missing.npz: no such file"),
        (f"data.path={EXAMPLES / 'wide.csv'} data.label=class", "no label column 'class'"),
        ("data.task=forecasting data.name=airline data.lookback=100", "airline: 144 steps are too few"),
        ("data.cv_folds=two", "data.cv_folds: must be 'auto' or a whole number"),
        ("data.task=forecasting data.name=airline data.cv_folds=3", "data.cv_folds: forecasting"),
    ],
)
def test_bad_data_is_one_line_before_any_study_state_is_written(tmp_path: Path, override: str, named: str) -> None:
    result = run_cli(tmp_path, "+study=timeseries", *override.split())
    assert result.returncode == 2
    assert named in one_error_line(result)
    assert not (tmp_path / "studies").exists()
