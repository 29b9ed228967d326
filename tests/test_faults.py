"""Faults during `netcli save`: SIGKILL and SIGINT at many points, a full disk, a read-only folder.

The destination is always either the old complete file or the new complete
file, byte for byte; a killed save's temp file is removed by the next save; a
full disk or a read-only folder is a clear error (exit 2) that loses nothing.

The kill test forks each `netcli save` from a process that has already
imported torch, so a kill point costs a fork, not an interpreter start. CI
tries 12 kill points; `NETCLI_FUZZ=long` tries 60.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT

LONG = os.environ.get("NETCLI_FUZZ") == "long"
KILL_POINTS = int(os.environ.get("NETCLI_FUZZ_KILLS", 60 if LONG else 12))

SPEC = """\
# about 24 MB of parameters: a save takes long enough to be interrupted while writing
input: [2, 1024]
model:
  - Linear: [1024, 2048]
  - ReLU
  - Linear: [2048, 2048]
"""

# Runs in a subprocess: forks one `netcli save` per kill point and kills it.
KILLER = textwrap.dedent('''
    import json, os, random, signal, sys, time
    import torch  # imported once here; each forked save starts warm
    from netcli.cli import commands

    spec, folder, suffix, points, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    dest = os.path.join(folder, "net" + suffix)

    def save(out, seed):
        # SIGINT stays blocked across the fork until the child is inside its try: a signal sent
        # at once must interrupt the save, never the copy of this loop in the child
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                commands.main(["save", spec, "-o", out, "--seed", str(seed)])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except KeyboardInterrupt:
                code = 130
            finally:
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return pid

    def finish(pid):
        _, status = os.waitpid(pid, 0)
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def temps(pid=None):
        mark = f".netcli-tmp-net{suffix}." + (f"{pid}." if pid else "")
        return sorted(n for n in os.listdir(folder) if n.startswith(".netcli-tmp-") and n.startswith(mark))

    # the old file (seed 1) and the new one (seed 2), each saved whole, to compare against
    durations = []
    for s, name in ((2, "new"), (1, "old")):
        t = time.perf_counter()
        assert finish(save(dest, s)) == 0
        durations.append(time.perf_counter() - t)
        os.replace(dest, os.path.join(folder, name + suffix))
    def content(path):
        """The file's meaning: header and data (safetensors' metadata order varies), or zip entries."""
        import io, struct, zipfile
        data = open(path, "rb").read()
        try:
            if suffix == ".safetensors":
                n = struct.unpack("<Q", data[:8])[0]
                return json.loads(data[8:8 + n]), data[8 + n:]
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                # the archive folder is named after the temp file, the serialization id is random
                return {n.split("/", 1)[-1]: zf.read(n) for n in zf.namelist() if not n.endswith("serialization_id")}
        except Exception:
            return None  # not a whole file

    old = content(os.path.join(folder, "old" + suffix))
    new = content(os.path.join(folder, "new" + suffix))
    old_bytes = open(os.path.join(folder, "old" + suffix), "rb").read()
    assert old != new
    total = max(durations)
    rng = random.Random(seed)
    results = []
    for i in range(points):
        with open(dest, "wb") as f:
            f.write(old_bytes)
        sig = signal.SIGKILL if i % 2 == 0 else signal.SIGINT
        pid = save(dest, 2)
        start = time.perf_counter()
        if i % 3 == 2:
            # kill while the temp file is being written: wait for it to appear, then a random delay
            while not temps(pid) and time.perf_counter() - start < total * 3:  # its own temp file
                time.sleep(0.0005)
            delay = rng.uniform(0, total * 0.3)
        else:
            delay = rng.uniform(0, total * 1.1)  # anywhere in the command: build, write, rename
        time.sleep(delay)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        code = finish(pid)
        data = content(dest)
        state = "old" if data == old else "new" if data == new else "OTHER"
        results.append({"point": i, "signal": sig.name, "at": round(time.perf_counter() - start, 4),
                        "exit": code, "dest": state, "temps": temps(pid)})  # the temp file it left
    left = temps()
    t = time.perf_counter()
    assert finish(save(dest, 2)) == 0  # the next save cleans what killed ones left
    print(json.dumps({"save_seconds": total, "results": results, "left_before_next_save": left,
                      "temps_after_next_save": temps(),
                      "final": "new" if content(dest) == new else "OTHER"}))
''')


def run_killer(tmp_path: Path, suffix: str, points: int, seed: int) -> dict:
    spec = tmp_path / "big.yaml"
    spec.write_text(SPEC)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    out = subprocess.run([sys.executable, str(script), str(spec), str(tmp_path), suffix, str(points), str(seed)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_killed_saves_leave_the_old_or_the_new_file(tmp_path, suffix):
    found = run_killer(tmp_path, suffix, KILL_POINTS // 2, seed=len(suffix))
    report = os.environ.get("NETCLI_FUZZ_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"module": "faults", "suffix": suffix, **found}) + "\n")
    results = found["results"]
    assert len(results) == KILL_POINTS // 2
    for r in results:
        assert r["dest"] in ("old", "new"), r
        if r["signal"] == "SIGINT":
            assert r["exit"] in (0, 130), r  # finished, or "netcli: interrupted"
            assert r["temps"] == [], r  # Ctrl-C cleans up at once
        else:
            assert r["exit"] in (0, -signal.SIGKILL), r
        if r["exit"] == 0:
            assert r["dest"] == "new", r
    assert found["temps_after_next_save"] == []
    assert found["final"] == "new"
    # the points reached each phase: some kills left the old file, some came after the rename
    states = {r["dest"] for r in results}
    if LONG:
        assert states == {"old", "new"}, results
        assert any(r["temps"] for r in results), "no kill landed while the temp file existed"


# --- a full disk, a read-only folder ----------------------------------------------

@contextlib.contextmanager
def mounted(folder: Path, size: str):
    """Mount a small tmpfs at `folder`, or skip where this process may not mount."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def write_spec(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SMALL = "model:\n  - Linear: [4, 2]\n"
