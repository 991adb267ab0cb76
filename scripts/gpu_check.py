"""Check hybridsearch on a GPU machine: one worker per GPU, trials per minute, GPU utilisation.

    python scripts/gpu_check.py [--seconds 120] [--workers-per-gpu 1] [--data GunPoint] [--epochs 60]

Runs a short study in a temporary folder with ``study.n_workers`` = GPUs x workers-per-GPU while
sampling ``nvidia-smi`` every second, then prints, per GPU, the trials it ran and its mean and
peak utilisation, and the study's trials per minute. Exits non-zero if a GPU ran no trial or a
trial ran on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path


def sample_utilisation(samples: dict[str, list[int]], stop: threading.Event) -> None:
    query = ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
    while not stop.is_set():
        out = subprocess.run(query, capture_output=True, text=True).stdout
        for line in out.strip().splitlines():
            index, util, _ = (v.strip() for v in line.split(","))
            samples[index].append(int(util))
        stop.wait(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=120, help="study time budget")
    parser.add_argument("--workers-per-gpu", type=int, default=1)
    parser.add_argument("--data", default="GunPoint")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()

    import optuna
    import torch

    n_gpus = torch.cuda.device_count()
    if n_gpus == 0:
        sys.exit("no GPU visible: this script checks GPU placement and utilisation")
    print(f"{n_gpus} GPU(s): " + ", ".join(torch.cuda.get_device_name(i) for i in range(n_gpus)))
    root = Path(tempfile.mkdtemp(prefix="hybridsearch-gpu-"))
    samples: dict[str, list[int]] = defaultdict(list)
    stop = threading.Event()
    sampler = threading.Thread(target=sample_utilisation, args=(samples, stop), daemon=True)
    cmd = [
        sys.executable,
        "-m",
        "hybridsearch",
        "+study=timeseries",
        "study.name=gpu-check",
        f"study.root={root}",
        f"data.name={args.data}",
        f"study.workers_per_gpu={args.workers_per_gpu}",
        "study.n_trials=100000",
        f"study.timeout={args.seconds}",
        f"trainer.max_epochs={args.epochs}",
        "hydra.run.dir=" + str(root / "hydra"),
    ]
    start = time.time()
    sampler.start()
    result = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.time() - start
    stop.set()
    sampler.join()
    if result.returncode != 0:
        sys.exit(f"study failed ({result.returncode}):\n{result.stderr[-3000:]}")
    study = optuna.load_study(study_name="gpu-check", storage=f"sqlite:///{root}/optuna.db")
    trials = [t for t in study.trials if t.state.is_finished()]
    per_gpu: dict[str, int] = defaultdict(int)
    on_cpu = 0
    for t in trials:
        per_gpu[t.user_attrs.get("gpu", "?")] += 1
        on_cpu += not str(t.user_attrs.get("device", "")).startswith("cuda")
    print(f"{len(trials)} trials in {elapsed:.0f} s: {60 * len(trials) / elapsed:.1f} trials per minute")
    print(f"{'gpu':>4} {'trials':>7} {'util mean %':>12} {'util peak %':>12}")
    for index in sorted(samples):
        util = samples[index]
        print(f"{index:>4} {per_gpu.get(index, 0):>7} {statistics.mean(util):>12.1f} {max(util):>12}")
    print(f"trials on the CPU: {on_cpu}")
    print(result.stdout.strip().splitlines()[-8:][0] if result.stdout.strip() else "")
    if on_cpu or any(per_gpu.get(str(i), 0) == 0 for i in range(n_gpus)):
        sys.exit("a GPU ran no trial, or a trial ran on the CPU")


if __name__ == "__main__":
    main()
