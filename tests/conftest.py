"""Fixtures: the shared tiny study, run once per session, and a private copy for tests that change it."""

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import TINY, run_cli


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)  # models built in a test start from the same weights, whatever ran before


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """The tiny study's folder and its two runs (the second resumes it). Read it, don't write to it:
    tests that run commands in it take :func:`tiny_copy`."""
    cwd = tmp_path_factory.mktemp("cli")
    first = run_cli(cwd, *TINY)
    second = run_cli(cwd, *TINY, "study.n_trials=2")
    return cwd, first, second


@pytest.fixture
def tiny_copy(tiny_study, tmp_path) -> Path:
    """A private copy of the tiny study's folder (storage, tracking, checkpoints)."""
    cwd, first, second = tiny_study
    assert first.returncode == 0 and second.returncode == 0, (first.stderr + second.stderr)[-3000:]
    shutil.copytree(cwd, tmp_path / "cli", ignore=shutil.ignore_patterns("chrome", "server-*.log"))
    return tmp_path / "cli"
