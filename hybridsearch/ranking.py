"""How trials are ranked: the one rule that picks the best epoch, the trials whose weights are kept,
the ensemble's members, the best trial and the printout's order.

The rule: the validation metric first (then any further objectives, in order, as tie-breaks),
then the lower validation loss (accuracies on small validation sets tie often; the loss tells
a confident model from a lucky one), then the earlier trial or epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

RankKey = tuple[float, ...]


def signs(directions: Sequence[str | StudyDirection]) -> tuple[float, ...]:
    """+1 for each maximised objective, -1 for each minimised one."""
    return tuple(
        1.0 if d in ("maximize", StudyDirection.MAXIMIZE) else -1.0
        for d in (d.lower() if isinstance(d, str) else d for d in directions)
    )


def rank_key(values: Sequence[float], signs: Sequence[float], val_loss: float = math.inf, order: int = 0) -> RankKey:
    """The sort key of one result: smaller ranks first."""
    return (*(-s * v for s, v in zip(signs, values, strict=True)), val_loss, order)


def primary(trial: FrozenTrial) -> float | None:
    """A finished trial's first objective, the validation metric (single or multi-objective)."""
    return trial.values[0] if trial.values else None


def trial_key(trial: FrozenTrial, trial_signs: Sequence[float]) -> RankKey:
    return rank_key(trial.values, trial_signs, trial.user_attrs.get("val_loss", math.inf), trial.number)


def complete(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]


def ranked(study: optuna.Study, topology: str | None = None) -> list[FrozenTrial]:
    """Complete trials (of ``topology`` only, if given), best first."""
    s = signs(study.directions)
    trials = [t for t in complete(study) if topology is None or t.params.get("topology") == topology]
    return sorted(trials, key=lambda t: trial_key(t, s))


def best_trial(study: optuna.Study, topology: str | None = None) -> FrozenTrial | None:
    """The best complete trial (of ``topology``, if given), whose configuration becomes ``best.ckpt``;
    None before any completes."""
    return next(iter(ranked(study, topology)), None)


def ranks_within(key: RankKey, others: Iterable[RankKey], top: int) -> bool:
    """Whether a result with ``key`` is among the ``top`` best once ``others`` are counted."""
    return sum(other < key for other in others) < top


__all__ = ["best_trial", "primary", "rank_key", "ranked", "ranks_within", "signs", "trial_key"]
