"""The process group of a torchrun job: join it, print on rank 0, agree on one exit code.

With `WORLD_SIZE` > 1 (torchrun sets it, with RANK, LOCAL_RANK, MASTER_ADDR
and MASTER_PORT) netcli joins the default process group: nccl for CUDA
tensors and gloo for CPU ones where CUDA is available, else gloo. Every
collective has a bounded timeout (`NETCLI_DIST_TIMEOUT` seconds, default 300).

`distributed_main` runs one command on every rank:
- only rank 0 writes stdout; the other ranks' stdout is dropped and their
  stderr kept back; rank 0's stderr is live, each line saying `netcli: rank 0:`;
- a rank that fails records its exit code in the job's store (the first one
  wins and is the one reported, once, as `rank R: ...`); a watcher thread on
  every other rank sees it within a fraction of a second and exits with that
  same code, so no rank waits in a collective for a peer that is gone;
- a rank killed outright (SIGKILL) leaves no record: torchrun then stops the
  others, and a collective waiting on it ends at the timeout at the latest.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import NoReturn

from netcli.core.errors import first_line

_KEY_CODE = "netcli/exit_code"
_KEY_FAILED = "netcli/failed"
_KEY_DONE = "netcli/done"
_KEY_ACK = "netcli/ack"


def _env_number(name: str, default, kind=int):
    """A number from torchrun's (or the user's) environment; the default where it is unset or not a number."""
    try:
        return kind(os.environ.get(name, str(default)))
    except ValueError:
        return default


def world_size() -> int:
    return _env_number("WORLD_SIZE", 1)


def rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_number("RANK", 0)


def timeout_s() -> float:
    return _env_number("NETCLI_DIST_TIMEOUT", 300.0, float)


def joined() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def join() -> None:
    """Join the default process group (torchrun's environment), or a group of one when run alone."""
    import torch
    import torch.distributed as dist

    if joined():
        return
    timeout = timedelta(seconds=timeout_s())
    if "MASTER_ADDR" not in os.environ:
        # one process (`netcli save --shard fsdp` without torchrun): a group of one, nothing to rendezvous
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
        return
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=timeout)


def leave() -> None:
    import torch.distributed as dist

    if joined():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def barrier() -> None:
    import torch.distributed as dist

    if joined() and dist.get_world_size() > 1:
        dist.barrier()


