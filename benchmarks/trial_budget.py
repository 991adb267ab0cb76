"""How many trials a 10-minute study finishes at the size issue 14 names: 200 training series of
500 steps, on 2 cores, per pruner; and whether each topology keeps its share.

    python benchmarks/trial_budget.py [--pruners percentile successive_halving ...] [--budget 600]
                                      [--seeds 0] [--out benchmarks/results]

None of the bundled development sets is that large (the largest, PickupGestureWiimoteZ, has 50
series of up to 361 steps), so the data is synthetic and seeded: four classes of noisy sines at
two frequencies, each with a bump up or down at a random place. Only the study's trial counts and
wall time are read; its test score takes part in no choice. Runs are logged to
``<out>/runs.jsonl`` as ``quality.py``'s are, and reused.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from quality import ROOT, RunLog, cli, one_process, publish  # benchmarks/quality.py, beside this script

SERIES, STEPS, CLASSES = 200, 500, 4
SIXTY = ["trainer.max_epochs=60", "trainer.max_steps=-1"]  # the default before training by steps (58e6f6c)
PRUNERS = {  # name -> overrides
    "percentile": ["pruner=percentile"],  # the default: judges the first fold from epoch 15 on
    "successive_halving": ["pruner=successive_halving"],  # rungs at 10, 30, 90, 270 epochs over the folds
    "hyperband": ["pruner=hyperband"],  # brackets of successive halving over the first fold's epochs
    "successive_halving, first rung at 5 epochs": ["pruner=successive_halving", "pruner.min_resource=5"],
    "percentile, 60 epochs": ["pruner=percentile", *SIXTY],
    "successive_halving, 60 epochs": ["pruner=successive_halving", *SIXTY],
    # early stopping also ends a fold whose validation loss gains less than 0.001 in 20 epochs
    "percentile, early stopping min_delta 0.001": ["pruner=percentile", "callbacks.early_stopping.min_delta=0.001"],
    # and min_delta 0.001 (the default since); after each fold, a trial whose folds so far score
    # worse than the best trial's worst fold is pruned
    "percentile, forgiving early stopping of CV": ["pruner=percentile", "study.stop_folds=true"],
    "successive_halving, forgiving early stopping of CV": ["pruner=successive_halving", "study.stop_folds=true"],
    # and two worker processes on the two cores, a thread each
    "percentile, forgiving early stopping of CV, 2 workers": [
        "pruner=percentile",
        "study.stop_folds=true",
        "study.n_workers=2",
    ],
    "percentile, forgiving early stopping of CV, trial time limit 30 s": [
        "pruner=percentile",
        "study.stop_folds=true",
        "study.trial_time_limit=30",
    ],
    # the default since this row's commit: as the 2-worker row (a worker per core, cb3767b), and a
    # topology's hearing is set against its own topology's best trial between folds
    "the default: a worker per core, hearings stopped between folds within their topology": ["study.n_workers=null"],
    # the default since this row's commit: as the row above, with a known-good LRCN and ConvLSTM
    # enqueued beside the LSTM-FCN and the cascade
    "the default: a known-good design of each hybrid enqueued": ["study.n_workers=null"],
    # the default since this row's commit: as the row above, the enqueued designs in batches of 8 and
    # 8 among the searched batch sizes
    "the default: enqueued designs in batches of 8": ["study.n_workers=null"],
    # the default since this row's commit: as the row above, the enqueued ConvLSTM reading windows of 16
    "the default: the enqueued ConvLSTM reads windows of 16": ["study.n_workers=null"],
}
# Every other row ran in one process, the CPU default before cb3767b, and keeps it.
PRUNERS = {k: one_process(v) for k, v in PRUNERS.items()}
# name -> key in runs.jsonl, for runs logged before training by steps; the last is shown, not run again
LOGGED_AS = {
    "percentile, no trial time limit (795588d)": "percentile, steps, heard",
    "percentile, before every topology was heard unpruned (03b4b24)": "percentile, steps",
    "successive_halving, before every topology was heard unpruned (03b4b24)": "successive_halving, steps",
    "percentile, 60 epochs": "percentile",
    "successive_halving, 60 epochs": "successive_halving",
    "sha-topology (each trial judged within its topology; not kept)": "sha-topology",
    # the default from cb3767b: hearings trained all their folds
    "a worker per core, hearings trained all folds (cb3767b)": (
        "the default: percentile, forgiving early stopping of CV, a worker per core, steps, heard, trial time limit"
    ),
    # where the best trial's worst fold had accuracy 1, a trial whose perfect folds so far lost more
    # than that fold was pruned too (10f2d73; not kept, reverted, so it cannot run again)
    "percentile, forgiving early stopping of CV, ties at accuracy 1 ranked by loss": (
        "percentile, forgiving early stopping of CV, ties at accuracy 1 ranked by loss, steps, heard, trial time limit"
    ),
}


def synthetic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` series (n, 1, STEPS) and their classes: a sine at one of two frequencies, a bump up or down."""
    t = np.arange(STEPS)
    y = rng.integers(0, CLASSES, n)
    X = np.empty((n, 1, STEPS), np.float32)
    for i, label in enumerate(y):
        sine = np.sin(2 * np.pi * (0.02 if label % 2 == 0 else 0.03) * t + rng.uniform(0, 2 * np.pi))
        centre = rng.integers(50, STEPS - 50)
        bump = (1.0 if label >= 2 else -1.0) * np.exp(-0.5 * ((t - centre) / 10.0) ** 2)
        X[i, 0] = sine + 1.5 * bump + 0.5 * rng.standard_normal(STEPS)
    return X, y


