"""A command as part of a torchrun job: run as one of its ranks, or start the ranks (`--nproc N`).

The command line reaches netcli.distributed only through here; nothing is
imported before a job is actually joined or started, so `netcli --help` stays
free of torch.
"""

from __future__ import annotations

from collections.abc import Callable


def run_as_rank(command: Callable[[], int]) -> int:
    """Run `command()` (returns its exit code) on this rank of a torchrun job; return the job's exit code."""
    from netcli.distributed.group import distributed_main

    return distributed_main(command)


def launch_ranks(n: int, args: list[str]) -> int:
    """Start `n` local ranks running `netcli ARGS`; return the job's exit code."""
    from netcli.distributed.launch import launch

    return launch(n, args)
