"""Reporting to Optuna only where the pruner decides gives the decisions of reporting every epoch."""

import numpy as np
import optuna

from hybridsearch.storage import CachedPruner


def _pruned_at(curves: np.ndarray, sparse: bool) -> list[int | None]:
    """Run each curve as a trial through successive halving; the epoch each was pruned at."""
    pruner = CachedPruner(optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    out: list[int | None] = []
    for curve in curves:
        trial = study.ask()
        pruned = None
        for epoch, value in enumerate(curve):
            if sparse and not pruner.decides_at(epoch):
                continue
            trial.report(float(value), epoch)
            if trial.should_prune():
                pruned = epoch
                break
        study.tell(trial, state=optuna.trial.TrialState.PRUNED) if pruned is not None else study.tell(trial, curve[-1])
        out.append(pruned)
    return out


def test_successive_halving_prunes_the_same_trials_at_the_same_epochs_from_rung_reports_alone() -> None:
    rng = np.random.default_rng(0)
    curves = np.cumsum(rng.normal(0.01, 0.05, size=(40, 60)), axis=1)  # noisy learning curves
    every = _pruned_at(curves, sparse=False)
    assert sum(p is not None for p in every) >= 10  # the comparison means something
    assert _pruned_at(curves, sparse=True) == every


def test_other_pruners_get_every_epoch() -> None:
    for pruner in (optuna.pruners.PercentilePruner(25.0), optuna.pruners.HyperbandPruner(), optuna.pruners.NopPruner()):
        assert all(CachedPruner(pruner).decides_at(e) for e in range(50))
    rungs = CachedPruner(optuna.pruners.SuccessiveHalvingPruner(min_resource=10, reduction_factor=3))
    assert [e for e in range(300) if rungs.decides_at(e)] == [10, 30, 90, 270]
