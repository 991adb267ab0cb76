"""Search quality against the peers, side by side: writes a Markdown table, a CSV and a plot.

    python benchmarks/quality.py [--datasets GunPoint ItalyPowerDemand BasicMotions] [--seeds 0 1 2]
                                 [--budget 600] [--out benchmarks/results] [--readme]
    python benchmarks/quality.py --ablation [--budget 300]   # TPE vs random, pruning on vs off
    python benchmarks/quality.py --readme-only               # README section from the saved results
    python benchmarks/quality.py --selection [--variant stop-folds] [--logged]   # the selection table

``--selection`` gives the honest-selection table instead, with ``benchmarks/selection.py``'s
options: for each development dataset and seed, the final model's test accuracy, its selection
score, the optimism, MiniRocket's CV and test scores, and the ensemble's members and weights.

For each dataset and seed, on the dataset's own train / test split:
- hybridsearch: the default study (``+study=timeseries``) with a wall-clock budget, all four hybrids;
  test accuracy of its final model;
- the best single topology: each of the four hybrids searched alone for a quarter of the budget;
  the one with the best validation score, and its test accuracy;
- aeon's MiniRocketClassifier, trained on the same training data, with its fit time.
Published figures are listed beside them with their sources. ``--readme`` writes the table into
the README between its results markers.

Every finished run is appended to ``<out>/runs.jsonl`` (with the commit it ran) and reused by later
commands with the same dataset, seed, budget and variant, so a long benchmark can be run in parts
(``--datasets GunPoint``, then ``--datasets ItalyPowerDemand``, ...) and survives an interruption.
``--fresh`` ignores the log.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HYBRIDS = ("feature_extractor", "parallel", "cascade", "conv_gated")
# Published test accuracies: LSTM-FCN (Karim et al. 2017, min-train-loss checkpoint) and
# InceptionTime (Ismail Fawaz et al. 2020, UCR/UEA archive results).
REFERENCES = {
    "GunPoint": {"LSTM-FCN": 1.000, "InceptionTime": 1.000},
    "ItalyPowerDemand": {"LSTM-FCN": 0.962, "InceptionTime": 0.965},
    "BasicMotions": {"InceptionTime": 1.000},
}
MARKERS = ("<!-- results:start -->", "<!-- results:end -->")


def publish(lines: list[str], out: Path | None, filename: str) -> None:
    """Print a benchmark's figures and, given ``out``, write them to ``out/filename`` as well."""
    print("\n".join(lines))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / filename).write_text("\n".join(lines) + "\n")


class RunLog:
    """Finished runs, one JSON object a line, keyed by what they measured; read back instead of rerun."""

    def __init__(self, path: Path, fresh: bool = False) -> None:
        self.path = path
        self.runs: dict[str, dict] = {}
        self.used: set[str] = set()  # commits of the runs read or made by this command
        if path.exists() and not fresh:
            for line in path.read_text().splitlines():
                if line.strip():
                    run = json.loads(line)
                    self.runs[run["key"]] = run

    def get(self, key: str, measure, run: bool = True) -> dict | None:
        """The logged run under ``key``; else, with ``run``, measure it now and log it."""
        if key not in self.runs and not run:
            return None
        if key not in self.runs:
            print(f"running {key} ...", flush=True)
            run = {"key": key, "commit": commit(), "date": time.strftime("%Y-%m-%d %H:%M"), **measure()}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(run) + "\n")
            self.runs[key] = run
            print(f"  {run}", flush=True)
        self.used.add(self.runs[key]["commit"])
        return self.runs[key]


def commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def study_run(
    log: RunLog, dataset: str, seed: int, budget: float, root: Path, *extra: str, run: bool = True
) -> dict | None:
    """One study's figures, from the log or measured now."""
    key = "|".join(["study", dataset, str(seed), f"{budget:g}", *extra])

    def measure() -> dict:
        name = f"{dataset}-{seed}-{len(log.runs)}-{int(time.time())}"
        s = run_study(dataset, seed, budget, root, name, *extra)
        return {
            "accuracy": s["test_metrics"]["accuracy"],  # the final model's
            "single_accuracy": (s.get("single_test_metrics") or s["test_metrics"])["accuracy"],
            "best_value": s["best_value"],
            "selection_score": s.get("selection_score"),
            "minirocket_cv": ((s.get("baselines") or {}).get("minirocket") or {}).get("cv", {}).get("accuracy"),
            "minirocket_test": ((s.get("baselines") or {}).get("minirocket") or {}).get("test", {}).get("accuracy"),
            "ensemble_trials": (s.get("ensemble") or {}).get("trials"),
            "ensemble_weights": (s.get("ensemble") or {}).get("weights"),
            "topology": s["best_params"]["topology"],
            "n_trials": s["n_trials"],
            "epochs_trained": s["epochs_trained"],
            "wall_s": round(s["wall_s"], 1),
        }

    return log.get(key, measure, run=run)


def one_process(overrides: list[str]) -> list[str]:
    """``overrides`` run in one process, the CPU default before cb3767b, unless they set ``study.n_workers``."""
    return overrides if any(o.startswith("study.n_workers=") for o in overrides) else [*overrides, "study.n_workers=1"]


