"""The training recipe, element by element: out-of-fold (CV) scores of fixed designs on the
training splits of the development datasets. Test splits are not read.

    python benchmarks/recipe.py [--datasets GunPoint ItalyPowerDemand BasicMotions PickupGestureWiimoteZ]
                                [--variants before steps ...] [--out benchmarks/results]

Each variant trains the study's enqueued designs (``conf/study/timeseries.yaml``: an LSTM-FCN and a
DeepConvLSTM-like cascade until 4d19c6e, a design of each of the four hybrids since) through the
study's own objective: the same 5 folds, one epoch count on the fold-averaged curve, the OOF
accuracy and log loss at it. A recipe element is
worth keeping as a default only where it raises these scores. Rows are appended to
``<out>/recipe.jsonl`` and reused (``--fresh`` ignores them); the table goes to ``<out>/recipe.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVELOPMENT = ["GunPoint", "ItalyPowerDemand", "BasicMotions", "PickupGestureWiimoteZ"]
# name -> (config overrides, parameters added to each design)
STEPS = ["trainer.max_epochs=1000", "trainer.max_steps=1500"]


def fixed(name: str, value: object) -> str:
    """A recipe option held at one value: a searched parameter with one choice."""
    return f"+space.training.{name}={{type: categorical, choices: [{value}]}}"


VARIANTS: dict[str, list[str]] = {  # name -> config overrides
    "before": ["trainer.max_epochs=60"],
    "steps": STEPS,
    "steps, no early stop": [*STEPS, "~callbacks.early_stopping"],
    "steps + warm-up": [*STEPS, fixed("warmup", 0.1)],
    "steps + label smoothing": [*STEPS, fixed("label_smoothing", 0.1)],
    "steps + jitter": [*STEPS, fixed("augment", "jitter")],
    "steps + warp": [*STEPS, fixed("augment", "warp")],
}
# ConvLSTM (conv_gated) designs at three window sizes, trained in place of the enqueued ones, with the
# group normalisation of its input-to-gate convolution (ConvGated's gate_norm, the default). Without
# it there is no variant: space.model is typed, so gate_norm cannot be added to it from the command
# line (the README gives the one-off comparison).
CONV_GATED = [
    {"topology": "conv_gated", "patch_len": p, "patch_fold": f, "gate_kernel": 3, "lstm_hidden": 64, "lstm_layers": 1,
     "dropout": 0.2, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16}
    for p, f in ((16, 4), (32, 4), (8, 2))
]  # fmt: skip
CONVLSTM = "ConvLSTM, gates normalised"
# LRCN (feature_extractor) designs at the same three window sizes: a two-layer CNN embeds each
# half-overlapping window, an LSTM reads the embeddings.
FEATURE_EXTRACTOR = [
    {"topology": "feature_extractor", "patch_len": p, "patch_overlap": 0.5, "conv_layers": 2, "conv_channels_1": 64,
     "conv_channels_2": 64, "conv_kernel_1": 5, "conv_kernel_2": 3, "pool": "max", "pool_size": 2, "lstm_hidden": 64,
     "lstm_layers": 1, "bidirectional": False, "dropout": 0.2, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16}
    for p in (16, 32, 8)
]  # fmt: skip
LRCN = "LRCN"
FIXED = {CONVLSTM: CONV_GATED, LRCN: FEATURE_EXTRACTOR}  # variant -> the designs it trains instead
VARIANTS[CONVLSTM] = VARIANTS[LRCN] = STEPS
# The LSTM branch of the enqueued LSTM-FCN design, alone (the paper's dimension shuffle is the
# "before" row's): reading the series in time order, raw or in windows of ``lstm_patch`` steps.
DESIGNS: dict[str, dict[str, object]] = {  # name -> changes to the parallel design
    "LSTM-FCN, LSTM on raw steps": {"dimension_shuffle": False, "lstm_patch": 1},
    "LSTM-FCN, LSTM on windows of 8 steps": {"dimension_shuffle": False, "lstm_patch": 8},
}
# The four enqueued designs as a 10-minute study trains them: study.trial_time_limit=auto gives a
# trial 60 s over its 5 folds, on one thread (a worker per core on this 2-core machine). Run with
# OMP_NUM_THREADS=1. Name -> changes to every design it trains.
TRIAL_LIMIT = 60.0
LIMITED: dict[str, dict[str, object]] = {
    "enqueued, 60 s a trial": {},
    "enqueued, 60 s a trial, batches of 8": {"batch_size": 8},
    "enqueued, 60 s a trial, learning rate 0.003": {"lr": 0.003},
}
# and the three LRCN and ConvLSTM windows so, in batches of 8 (the enqueued designs' since 29e8968)
LIMITED_WINDOWS = {f"{name}, 60 s a trial, batches of 8": designs for name, designs in FIXED.items()}
LIMITED.update({name: {"batch_size": 8} for name in LIMITED_WINDOWS})
FIXED.update(LIMITED_WINDOWS)
VARIANTS.update(dict.fromkeys(LIMITED, STEPS))
# and window warping, a padded series warped within its own length (until 47f4e08
# padded sets such as PickupGestureWiimoteZ were only jittered)
WARP_LIMITED = "enqueued, 60 s a trial, batches of 8, warp"
LIMITED[WARP_LIMITED] = {"batch_size": 8}
VARIANTS[WARP_LIMITED] = [*STEPS, fixed("augment", "warp")]
# and every LSTM bidirectional, the ConvLSTM's too (its bidirectional option since aa6f6ad)
BIDIRECTIONAL_LIMITED = "enqueued, 60 s a trial, batches of 8, bidirectional"
LIMITED[BIDIRECTIONAL_LIMITED] = {"batch_size": 8, "bidirectional": True}
VARIANTS[BIDIRECTIONAL_LIMITED] = [
    *STEPS,
    "space.model.bidirectional.topologies=[feature_extractor,parallel,cascade,conv_gated,lstm]",
]
# and on unequal-length data each series' log length as an extra input channel (data.length_feature,
# the default since), over three seeds' folds: without it, then with it
for name, overrides in (("without", ["data.length_feature=false"]), ("with", [])):
    LIMITED[f"enqueued, 60 s a trial, {name} the length channel"] = {}
    VARIANTS[f"enqueued, 60 s a trial, {name} the length channel"] = [*STEPS, *overrides]
# the enqueued LRCN and ConvLSTM alone, over three seeds' folds: their windows cut where the last
# whole window ends (until this variant's "every step" row), then covering every step of each
# series, the last window zero-padded past the series' end
WINDOWED = ("feature_extractor", "conv_gated")
for name in ("whole windows", "every step"):
    LIMITED[f"enqueued LRCN and ConvLSTM, 60 s a trial, {name}"] = {}
    VARIANTS[f"enqueued LRCN and ConvLSTM, 60 s a trial, {name}"] = STEPS
# 8 was not yet among the searched batch sizes when this variant ran
VARIANTS["enqueued, 60 s a trial, batches of 8"] = [*STEPS, "space.training.batch_size.choices=[8,16,32,64]"]


def measure(dataset: str, variant: str, seed: int) -> list[dict]:
    from hydra import compose, initialize_config_module

    from hybridsearch.config import register_configs
    from hybridsearch.progress import quiet_libraries
    from hybridsearch.session import open_session

    overrides = VARIANTS.get(variant, [*VARIANTS["before"], "space.model.lstm_patch.choices=[1,4,8,16]"])
    register_configs()
    with tempfile.TemporaryDirectory() as root, quiet_libraries():
        with initialize_config_module("hybridsearch.conf", version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[
                    "+study=timeseries",
                    f"data.name={dataset}",
                    f"study.root={root}",
                    f"study.seed={seed}",
                    "study.timeout=null",
                    "trainer.accelerator=cpu",
                    *overrides,
                ],
            )
        session = open_session(cfg)
        extra = {p.name: p.choices[0] for p in session.space.training if p.name not in cfg.study.enqueue[0]}
        designs = [dict(d) for d in FIXED.get(variant, cfg.study.enqueue)]
        if variant in DESIGNS:
            designs = [{**d, **DESIGNS[variant]} for d in designs if d["topology"] == "parallel"]
        if variant.startswith("enqueued LRCN and ConvLSTM"):
            designs = [d for d in designs if d["topology"] in WINDOWED]
        designs = [{**d, **LIMITED.get(variant, {})} for d in designs]
        objective = session.objective()
        if variant in LIMITED:  # as each topology's first trial: time-limited, heard unpruned, every fold
            objective.time_limit, objective.unheard = TRIAL_LIMIT, lambda study, topology: True
            objective.stop_folds = False  # a window is not cut short by the topology's earlier one
        rows = []
        for design in designs:
            session.study.enqueue_trial({**design, **extra})
            start = time.perf_counter()
            session.study.optimize(objective, n_trials=1, catch=(Exception,))
            t = session.study.trials[-1]
            assert all(t.params.get(k) == v for k, v in extra.items()), (t.params, extra)  # the option was applied
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "seed": seed,
                    "topology": design["topology"],
                    "state": t.state.name,
                    "oof_accuracy": t.value,
                    "oof_log_loss": t.user_attrs.get("val_loss"),
                    "epochs": t.user_attrs.get("epochs"),
                    "best_epoch": t.user_attrs.get("best_epoch"),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
        return rows


def table(rows: list[dict], variants: list[str]) -> str:
    datasets = [d for d in DEVELOPMENT if any(r["dataset"] == d for r in rows)]
    head = "| variant | " + " | ".join(datasets) + " | mean |"
    lines = [head, "|---" * (len(datasets) + 2) + "|"]
    for v in variants:
        cells, means = [], []
        for d in datasets:
            got = [r for r in rows if r["dataset"] == d and r["variant"] == v and r["state"] == "COMPLETE"]
            if not got:
                cells.append("-")
                continue
            acc = statistics.mean(r["oof_accuracy"] for r in got)
            loss = statistics.mean(r["oof_log_loss"] for r in got)
            means.append(acc)
            per = ", ".join(f"{r['topology'][:3]} {r['oof_accuracy']:.3f}/{r['epochs']}" for r in got)
            cells.append(f"{acc:.3f} (log loss {loss:.3f}; {per})")
        if means:  # a variant with no rows logged is left out
            lines.append(f"| {v} | " + " | ".join(cells) + f" | {statistics.mean(means):.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=DEVELOPMENT)
    ap.add_argument("--variants", nargs="+", default=[*VARIANTS, *DESIGNS])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "recipe.jsonl"
    rows = [] if args.fresh or not log.exists() else [json.loads(x) for x in log.read_text().splitlines() if x]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    for dataset in args.datasets:
        for variant in args.variants:
            for seed in args.seeds:
                if any(r["dataset"] == dataset and r["variant"] == variant and r["seed"] == seed for r in rows):
                    continue
                new = measure(dataset, variant, seed)
                for r in new:
                    r["commit"] = commit.stdout.strip()
                    print(json.dumps(r), flush=True)
                with log.open("a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in new)
                rows += new
    text = (
        "Out-of-fold accuracy (5 folds of each training split; test not read) of the two enqueued designs,\n"
        "per variant of the training recipe; each cell: mean, OOF log loss, then per design\n"
        'accuracy/epochs trained. In the "steps + warp" row window warping fell back to jitter on padded\n'
        '(unequal-length) sets such as PickupGestureWiimoteZ; in the "..., warp" row under the trial limit\n'
        "a padded series is warped within its own length. The LSTM-FCN rows train that design alone, its\n"
        "LSTM reading the series in time order (the before row's LSTM-FCN reads it transposed, the paper's\n"
        "dimension shuffle).\n"
        "The ConvLSTM and LRCN rows train three fixed designs of that topology (windows of 16, 32 and 8\n"
        'steps) instead. The "enqueued, 60 s a trial" rows train the study\'s four enqueued designs as a\n'
        "10-minute study's first trials: 60 s over the 5 folds (study.trial_time_limit=auto), unpruned,\n"
        "one thread each (OMP_NUM_THREADS=1, a worker per core on 2 cores); the ConvLSTM and LRCN rows\n"
        'with "60 s a trial" train their three windows so, in batches of 8. The "... the length channel"\n'
        "rows are three seeds' folds each (the cell's mean is over the 12 trainings), without the length\n"
        "channel at 933770a and with it (data.length_feature) at 16e435e, run side by side in one hour.\n\n"
        + table(rows, [*VARIANTS, *DESIGNS])  # every variant logged, not only this run's
        + "\n"
    )
    (args.out / "recipe.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
