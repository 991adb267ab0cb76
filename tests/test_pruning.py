"""Reporting to Optuna only where the pruner decides, and at new bests, gives the decisions of
reporting every epoch, with fewer storage writes."""

import numpy as np
import optuna
import pytest

from hybridsearch.objective import Pruning
from hybridsearch.storage import CachedPruner


def _run(curves: np.ndarray, pruner: optuna.pruners.BasePruner, sparse: bool) -> tuple[list[int | None], int]:
    """Run each curve as a trial; the epoch each was pruned at, and the values written in all."""
    study = optuna.create_study(direction="maximize", pruner=CachedPruner(pruner))
    out: list[int | None] = []
    for curve in curves:
        trial = study.ask()
        callback = Pruning(trial, "val_acc")
        pruned = None
        for epoch, value in enumerate(curve):
            try:
                if sparse:
                    callback.report(epoch, float(value))
                else:
                    trial.report(float(value), epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
            except optuna.TrialPruned:
                pruned = epoch
                break
        study.tell(trial, state=optuna.trial.TrialState.PRUNED) if pruned is not None else study.tell(trial, curve[-1])
        out.append(pruned)
    return out, sum(len(t.intermediate_values) for t in study.trials)


PRUNERS = {
    "successive halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3),
    "percentile, every 5 epochs": lambda: optuna.pruners.PercentilePruner(
        25.0, n_startup_trials=5, n_warmup_steps=10, interval_steps=5
    ),
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=4, interval_steps=3),
}


@pytest.mark.parametrize("name", PRUNERS)
def test_sparse_reports_prune_the_same_trials_at_the_same_epochs(name: str) -> None:
    rng = np.random.default_rng(0)
    # Noisy learning curves whose best often comes between deciding epochs.
    curves = np.cumsum(rng.normal(0.01, 0.05, size=(40, 60)), axis=1) + rng.normal(0, 0.1, size=(40, 60))
    every, written_every = _run(curves, PRUNERS[name](), sparse=False)
    assert sum(p is not None for p in every) >= 10  # the comparison means something
    sparse, written_sparse = _run(curves, PRUNERS[name](), sparse=True)
    assert sparse == every
    assert written_sparse < 0.6 * written_every


def test_the_deciding_epochs_of_each_pruner() -> None:
    for pruner in (optuna.pruners.HyperbandPruner(), optuna.pruners.NopPruner()):
        assert all(CachedPruner(pruner).decides_at(e) for e in range(50))
    rungs = CachedPruner(optuna.pruners.SuccessiveHalvingPruner(min_resource=10, reduction_factor=3))
    assert [e for e in range(300) if rungs.decides_at(e)] == [10, 30, 90, 270]
    percentile = CachedPruner(optuna.pruners.PercentilePruner(25.0, n_warmup_steps=15, interval_steps=5))
    assert [e for e in range(35) if percentile.decides_at(e)] == [15, 20, 25, 30]
