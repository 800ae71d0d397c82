"""Ctrl-C as a request, not an exception: training stops at its next consistent point.

The first SIGINT (or SIGTERM, as a job scheduler or ``kill`` sends) only sets a flag that the
training loop reads between steps, then the loop saves and leaves; a second SIGINT gets
Python's default behaviour, so a stuck run can still be killed from the keyboard.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class InterruptFlag:
    """Set once a stop was requested by a signal; ``signum`` says which."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def clear(self) -> None:
        self.signum = None


@contextlib.contextmanager
def interrupt_requests(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
                       ) -> Iterator[InterruptFlag]:
    """Within the block, ``signals`` set the yielded flag instead of raising.

    Outside the main thread (where Python cannot install handlers) the flag stays unset.
    """
    flag = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.getsignal(s) for s in signals}

    def request(signum, frame):
        flag.signum = signum
        for s, handler in previous.items():  # the next signal behaves as it did before
            signal.signal(s, handler)

    for s in signals:
        signal.signal(s, request)
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_interrupts_in_worker() -> None:
    """In a subprocess env worker: leave Ctrl-C to the parent, which stops the run cleanly.

    A terminal sends SIGINT to the whole process group; workers that took it would die
    mid-message and the parent would fail with a ``BrokenPipeError`` instead of saving.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