def cli(root: Path, name: str, dataset: str, seed: int, *extra: str) -> dict:
    """The default study's command line on study ``name`` in ``root``; its summary.json."""
    cmd = [
        sys.executable,
        "-m",
        "hybridsearch",
        "+study=timeseries",
        f"study.name={name}",
        f"study.root={root}",
        f"data.name={dataset}",
        f"study.seed={seed}",
        f"hydra.run.dir={root}/hydra/{name}",
        "study.report=false",  # not part of the search; saves seconds per run
        "study.register=false",
        *extra,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return json.loads((root / name / "summary.json").read_text())


def run_study(dataset: str, seed: int, budget: float, root: Path, name: str, *extra: str) -> dict:
    """One hybridsearch study through the command line; returns its summary plus search statistics."""
    start = time.time()
    summary = cli(root, name, dataset, seed, "study.n_trials=null", f"study.timeout={budget}", *extra)
    import optuna

    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{root}/optuna.db").trials
    summary["epochs_trained"] = sum(t.user_attrs.get("epochs", 0) for t in trials)
    summary["n_trials"] = len(trials)
    summary["wall_s"] = time.time() - start
    return summary


def minirocket(dataset: str, seed: int) -> dict:
    from aeon.classification.convolution_based import MiniRocketClassifier
    from aeon.datasets import load_classification

    X, y = load_classification(dataset, split="train")
    X_test, y_test = load_classification(dataset, split="test")
    start = time.time()
    model = MiniRocketClassifier(random_state=seed).fit(X, y)
    accuracy = float(np.mean(model.predict(X_test) == y_test))
    return {"accuracy": accuracy, "fit_s": time.time() - start}


def mean_spread(values: list[float], n_seeds: int) -> str:
    """Mean ± standard deviation; says how many seeds when some are missing."""
    if not values:
        return "not run"
    text = f"{values[0]:.3f}" if len(values) == 1 else f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
    return text if len(values) == n_seeds else f"{text} ({len(values)} of {n_seeds} seeds)"


def compare(args: argparse.Namespace, root: Path, log: RunLog) -> list[dict]:
    """Phase by phase over every dataset and seed: MiniRocket, hybridsearch, then the single
    topologies; a partial run (see ``--no-run``) thus leaves whole columns."""
    pairs = [(d, seed) for d in args.datasets for seed in args.seeds]
    rocket = {p: log.get(f"minirocket|{p[0]}|{p[1]}", partial(minirocket, *p), run=not args.no_run) for p in pairs}
    hybrid = {p: study_run(log, *p, args.budget, root, run=not args.no_run) for p in pairs}
    alone = {
        p: [
            study_run(log, *p, args.budget / len(HYBRIDS), root, f"space.topology=[{t}]", run=not args.no_run)
            for t in HYBRIDS
        ]
        for p in pairs
    }
    rows = []
    for dataset in args.datasets:
        runs = [hybrid[dataset, seed] for seed in args.seeds if hybrid[dataset, seed]]
        picks, names = [], []
        for seed in args.seeds:
            if all(alone[dataset, seed]):
                # The topology with the best validation score, on test. Tied ones (validation
                # accuracy saturates on small sets) give a user no reason to prefer one: their mean.
                runs_alone = alone[dataset, seed]
                top = max(a["best_value"] if a["best_value"] is not None else -1 for a in runs_alone)
                tied = [a for a in runs_alone if a["best_value"] == top]
                picks.append(statistics.mean(a["accuracy"] for a in tied))
                names += [a["topology"] for a in tied]
        rockets = [rocket[dataset, seed] for seed in args.seeds if rocket[dataset, seed]]
        n, refs = len(args.seeds), REFERENCES.get(dataset, {})
        rows.append(
            {
                "dataset": dataset,
                "hybridsearch": mean_spread([r["accuracy"] for r in runs], n),
                "hybridsearch_mean": statistics.mean([r["accuracy"] for r in runs]) if runs else None,
                "single_model": mean_spread([r["single_accuracy"] for r in runs], n),
                "trials": round(statistics.mean(r["n_trials"] for r in runs)) if runs else "",
                "best_single_topology": mean_spread(picks, n)
                + (f" ({', '.join(f'{t} {c}' for t, c in Counter(names).most_common())})" if names else ""),
                "best_single_mean": statistics.mean(picks) if picks else None,
                "minirocket": f"{statistics.mean(r['accuracy'] for r in rockets):.3f} "
                f"({statistics.mean(r['fit_s'] for r in rockets):.1f} s)"
                if rockets
                else "not run",
                "minirocket_mean": statistics.mean(r["accuracy"] for r in rockets) if rockets else None,
                **{
                    t: mean_spread([a[i]["accuracy"] for a in (alone[dataset, s] for s in args.seeds) if a[i]], n)
                    for i, t in enumerate(HYBRIDS)
                },
                "lstm_fcn_published": refs.get("LSTM-FCN", ""),
                "inceptiontime_published": refs.get("InceptionTime", ""),
            }
        )
    return rows


def ablation(args: argparse.Namespace, root: Path, log: RunLog) -> list[dict]:
    variants = {
        "TPE + percentile pruning (default)": [],
        "random search": ["sampler=random"],
        "TPE, no pruning": ["pruner=none"],
    }
    rows = []
    for dataset in args.datasets:
        for label, extra in variants.items():
            runs = [
                study_run(log, dataset, seed, args.budget, root, *extra, run=not args.no_run) for seed in args.seeds
            ]
            runs = [r for r in runs if r]
            n = len(args.seeds)
            rows.append(
                {
                    "dataset": dataset,
                    "variant": label,
                    "test_accuracy": mean_spread([r["accuracy"] for r in runs], n),
                    "best_val": mean_spread([r["best_value"] for r in runs], n),
                    "trials": round(statistics.mean(r["n_trials"] for r in runs)) if runs else "",
                    "epochs_trained": round(statistics.mean(r["epochs_trained"] for r in runs)) if runs else "",
                }
            )
            print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict], columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[k]) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["dataset"] for r in rows]
    series = {
        "hybridsearch": "hybridsearch_mean",
        "best single topology": "best_single_mean",
        "MiniRocket": "minirocket_mean",
    }
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(rows), 3.6))
    for i, (name, key) in enumerate(series.items()):
        ax.bar(x + (i - 1) * 0.27, [r[key] or 0.0 for r in rows], 0.27, label=name)
    ax.set_xticks(x, labels)
    ax.set_ylim(min(0.8, min(r[k] for r in rows for k in series.values() if r[k]) - 0.02), 1.005)
    ax.set_ylabel("test accuracy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    if sys.argv[1:2] == ["--selection"]:
        import selection  # benchmarks/selection.py, beside this script

        selection.main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["GunPoint", "ItalyPowerDemand", "BasicMotions"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=600, help="seconds of search per dataset and seed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--ablation", action="store_true", help="TPE vs random, pruning on vs off")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--readme-only", action="store_true", help="rewrite the README section from --out, run nothing")
    parser.add_argument("--fresh", action="store_true", help="rerun everything, ignoring <out>/runs.jsonl")
    parser.add_argument("--no-run", action="store_true", help="write the tables from <out>/runs.jsonl, run nothing")
    args = parser.parse_args()
    if args.readme_only:
        write_readme(args.out)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="hybridsearch-bench-")) if not args.no_run else ROOT
    if not args.no_run:
        print(f"studies of this run: {root}", flush=True)
    log = RunLog(args.out / "runs.jsonl", fresh=args.fresh)
    setup = f"budget {args.budget:.0f} s per dataset and seed, seeds {args.seeds}, 2-core CPU"
    if args.ablation:
        rows = ablation(args, root, log)
        columns = {
            "dataset": "dataset",
            "variant": "search",
            "test_accuracy": "test accuracy",
            "best_val": "best validation accuracy",
            "trials": "trials",
            "epochs_trained": "epochs trained",
        }
        name = "ablation"
    else:
        rows = compare(args, root, log)
        columns = {
            "dataset": "dataset",
            "hybridsearch": "hybridsearch (final model)",
            "single_model": "hybridsearch, best single model",
            "trials": "trials",
            "best_single_topology": "best single topology (by validation; ties averaged; times best)",
            "minirocket": "MiniRocket (fit time)",
            "lstm_fcn_published": "LSTM-FCN (published)",
            "inceptiontime_published": "InceptionTime (published)",
        }
        name = "quality"
        plot(rows, args.out / "quality.png")
    setup += f", commit {', '.join(sorted(log.used))}"
    table = f"Test accuracy, {setup}; mean ± standard deviation over seeds.\n\n" + markdown(rows, columns)
    if name == "quality":
        table += "\n\nEach hybrid searched alone with a quarter of the budget (test accuracy of its final model):\n\n"
        table += markdown(rows, {"dataset": "dataset", **{t: f"`{t}`" for t in HYBRIDS}})
    (args.out / f"{name}.md").write_text(table + "\n")
    with (args.out / f"{name}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    if args.readme:
        write_readme(args.out)


def write_readme(results: Path) -> None:
    """Put the latest results (quality, and the ablation if run) into the README between its markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(MARKERS[0]), text.index(MARKERS[1])
    block = f"{MARKERS[0]}\n<!-- written by benchmarks/quality.py; do not edit by hand -->\n"
    block += (results / "quality.md").read_text()
    if (results / "ablation.md").exists():
        block += "\nSearch strategies with the same budget (test accuracy of the final model):\n\n"
        block += (results / "ablation.md").read_text()
    block += f"\n![test accuracy]({(results / 'quality.png').relative_to(ROOT)})\n"
    speed = sorted(results.glob("overhead-*.txt"))
    if speed:
        block += "\nSpeed (`benchmarks/overhead.py`): one trial through hybridsearch against the same model in a "
        block += "plain PyTorch loop, the start-up beside the import floor timed in the same run, and 2 CPU "
        block += "workers over 1:\n\n```\n" + "\n".join(f.read_text() for f in speed) + "```\n"
    readme.write_text(text[:start] + block + text[end:])


if __name__ == "__main__":
    main()