BIG = "model:\n  - Linear: [512, 512]\n  - Linear: [512, 512]\n"  # 2 MB: more than the disk holds


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_a_full_disk_is_a_clear_error_and_keeps_the_old_file(tmp_path, run_cli, suffix):
    small, big = write_spec(tmp_path, SMALL, "small.yaml"), write_spec(tmp_path, BIG, "big.yaml")
    with mounted(tmp_path / "disk", "256k") as disk:
        dest = disk / f"net{suffix}"
        assert run_cli("save", small, "-o", dest).code == 0
        before = dest.read_bytes()
        result = run_cli("save", big, "-o", dest)
        assert result.code == 2, result.err
        assert result.err.startswith(f"{dest}: cannot write: No space left on device")
        assert "the previous file is unchanged" in result.err
        assert dest.read_bytes() == before
        assert [p.name for p in disk.iterdir()] == [dest.name]  # no temp file left filling the disk
        fresh = disk / f"new{suffix}"
        result = run_cli("save", big, "-o", fresh)
        assert result.code == 2 and "nothing was written" in result.err
        assert not fresh.exists()


def test_a_failed_fsync_is_a_clear_error_and_keeps_the_old_file(tmp_path, run_cli, monkeypatch):
    """Where no tmpfs can be mounted: the disk fills up at fsync (NFS, quotas report it there)."""
    import errno
    small = write_spec(tmp_path, SMALL, "small.yaml")
    dest = tmp_path / "net.safetensors"
    assert run_cli("save", small, "-o", dest, "--seed", "1").code == 0
    before = dest.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    result = run_cli("save", small, "-o", dest, "--seed", "2")
    assert result.code == 2
    assert "cannot write: No space left on device; the previous file is unchanged" in result.err
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.safetensors", "small.yaml"]


def test_a_read_only_folder_is_a_clear_error(tmp_path, run_cli):
    small = write_spec(tmp_path, SMALL, "small.yaml")
    with mounted(tmp_path / "ro", "64k") as folder:
        dest = folder / "net.safetensors"
        assert run_cli("save", small, "-o", dest).code == 0
        before = dest.read_bytes()
        assert subprocess.run(["mount", "-o", "remount,ro", str(folder)]).returncode == 0
        for target in (dest, folder / "other.pt"):
            result = run_cli("save", small, "-o", target)
            assert result.code == 2
            assert result.err.startswith(f"{target}: cannot write here: Read-only file system")
        assert dest.read_bytes() == before
        assert [p.name for p in folder.iterdir()] == [dest.name]


def test_a_read_only_file_in_a_writable_folder_is_replaced_whole(tmp_path, run_cli):
    """As `mv` does: the folder decides, the old file's mode is kept (and it is never half-written)."""
    small = write_spec(tmp_path, SMALL, "small.yaml")
    dest = tmp_path / "net.safetensors"
    assert run_cli("save", small, "-o", dest, "--seed", "1").code == 0
    dest.chmod(0o444)
    assert run_cli("save", small, "-o", dest, "--seed", "2").code == 0
    assert dest.stat().st_mode & 0o777 == 0o444
    from netcli.io.checkpoint import read_checkpoint
    assert read_checkpoint(dest).infos  # whole, readable