def broadcast_object(value):
    """Rank 0's `value` on every rank."""
    import torch.distributed as dist

    if not joined() or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def local_device(device: str | None) -> str:
    """This rank's device: `cuda` means the GPU torchrun's LOCAL_RANK names; default cpu."""
    if device in (None, "cpu"):
        return "cpu"
    if device in ("cuda", "auto"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
        return "cuda" if device == "cuda" else "cpu"
    return device


class _Tee(io.TextIOBase):
    """A rank's stderr: rank 0's written live, each line saying `netcli: rank 0:`; the others' kept back."""

    def __init__(self, live, keep: bool, prefix: str = ""):
        self.live, self.keep, self.buffer_ = live, keep, io.StringIO()
        self.prefix, self.line_start = prefix, True

    def write(self, text):
        if self.live is not None:
            for piece in text.splitlines(keepends=True):
                if self.line_start and self.prefix:
                    piece = self.prefix + piece.removeprefix("netcli: ")
                self.live.write(piece)
                self.line_start = piece.endswith("\n")
        if self.keep:
            self.buffer_.write(text)
        return len(text)

    def flush(self):
        if self.live is not None:
            self.live.flush()

    def isatty(self):
        return False


def distributed_main(invoke: Callable[[], int]) -> int:
    """Run `invoke()` (the command; returns its exit code) on every rank of a torchrun job, and end the rank.

    `invoke` must print a user error itself (to sys.stderr) and return its code.
    Only rank 0 prints; a failure on any rank is reported once and ends every
    rank with its code (`_fail`); a success waits, bounded, for the others.
    Every rank that joined ends here, with os._exit after flushing (`_end`);
    returns only when the job's group could not be joined.
    """
    try:
        join()
    except Exception as exc:
        print(
            f"netcli: rank {os.environ.get('RANK', '?')}: cannot join the job's process group: {first_line(exc)}",
            file=sys.stderr,
        )
        return 1
    import torch.distributed as dist

    me, n = dist.get_rank(), dist.get_world_size()
    store = dist.distributed_c10d._get_default_store()
    real_out, real_err = sys.stdout, sys.stderr
    err = _Tee(real_err if me == 0 else None, keep=me != 0, prefix=f"netcli: rank {me}: ")
    watcher = _Watcher(store, real_err)
    code = 1
    try:
        sys.stdout, sys.stderr = (real_out if me == 0 else open(os.devnull, "w")), err
        watcher.start()
        try:
            code = invoke()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout, sys.stderr = real_out, real_err
        watcher.stop()
    if code != 0:
        _fail(store, me, n, code, err, real_err)
    _wait_for_the_others(store, me, n, real_out, real_err)
    leave()
    _end(0, real_out, real_err)


def _end(code: int, *streams) -> NoReturn:
    """End this rank now, without Python's finalization.

    gloo's worker threads outlive destroy_process_group while the network's sharded
    tensors still hold the group, and one may be releasing a finished collective's
    tensors when Python finalizes: taking the GIL then stops the thread with
    pthread_exit through C++ frames that cannot unwind, and the rank aborts (SIGABRT,
    "terminate called without an active exception"; a core dump showed
    ProcessGroupGloo::runLoop destroying an AsyncBarrierWork during Py_FinalizeEx).
    The command's files are written, fsynced and renamed by now; stdout and stderr
    are flushed here.
    """
    for stream in streams:
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class _Watcher:
    """A thread that watches the job's store: when another rank has failed, it ends this rank at once with
    that rank's code (so no rank waits in a collective for a peer that is gone).

    `stop` returns only when the thread has ended. A daemon thread still inside a store call when Python
    exits is stopped by pthread_exit through C++ frames that cannot unwind, and the rank aborts
    ("terminate called without an active exception", exit -6: reproduced with a TCP store, 10 runs in 10).
    """

    def __init__(self, store, real_err):
        self.store, self.real_err = store, real_err
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="netcli-rank-watch", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """End the watch: at once, or after the one store call in flight (bounded by the job's timeout)."""
        self.finished.set()
        if self.thread.is_alive():
            self.thread.join(timeout=timeout_s())

    def _watch(self) -> None:
        while not self.finished.wait(0.2):
            try:
                if self.store.check([_KEY_CODE]):
                    code = int(self.store.get(_KEY_CODE))
                    self.store.add(_KEY_ACK, 1)
                    _end(code, self.real_err)
            except Exception:
                return  # the store is gone (the job is ending)


def _fail(store, me: int, n: int, code: int, err: _Tee, real_err) -> None:
    """End this rank with the job's one exit code; the first rank to fail reports its error, once."""
    if me != 0:  # rank 0 has printed its own error already, live: give it the first word
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not store.check([_KEY_CODE]):
            time.sleep(0.02)
    first = store.add(_KEY_FAILED, 1) == 1 and not (me != 0 and store.check([_KEY_CODE]))
    if first:
        if me != 0:
            for line in err.buffer_.getvalue().splitlines():
                print(f"netcli: rank {me}: {line.removeprefix('netcli: ')}", file=real_err)
        store.set(_KEY_CODE, str(code))
        deadline = time.monotonic() + 5  # let the others see it before torchrun stops them
        while time.monotonic() < deadline and int(store.add(_KEY_ACK, 0)) < n - 1:
            time.sleep(0.02)
    else:
        with contextlib.suppress(Exception):
            store.wait([_KEY_CODE], timedelta(seconds=10))
            code = int(store.get(_KEY_CODE))
        with contextlib.suppress(Exception):
            store.add(_KEY_ACK, 1)
    _end(code, real_err)  # no collective teardown: a peer may be gone


def _wait_for_the_others(store, me: int, n: int, real_out, real_err) -> None:
    """After a success: wait, bounded, until every rank has finished, or leave with the code of one that failed."""
    store.add(_KEY_DONE, 1)
    deadline = time.monotonic() + timeout_s()
    while time.monotonic() < deadline:
        if store.check([_KEY_CODE]):
            code = int(store.get(_KEY_CODE))
            store.add(_KEY_ACK, 1)
            _end(code, real_out)
        if int(store.add(_KEY_DONE, 0)) >= n:
            return
        time.sleep(0.02)
    print(f"netcli: rank {me}: the other ranks did not finish within {timeout_s():.0f} s", file=real_err)
    _end(1, real_err)
