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
