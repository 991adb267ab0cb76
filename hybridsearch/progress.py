"""The study's live progress line: trials done / pruned / failed / running, the best value, elapsed time."""

from __future__ import annotations

import sys
from collections import Counter

import optuna
from tqdm.auto import tqdm

from hybridsearch.ranking import best_trial, primary


class Progress:
    """One live line for the study, counting this invocation's trials as read from the storage.

    It serves one in-process worker (as an Optuna callback) and worker processes (polled) alike.
    """

    def __init__(self, total: int | None, metric: str, invocation: str) -> None:
        self.metric, self.invocation = metric, invocation
        self.counts: Counter[str] = Counter()
        self.bar = tqdm(total=total, desc="trials", unit="trial", dynamic_ncols=True, file=sys.stderr)

    def update(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        self.counts = Counter(t.state.name for t in trials if t.user_attrs.get("invocation") == self.invocation)
        best = best_trial(study)
        c = self.counts
        self.bar.n = c["COMPLETE"] + c["PRUNED"] + c["FAIL"]
        if self.bar.total is not None and self.bar.n > self.bar.total:
            self.bar.total = self.bar.n  # parallel workers finish the trials they had started
        self.bar.set_postfix_str(
            f"complete {c['COMPLETE']}, pruned {c['PRUNED']}, failed {c['FAIL']}, running {c['RUNNING']} | "
            f"best {self.metric} {'-' if best is None else f'{primary(best):.4f}'}"
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.update(study)

    def write(self, line: str) -> None:
        """A message above the bar, on stderr."""
        self.bar.write(line, sys.stderr)

    def close(self) -> None:
        self.bar.close()
