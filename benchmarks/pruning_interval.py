"""How much the percentile pruner's decisions change when trials report every k epochs.

    python benchmarks/pruning_interval.py sqlite:///studies/optuna.db [more storages] [--k 1 2 5 10]

Replays the recorded validation curves of every study in the given storages (trials in the order
they started; each sees the trials completed before it started) through Optuna's
``PercentilePruner`` as configured in ``conf/pruner/percentile.yaml``, once with a report every
epoch and once with ``interval_steps=k`` and reports at the deciding epochs only (what
``Pruning`` sends then). Prints, per k: the share of trials whose fate (pruned or not) changes,
and the epochs a pruned trial runs on before it is stopped. A trial the study pruned has no curve
past that epoch: where k's next deciding epoch comes later, it is assumed to be pruned there.
Scores are validation curves of the training split; no test score is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optuna
import yaml
from optuna.trial import TrialState, create_trial
from quality import publish  # benchmarks/quality.py, beside this script

CONF = Path(__file__).resolve().parents[1] / "conf" / "pruner" / "percentile.yaml"


def replay(trials: list[optuna.trial.FrozenTrial], k: int, direction: str) -> tuple[list[int | None], int, int]:
    """The epoch at which each trial would be pruned (None: not pruned) when the pruner decides every
    k epochs past its warm-up; the storage writes and the epochs trained."""
    settings = {key: v for key, v in yaml.safe_load(CONF.read_text()).items() if key != "_target_"}
    pruner = optuna.pruners.PercentilePruner(**{**settings, "interval_steps": k})
    warmup = settings.get("n_warmup_steps", 0)
    study = optuna.create_study(direction=direction, pruner=pruner)
    fates: list[int | None] = []
    writes, epochs = [0], [0]
    order = sorted(trials, key=lambda t: t.datetime_start)
    for trial in order:
        done = [t for t in order if t.datetime_complete and t.datetime_complete <= trial.datetime_start]
        study._storage = optuna.storages.InMemoryStorage()  # only the trials completed by then
        study._study_id = study._storage.create_new_study([study.direction])
        for t in done:
            if t.state == TrialState.COMPLETE:
                study.add_trial(create_trial(value=t.value, intermediate_values=t.intermediate_values))
        live = study.ask()
        fate = None
        best = None
        for step, value in sorted(trial.intermediate_values.items()):
            decides = _decides(step, warmup, k)
            if decides or best is None or _better(value, best, direction):  # what Pruning reports
                live.report(value, step)
                writes[0] += 1
            best = value if best is None or _better(value, best, direction) else best
            if decides and live.should_prune():
                fate = step
                break
            epochs[0] += 1
        if fate is None and trial.state == TrialState.PRUNED and k > 1:
            # Its recorded curve ends where the study pruned it, before this k's next deciding
            # epoch: assumed to be pruned there, after the epochs in between.
            fate = trial.last_step + 1
            while not _decides(fate, warmup, k):
                fate += 1
            epochs[0] += fate - trial.last_step
        fates.append(fate)
        study.tell(live, state=TrialState.PRUNED if fate is not None else TrialState.FAIL)
    return fates, writes[0], epochs[0]


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def _decides(step: int, warmup: int, k: int) -> bool:
    return step >= warmup and (step - warmup) % k == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("storages", nargs="+")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = {k: [0, 0, [], 0, 0, 0] for k in [1, *args.k]}  # trials, changed, extra epochs, pruned, writes, epochs
    n_studies = 0
    for url in args.storages:
        for summary in optuna.get_all_study_summaries(url):
            study = optuna.load_study(study_name=summary.study_name, storage=url)
            trials = [t for t in study.trials if t.intermediate_values and t.state != TrialState.RUNNING]
            if len(trials) < 10:
                continue
            n_studies += 1
            direction = study.direction.name.lower()
            base, _, _ = replay(trials, 1, direction)
            for k in rows:
                fates, writes, epochs = replay(trials, k, direction)
                row = rows[k]
                row[0] += len(trials)
                row[1] += sum((a is None) != (b is None) for a, b in zip(base, fates, strict=True))
                row[2] += [b - a for a, b in zip(base, fates, strict=True) if a is not None and b is not None]
                row[3] += sum(a is not None for a in base)
                row[4] += writes
                row[5] += epochs
    lines = [
        f"Replayed {n_studies} studies ({sum(r[0] for r in rows.values()) // len(rows)} trials) through "
        f"the percentile pruner of {CONF.name}; k = 1 as the reference. A trial reports at the deciding epochs "
        "and at each new best value (as `Pruning` does), so every decision is the one of a report each epoch.",
        "",
        "| pruner decides every k epochs | storage writes per epoch | epochs trained | trials whose fate "
        "changes | epochs a pruned trial runs on (mean, max) |",
        "|---|---|---|---|---|",
    ]
    for k, (n, changed, extra, pruned, writes, epochs) in rows.items():
        shift = f"{np.mean(extra):+.1f}, {max(extra):+d}" if extra else "-"
        lines.append(
            f"| {k} | {writes / epochs:.2f} | {epochs} | {changed} of {n} ({100 * changed / max(1, n):.1f}%; "
            f"{pruned} pruned at k=1) | {shift} |"
        )
    publish(lines, args.out, "pruning-interval.md")


if __name__ == "__main__":
    main()
