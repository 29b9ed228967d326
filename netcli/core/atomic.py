"""Write files atomically: a temp file in the same folder, fsync, os.replace, fsync of the folder.

A crash, Ctrl-C or SIGKILL mid-write leaves the previous file whole. The temp
file's name carries the writer's pid, so the next save to the same file can
tell a leftover of a killed save (its pid is gone) from one still being
written, and remove it.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from netcli.core.errors import Location, NetcliError, Problem

TEMP_PREFIX = ".netcli-tmp-"


def temp_prefix(dest: Path) -> str:
    """Return the name prefix of temp files written for `dest` (`.netcli-tmp-NAME.`)."""
    return f"{TEMP_PREFIX}{dest.name}."


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `dest`; on success fsync it and rename it over `dest`.

    >>> with atomic_path("net.safetensors") as tmp:
    ...     tmp.write_bytes(data)
    """
    dest = _target(Path(dest))
    folder = dest.parent
    clean_leftovers(dest)
    tmp_path: Path | None = None
    try:
        # Ctrl-C waits until the temp file's name is held, so the cleanup below always sees it.
        with _sigint_held():
            try:
                fd, tmp = tempfile.mkstemp(prefix=f"{temp_prefix(dest)}{os.getpid()}.", dir=folder)
            except OSError as exc:
                raise NetcliError(Problem(f"cannot write here: {exc.strerror}", location=Location(str(dest)),
                                          hint="check that the folder exists and is writable")) from exc
            tmp_path = Path(tmp)
            os.close(fd)
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        _copy_permissions(dest, tmp_path)
        os.replace(tmp_path, dest)
        _fsync_dir(folder)
    except BaseException as exc:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
        if isinstance(exc, OSError):  # a full disk, a quota, an I/O error: the old file is untouched
            what = "the previous file is unchanged" if dest.exists() else "nothing was written"
            raise NetcliError(Problem(f"cannot write: {exc.strerror or exc}; {what}", location=Location(str(dest)),
                                      hint="free some space or choose another folder")) from exc
        raise


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold SIGINT back (main thread, where possible) until the block is done."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def atomic_write(dest: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` and move the result over `dest` atomically."""
    with atomic_path(dest) as tmp:
        write(tmp)


def clean_leftovers(dest: str | os.PathLike) -> list[Path]:
    """Remove temp files that killed saves to `dest` left behind; return what was removed.

    A temp file whose writer (the pid in its name) is still running is kept:
    it may be a save in progress in another process.
    """
    dest = Path(dest)
    folder = dest.parent
    prefix = temp_prefix(dest)
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        if _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            (folder / name).unlink()
            removed.append(folder / name)
    return removed


def _target(dest: Path) -> Path:
    """Return the file to replace: a symlink's target, so the link stays a link."""
    if dest.is_symlink():
        dest = Path(os.path.realpath(dest))
    if dest.is_dir():
        raise NetcliError(Problem("is a folder; give a file name", location=Location(str(dest))))
    if not str(dest.parent):
        dest = Path(".") / dest
    return dest


def _copy_permissions(dest: Path, tmp: Path) -> None:
    """Give the temp file the old file's mode (and owner, where allowed), else the umask's default."""
    try:
        st = dest.stat()
    except FileNotFoundError:
        os.chmod(tmp, 0o666 & ~_umask())  # what open(dest, "w") would have created
        return
    os.chmod(tmp, st.st_mode & 0o7777)
    if hasattr(os, "chown"):
        with contextlib.suppress(OSError):
            os.chown(tmp, st.st_uid, st.st_gid)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists but belongs to someone else
    return True


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable: fsync the folder that holds the entry."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
