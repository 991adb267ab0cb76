"""Model code: pure torch, no knowledge of Optuna, Hydra, MLflow or the data loaders."""

from hybridsearch.models.topologies import HYBRIDS, TOPOLOGIES

__all__ = ["HYBRIDS", "TOPOLOGIES"]
