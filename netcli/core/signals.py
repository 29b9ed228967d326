"""Terminating signals during a write: turned into an exception, so the temp file is removed, then obeyed.

A write traps SIGTERM, SIGHUP, SIGQUIT, ... (each only while its handler is the
default: a handler the program installed is left alone) and raises `Signalled`;
once the temp file is gone the process dies of the signal, with the exit status
a shell expects. The final rename runs with them held back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class Signalled(BaseException):
    """A terminating signal arrived during a write: unwind, remove the temp file, then die of it."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


# Signals whose default action ends the process; each is trapped only while its handler is the
# default, so a handler the program installed itself (a test's alarm) is left alone. SIGINT is
# Python's KeyboardInterrupt already; SIGKILL cannot be caught (the next save removes its leftover).
_TERMINATING = (
    "SIGTERM",
    "SIGHUP",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGALRM",
    "SIGVTALRM",
    "SIGPROF",
    "SIGXCPU",
    "SIGXFSZ",
)


class SignalTrap:
    """While a write runs, turn terminating signals into `_Signalled` so the temp file is removed."""

    def __init__(self):
        self.saved: dict[int, Any] = {}  # signal number -> the handler signal.signal returned

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        for name in _TERMINATING:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                if signal.getsignal(signum) is signal.SIG_DFL:
                    self.saved[signum] = signal.signal(signum, _raise_signalled)
            except (OSError, ValueError):
                continue
        return self

    def __exit__(self, *exc) -> None:
        import signal

        saved, self.saved = self.saved, {}
        for signum, handler in saved.items():
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, handler)


def _raise_signalled(signum, frame) -> None:
    raise Signalled(signum)


def die_of(signum: int) -> None:
    """End the process by `signum` with its default action (the exit status a shell expects)."""
    import signal

    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and the trapped signals back (main thread, where possible) until the block is done."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT} | {getattr(signal, n) for n in _TERMINATING if hasattr(signal, n)}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
