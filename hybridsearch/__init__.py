"""hybridsearch: find the best hybrid CNN+LSTM model for your sequence data.

Importing the package is cheap: the study machinery (Optuna, MLflow) loads only when used.

Example:
    >>> from hybridsearch import TOPOLOGIES, load_best
    >>> sorted(TOPOLOGIES)[:2]
    ['cascade', 'conv_gated']
"""

from typing import Any

from hybridsearch.models import HYBRIDS, TOPOLOGIES
from hybridsearch.module import EnsembleModule, HybridModule, load_best
from hybridsearch.search_space import build_model, parse_space, sample

__all__ = [
    "HYBRIDS",
    "TOPOLOGIES",
    "EnsembleModule",
    "HybridModule",
    "build_model",
    "load_best",
    "parse_space",
    "run_study",
    "sample",
]


def __getattr__(name: str) -> Any:
    if name == "run_study":
        from hybridsearch.study import run_study

        return run_study
    raise AttributeError(f"module 'hybridsearch' has no attribute {name!r}")
