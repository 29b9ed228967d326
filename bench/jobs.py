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
    """Return this process's peak resident set size so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def report(seconds: float, baseline: int, **extra) -> None:
    print(json.dumps({"seconds": seconds, "baseline": baseline, "peak": peak_bytes(),
                      "above": peak_bytes() - baseline, **extra}))


# ---------------------------------------------------------------- figure 2 and 3: build + init


def build_netcli(spec: str, fast: str) -> None:
    import torch  # noqa: F401  (imported before the baseline, as the hand-written job does)
    from netcli.init.engine import build_model
    from netcli.build.validate import load_spec
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
    import netcli.build.builder  # noqa: F401
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
    from netcli.build.validate import load_spec
    built = build_model(load_spec(spec), fast_init=True)
    base = rss_bytes()
    start = time.perf_counter()
    save_checkpoint(built, path)
    seconds = time.perf_counter() - start
    report(seconds, base, bytes=os.path.getsize(path))


def save_hand(spec: str, path: str) -> None:
    from safetensors.torch import save_file
    from netcli.init.engine import build_model
    from netcli.build.validate import load_spec
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
    from netcli.build.validate import load_spec
    built = build_model(load_spec(spec), fast_init=True)
    save_checkpoint(built, st_path)
    torch.save(built.net.state_dict(), pt_path)
    report(0.0, 0, bytes=os.path.getsize(st_path))


# ---------------------------------------------------------------- figure 9: custom blocks (ResNet-18)


def build_spec_netcli(spec: str, seed: str) -> None:
    """Build and initialize a spec already read and checked (its rules included), as `build_model` does."""
    import torch  # noqa: F401
    from netcli.build.validate import load_spec
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


JOBS = {f.__name__: f for f in (build_netcli, build_hand, load_netcli, load_hand, save_netcli, save_hand,
                                make_checkpoints, build_spec_netcli, build_resnet18_hand)}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
