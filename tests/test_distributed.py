"""Many machines: a real PostgreSQL server and a real MLflow tracking server on loopback, and two
independent commands (as on two machines, each in its own folder) joining one study."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from helpers import ITALY, free_port, start_cli, start_mlflow_server, stop
from helpers import REQUIRED_SERVICES as REQUIRED
from mlflow import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres() -> str:
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if initdb is None:
        if REQUIRED:
            pytest.fail("PostgreSQL is not installed (initdb not found)")
        pytest.skip("PostgreSQL is not installed")
    bin_dir = Path(initdb).resolve().parent
    # Not under pytest's private tmp folder: the postgres user must be able to reach it.
    data = Path(tempfile.mkdtemp(prefix="hybridsearch-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data}"
    subprocess.run(
        as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna"]),
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(
            as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True
        )


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("mlflow-server")
    proc, url = start_mlflow_server(root, f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "a"))
    try:
        yield url
    finally:
        stop(proc)


def test_two_machines_join_one_study_on_postgresql_and_an_mlflow_server(tmp_path: Path, postgres, mlflow_server):
    args = [
        *ITALY,
        "study.name=shared",
        "trainer.max_epochs=3",
        "study.n_trials=3",
        "data.cv_folds=2",  # the test is about sharing a study, not about its scores
        f"study.storage={postgres}",
        f"tracking.uri={mlflow_server}",
    ]
    machines = [tmp_path / "a", tmp_path / "b"]
    for folder in machines:
        folder.mkdir()
    procs = [start_cli(folder, *args) for folder in machines]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="shared", storage=postgres)
    assert len(study.trials) >= 6
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both machines ran trials

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 2
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == [t.number for t in study.trials]

    # Each machine's summary names the best trial finished when it chose, which includes all of its
    # own: so the machine that trained the study's best trial names it, whichever that was (the
    # other may have chosen before that trial finished, and still written its summary last).
    summaries = [json.loads((m / "studies" / "shared" / "summary.json").read_text()) for m in machines]
    assert all(study.trials[s["best_trial"]].value == s["best_value"] for s in summaries)
    assert max(s["best_value"] for s in summaries) == study.best_value
    first = summaries[0]
    assert first["storage"] == postgres and first["tracking_uri"] == mlflow_server
    assert all((m / "studies" / "shared" / "best.ckpt").exists() for m in machines)
    artifacts = {a.path for a in client.list_artifacts(first["mlflow_parent_run_id"])}
    assert "best.ckpt" in artifacts
