"""The orchestrator: open the session, run its workers, sum up. It imports downward only.

python -m hybridsearch +study=timeseries  ->  __main__  ->  main  ->  run_study
  checks.check             the settings, search space and data, storage and tracking, before Lightning loads
  session.open_session     load (or create) the study
  workers.plan / launch    one worker in this process, or worker processes (GPUs, CPU cores)
  results.summarize        the final model, its test scores, summary.json
  results.printout         what the command prints at the end
"""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hybridsearch import LAUNCHED, interrupt, workers
from hybridsearch.checks import Checked
from hybridsearch.progress import Progress, quiet_libraries
from hybridsearch.report import attach_report
from hybridsearch.results import Summary, dashboard_note, printout, reference_baselines, reference_line, summarize
from hybridsearch.session import open_session


def run_study(cfg: DictConfig, *, started: float | None = None, checked: Checked | None = None) -> Summary:
    """Run (or resume) the study that ``cfg`` describes and return its summary.

    ``study.n_trials`` more trials are added, by one worker in this process or by worker
    processes (several per GPU, or CPU workers sharing the cores) that pull trials from the study.
    ``study.timeout`` counts from ``started`` (default: now; the command line passes its launch).
    ``checked``: what :func:`hybridsearch.checks.check` returned for ``cfg``, if it ran already.
    """
    started = time.time() if started is None else started
    with quiet_libraries():
        session = open_session(cfg, checked=checked)
        devices = workers.devices_for(cfg)
        study, data, layout = session.study, session.data, session.layout
        n_before = len(study.trials)
        if n_before == 0:
            for params in session.enqueue:
                study.enqueue_trial(params, skip_if_exists=True)
        layout.folder.mkdir(parents=True, exist_ok=True)
        deadline = None if cfg.study.timeout is None else started + cfg.study.timeout
        session.deadline = deadline
        session.tracker.start_parent(
            f"{cfg.study.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            params={
                "data": data.name,
                "topologies": ",".join(session.space.topologies),
                "n_trials": cfg.study.n_trials,
                "n_workers": len(devices),
                "cv_folds": session.cv_folds,
            },
            tags={"optuna_storage": cfg.study.storage, "optuna_study": cfg.study.name, "data": data.describe()},
        )
        print(_opening_line(session, n_before, devices))
        if cfg.study.baseline:  # first, inside the budget: a yardstick for the search
            session.baselines = reference_baselines(session)
            print(reference_line(session.baselines), flush=True)
        OmegaConf.save(cfg, layout.config, resolve=True)  # what the report and predict re-read
        dashboard_note(session, len(devices))
        progress = Progress(cfg.study.n_trials, session.metric, session.invocation)
        status = "FAILED"
        try:
            try:
                if devices == [None]:
                    with interrupt.catching():
                        session.optimize(n_trials=cfg.study.n_trials, deadline=deadline, callbacks=[progress])
                else:
                    workers.launch(session, devices, deadline=deadline, progress=progress)
            finally:
                progress.close()
            summary = summarize(session)
            if cfg.study.report and summary.best_trial is not None:
                summary.report = str(attach_report(session))
                summary.save(layout.summary)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            session.tracker.end_parent(status)
    return summary


def _opening_line(session: Any, n_before: int, devices: list[str | None]) -> str:
    cfg, data = session.cfg, session.data
    where = (
        ""
        if devices == [None]
        else f"; {len(devices)} workers on " + ", ".join("cpu" if d is None else f"gpu {d}" for d in devices)
    )
    scoring = f"; each trial scored by {session.cv_folds}-fold cross-validation" if session.cv_folds > 1 else ""
    return (
        f"study {cfg.study.name!r}: {data.describe()}{scoring}; "
        f"{n_before} earlier trial(s) in {cfg.study.storage}{where}"
    )


def main(cfg: DictConfig, checked: Checked | None = None) -> None:
    """The command line's task (:mod:`hybridsearch.__main__`): run the study, then print what it found."""
    print(printout(run_study(cfg, started=LAUNCHED, checked=checked)))
