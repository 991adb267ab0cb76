"""Check hybridsearch on a GPU machine: placement, trials per minute, how busy each GPU was.

    python scripts/gpu_check.py [--seconds 120] [--workers-per-gpu auto] [--data GunPoint] [--epochs N] [--cpu]
                                [OVERRIDE ...]

Runs the default study (``+study=timeseries``) for ``--seconds`` in a temporary folder, with
``study.workers_per_gpu`` workers on every visible GPU (``--cpu``: the same study on the CPU, for
comparison), while sampling each GPU through NVML every 100 ms. It prints:
- trials and epochs per minute, and trials per GPU;
- how busy the host's CPU cores were (from /proc/stat), since small models leave the GPU waiting
  on each worker's Python;
- NVML utilisation per GPU, mean and peak: the share of each sample period in which at least one
  kernel was running on the GPU (not how many of its SMs were busy: a small kernel counts as fully
  busy); SM activity from DCGM (``dcgmi dmon``, field 1002) where DCGM is installed;
- peak memory used per GPU;
- trials whose tensors sat on the CPU, judged from the ``device`` attribute every trial writes when
  its training starts, so pruned trials count too.

It exits non-zero only on a real misplacement: a trial that trained on the CPU while GPUs were
given. Needs ``nvidia-ml-py`` (``pip install -e ".[gpu]"``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Placement:
    """Where a study's trials ran, from the attributes written when each one's training started."""

    per_gpu: dict[str, int] = field(default_factory=dict)  # CUDA_VISIBLE_DEVICES entry -> trials
    on_cpu: list[int] = field(default_factory=list)  # trial numbers that trained on the CPU
    unknown: int = 0  # trials that never started training (failed while being set up)


def placement(trials) -> Placement:
    """Count where the finished trials (complete, pruned or failed) trained."""
    result = Placement()
    per_gpu: Counter[str] = Counter()
    for t in trials:
        if not t.state.is_finished():
            continue
        device = str(t.user_attrs.get("device", ""))
        if not device:
            result.unknown += 1
        elif device.startswith("cuda"):
            per_gpu[str(t.user_attrs.get("gpu", "?"))] += 1
        else:
            result.on_cpu.append(t.number)
    result.per_gpu = dict(per_gpu)
    return result


class NvmlSampler(threading.Thread):
    """Samples every GPU's utilisation and memory through NVML every ``period`` seconds."""

    def __init__(self, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        import pynvml

        pynvml.nvmlInit()
        self.nvml, self.period = pynvml, period
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self.util: dict[int, list[int]] = defaultdict(list)
        self.times: list[float] = []  # when each round of samples was taken
        self.memory: dict[int, int] = defaultdict(int)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.times.append(time.time())
            for i, h in enumerate(self.handles):
                self.util[i].append(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu)
                self.memory[i] = max(self.memory[i], self.nvml.nvmlDeviceGetMemoryInfo(h).used)
            self.stop.wait(self.period)

    def between(self, i: int, start: float, end: float) -> list[int]:
        """GPU ``i``'s utilisation samples taken between two times."""
        return [u for t, u in zip(self.times, self.util[i], strict=False) if start <= t <= end] or [0]

    def name(self, i: int) -> str:
        return self.nvml.nvmlDeviceGetName(self.handles[i])


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of all the host's cores, from /proc/stat (Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def dcgm_sm_activity(seconds: float) -> subprocess.Popen | None:
    """``dcgmi dmon`` sampling SM activity (field 1002) every 100 ms, where DCGM is installed."""
    if shutil.which("dcgmi") is None:
        return None
    count = max(1, int(seconds * 10))
    cmd = ["dcgmi", "dmon", "-e", "1002", "-d", "100", "-c", str(count)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def sm_activity(proc: subprocess.Popen | None) -> dict[str, float]:
    if proc is None:
        return {}
    out, _ = proc.communicate(timeout=60)
    values: dict[str, list[float]] = defaultdict(list)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "GPU":
            try:
                values[parts[1]].append(float(parts[2]))
            except ValueError:
                continue
    return {gpu: statistics.mean(v) for gpu, v in values.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=120, help="study time budget")
    parser.add_argument("--workers-per-gpu", default="auto", help="a count, or auto (the study's default)")
    parser.add_argument("--data", default="GunPoint")
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the study's own)")
    parser.add_argument("--cpu", action="store_true", help="the same study on the CPU, for comparison")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for the study, e.g. data.path=train.npz")
    args = parser.parse_args()

    import optuna
    import torch

    n_gpus = 0 if args.cpu else torch.cuda.device_count()
    if not args.cpu and n_gpus == 0:
        sys.exit("no GPU visible: this script checks GPU placement and utilisation (--cpu runs the CPU study)")
    root = Path(tempfile.mkdtemp(prefix="hybridsearch-gpu-"))
    cmd = [
        sys.executable,
        "-m",
        "hybridsearch",
        "+study=timeseries",
        "study.name=gpu-check",
        f"study.root={root}",
        f"data.name={args.data}",
        "study.n_trials=null",
        f"study.timeout={args.seconds}",
        "study.report=false",
        "study.register=false",
        "study.baseline=false",
        f"hydra.run.dir={root / 'hydra'}",
    ]
    cmd += args.overrides
    if args.epochs is not None:
        cmd.append(f"trainer.max_epochs={args.epochs}")
    if args.cpu:
        cmd += ["trainer.accelerator=cpu", "study.gpus=[]"]
    else:
        cmd.append(f"study.workers_per_gpu={args.workers_per_gpu}")
    sampler = None if args.cpu else NvmlSampler()
    dcgm = None if args.cpu else dcgm_sm_activity(args.seconds)
    where = "CPU" if args.cpu else f"{n_gpus} GPU(s) x {args.workers_per_gpu} worker(s)"
    epochs = f"{args.epochs} epochs at most" if args.epochs else "the study's epochs"
    print(f"== {args.data}, {epochs}, {args.seconds} s, {where}", flush=True)
    if sampler:
        print("   " + ", ".join(f"gpu {i}: {sampler.name(i)}" for i in range(n_gpus)))
        sampler.start()
    start, cpu_start = time.time(), cpu_times()
    env = {**os.environ, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}  # torch's GPU order = NVML's
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.time() - start
    (busy0, total0), (busy1, total1) = cpu_start, cpu_times()
    host_busy = 100 * (busy1 - busy0) / max(1, total1 - total0)
    if sampler:
        sampler.stop.set()
        sampler.join()
    if result.returncode != 0:
        sys.exit(f"study failed ({result.returncode}):\n{result.stderr[-3000:]}")
    study = optuna.load_study(study_name="gpu-check", storage=f"sqlite:///{root}/optuna.db")
    trials = [t for t in study.trials if t.state.is_finished()]
    states = Counter(t.state.name.lower() for t in trials)
    epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in trials)  # over all folds, pruned trials too
    print(
        f"{len(trials)} trials ({dict(states)}) in {elapsed:.0f} s: {60 * len(trials) / elapsed:.2f} trials per minute,"
        f" {60 * epochs / elapsed:.0f} epochs per minute"
    )
    where = placement(trials)
    print(f"host CPU busy: {host_busy:.0f}% of {os.cpu_count()} cores, mean over the study (start-up included)")
    if sampler:
        sm = sm_activity(dcgm)
        print("NVML utilisation = share of time at least one kernel ran (not SM occupancy)")
        # Also while trials ran: from the first trial's start to the last one's end, leaving out the
        # workers' start-up and the work after the search.
        first = min(t.datetime_start.timestamp() for t in trials if t.datetime_start) if trials else 0.0
        last = max(t.datetime_complete.timestamp() for t in trials if t.datetime_complete) if trials else 0.0
        print(f"trials ran {last - first:.0f} s of the {elapsed:.0f} s")
        print(
            f"{'gpu':>4} {'trials':>7} {'util mean %':>12} {'while trials ran':>17} {'util peak %':>12}"
            f" {'peak MiB':>9} {'SM active %':>12}"
        )
        for i in range(n_gpus):
            util = sampler.util[i] or [0]
            trials_here = where.per_gpu.get(str(i), 0)
            active = f"{100 * sm[str(i)]:.1f}" if str(i) in sm else "-"
            print(
                f"{i:>4} {trials_here:>7} {statistics.mean(util):>12.1f} "
                f"{statistics.mean(sampler.between(i, first, last)):>17.1f} {max(util):>12} "
                f"{sampler.memory[i] / 2**20:>9.0f} {active:>12}"
            )
        if not sm:
            print("SM activity: DCGM (dcgmi) not installed")
    print(f"trials by worker GPU: {where.per_gpu or '-'}; trials on the CPU: {len(where.on_cpu)}", end="")
    print(f"; never started training: {where.unknown}")
    if not args.cpu and where.on_cpu:
        sys.exit(f"misplaced: trials {where.on_cpu[:10]} trained on the CPU while GPUs were given")


if __name__ == "__main__":
    main()
