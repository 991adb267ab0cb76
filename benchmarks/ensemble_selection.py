"""Which final-model selection generalises: nested cross-validation on saved out-of-fold predictions.

    python benchmarks/ensemble_selection.py STUDY_FOLDER [...] [--repeats 20] [--out benchmarks/results]

A study's selection (the best trial, and the greedy ensemble over the kept trials) is made on the
same out-of-fold (OOF) predictions that score it, so its score is optimistic, and more so on
small data (PickupGestureWiimoteZ: 50 series). This benchmark measures each selection rule
without any test data: the pool's series are split in two halves, stratified by class; the rule
chooses on one half and is scored on the other, then the halves swap, over ``--repeats`` seeded
splits. The chosen half's score is what the rule promised, the other half's what it delivered.

Rules: ``best`` (the top trial by accuracy, ties by log loss), ``greedy-acc`` (ensemble selection
on accuracy, ties by log loss: the study's rule until this benchmark), ``greedy-loss`` (the same
on log loss: the study's rule since) and ``top-k`` (the k best trials, equal weights). Give study folders of the
development datasets only (each holds ``trials/*.oof.npz``); no test score is read.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from quality import publish  # benchmarks/quality.py, beside this script

from hybridsearch.oof import OutOfFold, oof_metrics
from hybridsearch.ranking import rank_key, signs
from hybridsearch.results._ensemble import combine, select
from hybridsearch.tasks import CLASSIFICATION as TASK

ONE = torch.ones(1, 1)


def rank(preds: list[np.ndarray], y: np.ndarray) -> list[int]:
    """Candidates in the study's order: accuracy first, then log loss."""
    s = signs(["maximize"])
    keys = []
    for i, p in enumerate(preds):
        m = oof_metrics(TASK, p, y, ONE)
        keys.append(rank_key((m["val_acc"],), s, m["val_loss"], i))
    return [k[-1] for k in sorted(keys)]


def weights(rule: str, preds: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    if rule == "best":
        w = np.zeros(len(preds))
        w[rank(preds, y)[0]] = 1.0
        return w
    if rule.startswith("top-"):
        w = np.zeros(len(preds))
        w[rank(preds, y)[: int(rule.removeprefix("top-"))]] = 1.0
        return w / w.sum()
    metric, direction = {"greedy-acc": ("val_acc", "maximize"), "greedy-loss": ("val_loss", "minimize")}[rule]
    return select(TASK, preds, y, metric=metric, direction=direction, y_std=ONE).weights


def halves(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two halves of the rows, each class split evenly between them."""
    a = []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        a += list(rows[: len(rows) // 2 + rng.integers(0, 2) * (len(rows) % 2)])
    a = np.sort(np.asarray(a, dtype=int))
    return a, np.setdiff1d(np.arange(len(y)), a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--rules", nargs="+", default=["best", "greedy-acc", "greedy-loss", "top-3", "top-5"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows: dict[str, dict[str, list[tuple[float, float, float]]]] = defaultdict(lambda: defaultdict(list))
    for folder in args.studies:
        files = sorted((folder / "trials").glob("*.oof.npz"))
        if len(files) < 2:
            continue
        oofs = [OutOfFold.load(f) for f in files]
        y = oofs[0].y
        preds = [o.pred for o in oofs]
        name = str(json.loads((folder / "summary.json").read_text()).get("data", folder.name)).split(":")[0]
        rng = np.random.default_rng(0)
        for _ in range(args.repeats):
            a, b = halves(y, rng)
            for choose, score in ((a, b), (b, a)):
                for rule in args.rules:
                    w = weights(rule, [p[choose] for p in preds], y[choose])
                    used = np.flatnonzero(w)
                    promised = oof_metrics(
                        TASK, combine(TASK, [preds[i][choose] for i in used], w[used]), y[choose], ONE
                    )
                    got = oof_metrics(TASK, combine(TASK, [preds[i][score] for i in used], w[used]), y[score], ONE)
                    rows[name][rule].append((promised["val_acc"], got["val_acc"], got["val_loss"]))
        print(f"{folder.name}: {len(files)} candidates, {len(y)} series", flush=True)
    lines = [
        f"Nested selection on saved OOF predictions: {args.repeats} stratified half splits x 2 per study, "
        "choose on one half, score on the other. Accuracy delivered on the other half (promised on the "
        "chosen half, then log loss delivered). Development datasets only; no test score is read.",
        "",
        "| dataset | studies | " + " | ".join(args.rules) + " |",
        "|---|---|" + "---|" * len(args.rules),
    ]
    means = defaultdict(list)
    for name, by_rule in sorted(rows.items()):
        n = len(by_rule[args.rules[0]]) // (2 * args.repeats)
        cells = []
        for rule in args.rules:
            p, g, loss = np.mean(by_rule[rule], axis=0)
            means[rule].append((p, g, loss))
            cells.append(f"{g:.3f} ({p:.3f}, {loss:.3f})")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    cells = []
    for rule in args.rules:
        p, g, loss = np.mean(means[rule], axis=0)
        cells.append(f"**{g:.3f}** ({p:.3f}, {loss:.3f}; optimism {p - g:+.3f})")
    lines.append("| mean over datasets | | " + " | ".join(cells) + " |")
    publish(lines, args.out, "ensemble-selection.md")


if __name__ == "__main__":
    main()
