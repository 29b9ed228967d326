"""`--nproc N`: netcli starts the N ranks of a one-host job itself, through torch's elastic launcher.

torchrun prints its own `ChildFailedError` traceback (and a log line per
rank) after netcli's one-line error; here the same launcher
(`torch.distributed.launcher.api.elastic_launch`, what torchrun calls) runs
`python -m netcli ARGS` on N local ranks with a c10d rendezvous on 127.0.0.1,
its logging kept quiet, and a failure ends as one line:
- a rank that failed with an exit code has reported its error itself, once,
  as `rank R: ...` (`group.distributed_main`); nothing is added;
- a rank killed by a signal could not: the launcher says `netcli: rank R: killed by SIGKILL`.
Across hosts torchrun stays the way (its rendezvous takes the hosts' addresses).
"""

from __future__ import annotations

import os
import sys
import uuid


def launch(n: int, args: list[str]) -> int:
    """Run `python -m netcli *args` on `n` local ranks; return the job's exit code (0, or a rank's)."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import DefaultLogsSpecs, SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # the ranks speak for themselves
    if "OMP_NUM_THREADS" not in os.environ:  # N ranks share the cores, as torchrun arranges it
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=n,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        max_restarts=0,
        monitor_interval=0.1,
        logs_specs=DefaultLogsSpecs(),
        local_addr="127.0.0.1",
    )
    try:
        elastic_launch(config, sys.executable)("-m", "netcli", *args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode < 0:
            print(f"netcli: rank {rank}: killed by {failure.signal_name()}", file=sys.stderr)
            return 128 - failure.exitcode
        return failure.exitcode
    except (KeyboardInterrupt, SignalException) as exc:  # the launcher has stopped the ranks
        print("netcli: interrupted", file=sys.stderr)
        return 128 + int(getattr(exc, "sigval", 2))
    except Exception as exc:  # the launcher itself failed (no free port, a rendezvous error)
        from netcli.core.errors import first_line

        print(f"netcli: cannot start {n} ranks: {first_line(exc)}", file=sys.stderr)
        return 1
    return 0
