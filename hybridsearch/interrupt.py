"""Ctrl-C (or SIGTERM, a scheduler's or ``kill``'s stop) as a flag, raised where a trial can record it.

Inside :func:`catching`, Ctrl-C sets a flag, and raises KeyboardInterrupt at once only inside
:func:`raising` (the objective's body), where the trial is marked "interrupted". Elsewhere (Optuna
creating the next trial and sampling it, telling the last one, the callbacks) it waits for the next
check: one raised while ``study.ask()`` had created a trial but not returned it would leave that trial
RUNNING for good, with neither a worker recorded on it nor a heartbeat to find it by. Training checks
the flag after every batch, the objective before every trial, and :func:`stop_study` after every
trial; that also covers a KeyboardInterrupt that the garbage collector dropped (SQLAlchemy registers
callbacks there, and Python prints an exception raised in one and goes on). SIGTERM is taken as
Ctrl-C, so a batch scheduler, ``docker stop`` or ``kill`` close the running trial the same way; the
command then exits with 128 + the signal's number (:func:`exit_code`): 130, or 143 after SIGTERM.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested = threading.Event()
_raising = threading.Event()
_last = [signal.SIGINT]  # the last stop signal caught, for the exit code


def requested() -> bool:
    """Whether Ctrl-C came while :func:`catching` was active."""
    return _requested.is_set()


def exit_code() -> int:
    """The shell's exit code for a command stopped by the last signal caught: 128 + its number."""
    return 128 + int(_last[0])


def remember(signum: int) -> None:
    """Note a stop signal for :func:`exit_code`."""
    _last[0] = signal.Signals(signum)


def as_ctrl_c(signum: int, frame: object) -> None:
    """The command's handler of SIGINT and SIGTERM outside :func:`catching`: Python's own for SIGINT
    (raise KeyboardInterrupt), with the signal noted for the exit code."""
    remember(signum)
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came and has not been raised yet."""
    if _requested.is_set():
        raise KeyboardInterrupt


def stop_study(study, trial) -> None:  # an Optuna callback: (study, frozen trial)
    """Stop ``study.optimize`` after this trial if Ctrl-C came while Optuna itself was running."""
    if _requested.is_set():
        study.stop()


@contextlib.contextmanager
def handled_by(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` in this block, and to their earlier handlers after it
    (a no-op outside the main thread, where no handler can be installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt at once in this block (a no-op outside :func:`catching`)."""
    _raising.set()
    try:
        yield
    finally:
        _raising.clear()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Ctrl-C inside :func:`raising` waits for the end of this block, then raises: for a write to a
    database, which a KeyboardInterrupt midway can leave holding SQLite's lock while the interrupted
    frames live on in the traceback (the study's last write then fails with "database is locked").
    Also a decorator."""
    was_raising = _raising.is_set()
    _raising.clear()
    try:
        yield
    finally:
        if was_raising:
            _raising.set()
    if was_raising:
        check()


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Ctrl-C sets the flag (and raises inside :func:`raising`), and the block ends with
    KeyboardInterrupt if the flag is set; outside the main thread (where no handler can be
    installed) it does nothing."""

    def handler(signum: int, frame: object) -> None:
        remember(signum)
        _requested.set()
        if _raising.is_set():
            raise KeyboardInterrupt

    try:
        with handled_by(handler):
            yield
            check()  # one that came after the last trial's training
    finally:
        _requested.clear()
