"""Overhead of one trial through hybridsearch over the same model in a plain PyTorch loop.

    python benchmarks/overhead.py [--data GunPoint] [--epochs 1200] [--repeats 2] [--out benchmarks/results]
    python benchmarks/overhead.py --data OSULeaf --epochs 240   # a trial of about 30 s

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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

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


def plain_loop(data_name: str, epochs: int) -> float:
    from hybridsearch.data import DataConfig, prepare
    from hybridsearch.search_space import build_model

    data = prepare(DataConfig(name=data_name))
    mean, std = (torch.tensor(v).view(1, -1, 1) for v in data.scaling())
    torch.manual_seed(0)
    model = build_model(PARAMS, in_channels=data.in_channels, n_outputs=data.n_outputs, seq_len=data.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=PARAMS["lr"], weight_decay=PARAMS["weight_decay"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    X, y = torch.from_numpy(data.train.X), torch.from_numpy(data.train.y)
    Xv, yv = torch.from_numpy(data.val.X), torch.from_numpy(data.val.y)
    bs = PARAMS["batch_size"]
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(X))
        for i in range(0, len(X), bs):
            idx = order[i : i + bs]
            if len(idx) < 2:
                continue
            loss = torch.nn.functional.cross_entropy(model((X[idx] - mean) / std), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        schedule.step()
        model.eval()
        with torch.no_grad():
            out = model((Xv - mean) / std)
            (out.argmax(-1) == yv).float().mean().item()
    return time.perf_counter() - start


def through_hybridsearch(data_name: str, epochs: int) -> tuple[float, float, float]:
    """(trial seconds, command seconds, seconds from launch to the first epoch's end)."""
    import optuna
    from mlflow import MlflowClient

    root = Path(tempfile.mkdtemp(prefix="hybridsearch-overhead-"))
    cmd = [
        sys.executable,
        "-m",
        "hybridsearch",
        "+study=timeseries",
        "study.name=overhead",
        f"study.root={root}",
        f"data.name={data_name}",
        "study.n_trials=1",
        "study.ensemble=1",  # no work after the trial that is not timed anyway
        "study.baseline=false",
        "study.report=false",
        f"trainer.max_epochs={epochs}",
        "pruner=percentile",
        "data.cv_folds=1",  # one model, as in the plain loop
        "~callbacks.early_stopping",
        f"hydra.run.dir={root}/hydra",
        "study.enqueue=[" + json.dumps(PARAMS).replace('"', "") + "]",  # Hydra's override grammar
    ]
    launch = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True)
    command = time.time() - launch
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    trial = optuna.load_study(study_name="overhead", storage=f"sqlite:///{root}/optuna.db").trials[0]
    assert trial.params == PARAMS, trial.params
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    history = MlflowClient(f"sqlite:///{root}/mlflow.db").get_metric_history(
        trial.user_attrs["mlflow_run_id"], "train_loss"
    )
    first_epoch = min(m.timestamp for m in history) / 1000 - launch
    return seconds, command, first_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="GunPoint")
    parser.add_argument("--epochs", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=2, help="alternate both this many times; keep the fastest")
    parser.add_argument("--out", type=Path, help="also write the figures to <out>/overhead-<data>-<epochs>.txt")
    args = parser.parse_args()
    plains, trials = [], []
    for _ in range(args.repeats):  # alternated, so that a slow spell of the machine hits both
        plains.append(plain_loop(args.data, args.epochs))
        trial, command, first_epoch = through_hybridsearch(args.data, args.epochs)
        trials.append(trial)
    plain, trial = min(plains), min(trials)
    runs = ", ".join(f"{t:.2f}" for t in trials)
    extra, base = 1000 * (trial - plain) / args.epochs, 1000 * plain / args.epochs
    lines = [
        f"{args.data}, {args.epochs} epochs of {PARAMS['topology']}, {torch.get_num_threads()} threads",
        f"plain PyTorch loop : {plain:7.2f} s  (runs: {', '.join(f'{p:.2f}' for p in plains)})",
        f"hybridsearch trial : {trial:7.2f} s  (runs: {runs}; the last whole command {command:.2f} s)",
        f"overhead ratio     : {trial / plain:7.3f}",
        f"per epoch          : {extra:7.2f} ms over the plain loop's {base:.2f} ms",
        f"start-up           : {first_epoch:7.2f} s from launch to the first epoch's end",
    ]
    print("\n".join(lines))
    if args.out:  # the README's speed figures (benchmarks/quality.py --readme-only puts them there)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"overhead-{args.data}-{args.epochs}.txt").write_text("\n".join(lines) + "\n")
    if not math.isfinite(trial / plain):
        sys.exit(1)


if __name__ == "__main__":
    main()
