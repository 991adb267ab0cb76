"""Overhead of one trial through hybridsearch over the same model in a plain PyTorch loop.

    python benchmarks/overhead.py [--data GunPoint] [--epochs 1200] [--repeats 2] [--out benchmarks/results]
    python benchmarks/overhead.py --data OSULeaf --epochs 240   # a trial of about 30 s
    python benchmarks/overhead.py --workers 12 24                # 2 CPU workers over 1
    python benchmarks/overhead.py --data ItalyPowerDemand --start 1 2 4   # start-up with N CPU workers
    python benchmarks/overhead.py --device cuda --epochs 300     # on a GPU machine

Two cases matter. A trial of ordinary epochs, e.g. OSULeaf (160 training series of 427 steps,
~0.12 s an epoch here): 240 epochs take about 30 s, the default study's 60 about 8 s. And the worst
case, many epochs of a tiny dataset (GunPoint's 40 training series, ~20 ms an epoch, 1200 of
them): there the fixed cost per epoch (Lightning's loops, the validation pass's logging, Optuna's
report) shows most.

Trains one fixed configuration for a fixed number of epochs twice: in a plain PyTorch loop
(AdamW, cosine schedule, a validation pass per epoch, as hybridsearch does) and as a trial of the
command line (Hydra, Optuna with pruning calls, Lightning, MLflow logging, checkpoint). Prints
both times and their ratio, plus the command's start-up: seconds from launch to the first
epoch's end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from quality import publish  # benchmarks/quality.py, beside this script

PARAMS = {
    "topology": "cascade",
    "conv_layers": 2,
    "conv_channels_1": 64,
    "conv_channels_2": 64,
    "conv_kernel_1": 7,
    "conv_kernel_2": 5,
    "pool": "max",
    "pool_size": 2,
    "lstm_hidden": 64,
    "lstm_layers": 1,
    "bidirectional": False,
    "dropout": 0.1,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 16,
}


def plain_loop(data_name: str, epochs: int, device: torch.device) -> float:
    from hybridsearch.data import DataConfig, prepare
    from hybridsearch.search_space import build_model

    data = prepare(DataConfig(name=data_name))
    mean, std = (torch.tensor(v).view(1, -1, 1).to(device) for v in data.scaling())
    torch.manual_seed(0)
    model = build_model(PARAMS, in_channels=data.in_channels, n_outputs=data.n_outputs, seq_len=data.seq_len)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=PARAMS["lr"], weight_decay=PARAMS["weight_decay"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    # The data sits on the device, as a trial's does.
    X, y = torch.from_numpy(data.train.X).to(device), torch.from_numpy(data.train.y).to(device)
    Xv, yv = torch.from_numpy(data.val.X).to(device), torch.from_numpy(data.val.y).to(device)
    # Series of unequal length are padded, and the model masks the padding, as in a trial.
    lengths, padded = torch.from_numpy(data.train.lengths).to(device), data.train.lengths < data.train.X.shape[-1]
    lv = torch.from_numpy(data.val.lengths).to(device) if (data.val.lengths < data.val.X.shape[-1]).any() else None
    bs = PARAMS["batch_size"]
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(X))
        for i in range(0, len(X), bs):
            idx = order[i : i + bs]
            if len(idx) < 2:
                continue
            any_padded = padded[idx.numpy()].any()  # from the host copy: no device sync
            idx = idx.to(device)
            lens = lengths[idx] if any_padded else None
            loss = torch.nn.functional.cross_entropy(model((X[idx] - mean) / std, lens), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
        model.eval()
        with torch.no_grad():
            out = model((Xv - mean) / std, lv)
            (out.argmax(-1) == yv).float().mean().item()  # a host sync an epoch, as a trial's logging has
    return time.perf_counter() - start


def command(root: Path, name: str, data_name: str, *overrides: str) -> list[str]:
    """The command line of a timed study in ``root``: no baseline, report or ensemble, whose work
    after the search is not what is timed."""
    return [
        sys.executable, "-m", "hybridsearch", "+study=timeseries", f"study.name={name}", f"study.root={root}",
        f"data.name={data_name}", "study.ensemble=1", "study.baseline=false", "study.report=false",
        f"hydra.run.dir={root}/hydra", *overrides,
    ]  # fmt: skip


def through_hybridsearch(data_name: str, epochs: int, device: torch.device) -> tuple[float, float, float]:
    """(trial seconds, command seconds, seconds from launch to the first epoch's end)."""
    import optuna
    from mlflow import MlflowClient

    root = Path(tempfile.mkdtemp(prefix="hybridsearch-overhead-"))
    cmd = command(
        root,
        "overhead",
        data_name,
        "study.n_trials=1",
        "study.n_workers=1",  # in the command's process, as the plain loop runs in its own
        f"trainer.max_epochs={epochs}",
        "pruner=percentile",
        "data.cv_folds=1",  # one model, as in the plain loop
        "~callbacks.early_stopping",
        "study.enqueue=[" + json.dumps(PARAMS).replace('"', "") + "]",  # Hydra's override grammar
        f"trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}",
    )
    launch = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True)
    whole = time.time() - launch
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    trial = optuna.load_study(study_name="overhead", storage=f"sqlite:///{root}/optuna.db").trials[0]
    assert trial.params == PARAMS, trial.params
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    history = MlflowClient(f"sqlite:///{root}/mlflow.db").get_metric_history(
        trial.user_attrs["mlflow_run_id"], "train_loss"
    )
    first_epoch = min(m.timestamp for m in history) / 1000 - launch
    return seconds, whole, first_epoch


