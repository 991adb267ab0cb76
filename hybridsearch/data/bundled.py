"""Datasets that aeon ships inside its wheel, loaded offline by name."""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

from hybridsearch.data.arrays import DataError, Series, pad_series


@cache
def _data_dir() -> Path:
    # Located without importing aeon, which takes seconds.
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("bundled datasets need the 'aeon' package: pip install aeon")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def _header(path: Path) -> str:
    """The '@' lines of a .ts file, lower-cased, up to '@data'."""
    lines = []
    with path.open(errors="replace") as f:
        for line in f:
            if line.startswith("@"):
                lines.append(line.lower())
                if line.lower().startswith("@data"):
                    break
    return "".join(lines)


@cache
def bundled_names(task: str = "classification") -> tuple[str, ...]:
    """Names of the bundled .ts datasets for ``task`` ('classification' or 'regression')."""
    flag = "@classlabel true" if task == "classification" else "@targetlabel true"
    names = []
    for folder in sorted(_data_dir().iterdir()):
        train = folder / f"{folder.name}_TRAIN.ts"
        if train.exists() and flag in _header(train):
            names.append(folder.name)
    return tuple(names)


# Forecasting series aeon bundles: name -> (aeon loader, seasonal period).
FORECAST_SERIES = {
    "airline": ("load_airline", 12),
    "lynx": ("load_lynx", 10),
    "PBS_dataset": ("load_PBS_dataset", 12),
    "uschange": ("load_uschange", 4),
    "longley": ("load_longley", 1),
    "solar": ("load_solar", 1),
}


def load_bundled_series(name: str) -> tuple[np.ndarray, int]:
    """A bundled forecasting series -> (values (channels, time), seasonal period)."""
    if name not in FORECAST_SERIES:
        raise DataError(
            f"data.name: no bundled forecasting series {name!r}; offline names: {', '.join(FORECAST_SERIES)}"
        )
    import aeon.datasets

    loader, season = FORECAST_SERIES[name]
    values = np.atleast_2d(np.asarray(getattr(aeon.datasets, loader)(), dtype=np.float64))
    return values, season


def load_bundled(name: str, split: str, task: str = "classification") -> Series:
    """Load the ``split`` ('train' or 'test') of a bundled dataset, padding unequal lengths."""
    names = bundled_names(task)
    if name not in names:
        raise DataError(f"data.name: no bundled {task} dataset {name!r}; offline names: {', '.join(names)}")
    from aeon.datasets import load_classification, load_regression

    loader = load_classification if task == "classification" else load_regression
    X, y = loader(name, split=split, extract_path=str(_data_dir()))
    return pad_series(X, np.asarray(y), source=f"{name} ({split})")