def write_data(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    paths = folder / "train.npz", folder / "test.npz"
    for path, n in zip(paths, (SERIES, SERIES // 2), strict=True):
        X, y = synthetic(n, rng)
        np.savez(path, X=X, y=y)
    return paths


def table_row(pruner: str, seed: int, run: dict) -> str:
    n = sum(run["trials"].values())
    share = min(run["topologies"].values()) / n if run["topologies"] else float("nan")
    counts = f"{n} | {run['trials'].get('complete', 0)} | {run['trials'].get('pruned', 0)}"
    return f"| {pruner} | {seed} | {counts} | {share:.1%} | {run['wall_s']:.0f} | {run['commit']} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pruners", nargs="+", choices=list(PRUNERS), default=list(PRUNERS)[:2])
    parser.add_argument("--budget", type=float, default=600)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    log = RunLog(args.out / "runs.jsonl")
    root = Path(tempfile.mkdtemp(prefix="hybridsearch-trial-budget-"))
    train, test = write_data(root)
    print(f"studies of this run: {root}", flush=True)
    lines = [
        f"A {args.budget:g}-s study (`study.timeout={args.budget:g}`) on synthetic data of {SERIES} training "
        f"series x {STEPS} steps, {CLASSES} classes, 2-core CPU; trials finished (complete / pruned), "
        "the smallest topology's share, and the command's wall time.",
        "",
        "| pruner | seed | trials | complete | pruned | smallest share | wall (s) | commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pruner in dict.fromkeys([*PRUNERS, *LOGGED_AS]):  # those asked for run if not logged; the others show if logged
        for seed in args.seeds:

            def measure(pruner=pruner, seed=seed) -> dict:
                name = f"synthetic-{len(log.runs)}-{seed}-{int(time.time())}"
                start = time.time()
                s = cli(
                    root, name, "synthetic", seed, "study.n_trials=null", f"study.timeout={args.budget}",
                    f"data.path={train}", f"data.test_path={test}", *PRUNERS[pruner],
                )  # fmt: skip
                return {
                    "trials": s["trials"],
                    "topologies": {k: v["trials"] for k, v in s.get("topologies", {}).items()},
                    "wall_s": round(time.time() - start, 1),
                }

            logged_as = LOGGED_AS.get(pruner, f"{pruner}, steps, heard, trial time limit")
            key = f"trial-budget|{SERIES}x{STEPS}|{logged_as}|{seed}|{args.budget:g}"
            run = log.get(key, measure, run=pruner in args.pruners)
            if run:
                lines.append(table_row(pruner, seed, run))
    publish(lines, args.out, "trial-budget.md")


if __name__ == "__main__":
    main()
