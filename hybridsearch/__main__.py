"""Command line: ``python -m hybridsearch +study=timeseries [overrides...]``.

Hydra composes and type-checks the config before the study's modules load; bad input of any
kind ends as one line on stderr with exit code 2 (:func:`hybridsearch.errors.command_line`).
"""

import hydra
from omegaconf import DictConfig

from hybridsearch.config import register_configs
from hybridsearch.errors import command_line

register_configs()


@command_line
@hydra.main(config_path="pkg://hybridsearch.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hybridsearch.study import main as run  # Optuna, Lightning and MLflow load once the config composes

    run(cfg)


if __name__ == "__main__":
    main()
