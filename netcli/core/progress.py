"""Show progress of long saves, loads and checks on stderr: a rich bar, on a terminal, after a second."""

from __future__ import annotations

import os
import sys
import threading
import time


class Progress:
    """Show a rich progress bar on stderr, on a terminal only, once an operation has run a second.

    Short operations and pipes print nothing extra. `watch(path)` follows a file
    being written by a library call that reports no progress of its own.
    """

    DELAY = 1.0

    def __init__(self, description: str, total: int, console=None):
        from rich.console import Console

        self.console = console if console is not None else Console(file=sys.stderr)
        self.enabled = self.console.is_terminal
        self.description, self.total = description, max(int(total), 1)
        self._lock = threading.Lock()
        self._started = self._done = False
        self._watched: str | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task(self.description, total=self.total)
            self._timer = threading.Timer(self.DELAY, self._start)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _start(self) -> None:
        with self._lock:
            if not self._done:
                self._bar.start()
                self._started = True
                if self._watched is not None:
                    threading.Thread(target=self._follow, daemon=True).start()

    def advance(self, n: int) -> None:
        if self.enabled:
            self._bar.advance(self._task, n)

    def restart(self, description: str, total: int | None) -> None:
        """Begin a new phase on the same bar; a total of None makes it pulse (progress unknown)."""
        if self.enabled:  # a new task: rich's reset() reads total=None as "keep the old total"
            self._bar.remove_task(self._task)
            self._task = self._bar.add_task(description, total=None if total is None else max(int(total), 1))

    def watch(self, path) -> None:
        """Follow the size of the file at `path` as it is written."""
        if self.enabled:
            with self._lock:
                self._watched = str(path)
                if self._started:
                    threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        while not self._done:
            try:
                if self._watched is not None:
                    self._bar.update(self._task, completed=os.path.getsize(self._watched))
            except OSError:
                pass
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._timer.cancel()
            with self._lock:
                self._done = True
                if self._started:
                    self._bar.stop()
