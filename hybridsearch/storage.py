"""The Optuna storage: opened with heartbeats, tuned for SQLite, and read sparingly by the pruner."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from hybridsearch.errors import StorageError, first_line

MAX_RETRY = 2  # times a trial whose worker was lost is queued again


def open_storage(url: str, heartbeat_s: int = 20, grace_s: int = 60) -> RDBStorage:
    """An RDB storage (SQLite or PostgreSQL) with heartbeats, so a dead worker's trial is failed and retried.

    A running trial's worker writes a heartbeat every ``heartbeat_s``; one silent for ``grace_s``
    is failed by the next worker that starts a trial, and its parameters are queued again.
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    for attempt in range(3):
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            storage = RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
            break
        except Exception as err:
            # Machines starting together on a new database race to create Optuna's tables; the
            # loser's next try finds them made.
            if attempt == 2 or ("UniqueViolation" not in str(err) and "already exists" not in str(err)):
                raise StorageError(f"study.storage: cannot open {url}: {first_line(err)}") from None
            time.sleep(1.0 + attempt)
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine: Any) -> None:
    """Write-ahead logging, synced at checkpoints rather than at every commit: readers no longer
    block the writer, which helps several workers on one machine (each trial writes once per
    epoch). Still crash-safe for the database.

    And each transaction takes the write lock when it begins (``BEGIN IMMEDIATE``). Python's
    sqlite3 begins a transaction only at the first write, so a read and the write that depends on
    it run apart, and SQLite ignores ``SELECT ... FOR UPDATE``: two workers could both read a
    queued trial as waiting and both run it (Optuna's ``_pop_waiting_trial_id``). This is the
    recipe of SQLAlchemy's SQLite dialect notes ("Serializable isolation / Savepoints / Transactional
    DDL"); the transactions are short, and a worker waits for the lock (the 60-s busy timeout)."""
    from sqlalchemy import event

    def pragmas(connection: Any, _: Any) -> None:
        connection.isolation_level = None  # sqlite3 leaves BEGIN to the "begin" event below
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", pragmas)
    event.listen(engine, "begin", begin)
    engine.dispose()  # connections opened from now on get the pragmas


class CachedPruner(optuna.pruners.BasePruner):
    """Wraps a pruner so that each trial reads the study's trials once, not at every epoch.

    Optuna's median and percentile pruners load every finished trial, with all its intermediate
    values, each time a trial asks whether to stop: per epoch, and slower as the study grows.
    Trials that finish elsewhere while this one runs are seen from the next trial on.
    """

    def __init__(self, pruner: optuna.pruners.BasePruner) -> None:
        self.pruner = pruner
        self._number: int | None = None
        self._trials: list[optuna.trial.FrozenTrial] = []

    @property
    def spans_folds(self) -> bool:
        """Whether a cross-validated trial's later folds report too. Successive halving judges a
        trial at a rung by its value there, the same fold and epoch for every trial; the percentile
        and median pruners set a trial's best over all its steps against the others' values at one
        step, which past the first fold would set one fold against another, and Hyperband's
        brackets end at its ``max_resource`` (the epochs of one fold), so they judge the first
        fold only."""
        return isinstance(self.pruner, optuna.pruners.SuccessiveHalvingPruner)

    def decides_at(self, step: int) -> bool:
        """Whether the pruner decides at ``step`` (an epoch).

        Successive halving decides at its rungs (``min_resource x reduction_factor^k`` steps), the
        percentile and median pruners every ``interval_steps`` from ``n_warmup_steps`` on; other
        pruners at every step. Optuna keeps these settings private; they are read here only.
        """
        p = self.pruner
        if isinstance(p, optuna.pruners.SuccessiveHalvingPruner) and isinstance(p._min_resource, int):
            rung = p._min_resource * p._reduction_factor**p._min_early_stopping_rate
            while rung < step:
                rung *= p._reduction_factor
            return rung == step
        if isinstance(p, optuna.pruners.PercentilePruner):  # the median pruner is one
            return step >= p._n_warmup_steps and (step - p._n_warmup_steps) % p._interval_steps == 0
        return True

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if self._number != trial.number:
            self._number, self._trials = trial.number, study.get_trials(deepcopy=False)
        return self.pruner.prune(_TrialsSnapshot(study, self._trials), trial)


class _TrialsSnapshot:
    """A study whose ``get_trials`` answers from a list read earlier; all else is the study's."""

    def __init__(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> None:
        self._snapshot_of, self._snapshot = study, trials

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[optuna.trial.FrozenTrial]:
        trials = [t for t in self._snapshot if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._snapshot_of, name)
