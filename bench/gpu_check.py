"""Check netcli's CUDA paths end to end on a machine with a GPU, in well under 3 minutes.

    python bench/gpu_check.py

Builds on cuda (modules created there, not copied from the CPU), runs a
network split across cuda:0 and cpu (and cuda:1 where there is one), saves on
the GPU and loads on the CPU with equal outputs, refuses a model larger than
the GPU's free memory before allocating, and builds 10 billion parameters on
meta. Every check compares with the same network written by hand in torch.
Without a GPU it runs the CPU-side checks, says which were skipped, and exits 0.
Exit 1 on the first failed check.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from netcli.init.engine import build_model
from netcli.core.devices import gpu_count, human_bytes, list_devices
from netcli.core.errors import NetcliError
from netcli.app.restore import load_checkpoint
from netcli.io.checkpoint_save import save_checkpoint
from netcli.builder.validate import load_spec_text

START = time.perf_counter()
NETCLI = [sys.executable, "-m", "netcli"]


def step(name: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f} s] {name}", flush=True)


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"  ok: {what}", flush=True)


def spec(text: str, name: str):
    return load_spec_text(text, f"{name}.yaml")


def rss() -> int:
    """Return this process's resident memory in bytes (Linux), else 0."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


MLP = "input: [2, 20]\nmodel:\n  - Linear: [20, 256]\n  - ReLU\n  - Linear: [256, 10]\n"


def handwritten_mlp():
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))


def check_devices_command() -> None:
    step("netcli devices --json")
    out = subprocess.run(NETCLI + ["devices", "--json"], capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"netcli devices exits 0 ({out.stderr.strip()[:200]})")
    data = json.loads(out.stdout)
    print(json.dumps({"gpus": data["gpus"], "auto": data["auto"], "torch": data["torch"]}, indent=1))
    check(len(data["gpus"]) == gpu_count(), f"lists {gpu_count()} GPU(s)")
    want = "cuda:0" if gpu_count() else "cpu"
    check(data["auto"]["auto"] == want, f"auto resolves to {want}")


def check_build_on_cuda() -> None:
    step("build on cuda: created there, equal to hand-written under the same seed")
    built = build_model(spec(MLP, "mlp"), device="cuda", seed=0)
    torch.manual_seed(0)
    with torch.device("cuda:0"):
        net = handwritten_mlp()
    check(all(p.device == torch.device("cuda:0") for p in built.net.parameters()), "every parameter on cuda:0")
    check(all(torch.equal(a, b) for a, b in zip(built.net.state_dict().values(), net.state_dict().values())),
          "parameters bit-identical to hand-written on cuda")
    X = torch.rand(2, 20, device="cuda:0")
    check(torch.equal(built.net(X), net(X)), "outputs identical")

    step("a 4 GiB network built on cuda does not pass through CPU memory")
    big = "model:\n  - Linear: [32768, 32768]\n"  # 1 Gi floats = 4 GiB
    before_rss = rss()
    torch.cuda.reset_peak_memory_stats()
    built = build_model(spec(big, "big"), device="cuda:0")
    torch.cuda.synchronize()
    grew = rss() - before_rss
    check(built.net[0].weight.is_cuda, "weight on cuda")
    check(torch.cuda.max_memory_allocated() >= 4 * 32768 * 32768, "GPU memory holds it")
    check(grew < 1 << 30, f"CPU memory grew by {human_bytes(grew)} (< 1 GiB: not built on the CPU first)")
    del built
    torch.cuda.empty_cache()


def check_split(second: str) -> None:
    step(f"a network split across cuda:0 and {second}: the chapter's X.cuda(1)")
    text = ("input: [2, 20]\nseed: 0\nmodel:\n"
            "  - Sequential: [{Linear: [20, 256]}, ReLU]\n    device: cuda:0\n"
            f"  - Linear: [256, 10]\n    device: {second}\n")
    built = build_model(spec(text, "split"))
    torch.manual_seed(0)
    with torch.device("cuda:0"):
        body = nn.Sequential(nn.Linear(20, 256), nn.ReLU())
    with torch.device(second):
        head = nn.Linear(256, 10)
    check(built.net[0][0].weight.device == torch.device("cuda:0")
          and built.net[1].weight.device == torch.device(second), f"blocks on cuda:0 and {second}")
    check(torch.equal(built.net[1].weight, head.weight) and torch.equal(built.net[0][0].weight, body[0].weight),
          "parameters bit-identical to hand-written")
    X = torch.rand(2, 20)  # on the network's device, cpu
    y = built.net(X)
    want = head(body(X.to("cuda:0")).to(second))
    check(y.device == torch.device(second), f"output on the last block's device ({y.device})")
    check(torch.equal(y, want), "output identical to hand-written head(body(X.cuda(0)).to(...))")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "split.yaml"
        path.write_text(text)
        out = subprocess.run(NETCLI + ["build", str(path), "--json"], capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, "netcli build on the split spec exits 0")
        devices = {b["name"]: b["device"] for b in json.loads(out.stdout)["blocks"] if b["params"]}
        check(devices.get("0") == "cuda:0" and devices.get("1") == second, f"build shows each block's device {devices}")
        ckpt = Path(tmp) / "split.safetensors"
        save_checkpoint(built, ckpt)
        again = load_checkpoint(ckpt)  # onto the spec's devices
        check(again.net[0][0].weight.device == torch.device("cuda:0"), "load puts tensors on the spec's devices")
        check(torch.equal(again.net(X), y), "loaded split network gives the same output")