def worker_scaling(data_name: str, fixed: int, default: int) -> list[str]:
    """Trials (and epochs) per hour of a study with 2 CPU workers over 1, on two kinds of study:
    ``fixed`` trials of the fixed cascade, 30 epochs, 5 folds, no pruning or early stopping, and
    the default study (``+study=timeseries``) stopped after ``default`` trials. One worker runs in
    the command's process with torch's threads (2 here) and again with 1 thread; two workers get one
    core and one thread each. Rates count from the first trial's start to the last one's end."""
    import optuna

    same = [{**PARAMS, "dropout": round(0.1 + i * 1e-4, 4)} for i in range(fixed)]  # distinct, so all enqueue
    studies = {
        f"{fixed} fixed cascade trials of 30 epochs": [
            f"study.n_trials={fixed}",
            "trainer.max_epochs=30",
            "pruner=none",
            "~callbacks.early_stopping",
            "study.enqueue=[" + ",".join(json.dumps(p).replace('"', "") for p in same) + "]",
        ],
        f"the default study, {default} trials": [f"study.n_trials={default}", "study.timeout=null"],
    }
    lines = [f"{data_name}, trials per hour (epochs per hour), 2 CPU workers over 1"]
    for name, overrides in studies.items():
        rates = {}
        for label, workers, threads in (("1 worker", 1, None), ("1 worker, 1 thread", 1, 1), ("2 workers", 2, None)):
            root = Path(tempfile.mkdtemp(prefix="hybridsearch-workers-"))
            env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
            cmd = command(root, "workers", data_name, f"study.n_workers={workers}", *overrides)
            result = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                sys.exit(result.stderr[-3000:])
            trials = optuna.load_study(study_name="workers", storage=f"sqlite:///{root}/optuna.db").get_trials(
                states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            )
            hours = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
            hours /= 3600
            epochs = sum(int(t.user_attrs.get("epochs", 0)) for t in trials)
            rates[label] = (len(trials) / hours, epochs / hours)
        one, single, two = rates["1 worker"], rates["1 worker, 1 thread"], rates["2 workers"]
        lines += [
            f"  {name}:",
            *(f"    {label:<20}: {t:7.0f} trials/h ({e:8.0f} epochs/h)" for label, (t, e) in rates.items()),
            f"    2 workers over 1   : {two[0] / one[0]:.2f}x trials/h ({two[1] / one[1]:.2f}x epochs/h); "
            f"over 1 worker with 1 thread: {two[0] / single[0]:.2f}x ({two[1] / single[1]:.2f}x)",
        ]
    return lines


