"""netcli starting its own ranks (`--nproc N`), two hosts simulated with torchrun, and netcli's DCP folder read by
plain `torch.distributed.checkpoint.load` (SPEC §6).

Real processes, 2 gloo ranks on the CPU, the small net of test_distributed; each launch takes seconds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from test_distributed import SPEC, assert_equal_to, single_process
from torch import nn

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NETCLI_DIST_TIMEOUT": "30"}
ONES = ("--input", "ones:1,300", "--json")


def netcli(*args, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "netcli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**ENV, **(env or {})})


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(SPEC)
    return path


def one_process_output(spec) -> torch.Tensor:
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model

    return build_model(load_spec(str(spec)), fast_init=True).net(torch.ones(1, 300)).detach()


def assert_one_line(stderr: str, *parts: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert all(p in lines[0] for p in parts), lines[0]
    assert "Traceback" not in stderr and "ChildFailedError" not in stderr


def test_nproc_2_saves_and_runs_the_values_of_one_process(spec, tmp_path):
    out = tmp_path / "ckpt"
    r = netcli("save", spec, "--shard", "fsdp", "--nproc", "2", "-o", f"{out}/")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("saved to") == 1 and r.stderr == ""
    assert sorted(os.listdir(out)) == [".metadata", "__0_0.distcp", "__1_0.distcp", "netcli.json", "netcli.yaml"]
    assert_equal_to(out, single_process(spec))
    r = netcli("run", spec, "--shard", "fsdp", "--nproc=2", "--checkpoint", f"{out}/", *ONES)
    assert r.returncode == 0, r.stderr[-3000:]
    assert torch.allclose(torch.tensor(json.loads(r.stdout)["values"]), one_process_output(spec), atol=1e-5)


def test_nproc_failures_are_one_line_naming_the_rank(spec, tmp_path):
    out = tmp_path / "ckpt"
    assert netcli("save", spec, "--shard", "fsdp", "-o", f"{out}/").returncode == 0  # one process writes it
    # each of 2 ranks reads half of every stored tensor (a part of an item, at an offset): one process's values
    r = netcli("run", spec, "--shard", "fsdp", "--nproc", "2", "--checkpoint", f"{out}/", *ONES)
    assert r.returncode == 0, r.stderr[-3000:]
    assert torch.allclose(torch.tensor(json.loads(r.stdout)["values"]), one_process_output(spec), atol=1e-5)
    (out / "__0_0.distcp").rename(tmp_path / "gone")
    r = netcli("load", f"{out}/", "--shard", "fsdp", "--nproc", "2")
    assert r.returncode == 2
    assert_one_line(r.stderr, "netcli: rank 0: ", str(out / "__0_0.distcp"), "missing")
    # a condition only rank 1 meets: one line from rank 1, the job's one exit code
    (tmp_path / "rank_local.py").write_text(
        "import os\nfrom netcli.core.errors import NetcliError\n"
        "if os.environ.get('RANK') == '1':\n    raise NetcliError('only rank 1 sees this')\n"
    )
    (tmp_path / "rank_killed.py").write_text(
        "import os, signal\nif os.environ.get('RANK') == '1':\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    plugins = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = netcli("build", spec, "--shard", "fsdp", "--nproc", "2", "--plugin", "rank_local", env=plugins)
    assert r.returncode == 2
    assert_one_line(r.stderr, "netcli: rank 1: only rank 1 sees this")
    r = netcli("build", spec, "--shard", "fsdp", "--nproc", "2", "--plugin", "rank_killed", env=plugins)
    assert r.returncode == 128 + 9
    assert_one_line(r.stderr, "netcli: rank 1: killed by SIGKILL")


def test_nproc_needs_a_sharded_command(spec):
    r = netcli("build", spec, "--nproc", "2")
    assert r.returncode == 2 and "--nproc" in r.stderr and "--shard fsdp" in r.stderr
    r = netcli("build", spec, "--shard", "fsdp", "--nproc", "two")
    assert r.returncode == 2 and "'two' is not a number of ranks" in r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_hosts(*args) -> list[subprocess.CompletedProcess]:
    """Two torchrun launchers, one rank each, meeting at a c10d rendezvous on 127.0.0.1, as two hosts would."""
    port, run_id = free_port(), f"netcli-test-{os.getpid()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node-rank",
                str(node),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                run_id,
                "-m",
                "netcli",
                *map(str, args),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )  # fmt: skip
        for node in (0, 1)
    ]
    done = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return done


def test_two_hosts_save_and_load_the_values_of_one_process(spec, tmp_path):
    out = tmp_path / "ckpt"
    hosts = two_hosts("save", spec, "--shard", "fsdp", "-o", f"{out}/")
    assert [h.returncode for h in hosts] == [0, 0], [h.stderr[-2000:] for h in hosts]
    assert sorted(os.listdir(out)) == [".metadata", "__0_0.distcp", "__1_0.distcp", "netcli.json", "netcli.yaml"]
    assert_equal_to(out, single_process(spec))
    hosts = two_hosts("run", spec, "--shard", "fsdp", "--checkpoint", f"{out}/", *ONES)
    assert [h.returncode for h in hosts] == [0, 0], [h.stderr[-2000:] for h in hosts]
    printed = [h.stdout for h in hosts if h.stdout.strip()]
    assert len(printed) == 1  # the job's rank 0 prints, on whichever host it landed
    assert torch.allclose(torch.tensor(json.loads(printed[0])["values"]), one_process_output(spec), atol=1e-5)


def test_a_netcli_dcp_folder_loads_with_plain_dcp_load(spec, tmp_path):
    import torch.distributed.checkpoint as dcp

    out = tmp_path / "ckpt"
    r = netcli("save", spec, "--shard", "fsdp", "-o", f"{out}/")
    assert r.returncode == 0, r.stderr[-3000:]
    # the state dict to fill: the same network written by hand, then DCP's own reader and nothing of netcli's
    state = nn.Sequential(nn.Linear(300, 1000), nn.ReLU(), nn.Linear(1000, 7), nn.LayerNorm(7)).state_dict()
    state = {k: torch.full_like(v, float("nan")) for k, v in state.items()}
    dcp.load(state, storage_reader=dcp.FileSystemReader(str(out)), no_dist=True)
    expected = single_process(spec)
    assert set(state) == set(expected)
    for k, v in expected.items():
        assert torch.equal(state[k], v), k
