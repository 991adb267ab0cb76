"""hybridsearch: find the best hybrid CNN+LSTM model for your sequence data.

The public names load on first use, so ``python -m hybridsearch`` checks its config before
Lightning and MLflow are imported (:mod:`hybridsearch.checks`).

Example:
    >>> from hybridsearch import TOPOLOGIES, load_best
    >>> sorted(TOPOLOGIES)[:2]
    ['cascade', 'conv_gated']
"""

import time
from importlib import import_module
from typing import Any

LAUNCHED = time.time()  # the command's start: study.timeout counts from here, imports included

# public name -> the module that defines it
_EXPORTS = {
    "HYBRIDS": "hybridsearch.models",
    "TOPOLOGIES": "hybridsearch.models",
    "EnsembleModule": "hybridsearch.module",
    "HybridModule": "hybridsearch.module",
    "load_best": "hybridsearch.module",
    "build_model": "hybridsearch.search_space",
    "parse_space": "hybridsearch.search_space",
    "sample": "hybridsearch.search_space",
    "run_study": "hybridsearch.study",
    "Summary": "hybridsearch.results",
    "UserError": "hybridsearch.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hybridsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
