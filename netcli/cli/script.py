"""The `netcli` console script: drop the implicit current folder from the import path, then run.

This module imports nothing outside netcli before `drop_implicit_cwd`, so a
`typer.py` or `yaml.py` in the current folder (reachable through an empty
PYTHONPATH entry) is never imported in place of the real one.
"""

from __future__ import annotations


def main() -> None:
    from netcli.core.safepath import drop_implicit_cwd

    drop_implicit_cwd(module_run=False)
    collect_less_often()
    from netcli.cli.commands import main as run

    try:
        run()
    finally:
        skip_the_final_collection()


def collect_less_often() -> None:
    """Run Python's cyclic garbage collector far less often in this short-lived process.

    `import torch` leaves about a million tracked objects; with the default
    thresholds every further burst of allocations (pydantic, the spec, the
    modules) triggers full collections that walk them all again: about 0.1 to
    0.3 s of a command's start-up, measured (bench figure 8). The collector
    still runs, so a long `run` or `save` cannot pile up cyclic garbage.
    """
    import gc

    gc.set_threshold(100_000, 50, 1000)


def skip_the_final_collection() -> None:
    """Let the interpreter exit without a last cyclic collection over torch's million objects.

    The command has finished: its files are written, fsynced and renamed, its temporary files
    removed, stdout and stderr flushed (atexit handlers still run). What is left in memory is
    freed by the OS. Python's shutdown would otherwise walk every tracked object once more:
    0.25 s of each netcli command's 0.37 s exit, measured (bench figure 8). `gc.freeze()` moves
    them out of the collector's reach. Only the console script does this, never `import netcli`.
    """
    import gc
    import sys

    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with the descriptor closed (`netcli build ... >&-`): nothing to flush
            continue
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the command already reported it
            pass
    gc.freeze()
