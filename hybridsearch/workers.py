"""Worker processes: several per GPU (or CPU workers sharing the cores), all pulling trials from one study.

A GPU worker is ``python -m hybridsearch.workers <config> <json args>`` with ``CUDA_VISIBLE_DEVICES``
set to its GPU. CPU workers are forked from a fork server (:func:`start_fork_server`) that has
loaded the training stack once, while the command loaded it too: on a small machine each fresh
Python spends ten seconds on imports before its first trial. A worker loads the data once and runs
trials until the command's workers have finished
``study.n_trials`` between them: a worker whose trial ends starts the next at once, no batches.
Every running trial records its worker (host:pid); when a worker dies, the parent fails its trial
and queues the same parameters again, as the storage's heartbeat does for workers on other
machines: one retry mark, Optuna's ``failed_trial`` system attribute.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import optuna
from omegaconf import OmegaConf
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hybridsearch import interrupt
from hybridsearch.errors import ConfigError
from hybridsearch.progress import Progress, quiet_libraries
from hybridsearch.storage import MAX_RETRY

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from hybridsearch.session import Session

# What a fork server loads before it forks a CPU worker: the whole training stack, and the modules
# that a worker's first check would import (MLflow's and Optuna's database models, aeon's datasets:
# 3.7 of a worker's first seconds). Importing them starts no Python thread and no CUDA runtime; the
# native threads of torch and of MLflow's allocator have fork handlers, as PyTorch's forked
# DataLoader workers rely on. GPU workers still start fresh: a fork must not inherit a CUDA
# runtime that an import might start. A module missing from a later release is skipped.
PRELOAD = [
    "hybridsearch.session",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna.storages._rdb.models",
    "aeon.datasets",
]


def visible_gpus() -> list[str]:
    """This process's GPUs, in torch's order, each as the ``CUDA_VISIBLE_DEVICES`` entry that
    selects it: the parent's own entries (indices, GPU UUIDs or MIG names) where it has a list,
    so a worker given entry i sees exactly the GPU that torch calls ``cuda:i`` here."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    parent = os.environ.get("CUDA_VISIBLE_DEVICES")
    if parent is None or not parent.strip():
        return [str(i) for i in range(count)]
    entries = [e.strip() for e in parent.split(",") if e.strip()]
    return entries[:count]


# study.workers_per_gpu=auto: small models leave a GPU waiting on one worker's Python. On an H200
# with 16 cores (GunPoint, the default study, 75 s), 8 workers ran 40.8 trials a minute against 1
# worker's 3.6, and kept the GPU busy 93% of the time while trials ran (a 150 s study);
# benchmarks/results/gpu-H200.txt. Each worker keeps 2 cores: fewer workers where cores are short.
AUTO_WORKERS_PER_GPU = 8
CORES_PER_GPU_WORKER = 2
# study.n_workers=null without a GPU: a worker per core, up to 8. One process leaves a core idle on
# small models: on GunPoint 2 workers on 2 cores ran 2.31x the trials an hour of one process on both
# (benchmarks/results/overhead-workers-GunPoint.txt), and a 10-minute study on 200 series x 500
# steps finished 27 and 41 trials (seeds 0, 1) against 15-19 (benchmarks/results/trial-budget.md; 34 to 50
# at seeds 0-4 since 9ceab43).
# Out-of-fold scores on the development sets: the same on three, 0.007 lower on
# PickupGestureWiimoteZ (selection-stop-folds+2-workers.md).
AUTO_CPU_WORKERS = 8


def cpu_workers() -> int:
    """CPU worker processes by default: one per core, up to ``AUTO_CPU_WORKERS``."""
    return max(1, min(AUTO_CPU_WORKERS, os.cpu_count() or 1))


