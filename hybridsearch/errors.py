"""What a failed run prints: the user-error kinds, their one-line form, and the command-line decorator.

Every mistake a user can make (a setting, the search space, the data, the storage, the tracking
server) raises a :class:`UserError` whose message is one line naming the key, file or value at
fault. :func:`command_line` turns it, and Hydra's own composition errors, into ``error: <line>``
on stderr and exit code 2; Ctrl-C becomes exit code 130 (SIGTERM 143) with a hint to resume. A
trial's own failure is not a user error: :func:`one_line` records it on the trial and the study goes on.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from hybridsearch import interrupt


class UserError(ValueError):
    """Bad input; the message is one line naming the key, file or value and what would be valid."""


class ConfigError(UserError):
    """A bad setting (``study.*``, ``data.cv_folds``, ...)."""


class SpaceError(UserError):
    """A malformed search space (``space.*``)."""


class DataError(UserError):
    """Unusable data: a missing file, column or value."""


class StorageError(UserError):
    """The Optuna storage cannot be opened (``study.storage``)."""


class TrackingError(UserError):
    """The MLflow tracking store or server cannot be used (``tracking.uri``)."""


def first_line(err: BaseException) -> str:
    """An exception's first line, for messages that quote a library's error."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def one_line(err: BaseException) -> str:
    """A failed trial's reason: the exception's type and its whole message on one line."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}"[:1000]


_HYDRA_DETAIL = ("full_key:", "reference_type=", "object_type=", "provider=")


def hydra_line(err: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages, without their internals, on one line."""
    parts: list[str] = []
    for e in (err, err.__cause__):
        for line in str(e or "").splitlines():
            line = line.strip()
            if line.startswith("Config search path"):
                break
            if line and not line.startswith(_HYDRA_DETAIL) and line not in parts:
                parts.append(line)
    return " ".join(parts) or type(err).__name__


P = ParamSpec("P")
R = TypeVar("R")


def command_line(main: Callable[P, R]) -> Callable[P, R]:
    """The one way a command of hybridsearch fails: ``error: <one line>`` on stderr and exit code 2
    for bad input (a :class:`UserError`, a missing file, a config Hydra cannot compose); exit code
    130 on Ctrl-C (143 on SIGTERM, taken as Ctrl-C). ``HYDRA_FULL_ERROR=1`` keeps Hydra's own report
    with its stack trace."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        full = os.environ.get("HYDRA_FULL_ERROR") == "1"
        os.environ["HYDRA_FULL_ERROR"] = "1"  # makes Hydra raise instead of printing a report
        try:
            with interrupt.handled_by(interrupt.as_ctrl_c):
                return main(*args, **kwargs)
        except (UserError, FileNotFoundError) as err:
            _fail(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
        except (HydraException, OmegaConfBaseException) as err:
            if full:
                raise
            _fail(hydra_line(err))
        except KeyboardInterrupt:
            print("\ninterrupted: run the same command again to resume the study", file=sys.stderr)
            raise SystemExit(interrupt.exit_code()) from None

    return wrapper


def _fail(line: str) -> None:
    print(f"error: {line}", file=sys.stderr)
    raise SystemExit(2) from None


__all__ = [
    "ConfigError",
    "DataError",
    "SpaceError",
    "StorageError",
    "TrackingError",
    "UserError",
    "command_line",
    "first_line",
    "one_line",
]
