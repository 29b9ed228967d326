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
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.signals import Signalled, SignalTrap, die_of, signals_held

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
    trap = SignalTrap()
    try:
        trap.__enter__()
        # Ctrl-C waits until the temp file's name is held, so the cleanup below always sees it. The
        # name is held before the file exists: a signal that another thread received runs its Python
        # handler in this thread at any bytecode, even inside the held block (mkstemp's name was lost
        # when it came between mkstemp returning and the assignment).
        with signals_held():
            tmp_path = folder / f"{temp_prefix(dest)}{os.getpid()}.{secrets.token_hex(8)}"
            try:
                fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            except OSError as exc:
                tmp_path = None  # not ours (a name taken: 64 random bits) or not made
                raise NetcliError(
                    Problem(
                        f"cannot write here: {exc.strerror}",
                        location=Location(str(dest)),
                        hint="check that the folder exists and is writable",
                    )
                ) from exc
            os.close(fd)
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        _copy_permissions(dest, tmp_path)
        os.replace(tmp_path, dest)
        tmp_path = None  # it is the file now
        _fsync_dir(folder)
    except BaseException as exc:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
        trap.__exit__(None, None, None)
        if isinstance(exc, Signalled):  # the temp file is gone: now die of the signal as we would have
            die_of(exc.signum)
        if isinstance(exc, OSError):  # a full disk, a quota, an I/O error: the old file is untouched
            what = "the previous file is unchanged" if dest.exists() else "nothing was written"
            raise NetcliError(
                Problem(
                    f"cannot write: {exc.strerror or exc}; {what}",
                    location=Location(str(dest)),
                    hint="free some space or choose another folder",
                )
            ) from exc
        raise
    trap.__exit__(None, None, None)


def atomic_write(dest: str | os.PathLike, write: Callable[[Path], object]) -> None:
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
    removed: list[Path] = []
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
    """Return the file to replace: a new path, a regular file, or the regular file a symlink points at.

    Anything else is refused: replacing a device node or a FIFO would turn
    `/dev/null` into a regular file, and a dangling symlink would create a file
    wherever it points.
    """
    import stat

    shown = str(dest)
    if dest.is_symlink():
        real = Path(os.path.realpath(dest))
        if not real.exists():
            raise NetcliError(
                Problem(
                    f"is a symlink to {real}, which does not exist; refusing to create it",
                    location=Location(shown),
                    hint="write to a plain file name",
                )
            )
        dest = real  # the link stays a link to the new content
    try:
        mode = os.stat(dest).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise NetcliError(Problem(f"cannot write here: {exc.strerror}", location=Location(shown))) from exc
    if mode is not None and stat.S_ISDIR(mode):
        raise NetcliError(Problem("is a folder; give a file name", location=Location(shown)))
    if mode is not None and not stat.S_ISREG(mode):
        kind = (
            "a character device"
            if stat.S_ISCHR(mode)
            else "a block device"
            if stat.S_ISBLK(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise NetcliError(
            Problem(
                f"is {kind}; netcli writes only to a regular file or a new path",
                location=Location(shown),
                hint="give a file name",
            )
        )
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


# ---------------------------------------------------------------- directories (sharded checkpoints)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, *, allowed: Callable[[str], bool] | None = None) -> Iterator[Path]:
    """Yield a fresh temp folder beside `dest`; on success fsync its files and swap it in for `dest`.

    A crash, Ctrl-C or SIGKILL before the swap leaves the previous `dest`
    whole (and a temp folder the next write removes). Where Linux's
    renameat2(RENAME_EXCHANGE) is available the swap is one atomic step;
    elsewhere `dest` is renamed aside, the new folder renamed in, the old one
    removed (a crash between the two renames leaves the old folder beside,
    under a `.netcli-old-` name). An existing `dest` holding files `allowed`
    refuses (someone else's folder) is not replaced.
    """
    dest = Path(dest)
    if not str(dest.parent):
        dest = Path(".") / dest
    if dest.exists() and not dest.is_dir():
        raise NetcliError(Problem("is a file; give a folder for a sharded checkpoint", location=Location(str(dest))))
    if dest.is_dir() and allowed is not None:
        foreign = sorted(n for n in os.listdir(dest) if not allowed(n))
        if foreign:
            raise NetcliError(
                Problem(
                    f"the folder holds other files ({', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}); refusing to replace it",
                    location=Location(str(dest)),
                    hint="give a new or empty folder",
                )
            )
    folder = dest.parent
    clean_leftover_dirs(dest)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{temp_prefix(dest)}{os.getpid()}.", dir=folder))
    except OSError as exc:
        raise NetcliError(
            Problem(
                f"cannot write here: {exc.strerror}",
                location=Location(str(dest)),
                hint="check that the folder exists and is writable",
            )
        ) from exc
    try:
        yield tmp
        for name in os.listdir(tmp):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        swap_dirs(tmp, dest)
        _fsync_dir(folder)
    except BaseException as exc:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            what = "the previous checkpoint is unchanged" if dest.exists() else "nothing was written"
            raise NetcliError(
                Problem(
                    f"cannot write: {exc.strerror or exc}; {what}",
                    location=Location(str(dest)),
                    hint="free some space or choose another folder",
                )
            ) from exc
        raise


def swap_dirs(new: Path, dest: Path) -> None:
    """Put the folder `new` at `dest`; remove what was there (atomically where the OS can)."""
    import shutil

    if not dest.exists():
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        shutil.rmtree(new, ignore_errors=True)  # `new` now names the old folder
        return
    old = dest.parent / f".netcli-old-{dest.name}.{os.getpid()}"
    os.rename(dest, old)
    os.rename(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(a, b, RENAME_EXCHANGE) on Linux; False where it is not available."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    rc = fn(AT_FDCWD, os.fsencode(str(a)), AT_FDCWD, os.fsencode(str(b)), RENAME_EXCHANGE)
    return rc == 0


def clean_leftover_dirs(dest: str | os.PathLike) -> list[Path]:
    """Remove temp folders of killed sharded saves to `dest` (their writer's pid is gone)."""
    import shutil

    dest = Path(dest)
    pattern = re.compile(re.escape(temp_prefix(dest)) + r"(\d+)\.")
    removed: list[Path] = []
    try:
        names = os.listdir(dest.parent if str(dest.parent) else ".")
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        path = dest.parent / name
        if match is None or not path.is_dir() or _alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def refuse_overwriting_inputs(
    dest: str | os.PathLike | None, *inputs: str | os.PathLike | None, option: str = "-o"
) -> None:
    """Refuse to write `dest` when it is one of the files the command reads.

    `run --checkpoint ck.safetensors -o ck.safetensors` would replace the
    parameters with the run's output; `export model.pt -o model.pt` a
    state_dict with a program. The input is kept and the error says so.
    """
    if dest is None:
        return
    try:
        out = os.stat(dest)
    except OSError:
        return  # a new path cannot be an input
    for source in inputs:
        if source is None:
            continue
        try:
            same = os.path.samestat(out, os.stat(source))
        except OSError:
            continue
        if same:
            raise NetcliError(
                Problem(
                    f"the {option} file is also this command's input; refusing to overwrite it",
                    location=Location(str(dest)),
                    hint="the input is kept; write the result to another file",
                )
            )
