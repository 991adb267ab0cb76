"""Where a study's time went, trial by trial: start, duration, state, epochs, and whether the
trial trained unpruned (its topology not yet heard) or was stopped by study.trial_time_limit.

    python benchmarks/trial_breakdown.py <folder holding optuna.db> [--study NAME]

For the studies ``trial_budget.py`` leaves in its temporary folder (it prints where). Reads the
Optuna storage only; no score takes part in any choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna


def breakdown(study: optuna.Study) -> list[str]:
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete]
    t0 = min(t.datetime_start for t in trials)
    lines = [
        "| trial | topology | state | start (s) | duration (s) | epochs | s/epoch | unpruned | time-limited | value |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    spent: dict[str, float] = {}
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        unpruned, limited = "unpruned" in t.user_attrs, "time_limited" in t.user_attrs
        kind = f"{t.state.name.lower()}{', unpruned' if unpruned else ''}"
        spent[kind] = spent.get(kind, 0.0) + seconds
        spe = t.user_attrs.get("seconds_per_epoch")
        pace = "" if spe is None else f"{spe:.2f}"
        value = "" if t.value is None else f"{t.value:.3f}"
        lines.append(
            f"| {t.number} | {t.params.get('topology')} | {t.state.name.lower()} "
            f"| {(t.datetime_start - t0).total_seconds():.0f} | {seconds:.0f} | {t.user_attrs.get('epochs', '')} "
            f"| {pace} | {'yes' if unpruned else ''} | {'yes' if limited else ''} | {value} |"
        )
    last = max(t.datetime_start for t in trials)
    lines += ["", f"last trial started at {(last - t0).total_seconds():.0f} s; worker-seconds by kind:"]
    lines += [f"- {kind}: {seconds:.0f} s" for kind, seconds in sorted(spent.items())]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--study", default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{args.folder / 'optuna.db'}"
    names = [args.study] if args.study else [s.study_name for s in optuna.get_all_study_summaries(url)]
    for name in names:
        print(f"## {name}\n")
        print("\n".join(breakdown(optuna.load_study(study_name=name, storage=url))), end="\n\n")


if __name__ == "__main__":
    main()
