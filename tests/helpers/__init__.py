"""Helpers the tests share: the command line in a subprocess, real servers on loopback, small data."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hybridsearch.config import DataConfig
from hybridsearch.data import TaskData, prepare

# Small models: every test study searches the default space with narrower widths.
SMALL = ["space.model.conv_channels.high=32", "space.model.lstm_hidden.high=32"]
# The default study on a small dataset, ended by its trial count alone (not also by study.timeout,
# which a loaded machine would reach first).
ITALY = ["+study=timeseries", "data.name=ItalyPowerDemand", "study.timeout=null", *SMALL]
# The shared tiny study (the tiny_study fixture runs it twice: the second run resumes).
TINY = [*ITALY, "trainer.max_epochs=3", "study.n_trials=3", "study.name=tiny"]
# A two-trial, two-epoch budget for studies of other tasks.
QUICK = [*SMALL, "trainer.max_epochs=2", "study.n_trials=2"]

# CI sets this so that a missing server binary fails the run instead of skipping it.
REQUIRED_SERVICES = os.environ.get("HYBRIDSEARCH_REQUIRE_SERVICES") == "1"


def load(name: str | None = "GunPoint", *, seed: int = 0, **fields) -> TaskData:
    """``prepare`` for a data config given as keywords."""
    return prepare(DataConfig(name=name, **fields), seed=seed)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def one_worker(args: tuple[str, ...]) -> list[str]:
    """``args``, run by one worker in the command's own process unless they set ``study.n_workers``:
    on a machine without GPUs the default is a worker process per core, which would make every test
    study start its own workers."""
    return [*args] if any(a.startswith("study.n_workers=") for a in args) else [*args, "study.n_workers=1"]


def run_cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m hybridsearch *args`` in ``cwd``, as a user would run it (one worker, :func:`one_worker`)."""
    return subprocess.run(
        [sys.executable, "-m", "hybridsearch", *one_worker(args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(cwd: Path, *args: str) -> subprocess.Popen:
    """The command line in the background, in its own process group (so a test can Ctrl-C it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hybridsearch", *one_worker(args)],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line a command prints on bad input (failing the test if it printed more)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cmd: list[str], url: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a real server in the background and wait until ``url`` answers."""
    log = (cwd / f"server-{free_port()}.log").open("w")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"{cmd[:4]} did not start: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def start_mlflow_server(cwd: Path, backend_uri: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """A real ``mlflow server`` on a free loopback port; returns the process and its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri, *extra]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    return serve(cmd, f"{url}/health", cwd), url


def fcn_objective(folder: Path, max_epochs: int):
    """An objective over the small FCN reference alone, on ItalyPowerDemand, training on the CPU."""
    from hybridsearch.layout import StudyLayout
    from hybridsearch.objective import Objective
    from hybridsearch.search_space import parse_space

    trainer = {"_target_": "lightning.pytorch.Trainer", "max_epochs": max_epochs, "accelerator": "cpu"}
    return Objective(
        data=load("ItalyPowerDemand"),
        space=parse_space({"topology": ["fcn"], "model": {}, "training": {}}),
        trainer_cfg={**trainer, "enable_progress_bar": False, "enable_model_summary": False},
        callbacks_cfg={},
        metric="val_acc",
        direction="maximize",
        layout=StudyLayout.of(folder, "s"),
    )