def check_save_gpu_load_cpu() -> None:
    step("save on the GPU, load on the CPU")
    built = build_model(spec(MLP, "mlp"), device="cuda:0", seed=0)
    X = torch.rand(2, 20)
    y_gpu = built.net(X.cuda())
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("mlp.safetensors", "mlp.params"):
            path = Path(tmp) / name
            save_checkpoint(built, path)
            cpu = load_checkpoint(path, str(_write(Path(tmp), MLP)), device="cpu")
            check(all(p.device.type == "cpu" for p in cpu.net.parameters()), f"{name}: loaded on cpu")
            check(all(torch.equal(a.cpu(), b) for a, b in zip(built.net.state_dict().values(), cpu.net.state_dict().values())),
                  f"{name}: parameters bit-identical after the trip")
            y_cpu = cpu.net(X)
            diff = (y_cpu - y_gpu.cpu()).abs().max().item()
            check(torch.allclose(y_cpu, y_gpu.cpu(), atol=1e-5, rtol=1e-5), f"{name}: outputs equal (max |diff| {diff:.2e})")
        out = subprocess.run(NETCLI + ["run", str(Path(tmp) / "mlp.yaml"), "--device", "cuda:0", "--seed", "0", "--json"],
                             capture_output=True, text=True, timeout=120)
        check(out.returncode == 0 and json.loads(out.stdout)["device"] == "cuda:0", "netcli run --device cuda:0")


def _write(folder: Path, text: str) -> Path:
    path = folder / "mlp.yaml"
    path.write_text(text)
    return path


def check_too_big_for_the_gpu() -> None:
    step("a model larger than the GPU's free memory is refused before allocating")
    free, _ = torch.cuda.mem_get_info(0)
    side = int((free / 4) ** 0.5 * 1.2) + 1  # a square Linear 1.44x the free memory
    text = f"model:\n  - Linear: [{side}, {side}]\n"
    before = torch.cuda.memory_allocated(0)
    try:
        build_model(spec(text, "huge"), device="cuda:0")
    except NetcliError as exc:
        print(f"  {exc}")
        check("--device meta" in str(exc), "refused, suggesting --device meta")
    else:
        check(False, "a model over the free memory was built")
    check(torch.cuda.memory_allocated(0) == before, "nothing was allocated")


def check_meta() -> None:
    step("10 billion parameters on meta")
    start = time.perf_counter()
    built = build_model(spec("model:\n  - Linear: [100000, 100000]\n", "big"), device="meta")
    took = time.perf_counter() - start
    n = sum(p.numel() for p in built.net.parameters())
    check(n == 10_000_100_000 and took < 5, f"{n:,} parameters in {took:.2f} s")


def check_nccl_sharded() -> None:
    """SPEC §6 on GPUs: torchrun ranks on nccl, FSDP2-sharded init equal to one CPU process's --fast-init."""
    n = max(1, min(2, gpu_count()))
    step(f"--shard fsdp on {n} GPU rank(s) over nccl (torchrun)")
    text = ("input: [2, 300]\nseed: 3\nmodel: [{Linear: [300, 1000]}, ReLU, {Linear: [1000, 7]}]\n"
            "init: ['xavier:0', 'orthogonal:2']\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        path.write_text(text)
        run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n), "-m", "netcli"]
        out = subprocess.run(run + ["save", str(path), "--shard", "fsdp", "--device", "cuda", "-o", f"{tmp}/ck/"],
                             capture_output=True, text=True, timeout=300)
        check(out.returncode == 0, f"save --shard fsdp --device cuda on {n} rank(s)" + ("" if out.returncode == 0 else
                                                                                       f": {out.stderr[-2000:]}"))
        from netcli.io.checkpoint import read_checkpoint
        ckpt = read_checkpoint(f"{tmp}/ck")
        ref = build_model(spec(text, "big"), device="cpu", fast_init=True).net.state_dict()
        check(all(torch.equal(ckpt.tensor(k), v) for k, v in ref.items()),
              "the sharded GPU init equals one CPU process's --fast-init, bit for bit")
        out = subprocess.run(run + ["run", str(path), "--shard", "fsdp", "--device", "cuda", "--checkpoint",
                                    f"{tmp}/ck/", "--input", "ones:1,300", "--json"],
                             capture_output=True, text=True, timeout=300)
        check(out.returncode == 0, "run --shard fsdp --checkpoint DIR/ on cuda" + ("" if out.returncode == 0 else
                                                                                   f": {out.stderr[-2000:]}"))
        got = torch.tensor(json.loads(out.stdout)["values"])
        want = build_model(spec(text, "big"), device="cpu", fast_init=True).net(torch.ones(1, 300)).detach()
        check(torch.allclose(got, want, atol=1e-4), f"its output matches the CPU's (max |diff| {(got - want).abs().max():.2e})")


def main() -> None:
    report = list_devices()
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); {len(report.gpus)} GPU(s): "
          + ", ".join(f"cuda:{g.index} {g.name} {human_bytes(g.memory_total)} sm_{g.capability}" for g in report.gpus))
    check_devices_command()
    check_meta()
    if gpu_count() == 0:
        print("SKIPPED: no GPU is visible; the CUDA checks need one")
        return
    check_build_on_cuda()
    check_split("cpu")
    if gpu_count() > 1:
        check_split("cuda:1")
    check_save_gpu_load_cpu()
    check_too_big_for_the_gpu()
    check_nccl_sharded()
    step(f"all CUDA checks passed in {time.perf_counter() - START:.1f} s")


if __name__ == "__main__":
    main()
