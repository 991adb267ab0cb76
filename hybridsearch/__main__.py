"""Command line: ``python -m hybridsearch +study=timeseries [overrides...]``."""

import hydra
from omegaconf import DictConfig

from hybridsearch.config import one_line_errors, register_configs

register_configs()


@one_line_errors
@hydra.main(config_path="pkg://hybridsearch.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hybridsearch.study import main as run  # heavy imports only once the config is valid

    run(cfg)


if __name__ == "__main__":
    main()
