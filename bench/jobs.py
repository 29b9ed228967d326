"""Run one measured job in a fresh process and print its timing and memory as JSON.

`python bench/jobs.py JOB [ARGS...]`. Each job imports what it needs, records
the resident memory after the imports (the interpreter's baseline), times the
one operation the figure is about, and reports the process's peak resident
memory (ru_maxrss) above that baseline. bench/run.py calls these alternately,
netcli then the hand-written PyTorch twin, so both see the same machine load.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time


def rss_bytes() -> int:
    """Return the current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    """Return this process's peak resident set size so far.

    On Linux VmHWM, not ru_maxrss: the kernel folds the parent's peak into a child's ru_maxrss at exec,
    so a job started by a large parent would report the parent's memory.
    """
    if sys.platform.startswith("linux"):
        with open("/proc/self/status") as f:
            return int(f.read().split("VmHWM:")[1].split()[0]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def report(seconds: float, baseline: int, **extra) -> None:
    print(json.dumps({"seconds": seconds, "baseline": baseline, "peak": peak_bytes(),
                      "above": peak_bytes() - baseline, **extra}))


# ---------------------------------------------------------------- figure 2 and 3: build + init


def build_netcli(spec: str, fast: str) -> None:
    import torch  # noqa: F401  (imported before the baseline, as the hand-written job does)
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec
    import netcli.init.rules, netcli.registry.builtin_initializers  # noqa: E401,F401
    base = rss_bytes()
    start = time.perf_counter()
    built = build_model(load_spec(spec), fast_init=fast == "fast")
    seconds = time.perf_counter() - start
    nbytes = sum(p.numel() * p.element_size() for p in built.net.parameters())
    report(seconds, base, param_bytes=nbytes)


def build_hand(n: str, seed: str) -> None:
    import torch
    from torch import nn
    base = rss_bytes()
    start = time.perf_counter()
    torch.manual_seed(int(seed))
    net = nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(int(n))])
    # the chapter's way: build with the default init, then re-initialize
    for m in net:
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
    seconds = time.perf_counter() - start
    nbytes = sum(p.numel() * p.element_size() for p in net.parameters())
    report(seconds, base, param_bytes=nbytes)


# ---------------------------------------------------------------- figure 5: load


def load_netcli(path: str) -> None:
    import torch  # noqa: F401
    from netcli.app.restore import load_checkpoint
    import netcli.builder.builder  # noqa: F401
    base = rss_bytes()
    start = time.perf_counter()
    built = load_checkpoint(path)
    seconds = time.perf_counter() - start
    total = float(sum(p.detach().float().sum() for p in built.net.parameters()))  # every tensor is usable
    report(seconds, base, check=total)


def load_hand(path: str, n: str) -> None:
    import torch
    from torch import nn
    base = rss_bytes()
    start = time.perf_counter()
    net = nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(int(n))])
    net.load_state_dict(torch.load(path, weights_only=True))
    seconds = time.perf_counter() - start
    total = float(sum(p.detach().float().sum() for p in net.parameters()))
    report(seconds, base, check=total)


# ---------------------------------------------------------------- figure 6: save


def save_netcli(spec: str, path: str) -> None:
    from netcli.io.checkpoint_save import save_checkpoint
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec
    built = build_model(load_spec(spec), fast_init=True)
    base = rss_bytes()
    start = time.perf_counter()
    save_checkpoint(built, path)
    seconds = time.perf_counter() - start
    report(seconds, base, bytes=os.path.getsize(path))


def save_hand(spec: str, path: str) -> None:
    from safetensors.torch import save_file
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec
    built = build_model(load_spec(spec), fast_init=True)
    state = built.net.state_dict()
    base = rss_bytes()
    start = time.perf_counter()
    save_file(state, path)
    seconds = time.perf_counter() - start
    report(seconds, base, bytes=os.path.getsize(path))


def make_checkpoints(spec: str, st_path: str, pt_path: str) -> None:
    """Write the figure-5 files: netcli's .safetensors and the chapter's torch.save state_dict."""
    import torch
    from netcli.io.checkpoint_save import save_checkpoint
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec
    built = build_model(load_spec(spec), fast_init=True)
    save_checkpoint(built, st_path)
    torch.save(built.net.state_dict(), pt_path)
    report(0.0, 0, bytes=os.path.getsize(st_path))


# ---------------------------------------------------------------- figure 9: custom blocks (ResNet-18)


def build_spec_netcli(spec: str, seed: str) -> None:
    """Build and initialize a spec already read and checked (its rules included), as `build_model` does."""
    import torch  # noqa: F401
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model
    import netcli.init.apply, netcli.init.rules, netcli.registry.builtin_initializers  # noqa: E401,F401
    start = time.perf_counter()
    loaded = load_spec(spec)
    loading = time.perf_counter() - start
    base = rss_bytes()
    start = time.perf_counter()
    built = build_model(loaded, seed=int(seed))
    seconds = time.perf_counter() - start
    report(seconds, base, load_seconds=loading, params=sum(p.numel() for p in built.net.parameters()))


def build_resnet18_hand(seed: str) -> None:
    """torchvision's resnet18() as tests/handwritten_nets.py writes it: constructors, then ResNet's init loop."""
    import torch
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import handwritten_nets
    base = rss_bytes()
    start = time.perf_counter()
    torch.manual_seed(int(seed))
    net = handwritten_nets.resnet18()
    seconds = time.perf_counter() - start
    report(seconds, base, params=sum(p.numel() for p in net.parameters()))


