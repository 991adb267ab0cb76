"""Parallel workers and faults, end to end: real processes on the default SQLite storage."""

import contextlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from helpers import ITALY, run_cli, start_cli
from mlflow import MlflowClient
from omegaconf import OmegaConf
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hybridsearch import workers
from hybridsearch.storage import open_storage
from hybridsearch.workers import plan

pytestmark = pytest.mark.slow

# Every trial trains to the end, on two folds: these tests are about processes, not scores.
QUICK = [*ITALY, "pruner=none", "study.stop_folds=false", "data.cv_folds=2"]


def load(cwd: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{cwd}/studies/optuna.db")


def wait_for(predicate, timeout: float = 120, every: float = 0.3):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not reached")


def alive(pid: int) -> bool:
    """Whether process ``pid`` is running: one that has exited but is not yet reaped (a zombie) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # Linux: the state letter after the command's name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    return True


def running_trial(cwd: Path, name: str):
    if not (cwd / "studies" / "mlflow.db").exists():  # written after the study storage is set up
        return None
    try:
        trials = load(cwd, name).get_trials(states=(TrialState.RUNNING,))
    except KeyError:  # study not created yet
        return None
    # "topology" is recorded once the trial has sampled all its parameters: a trial killed before
    # that would be retried with only some of them fixed.
    return next((t for t in trials if "topology" in t.user_attrs), None)


def test_plan_assigns_workers_to_devices(monkeypatch) -> None:
    monkeypatch.setattr(workers, "visible_gpus", lambda: [])  # a machine without a GPU, whatever this one has
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)
    assert plan(None, None) == [None, None]  # a worker process per core
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 64)
    assert plan(None, None) == [None] * workers.AUTO_CPU_WORKERS  # up to 8
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 1)
    assert plan(None, None) == [None]  # one worker, in process
    assert plan(1, None) == [None]
    assert plan(3, None) == [None, None, None]
    with pytest.raises(ValueError, match=r"study\.n_workers"):
        plan(0, None)
    with pytest.raises(ValueError, match=r"study\.gpus: GPU\(s\) \[0\] not visible"):
        plan(None, [0])


def test_the_fork_server_starts_only_for_studies_that_may_fork_cpu_workers(monkeypatch) -> None:
    started = []
    monkeypatch.setattr(workers, "_fork_server", lambda: started.append(True))
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)

    def starts(**study) -> bool:
        started.clear()
        defaults = {"n_workers": None, "gpus": None, "n_trials": 10}
        workers.start_fork_server(OmegaConf.create({"study": {**defaults, **study}}))
        return bool(started)

    assert starts()  # a worker per core
    assert starts(n_workers=3)
    assert not starts(n_workers=1)  # one worker, in the command's process
    assert not starts(n_trials=1)  # no more workers than trials
    assert not starts(gpus=[0])  # GPU workers start fresh
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 1)
    assert not starts()
    assert starts(n_workers=2)


def _ask_and_tell(url: str, n: int, numbers) -> None:
    study = optuna.load_study(study_name="queue", storage=open_storage(url))
    for _ in range(n):
        trial = study.ask()
        numbers.put(trial.number)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError):
            study.tell(trial, 0.0)  # raises on a trial that another process has finished


def test_workers_on_sqlite_never_pop_the_same_queued_trial(tmp_path: Path) -> None:
    # Without BEGIN IMMEDIATE (storage._fast_sqlite) about one queued trial in ten was run twice here.
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="queue", storage=open_storage(url))
    for x in range(120):
        study.enqueue_trial({"x": x})
    ctx = multiprocessing.get_context("fork")
    numbers = ctx.Queue()
    procs = [ctx.Process(target=_ask_and_tell, args=(url, 30, numbers)) for _ in range(4)]
    for p in procs:
        p.start()
    popped = sorted(numbers.get(timeout=120) for _ in range(120))
    for p in procs:
        p.join(timeout=60)
    assert popped == list(range(120))
    assert all(t.state == TrialState.COMPLETE for t in study.get_trials())


def test_four_workers_share_sqlite_without_losing_or_duplicating_a_trial(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path, *QUICK, "study.name=four", "study.n_workers=4", "study.n_trials=12", "trainer.max_epochs=3"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path, "four")
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    assert states.count(TrialState.COMPLETE) >= 12
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))
    # Four worker processes were started; each trial names the one that ran it (how many of the
    # four got a trial depends on timing).
    assert "4 workers on cpu, cpu, cpu, cpu" in result.stdout
    ran = {t.user_attrs["worker"] for t in study.trials}
    assert 1 <= len(ran) <= 4 and all(w.rsplit(":", 1)[1].isdigit() for w in ran)
    client = MlflowClient(f"sqlite:///{tmp_path}/studies/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("four").experiment_id], max_results=200)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(int(r.data.tags["trial_number"]) for r in children) == numbers
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in children}
    summary = json.loads((tmp_path / "studies" / "four" / "summary.json").read_text())
    assert summary["trials"]["complete"] == len(numbers)


def test_a_killed_worker_process_has_its_trial_failed_and_run_again(tmp_path: Path) -> None:
    proc = start_cli(
        tmp_path,
        *QUICK,
        "study.name=kill",
        "study.n_workers=2",
        "study.n_trials=4",
        "trainer.max_epochs=40",
        "~callbacks.early_stopping",
    )
    victim = wait_for(lambda: running_trial(tmp_path, "kill"))
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    _out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    study = load(tmp_path, "kill")
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL and "fail_reason" not in killed.user_attrs
    # Marked as the storage's heartbeat marks a retry, so one rule finds retries of either kind.
    retry = [t for t in study.trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == killed.params
    summary = json.loads((tmp_path / "studies" / "kill" / "summary.json").read_text())
    assert summary["failures"] == {"worker lost; queued again": 1}
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) >= 4
    assert "queued again" in err


def test_a_killed_machine_is_caught_by_the_heartbeat_and_its_trial_retried(tmp_path: Path) -> None:
    """Two independent commands on one study, as on two machines; one is killed outright."""
    common = [
        *QUICK,
        "study.name=beat",
        "study.heartbeat_interval=1",
        "study.grace_period=3",
        "trainer.max_epochs=40",
        "~callbacks.early_stopping",
    ]
    doomed = start_cli(tmp_path, *common, "study.n_trials=50")
    victim = wait_for(lambda: running_trial(tmp_path, "beat"))
    survivor = start_cli(tmp_path, *common, "study.n_trials=3")  # the first is the retry
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    _out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-3000:]
    study = load(tmp_path, "beat")
    stale = study.trials[victim.number]
    assert stale.state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == stale.params
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) >= 3


def test_workers_stop_when_the_command_is_killed_outright(tmp_path: Path) -> None:
    proc = start_cli(
        tmp_path,
        *QUICK,
        "study.name=orphans",
        "study.n_workers=2",
        "study.n_trials=50",
        "trainer.max_epochs=40",
        "~callbacks.early_stopping",
    )
    victim = wait_for(lambda: running_trial(tmp_path, "orphans"))
    os.kill(proc.pid, signal.SIGKILL)  # the command alone, as a scheduler's kill or the OOM killer would
    proc.wait()
    worker = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
    wait_for(lambda: not alive(worker), timeout=60)
    closed = load(tmp_path, "orphans").trials[victim.number]
    assert closed.state == TrialState.FAIL and closed.user_attrs["fail_reason"] == "interrupted"


def _stop_midway(tmp_path: Path, args: list[str], sig: signal.Signals) -> optuna.Study:
    """Start a study, send ``sig`` once a trial trains, and check that the command closed it."""
    proc = start_cli(tmp_path, *args)
    wait_for(lambda: running_trial(tmp_path, "stop"))
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C in a terminal: the command and its workers
    else:
        os.kill(proc.pid, sig)  # a scheduler's, docker's or kill's stop: the command alone
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert "run the same command again to resume" in err
    study = load(tmp_path, "stop")
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert [t for t in study.trials if t.user_attrs.get("fail_reason") == "interrupted"]
    return study


def _stop_args(n_workers: int) -> list[str]:
    return [
        *QUICK,
        "study.name=stop",
        f"study.n_workers={n_workers}",
        "study.n_trials=20",
        "trainer.max_epochs=40",
        "~callbacks.early_stopping",
    ]


def test_ctrl_c_in_one_process_closes_the_running_trial(tmp_path: Path) -> None:
    _stop_midway(tmp_path, _stop_args(1), signal.SIGINT)


def test_ctrl_c_closes_the_workers_running_trials_and_a_rerun_resumes(tmp_path: Path) -> None:
    args = _stop_args(2)
    before = len(_stop_midway(tmp_path, args, signal.SIGINT).trials)
    again = run_cli(tmp_path, *args[:-3], "study.n_trials=2", "trainer.max_epochs=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(load(tmp_path, "stop").trials) >= before + 2
    assert f"{before} earlier trial(s)" in again.stdout


def test_sigterm_to_the_command_alone_stops_it_as_ctrl_c_does(tmp_path: Path) -> None:
    # With workers, which the command must stop itself. One process takes SIGTERM with the handler
    # it takes Ctrl-C with (test_interrupt.py: the flag and exit code 143; the Ctrl-C test above).
    _stop_midway(tmp_path, _stop_args(2), signal.SIGTERM)


def test_failing_trials_are_recorded_with_their_reason_and_counted_in_the_summary(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        *QUICK,
        "study.name=nan",
        "study.n_trials=3",
        "trainer.max_epochs=3",
        "space.training.lr.low=1e30",  # weights overflow to inf after one step: the loss is NaN
        "space.training.lr.high=1e31",
        "space.topology=[parallel,cascade]",  # both reach a NaN loss (others may die quietly to a constant)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    study = load(tmp_path, "nan")
    # Most designs diverge; one whose normalisation keeps its loss finite may complete (its refit
    # may then diverge, which the summary records instead of crashing the command).
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(study.trials) == 3 and failed
    reasons = {t.user_attrs["fail_reason"] for t in failed}
    assert all(r.startswith("FloatingPointError: training loss is") for r in reasons), reasons
    summary = json.loads((tmp_path / "studies" / "nan" / "summary.json").read_text())
    assert summary["trials"]["fail"] == len(failed) and sum(summary["failures"].values()) == len(failed)
    assert "failed x" in result.stdout
    if len(failed) == 3:
        assert "no trial completed yet" in result.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/studies/mlflow.db")
    run = client.get_run(failed[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["fail_reason"].startswith("FloatingPointError")