def workers_per_gpu(value: int | str, n_gpus: int) -> int:
    """``study.workers_per_gpu``: a number, or ``auto`` (8, or as many as the cores give 2 each)."""
    if value == "auto":
        cores = os.cpu_count() or 1
        return max(1, min(AUTO_WORKERS_PER_GPU, cores // (CORES_PER_GPU_WORKER * max(1, n_gpus))))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"study.workers_per_gpu: must be auto or 1 or more, got {value!r}")
    return value


def plan(n_workers: int | None, gpus: list[int] | None, per_gpu: int | str = 1) -> list[str | None]:
    """The device of each worker: a ``CUDA_VISIBLE_DEVICES`` value, or None for a CPU worker.

    ``study.gpus`` lists torch's indices of the GPUs this command sees (0 is the first visible
    one, whatever physical GPU that is). Without GPUs, ``n_workers`` None means one per core
    (:func:`cpu_workers`). ``[None]`` means one worker, in this process.
    """
    if per_gpu != "auto":
        workers_per_gpu(per_gpu, 1)  # checked before any GPU is looked at
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"study.n_workers: must be 1 or more (or null: workers_per_gpu on each GPU), got {n_workers}")
    available = visible_gpus()
    if gpus is not None:
        unknown = sorted(set(gpus) - set(range(len(available))))
        if unknown:
            visible = list(range(len(available))) or "none"
            raise ConfigError(f"study.gpus: GPU(s) {unknown} not visible; visible: {visible}")
    chosen = [available[g] for g in gpus] if gpus is not None else available
    devices = [entry for entry in chosen for _ in range(workers_per_gpu(per_gpu, len(chosen)))]
    if not devices:
        return [None] * (n_workers or cpu_workers())
    n = n_workers or len(devices)
    return [devices[i % len(devices)] for i in range(n)]


def devices_for(cfg: DictConfig) -> list[str | None]:
    """The workers of a study as :func:`plan` gives them, no more than ``study.n_trials``: each
    worker starts one trial at once."""
    devices = plan(cfg.study.n_workers, cfg.study.gpus, cfg.study.workers_per_gpu)
    if cfg.study.n_trials is not None:
        devices = devices[: max(1, cfg.study.n_trials)]
    return devices


def start_fork_server(cfg: DictConfig) -> None:
    """Start the fork server of CPU workers now if the study may have any, before its config is
    checked: the server loads the training stack on another core while this process checks the
    config and loads the same stack, so that its forks start trials at once. Whether the study runs
    on GPUs waits for torch; one that does leaves the server unused, as does bad input."""
    s = cfg.study
    in_process = s.n_workers == 1 or (s.n_workers is None and cpu_workers() == 1)
    if not (in_process or s.gpus or (s.n_trials is not None and s.n_trials <= 1)):
        _fork_server()


def _fork_server() -> multiprocessing.context.BaseContext:
    """The fork server's context, the server started if it is not running yet."""
    multiprocessing.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()
    return multiprocessing.get_context("forkserver")


class Forked:
    """A CPU worker forked from the fork server, with the part of ``subprocess.Popen`` that
    :func:`launch` uses: both kinds of worker are watched, stopped and recovered alike."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:  # negative: the signal that ended it, as Popen's
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()


def thread_limit(n_workers: int) -> int:
    """CPU threads per worker process: the cores shared out, so workers (GPU ones too, which still
    run the data path and Python on the CPU) don't oversubscribe them."""
    return max(1, (os.cpu_count() or 1) // max(1, n_workers))


def worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def launch(session: Session, devices: list[str | None], *, deadline: float | None, progress: Progress) -> None:
    """Start one worker process per device and wait for them, recovering the trials of any that die."""
    config = session.layout.worker_config
    OmegaConf.save(session.cfg, config, resolve=True)
    threads = str(thread_limit(len(devices)))
    forks = _fork_server() if None in devices else None
    procs: list[subprocess.Popen | Forked] = []
    for index, device in enumerate(devices):
        env = {"CUDA_VISIBLE_DEVICES": device if device is not None else "", "OMP_NUM_THREADS": threads}
        args = {
            "index": index,
            "deadline": deadline,
            "invocation": session.invocation,
            "parent_run_id": session.tracker.parent_run_id,
        }
        if device is None:
            process = forks.Process(target=serve, args=(str(config), args, env), name=f"hybridsearch-worker-{index}")
            process.start()
            procs.append(Forked(process))
        else:
            cmd = [sys.executable, "-m", "hybridsearch.workers", str(config), json.dumps(args)]
            procs.append(subprocess.Popen(cmd, env={**os.environ, **env}))
    # Ctrl-C sets a flag rather than raising here: a KeyboardInterrupt that lands inside a garbage
    # collector callback (SQLAlchemy has some) is printed and dropped, and the command would go on.
    interrupted = threading.Event()

    def stop(signum: int, frame: object) -> None:
        interrupt.remember(signum)
        interrupted.set()

    with interrupt.handled_by(stop):
        _watch(session.study, procs, progress, interrupted)
        if not interrupted.is_set():
            return
        if interrupt.exit_code() == 128 + signal.SIGINT:
            # They had the terminal's Ctrl-C too and are closing their trials: give them a moment (a
            # second Ctrl-C only sets the flag again). A SIGTERM came to this process alone.
            settle = time.monotonic() + 5.0
            for p in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=max(0.0, settle - time.monotonic()))
        for p in procs:  # one still running gets its own
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60.0  # for them all: the command ends within a minute
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        recover(session.study, {worker_id(p.pid) for p in procs})
    raise KeyboardInterrupt


def _watch(
    study: optuna.Study, procs: list[subprocess.Popen | Forked], progress: Progress, interrupted: threading.Event
) -> None:
    lost: set[int] = set()
    while not interrupted.is_set():
        progress.update(study)
        alive = [p for p in procs if p.poll() is None]
        for p in procs:
            if p.returncode is not None and p.returncode != 0 and p.pid not in lost:
                lost.add(p.pid)
                n = recover(study, {worker_id(p.pid)})
                how = f"signal {-p.returncode}" if p.returncode < 0 else f"exit code {p.returncode}"
                progress.write(f"worker {worker_id(p.pid)} ended with {how}; {n} trial(s) queued again")
        if not alive:
            break
        interrupted.wait(1.0)
    progress.update(study)


def recover(study: optuna.Study, workers: set[str]) -> int:
    """Fail the running trials of workers that are gone and queue their parameters again, marked
    as the heartbeat marks a stale trial's retry (``RetryHeartbeatStaleTrialCallback.retried_trial_number``)."""
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    n = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker") in workers:
            failed = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            if failed.state == TrialState.FAIL and "fail_reason" not in failed.user_attrs:
                retry(study, failed)
                n += 1
    return n


def stop_with_parent(every: float = 1.0) -> None:
    """Ctrl-C this process once the command that started it is gone: killed outright (SIGKILL, the
    OOM killer), it could not stop its workers, which would otherwise train on alone. The running
    trial is then closed as interrupted, as a Ctrl-C closes it. A forked worker's parent is the fork
    server, which lives on while its forks do: it watches the command through the pipe that
    multiprocessing keeps open from the command (``parent_process().sentinel``) instead."""
    command = multiprocessing.parent_process()
    parent = os.getppid()

    def watch() -> None:
        if command is not None:
            command.join()  # until the command's end of the pipe closes
        else:
            while os.getppid() == parent:  # an orphan is adopted by another process
                time.sleep(every)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def serve(config: str, args: dict[str, Any], env: dict[str, str] | None = None) -> None:
    """A worker: run trials of the study that the saved ``config`` describes; ``args`` from
    :func:`launch`, ``env`` the variables a forked worker sets on itself."""
    os.environ.update(env or {})
    stop_with_parent()
    cfg = OmegaConf.load(config)
    if os.environ.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from hybridsearch.session import open_session  # the training stack: a fork has it loaded already

    with quiet_libraries():
        session = open_session(cfg, create=False)
        session.tracker.parent_run_id = args["parent_run_id"]
        session.invocation = args["invocation"]
        try:
            with interrupt.catching():
                session.optimize(n_trials=cfg.study.n_trials, deadline=args["deadline"], worker=args["index"])
        except KeyboardInterrupt:
            raise SystemExit(interrupt.exit_code()) from None


def main(argv: list[str] | None = None) -> None:
    """A GPU worker process: ``python -m hybridsearch.workers <config.yaml> <json args>``."""
    config, raw = (argv or sys.argv[1:])[:2]
    serve(config, json.loads(raw))


if __name__ == "__main__":
    main()
