"""Ctrl-C as a flag as well as an exception.

A KeyboardInterrupt raised while the garbage collector runs a callback (SQLAlchemy registers some)
is printed and dropped, and the study would go on. Inside :func:`catching` the handler also sets a
flag; training checks it after every batch and the objective before every trial, so the interrupt
arrives at the next ordinary line instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_requested = threading.Event()


def requested() -> bool:
    """Whether Ctrl-C came while :func:`catching` was active."""
    return _requested.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came and was lost on the way."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def catching() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual and sets the flag too, and the block ends with
    KeyboardInterrupt if the flag is set; outside the main thread
    (where no handler can be installed) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        _requested.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
        check()  # one that came after the last trial's training
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
