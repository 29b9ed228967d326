"""Paired, alternating before/after of netcli's DCP reads and writes in one process (figure 12's parts, issue 21).

`python bench/dcp_paired.py [REPS]`: 512 MiB (8 x 4096 x 4096 float32) saved as a DCP folder
with and without torch.save's per-record CRC-32, and read with DCP's FileSystemReader and with
netcli's reader (warm page cache), each pair alternating in order A B, then B A. Wall and CPU
seconds (user + sys of this process) are printed, with the load average: on a shared 2-CPU
machine the CPU seconds say what the code costs when the wall clock says how busy the machine is.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.distributed.checkpoint as dcp

from netcli.io.dcp_metadata import safe_reader
from netcli.io.shards_dcp import without_record_checksums

warnings.filterwarnings("ignore")


def clock():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime


def timed(fn) -> tuple[float, float]:
    w0, c0 = clock()
    fn()
    w1, c1 = clock()
    return w1 - w0, c1 - c0


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    g = torch.Generator().manual_seed(0)
    state = {f"{i}.weight": torch.rand(4096, 4096, generator=g) for i in range(8)}
    folder = tempfile.mkdtemp(prefix="netcli-dcp-")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in ("save_crc", "save", "read_dcp", "read_netcli")}

    def save(crc: bool):
        def run():
            out = os.path.join(folder, "w")
            shutil.rmtree(out, ignore_errors=True)
            if crc:
                dcp.save(state, storage_writer=dcp.FileSystemWriter(out, sync_files=True), no_dist=True)
            else:
                with without_record_checksums():
                    dcp.save(state, storage_writer=dcp.FileSystemWriter(out, sync_files=True), no_dist=True)
            os.sync()

        return run

    ckpt = os.path.join(folder, "r")
    with without_record_checksums():
        dcp.save(state, storage_writer=dcp.FileSystemWriter(ckpt), no_dist=True)
    dest = {k: torch.empty_like(v) for k, v in state.items()}

    def read(ours: bool):
        return lambda: dcp.load(
            dest, storage_reader=safe_reader(ckpt) if ours else dcp.FileSystemReader(ckpt), no_dist=True
        )

    load = [os.getloadavg()[0]]
    pairs = [
        (("save_crc", save(True)), ("save", save(False))),
        (("read_dcp", read(False)), ("read_netcli", read(True))),
    ]
    for rep in range(reps):
        for a, b in pairs:
            for name, fn in (a, b) if rep % 2 == 0 else (b, a):
                times[name].append(timed(fn))
    load.append(os.getloadavg()[0])
    assert all(torch.equal(dest[k], state[k]) for k in state)
    shutil.rmtree(folder)

    def summary(name: str) -> dict:
        return {
            "wall": statistics.median(w for w, _ in times[name]),
            "cpu": statistics.median(c for _, c in times[name]),
            "walls": [round(w, 3) for w, _ in times[name]],
        }

    out = {name: summary(name) for name in times}
    out["paired_save"] = statistics.median(a[0] / b[0] for a, b in zip(times["save"], times["save_crc"], strict=True))
    out["paired_read"] = statistics.median(
        a[0] / b[0] for a, b in zip(times["read_netcli"], times["read_dcp"], strict=True)
    )
    out["load_average"] = load
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
