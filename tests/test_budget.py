"""The budget: the search stops in time for the final model, and every topology gets its share."""

import time

import optuna
import pytest
from helpers import fcn_objective

from hybridsearch.budget import AFTER_SEARCH_S, OutOfTime, SearchClock, TopologyShare, refit_seconds
from hybridsearch.checks import trial_time_limit
from hybridsearch.errors import ConfigError

TOPOLOGIES = ["feature_extractor", "parallel", "cascade", "conv_gated"]


def finished(study, value: float, epoch: int, pace: float, topology: str = "parallel") -> None:
    study.add_trial(
        optuna.trial.create_trial(
            value=value,
            params={"topology": topology},
            distributions={"topology": optuna.distributions.CategoricalDistribution(TOPOLOGIES)},
            user_attrs={"best_epoch": epoch, "seconds_per_epoch": pace},
        )
    )


def test_the_search_reserves_the_refits_of_the_top_trials_and_what_follows() -> None:
    study = optuna.create_study(direction="maximize")
    finished(study, 0.9, epoch=9, pace=0.5)  # refit: 10 epochs x 0.5 s x 5/4 (all training data)
    finished(study, 0.8, epoch=19, pace=1.0)  # 20 x 1.0 x 5/4
    finished(study, 0.7, epoch=99, pace=1.0)  # outside the top 2: not refit
    assert refit_seconds(study.trials[0], 5) == pytest.approx(6.25)
    clock = SearchClock(time.time() + 100, ensemble=2, cv_folds=5)
    clock.update(study)
    assert clock.reserve == pytest.approx(AFTER_SEARCH_S + 6.25 + 25.0)
    assert 100 - clock.reserve - 1 < clock.left() <= 100 - clock.reserve
    assert SearchClock(None, 2, 5).left() == float("inf")


def test_the_search_stops_starting_trials_once_its_time_is_up() -> None:
    study = optuna.create_study(direction="maximize")
    finished(study, 0.9, epoch=99, pace=1.0)  # a 125-s refit to come
    clock = SearchClock(time.time() + 60, ensemble=1, cv_folds=5)
    stopped = []
    study.stop = lambda: stopped.append(True)
    clock(study, study.trials[0])
    assert stopped and clock.left() < 0


def test_a_trial_running_when_time_is_up_is_pruned_at_its_next_epoch(tmp_path) -> None:
    objective = fcn_objective(tmp_path, max_epochs=50)
    end = time.time()
    objective.time_left = lambda: end - time.time()  # already out of time after the first epoch
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED"


def test_out_of_time_waits_while_time_is_left() -> None:
    class Trainer:
        pass

    OutOfTime(lambda: 1.0).on_train_epoch_end(Trainer(), None)  # time left: nothing happens
    with pytest.raises(optuna.TrialPruned, match="out of time"):
        OutOfTime(lambda: 0.0).on_train_epoch_end(Trainer(), None)


def test_a_topology_behind_its_share_is_queued_one_trial_at_a_time() -> None:
    study = optuna.create_study(direction="maximize")
    for i in range(10):
        finished(study, 0.5 + i / 100, epoch=1, pace=0.1, topology="parallel")
    share = TopologyShare(TOPOLOGIES, 0.15, more=lambda study: True)
    queued = []
    for _ in range(3):
        share(study, study.trials[-1])
        share(study, study.trials[-1])  # one already waits: nothing more
        waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
        assert len(waiting) == 1
        # A queued trial fixes only the topology; the sampler chooses the rest.
        trial = study.ask()
        queued.append(trial.suggest_categorical("topology", TOPOLOGIES))
        study.tell(trial, 0.5)
    assert sorted(queued) == ["cascade", "conv_gated", "feature_extractor"]