# ---------------------------------------------------------------- figure 13: netcli.build from Python (SPEC 1.9)


def api_build_first(spec: str, seed: str, imported: str) -> None:
    """The first `netcli.build(spec, seed=...)` of a process that has imported torch and netcli.

    `import netcli` imports nothing more (its functions load on first use): with imported="cold" the clock
    includes netcli's own modules (pydantic, yaml, the registry); with "warm" they are imported before it.
    """
    import torch  # noqa: F401
    import netcli
    if imported == "warm":
        import netcli.app.api, netcli.init.apply, netcli.init.rules, netcli.registry.builtin_initializers  # noqa: E401,F401
        import netcli.builder.forward_graph, netcli.builder.validate, netcli.specfile.compose  # noqa: E401,F401
    base = rss_bytes()
    start = time.perf_counter()
    net = netcli.build(spec, seed=int(seed))
    seconds = time.perf_counter() - start
    report(seconds, base, params=sum(p.numel() for p in net.parameters()))


def api_build_again(spec: str, seed: str, rounds: str) -> None:
    """netcli.build of the same spec again and again, alternating with the hand-written resnet18 in one process.

    Each round runs netcli, the hand-written code and the hand-written code again (the A/A control),
    in the order A B C, then C B A; the first two rounds of each are discarded (warm-up).
    """
    import statistics
    import torch
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import handwritten_nets
    import netcli

    def ours():
        netcli.build(spec, seed=int(seed))

    def hand():
        torch.manual_seed(int(seed))
        handwritten_nets.resnet18()

    import resource

    cases = [("netcli", ours), ("hand", hand), ("control", hand)]
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    faults: dict[str, list[int]] = {name: [] for name, _ in cases}  # minor page faults: fresh pages mapped
    for r in range(int(rounds) + 2):
        for name, fn in cases if r % 2 == 0 else cases[::-1]:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            fn()
            if r >= 2:
                times[name].append(time.perf_counter() - start)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    paired = [a / b for a, b in zip(times["netcli"], times["hand"])]
    control = [a / b for a, b in zip(times["control"], times["hand"])]
    print(json.dumps({**{k: statistics.median(v) for k, v in times.items()},
                      "paired": statistics.median(paired), "paired_control": statistics.median(control),
                      "rounds": len(paired), "range": [min(times["netcli"]), max(times["netcli"])],
                      "faults": {k: statistics.median(v) for k, v in faults.items()},
                      "hand_range": [min(times["hand"]), max(times["hand"])]}))


# ---------------------------------------------------------------- figures 10-12: torchrun ranks (SPEC §6)
#
# These run as the ranks of `python -m torch.distributed.run --nproc-per-node N bench/jobs.py JOB ...`.
# Each rank writes its own report to PREFIX.RANK.json (its ru_maxrss is its own: a rank's peak is not
# mixed with its siblings' or torchrun's), so bench/run.py sees every rank's peak separately.


def rank_report(prefix: str, **fields) -> None:
    """Write this rank's report (its own peak resident memory included) to PREFIX.RANK.json."""
    rank = int(os.environ.get("RANK", "0"))
    with open(f"{prefix}.{rank}.json", "w") as f:
        json.dump({"rank": rank, "peak": peak_bytes(), **fields}, f)


def dist_baseline(prefix: str) -> None:
    """What every rank pays before any work: `import torch` and joining the job's process group (gloo)."""
    import torch  # noqa: F401
    after_import = rss_bytes()
    from netcli.distributed import group
    group.join()
    group.barrier()
    rank_report(prefix, after_import=after_import, after_join=rss_bytes())
    group.leave()


def dist_init(prefix: str, spec: str) -> None:
    """Sharded build + init (`netcli init SPEC --shard fsdp`'s calls), timed from a barrier to a barrier."""
    import torch  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401
    from netcli.app import sharded
    from netcli.builder.validate import load_spec
    from netcli.distributed import group
    import netcli.distributed.fsdp, netcli.init.rules, netcli.registry.builtin_initializers  # noqa: E401,F401
    after_import = rss_bytes()
    group.join()
    after_join = rss_bytes()
    group.barrier()
    start = time.perf_counter()
    built = sharded.build(load_spec(spec), shard="fsdp")
    own = time.perf_counter() - start
    group.barrier()  # the slowest rank's time: the job is done when every rank is
    seconds = time.perf_counter() - start
    params = list(built.net.parameters())
    local = [p.to_local() if hasattr(p, "to_local") else p for p in params]
    rank_report(prefix, seconds=seconds, own_seconds=own, after_import=after_import, after_join=after_join,
                param_bytes=sum(p.numel() * p.element_size() for p in params),
                local_bytes=sum(t.numel() * t.element_size() for t in local),
                largest=max(p.numel() * p.element_size() for p in params))
    group.leave()


def cli(prefix: str, *args: str) -> None:
    """`python -m netcli ARGS` in this process, then this process's peak to PREFIX.RANK.json at exit."""
    import atexit
    import runpy
    atexit.register(rank_report, prefix)
    sys.argv = ["netcli", *args]
    runpy.run_module("netcli", run_name="__main__", alter_sys=True)


JOBS = {f.__name__: f for f in (build_netcli, build_hand, load_netcli, load_hand, save_netcli, save_hand,
                                make_checkpoints, build_spec_netcli, build_resnet18_hand, api_build_first,
                                api_build_again,
                                dist_baseline, dist_init, cli)}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
