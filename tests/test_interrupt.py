"""Ctrl-C (or SIGTERM) that is dropped on its way (as inside a garbage-collector callback) still stops the study."""

import contextlib
import os
import signal

import pytest

from hybridsearch import interrupt


def _ctrl_c_dropped() -> None:
    # what Python does with one raised inside a GC callback: print it and go on
    with contextlib.suppress(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def test_a_dropped_ctrl_c_is_raised_at_the_next_check_and_at_the_end_of_the_block() -> None:
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        _ctrl_c_dropped()
        assert interrupt.requested()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    assert not interrupt.requested()  # cleared for the next command in this process
    interrupt.check()  # and raises nothing


def test_no_ctrl_c_leaves_the_block_alone_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupt.catching():
        assert signal.getsignal(signal.SIGINT) is not before
        interrupt.check()
    assert signal.getsignal(signal.SIGINT) is before


def test_training_stops_after_the_batch_once_ctrl_c_was_dropped() -> None:
    from hybridsearch.objective import StopOnCtrlC

    callback = StopOnCtrlC()
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        callback.on_train_batch_end()  # nothing yet
        _ctrl_c_dropped()
        callback.on_train_batch_end()


def test_sigterm_is_taken_as_ctrl_c_and_sets_the_exit_code() -> None:
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        os.kill(os.getpid(), signal.SIGTERM)  # outside `raising`: only the flag, as for Ctrl-C
        assert interrupt.requested()
    assert interrupt.exit_code() == 128 + signal.SIGTERM
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        os.kill(os.getpid(), signal.SIGINT)
    assert interrupt.exit_code() == 130
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def test_ctrl_c_during_a_deferred_write_raises_after_it_and_only_inside_raising() -> None:
    written = []
    with pytest.raises(KeyboardInterrupt), interrupt.catching(), interrupt.raising():
        with pytest.raises(KeyboardInterrupt), interrupt.deferred():
            os.kill(os.getpid(), signal.SIGINT)  # would raise here, midway through the write
            written.append("the rest of the write")
        assert written == ["the rest of the write"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # raising is back on after the block
    with pytest.raises(KeyboardInterrupt), interrupt.catching():
        with interrupt.deferred():  # outside raising: only the flag, before and after
            os.kill(os.getpid(), signal.SIGINT)
        written.append("went on after the block")
    assert written[-1] == "went on after the block"
