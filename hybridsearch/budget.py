"""How a study spends its budget: the search stops in time for what comes after it, and every
searched topology gets its share of trials.

``study.timeout`` bounds the whole command, not only the search: the final model's refits (one
per selected trial, each as long as that trial's chosen epoch count on all training data) and the
scoring, registering and report after them are estimated from the trials' measured epoch times
and kept out of the search's time. A trial still running when the search's time is up is pruned
at its next epoch ("out of time").
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta

import lightning as L
import optuna
from lightning.pytorch.callbacks import Timer
from optuna.trial import FrozenTrial, TrialState

from hybridsearch.ranking import ranked

AFTER_SEARCH_S = 15.0  # scoring on test, registering the model, the report: about 10 s on 2 cores


def chosen_epochs(trial: FrozenTrial, default: int = 1) -> int:
    """The epochs a trial's final models train: its chosen epoch count (``best_epoch`` + 1)."""
    return int(trial.user_attrs.get("best_epoch", default - 1)) + 1


def _epoch_seconds(trial: FrozenTrial) -> float:
    """A trial's chosen epochs at its measured pace (seconds per epoch of one fold's training)."""
    return chosen_epochs(trial) * float(trial.user_attrs.get("seconds_per_epoch", 0.0))


def refit_seconds(trial: FrozenTrial, cv_folds: int) -> float:
    """A trial's refit on all training data: each epoch on k/(k-1) times a fold's training data."""
    return _epoch_seconds(trial) * (cv_folds / (cv_folds - 1) if cv_folds > 1 else 1.0)


def bag_seconds(trial: FrozenTrial, cv_folds: int) -> float:
    """A trial's fold models trained again to its chosen epoch count."""
    return cv_folds * _epoch_seconds(trial)


def after_search_seconds(study: optuna.Study, ensemble: int, cv_folds: int, bag: bool = False) -> float:
    """The estimated time from the search's end to the command's: the best trial's refit, and the
    refits of as many top trials as the ensemble may select, or the best trial's bag (the other
    members are bagged only while time is left, the heaviest first), and the rest."""
    top = ranked(study)[: max(1, ensemble)]
    if bag and cv_folds > 1 and top:  # the best trial's refit (best.ckpt) and its bag
        return AFTER_SEARCH_S + refit_seconds(top[0], cv_folds) + bag_seconds(top[0], cv_folds)
    return AFTER_SEARCH_S + sum(refit_seconds(t, cv_folds) for t in top)


class SearchClock:
    """The search's deadline: the command's, less what comes after the search (re-estimated as
    trials finish). ``deadline`` None: no time limit."""

    def __init__(self, deadline: float | None, ensemble: int, cv_folds: int, bag: bool = False) -> None:
        self.deadline, self.ensemble, self.cv_folds, self.bag = deadline, ensemble, cv_folds, bag
        self.reserve = AFTER_SEARCH_S

    def update(self, study: optuna.Study) -> None:
        self.reserve = after_search_seconds(study, self.ensemble, self.cv_folds, self.bag)

    def left(self) -> float:
        """Seconds the search has left (infinite without a deadline)."""
        return float("inf") if self.deadline is None else self.deadline - self.reserve - time.time()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """An Optuna callback: re-estimate, and stop starting trials once the time is up."""
        self.update(study)
        if self.left() <= 0:
            study.stop()


class TrialTimeLimit(Timer):
    """Lightning's Timer, checked after each epoch's validation: ends the training of a trial's first
    fold once it has trained ``seconds``. ``stopped`` says whether it did."""

    def __init__(self, seconds: float) -> None:
        super().__init__(duration=timedelta(seconds=seconds), interval="epoch", verbose=False)
        self.stopped = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.stopped = self.stopped or (trainer.should_stop and self.time_remaining() <= 0)


class OutOfTime(L.Callback):
    """Prunes the running trial at the end of an epoch once ``left()`` says the search's time is up."""

    def __init__(self, left: Callable[[], float]) -> None:
        self.left = left

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.left() <= 0:
            raise optuna.TrialPruned("out of time: study.timeout leaves no more time for this trial")


class TopologyShare:
    """An Optuna callback that keeps every searched topology at ``share`` of the trials or more:
    when one would fall behind within the next few trials, one trial of it is queued (its other
    parameters left to the sampler), so an early winner cannot starve the others before they were
    heard, and the share holds wherever the study stops. Nothing is queued once ``more()`` says
    this command starts no more trials, so none is left waiting after it.

    A share of trials is not yet a hearing: the pruner judges every topology at the same early
    epochs, where those that learn fastest lead. So a trial of a topology that has fewer than
    ``share`` of the complete trials (or none) is not pruned at the early epochs (:meth:`unheard`);
    between its folds it is set against the best trial of its own topology, where there is one
    (``Objective._stop_folds``), not against one that learns faster."""

    def __init__(self, topologies: Sequence[str], share: float, more: Callable[[optuna.Study], bool]) -> None:
        self.topologies, self.share, self.more = list(topologies), share, more

    @property
    def applies(self) -> bool:
        """Whether there is a share to keep: two topologies or more, and a share above 0."""
        return len(self.topologies) > 1 and self.share > 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.applies or not self.more(study):
            return
        trials = study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return  # a queued trial comes next anyway
        counts = Counter(topology_of(t) for t in trials)
        behind = min(self.topologies, key=lambda name: counts[name])
        # Look as many trials ahead as there are topologies: several may fall behind at once.
        if counts[behind] < self.share * (len(trials) + len(self.topologies)):
            study.enqueue_trial({"topology": behind})

    def unheard(self, study: optuna.Study, topology: str) -> bool:
        """Whether ``topology`` has fewer than its share of the study's complete trials, or none."""
        if not self.applies or topology not in self.topologies:
            return False
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        mine = sum(topology_of(t) == topology for t in complete)
        return mine == 0 or mine < self.share * len(complete)


def topology_of(trial: FrozenTrial) -> str | None:
    """A trial's topology: sampled, or fixed when it was queued."""
    return trial.params.get("topology") or trial.system_attrs.get("fixed_params", {}).get("topology")
