"""Tests for netcli.core.atomic: permissions, leftovers, and saves killed with SIGKILL at several points."""
from __future__ import annotations

import os
import random
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from netcli.core import atomic
from netcli.io.checkpoint_save import save_checkpoint
from netcli.app.restore import load_checkpoint
from netcli.init.engine import build_model
from netcli.core.errors import NetcliError
from netcli.builder.validate import load_spec

SPEC = "input: [1, 512]\nmodel:\n  - Linear: [512, 1024]\n  - ReLU\n  - Linear: [1024, 512]\n"  # ~4 MiB


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(atomic.TEMP_PREFIX))


def test_replaces_the_file_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    atomic.atomic_write(dest, lambda p: p.write_bytes(b"new"))
    assert dest.read_bytes() == b"new"
    assert temps(tmp_path) == []


def test_keeps_the_old_files_permissions(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    os.chmod(dest, 0o640)
    atomic.atomic_write(dest, lambda p: p.write_bytes(b"new"))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640


def test_a_new_file_gets_the_umask_default(tmp_path):
    old = os.umask(0o027)
    try:
        dest = tmp_path / "fresh.bin"
        atomic.atomic_write(dest, lambda p: p.write_bytes(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")

    def fail(p: Path) -> None:
        p.write_bytes(b"half")
        raise KeyboardInterrupt  # Ctrl-C mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(dest, fail)
    assert dest.read_bytes() == b"old"
    assert temps(tmp_path) == []


def test_a_symlink_stays_a_link_to_the_new_content(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    atomic.atomic_write(link, lambda p: p.write_bytes(b"new"))
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(NetcliError, match="cannot write here"):
        atomic.atomic_write(tmp_path / "no" / "such" / "out.bin", lambda p: p.write_bytes(b""))


def test_leftovers_of_dead_writers_are_cleaned_and_live_ones_kept(tmp_path):
    dest = tmp_path / "out.bin"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{atomic.temp_prefix(dest)}{dead.pid}.abc123"
    live = tmp_path / f"{atomic.temp_prefix(dest)}{os.getppid()}.def456"  # our parent: alive
    other = tmp_path / f"{atomic.temp_prefix(tmp_path / 'other.bin')}{dead.pid}.ghi789"  # another file's
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    atomic.atomic_write(dest, lambda p: p.write_bytes(b"new"))
    assert not stale.exists()
    assert live.exists() and other.exists()


# ---------------------------------------------------------------- SIGKILL

CHILD = textwrap.dedent('''
    """Save a checkpoint, stopping (to be killed) at the point named on the command line."""
    import itertools, os, sys, time
    point, spec, path, value = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    import torch
    from netcli.io.checkpoint_save import save_checkpoint
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec

    def stop():
        print("AT", point, flush=True)
        time.sleep(120)

    if point == "mid-write":  # the temp file holds half of what the library wrote
        import safetensors.torch as st
        real_save = st.save_file
        def save_file(tensors, filename, metadata=None):
            real_save(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as f:
                f.truncate(os.path.getsize(filename) // 2)
            stop()
        st.save_file = save_file
        from netcli.io import stwriter
        real_write = stwriter.write_safetensors  # netcli's own one-pass writer
        def write_safetensors(p, *args, **kwargs):
            real_write(p, *args, **kwargs)
            with open(p, "r+b") as f:
                f.truncate(os.path.getsize(p) // 2)
            stop()
        stwriter.write_safetensors = write_safetensors
    elif point == "before-fsync":  # the temp file is whole but not yet on disk
        os.fsync = lambda fd: stop()
    elif point == "before-replace":
        os.replace = lambda a, b: stop()
    elif point == "after-replace":  # the rename is done, the folder not yet fsynced
        real_replace = os.replace
        def replace(a, b):
            real_replace(a, b)
            stop()
        os.replace = replace

    built = build_model(load_spec(spec))
    for i in (itertools.count() if point == "loop" else [0]):
        with torch.no_grad():
            for p in built.net.parameters():
                p.fill_(value + i)
        save_checkpoint(built, path)
        print("SAVED", value + i, flush=True)
''')


def _start(tmp_path: Path, point: str, dest: Path, value: float) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen([sys.executable, str(script), point, str(spec), str(dest), str(value)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _read_line(proc: subprocess.Popen, timeout: float = 120) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail("the child saved nothing in time")
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        pytest.fail(f"the child died: {proc.stderr.read()}")
    return line


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()  # reaped: its pid is gone, so its temp file counts as a leftover
    assert proc.returncode == -signal.SIGKILL


def _values(path: Path) -> set[float]:
    """Load the checkpoint with netcli and return the distinct values of all its parameters."""
    net = load_checkpoint(path).net
    return {v for p in net.parameters() for v in p.unique().tolist()}


def _save_old(tmp_path: Path, dest: Path, value: float) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC)
    built = build_model(load_spec(str(spec)))
    with torch.no_grad():
        for p in built.net.parameters():
            p.fill_(value)
    save_checkpoint(built, dest)


@pytest.mark.slow
@pytest.mark.parametrize("point,survivor", [
    ("mid-write", 1.0), ("before-fsync", 1.0), ("before-replace", 1.0), ("after-replace", 2.0)])
def test_a_save_killed_at_each_point_leaves_a_whole_file(tmp_path, point, survivor):
    dest = tmp_path / "net.safetensors"
    _save_old(tmp_path, dest, 1.0)
    mode = 0o640
    os.chmod(dest, mode)
    proc = _start(tmp_path, point, dest, 2.0)
    assert _read_line(proc).split() == ["AT", point]
    _kill(proc)
    assert _values(dest) == {survivor}  # the old file (or, once renamed, the new one), whole
    if point != "after-replace":
        assert len(temps(tmp_path)) == 1  # the killed save's temp file is left behind...
    _save_old(tmp_path, dest, 3.0)
    assert temps(tmp_path) == []  # ...and the next save cleans it up
    assert _values(dest) == {3.0}
    assert stat.S_IMODE(dest.stat().st_mode) == mode


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_saves_killed_at_random_moments_leave_a_loadable_file(tmp_path, suffix):
    dest = tmp_path / f"net{suffix}"
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC)
    _save_old(tmp_path, dest, 0.0)
    rng = random.Random(1234)
    for round_ in range(2):
        proc = _start(tmp_path, "loop", dest, 10.0 * (round_ + 1))
        assert _read_line(proc).startswith("SAVED")
        for _ in range(rng.randrange(3)):
            _read_line(proc)
        time.sleep(rng.uniform(0.0, 0.05))
        _kill(proc)
        net = load_checkpoint(dest, str(spec)).net
        values = {v for p in net.parameters() for v in p.unique().tolist()}
        assert len(values) == 1, values  # one whole save, never a mix
    _save_old(tmp_path, dest, 5.0)
    assert temps(tmp_path) == []
