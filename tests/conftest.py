import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*number of training batches.*")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def run_cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m hybridsearch *args`` in ``cwd``, as a user would run it."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "hybridsearch", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_cli(cwd: Path, *args: str) -> subprocess.Popen:
    """The command line in the background, in its own process group (so a test can Ctrl-C it)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hybridsearch", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


# A tiny study, run once per test session through the command line (twice: the second run resumes).
TINY = [
    "+study=timeseries",
    "data.name=ItalyPowerDemand",
    "trainer.max_epochs=3",
    "study.n_trials=3",
    "study.name=tiny",
    "space.model.conv_channels.high=32",
    "space.model.lstm_hidden.high=32",
]


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    cwd = tmp_path_factory.mktemp("cli")
    first = run_cli(cwd, *TINY)
    second = run_cli(cwd, *TINY, "study.n_trials=2")
    return cwd, first, second
