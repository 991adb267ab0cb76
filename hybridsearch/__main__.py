"""Command line: ``python -m hybridsearch +study=timeseries [overrides...]``.

Hydra composes and type-checks the config, and :func:`hybridsearch.checks.check` checks its
values, loads the data and opens the storage and the tracking store, before Lightning loads; bad
input of any kind ends as one line on stderr with exit code 2 (:func:`hybridsearch.errors.command_line`).
"""

import hydra
from omegaconf import DictConfig

from hybridsearch.config import register_configs
from hybridsearch.errors import command_line

register_configs()


@command_line
@hydra.main(config_path="pkg://hybridsearch.conf", config_name="config", version_base="1.3")
@command_line  # inside Hydra's job too: bad input is one line here, not Hydra's report of a failed job
def main(cfg: DictConfig) -> None:
    from hybridsearch import workers

    workers.start_fork_server(cfg)  # CPU workers' imports, beside this process's
    from hybridsearch.checks import check  # torch, Optuna, data, storage, MLflow: bad input fails here, in seconds
    from hybridsearch.progress import quiet_libraries

    with quiet_libraries():  # no MLflow notes on creating its tables
        checked = check(cfg)
    from hybridsearch.study import main as run  # Lightning loads once the config is checked

    run(cfg, checked)


if __name__ == "__main__":
    main()
