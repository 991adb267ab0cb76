"""The study's live progress line: trials done / pruned / failed / running, the best value, elapsed time;
and the libraries kept quiet around it (:func:`quiet_libraries`)."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections import Counter
from collections.abc import Iterator

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


# Per-trial chatter that says nothing about the user's study: data in memory needs no loader
# workers, tiny data has few batches, the refit has no validation loader, a torch deprecation inside Lightning.
CHATTER = (
    ".*does not have many workers.*",
    ".*number of training batches.*",
    ".*LeafSpec.*",
    ".*no `val_dataloader`.*",
)
LOG_LEVELS = {
    "lightning.pytorch": logging.WARNING,
    "lightning.fabric": logging.WARNING,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    "mlflow.pytorch": logging.ERROR,  # its warning about pickle: we choose pickle
    "mlflow.tracking._model_registry": logging.ERROR,  # "Successfully registered model", "Created version"
    "optuna": logging.WARNING,
}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """One progress bar for the study: the libraries' per-trial chatter is dropped while a command
    runs, warnings that matter are kept, and everything is as before afterwards."""
    loggers = {name: logging.getLogger(name) for name in LOG_LEVELS}
    before = {name: logger.level for name, logger in loggers.items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        for message in CHATTER:
            warnings.filterwarnings("ignore", message=message)
        for name, level in LOG_LEVELS.items():
            loggers[name].setLevel(level)
        try:
            yield
        finally:
            for name, level in before.items():
                loggers[name].setLevel(level)