def worker_start(data_name: str, counts: list[int], repeats: int) -> list[str]:
    """Seconds from launch to the first trial's start, and to the command's end, of a small study
    (2 trials per worker, 3 epochs, 2 folds, no pruning) with each of ``counts`` CPU workers: what
    starting the workers costs. Run it from another checkout's folder with ``PYTHONPATH=<it>`` to
    compare two versions; each count is run ``repeats`` times, the fastest kept."""
    import optuna

    lines = [f"{data_name}, a study of 2 trials per CPU worker (3 epochs, 2 folds), fastest of {repeats}"]
    for n in counts:
        firsts, walls = [], []
        for _ in range(repeats):
            root = Path(tempfile.mkdtemp(prefix="hybridsearch-start-"))
            overrides = [f"study.n_workers={n}", f"study.n_trials={2 * n}", "trainer.max_epochs=3"]
            overrides += ["data.cv_folds=2", "pruner=none", "study.timeout=null"]
            launch = time.time()
            result = subprocess.run(command(root, "start", data_name, *overrides), capture_output=True, text=True)
            walls.append(time.time() - launch)
            if result.returncode != 0:
                sys.exit(result.stderr[-3000:])
            trials = optuna.load_study(study_name="start", storage=f"sqlite:///{root}/optuna.db").trials
            firsts.append(min(t.datetime_start.timestamp() for t in trials if t.datetime_start) - launch)
        lines.append(
            f"  {n} worker(s): first trial starts {min(firsts):5.1f} s after launch, command ends at "
            f"{min(walls):5.1f} s  (runs: {', '.join(f'{f:.1f}/{w:.1f}' for f, w in zip(firsts, walls, strict=True))})"
        )
    return lines


def import_floor() -> float:
    """Seconds for a fresh interpreter to ``import torch, lightning``: the least any command that
    trains with Lightning waits before its first epoch."""
    launch = time.time()
    subprocess.run([sys.executable, "-c", "import torch, lightning"], check=True)
    return time.time() - launch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="GunPoint")
    parser.add_argument("--epochs", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=2, help="alternate both this many times; keep the fastest")
    parser.add_argument("--out", type=Path, help="also write the figures to <out>/overhead-<data>-<epochs>.txt")
    parser.add_argument("--device", default="cpu", help="where both train: cpu or cuda")
    parser.add_argument(
        "--workers", type=int, nargs=2, metavar=("FIXED", "DEFAULT"),
        help="instead: worker scaling over FIXED 30-epoch trials and DEFAULT trials of the default study",
    )  # fmt: skip
    parser.add_argument("--start", type=int, nargs="+", metavar="N", help="instead: start-up with N CPU workers")
    args = parser.parse_args()
    if args.start:
        publish(worker_start(args.data, args.start, args.repeats), args.out, f"overhead-start-{args.data}.txt")
        return
    if args.workers:
        publish(worker_scaling(args.data, *args.workers), args.out, f"overhead-workers-{args.data}.txt")
        return
    device = torch.device(args.device)
    plains, trials, starts, floors = [], [], [], []
    for _ in range(args.repeats):  # alternated, so that a slow spell of the machine hits both
        plains.append(plain_loop(args.data, args.epochs, device))
        floors.append(import_floor())
        trial, whole, first_epoch = through_hybridsearch(args.data, args.epochs, device)
        trials.append(trial)
        starts.append(first_epoch)
    plain, trial = min(plains), min(trials)
    runs = ", ".join(f"{t:.2f}" for t in trials)
    extra, base = 1000 * (trial - plain) / args.epochs, 1000 * plain / args.epochs
    lines = [
        f"{args.data}, {args.epochs} epochs of {PARAMS['topology']}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
        f"plain PyTorch loop : {plain:7.2f} s  (runs: {', '.join(f'{p:.2f}' for p in plains)})",
        f"hybridsearch trial : {trial:7.2f} s  (runs: {runs}; the last whole command {whole:.2f} s)",
        f"overhead ratio     : {trial / plain:7.3f}",
        f"per epoch          : {extra:7.2f} ms over the plain loop's {base:.2f} ms",
        f"start-up           : {min(starts):7.2f} s from launch to the first epoch's end, "
        f"+{min(starts) - min(floors):.2f} s over `import torch, lightning` ({min(floors):.2f} s)",
    ]
    # The README's speed figures (benchmarks/quality.py --readme-only puts them there).
    suffix = "" if device.type == "cpu" else f"-{device.type}"
    publish(lines, args.out, f"overhead-{args.data}-{args.epochs}{suffix}.txt")
    if not math.isfinite(trial / plain):
        sys.exit(1)


if __name__ == "__main__":
    main()
