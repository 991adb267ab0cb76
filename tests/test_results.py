"""What users do after a study: the report, both dashboards over HTTP, the registered model, predict."""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import REQUIRED_SERVICES as REQUIRED
from helpers import TINY, free_port, one_error_line, run_cli, serve, start_mlflow_server, stop

pytestmark = pytest.mark.slow


def get_json(url: str, data: dict | None = None, timeout: float = 30) -> dict:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_report_renders_its_plots_in_headless_chromium(tiny_copy) -> None:
    cwd = tiny_copy
    report = cwd / "studies" / "tiny" / "report"
    images = {p.name for p in report.glob("*.png")}
    assert {"history.png", "topologies.png", "size.png", "confusion.png"} <= images
    again = subprocess.run(
        [sys.executable, "-m", "hybridsearch.report", "studies/tiny", "-o", "again"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p.name for p in (cwd / "again").glob("*.png")} == images
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        if REQUIRED:
            pytest.fail("chromium is not installed")
        pytest.skip("chromium is not installed")
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={cwd / 'chrome'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (report / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert loaded, dom[:2000]
    assert int(loaded.group(1)) == len(images)
    assert "Best architecture" in dom and "topology" in dom


def test_mlflow_server_and_optuna_dashboard_serve_the_study(tiny_study) -> None:
    cwd, _, second = tiny_study
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads((cwd / "studies" / "tiny" / "summary.json").read_text())
    mlflow, url = start_mlflow_server(cwd, "sqlite:///studies/mlflow.db")
    try:
        api = f"{url}/api/2.0/mlflow"
        experiment = get_json(f"{api}/experiments/get-by-name?experiment_name=tiny")["experiment"]
        runs = get_json(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100})
        assert len(runs["runs"]) == 5 + 2  # a run per trial, a parent per invocation
        model = get_json(f"{api}/registered-models/get?name=tiny")["registered_model"]
        versions = {v["version"] for v in model["latest_versions"]}
        assert summary["registered_model"]["version"] in versions
        artifacts = get_json(f"{api}/artifacts/list?run_id={summary['mlflow_parent_run_id']}")
        assert {"best.ckpt", "summary.json", "report"} <= {f["path"] for f in artifacts["files"]}
    finally:
        stop(mlflow)

    port = free_port()
    env = {**os.environ, "HOME": str(cwd)}  # gunicorn writes to $HOME/.gunicorn
    dashboard = serve(
        [
            str(Path(sys.executable).parent / "optuna-dashboard"),  # this environment's, activated or not
            "sqlite:///studies/optuna.db",
            "--artifact-dir",
            "studies/dashboard-artifacts",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        f"http://127.0.0.1:{port}/api/studies",
        cwd,
        env,
    )
    try:
        studies = get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        study = next(s for s in studies if s["study_name"] == "tiny")
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}")
        assert len(detail["trials"]) == 5
        attrs = {a["key"] for a in detail["trials"][0]["user_attrs"]}
        assert {"topology", "n_params", "epochs", "mlflow_run_id", "seconds_per_epoch"} <= attrs
        assert "ItalyPowerDemand" in detail["note"]["body"] and "n_trials" in detail["note"]["body"]
        assert len(detail["artifacts"]) >= 4  # the report's plots
    finally:
        stop(dashboard)


def test_registered_model_gives_the_predictions_of_load_best(tiny_study) -> None:
    cwd, _, second = tiny_study
    assert second.returncode == 0
    summary = json.loads((cwd / "studies" / "tiny" / "summary.json").read_text())
    code = f"""
import mlflow, numpy as np
from aeon.datasets import load_classification
from hybridsearch import load_best
mlflow.set_tracking_uri("sqlite:///studies/mlflow.db")
registered = mlflow.pytorch.load_model("models:/tiny/{summary["registered_model"]["version"]}")
X, _ = load_classification("ItalyPowerDemand", split="test")
assert (registered.predict(X) == load_best("studies/tiny").predict(X)).all()
print("same")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "same" in result.stdout, result.stderr[-3000:]


def test_predict_command_reads_the_training_formats_and_refuses_bad_input(tiny_copy) -> None:
    cwd = tiny_copy
    from aeon.datasets import load_classification

    X, _ = load_classification("ItalyPowerDemand", split="test")
    np.savez(cwd / "new.npz", X=X[:30])  # unlabelled
    run = [sys.executable, "-m", "hybridsearch.predict", "studies/tiny"]
    result = subprocess.run([*run, "new.npz", "-o", "out.csv"], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = pd.read_csv(cwd / "out.csv")
    assert len(out) == 30 and {"prediction", "p_1", "p_2"} <= set(out.columns)
    from hybridsearch import load_best

    assert out["prediction"].astype(str).tolist() == load_best(cwd / "studies" / "tiny").predict(X[:30]).tolist()
    np.testing.assert_allclose(out[["p_1", "p_2"]].sum(axis=1), 1.0, rtol=1e-5)

    np.savez(cwd / "wrong.npz", X=np.zeros((3, 2, 24)))
    for bad, named in [("missing.csv", "missing.csv: no such file"), ("wrong.npz", "2 channels but the model reads 1")]:
        result = subprocess.run([*run, bad], cwd=cwd, capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and named in one_error_line(result)


def test_multi_objective_study_saves_and_plots_its_pareto_front(tmp_path: Path) -> None:
    result = run_cli(tmp_path, *TINY, "study.name=pareto", "study.n_trials=6", "study.objectives=[n_params]")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "studies" / "pareto" / "summary.json").read_text())
    front = summary["pareto_front"]
    assert front and all({"trial", "val_acc", "n_params", "topology"} <= set(p) for p in front)
    # no trial on the front is beaten on both objectives by another trial of the front
    for a in front:
        assert not any(b["val_acc"] >= a["val_acc"] and b["n_params"] < a["n_params"] for b in front)
    # the rule for best.ckpt: the best val_acc, ties to the smaller model: a trial of the front
    best = max(front, key=lambda p: (p["val_acc"], -p["n_params"]))
    assert summary["best_trial"] == best["trial"]
    assert summary["trials"]["pruned"] == 0  # Optuna prunes single-objective studies only
    assert (tmp_path / "studies" / "pareto" / "report" / "pareto.png").exists()
    assert "Pareto front of val_acc and n_params" in result.stdout