def test_every_topology_keeps_its_share_wherever_the_study_stops() -> None:
    exploit = optuna.samplers.PartialFixedSampler({"topology": "parallel"}, optuna.samplers.RandomSampler())
    study = optuna.create_study(direction="maximize", sampler=exploit)  # a sampler stuck on one winner
    share = TopologyShare(TOPOLOGIES, 0.15, more=lambda study: True)
    for n in range(1, 201):
        trial = study.ask()
        trial.suggest_categorical("topology", TOPOLOGIES)
        study.tell(trial, 0.5)
        share(study, study.trials[-1])
        if n >= 8:  # from 8 trials on, each of the four can hold 15% (2 of 8)
            told = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))  # not the one queued
            counts = [sum(t.params["topology"] == name for t in told) for name in TOPOLOGIES]
            assert min(counts) >= 0.15 * n, (n, counts)


def test_nothing_is_queued_at_its_share_or_when_the_command_stops() -> None:
    study = optuna.create_study(direction="maximize")
    for i, topology in enumerate(["parallel", "cascade"] * 3):
        finished(study, 0.5 + i / 100, epoch=1, pace=0.1, topology=topology)
    TopologyShare(["parallel", "cascade"], 0.15, more=lambda study: True)(study, study.trials[-1])
    TopologyShare(TOPOLOGIES, 0.15, more=lambda study: False)(study, study.trials[-1])  # no trial follows
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_a_topology_below_its_share_of_complete_trials_is_unheard() -> None:
    study = optuna.create_study(direction="maximize")
    share = TopologyShare(TOPOLOGIES, 0.15, more=lambda study: True)
    assert all(share.unheard(study, name) for name in TOPOLOGIES)  # nothing complete yet
    for topology in ["parallel"] * 10 + ["cascade", "cascade", "feature_extractor"]:
        finished(study, 0.5, epoch=1, pace=0.1, topology=topology)
    # 13 complete trials: a share of 0.15 is 1.95 of them
    assert [share.unheard(study, name) for name in TOPOLOGIES] == [True, False, False, True]
    assert not TopologyShare(["parallel"], 0.15, more=lambda study: True).unheard(study, "parallel")


@pytest.mark.parametrize("unheard", [False, True])
def test_an_unheard_topology_trains_to_the_end_unpruned(tmp_path, unheard: bool) -> None:
    objective = fcn_objective(tmp_path, max_epochs=3)
    objective.unheard = lambda study, topology: unheard
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(upper=-1.0))
    study.optimize(objective, n_trials=1)  # the pruner would stop any trial at its first report
    trial = study.trials[0]
    assert trial.state.name == ("COMPLETE" if unheard else "PRUNED")
    assert ("unpruned" in trial.user_attrs) == unheard


def test_the_trial_time_limit_is_a_tenth_of_the_timeout_unless_set() -> None:
    assert trial_time_limit("auto", 600) == 60.0
    assert trial_time_limit("auto", None) is None  # no timeout: no limit
    assert trial_time_limit(None, 600) is None
    assert trial_time_limit(45, 600) == 45.0
    for bad in (0, -1, "soon", True):
        with pytest.raises(ConfigError, match=r"study\.trial_time_limit"):
            trial_time_limit(bad, 600)


@pytest.mark.parametrize("limit", [None, 0.003])
def test_a_trial_over_its_time_limit_stops_its_first_fold_and_trains_the_others_as_long(tmp_path, limit) -> None:
    objective = fcn_objective(tmp_path, max_epochs=4)
    objective.cv_folds, objective.time_limit = 3, limit  # 1 ms a fold: the first stops after one epoch
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "COMPLETE"  # stopped, not pruned: it is scored out-of-fold as any other
    assert trial.user_attrs["epochs"] == (3 if limit else 12)  # three folds of 1 (or 4) epochs
    assert ("time_limited" in trial.user_attrs) == bool(limit)
    if limit:
        assert trial.user_attrs["best_epoch"] == 0  # the one epoch every fold trained
        assert trial.user_attrs["time_limited"].startswith("trained 1 of 4 epochs a fold")
