"""The same searches, finished with different final models: test accuracy by ensemble size.

    python benchmarks/final_model.py STUDY_ROOT [STUDY_ROOT ...] [--sizes 1 5 10] [--out benchmarks/results]

A STUDY_ROOT is a folder of finished studies (a ``study.root``, such as the one
``benchmarks/quality.py`` prints when it starts). It is copied, and each study in it is finished
again through the command line with ``study.n_trials=0 study.ensemble=k`` (no new trials, nothing
retrained: the final model averages the top k trials' saved weights; k=1 is the best trial alone)
and scored on its test split. The searches are identical across k, so the table isolates the
choice of final model from the luck of the search.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from quality import cli, markdown  # benchmarks/quality.py, beside this script

ROOT = Path(__file__).resolve().parents[1]


def finish(root: Path, study: Path, k: int) -> dict:
    """Re-summarise one study with an ensemble of ``k``; its summary."""
    cfg = yaml.safe_load((study / "config.yaml").read_text())
    extra = ["study.n_trials=0", f"study.ensemble={k}", "study.refit=false"]  # the single model is not compared
    return cli(root, study.name, cfg["data"]["name"], cfg["study"]["seed"], *extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path, help="folders of finished studies")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 5, 10])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hybridsearch-final-"))
    studies = []
    for i, root in enumerate(args.roots):
        names = sorted(p.name for p in root.iterdir() if (p / "summary.json").is_file())
        if not names:
            sys.exit(f"{root}: no finished study here (no */summary.json)")
        shutil.copytree(root, work / str(i))
        studies += [(work / str(i), name) for name in names]
    results: dict[str, dict[int, list[float]]] = {}
    for copy, name in studies:
        for k in args.sizes:
            summary = finish(copy, copy / name, k)
            dataset = summary["data"].split(":")[0]
            members = len((summary.get("ensemble") or {}).get("trials", [])) or 1
            accuracy = summary["test_metrics"]["accuracy"]
            results.setdefault(dataset, {}).setdefault(k, []).append(accuracy)
            print(f"{name}: top {k} ({members} averaged): test accuracy {accuracy:.4f}", flush=True)
    rows = []
    for dataset, by_k in results.items():
        row = {"dataset": dataset, "searches": len(by_k[args.sizes[0]])}
        for k in args.sizes:
            values = by_k[k]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            row[f"top {k}"] = f"{statistics.mean(values):.3f}{spread}"
        rows.append(row)
    header = list(rows[0])
    table = (
        "Test accuracy of the final model by how many top trials it averages (1: the best trial alone), "
        "the same searches re-finished (`benchmarks/final_model.py`); "
        "mean ± standard deviation over the searches.\n\n" + markdown(rows, {h: h for h in header})
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "final_model.md").write_text(table + "\n")
    with (args.out / "final_model.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    print(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
