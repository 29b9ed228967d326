"""Benchmark netcli against the hand-written PyTorch each figure stands for; write bench/RESULTS.md.

Run from the repository root:

    python bench/run.py            # every figure, 5 alternating repetitions (about 10 minutes)
    python bench/run.py --quick    # 3 repetitions, smaller builds (about 4 minutes)
    python bench/run.py --only 1,4,7

Each figure runs netcli and its hand-written twin alternately (A B, B A, ...)
in the same run, so both see the same machine load, and reports the medians
and their ratio (netcli / hand-written, lower is better). Whole-process
figures run in subprocesses; peak memory is the child's ru_maxrss (os.wait4).
Jobs that time one operation run in a fresh process each (bench/jobs.py).
Figures 10-12 run torchrun jobs of 2 ranks; each rank reports its own ru_maxrss.
Files of about 1 GB are written to a temp folder and deleted afterwards.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "bench" / "jobs.py"
PY = sys.executable
NETCLI = str(Path(PY).parent / "netcli")
GB = 1 << 30
MB = 1 << 20


@dataclass
class Row:
    """One line of a figure: netcli's median, the baseline's, and whether the target holds."""

    what: str
    ours: float
    theirs: float | None
    unit: str
    target: str
    met: bool | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.theirs else self.ours / self.theirs


@dataclass
class Figure:
    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before, after


# ---------------------------------------------------------------- measuring


def alternate(cases: dict[str, Callable[[], dict]], reps: int) -> dict[str, list[dict]]:
    """Run each case `reps` times, alternating the order every round (A B, B A, ...)."""
    out: dict[str, list[dict]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(reps):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].append(cases[name]())
    return out


def run_quiet(cmd: list[str]) -> dict:
    """Run a command with os.wait4 so its peak memory is its own, not the children maximum.

    Linux folds the parent's peak into a child's ru_maxrss at exec; this runner imports neither torch nor
    netcli (tens of MiB), far below any child measured here, so the figure is the child's own.
    """
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - start
    err = p.stderr.read().decode()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err[-2000:]}")
    return {"seconds": seconds, "peak": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)}


def job(*args: str, env: dict | None = None) -> dict:
    """Run one bench/jobs.py job in a fresh process; return its JSON report."""
    r = subprocess.run([PY, str(JOBS), *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"job {args} failed: {r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def med(results: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in results)


def spread(results: list[dict], key: str = "seconds") -> str:
    values = sorted(r[key] for r in results)
    return f"{values[0]:.3g}..{values[-1]:.3g}"


# ---------------------------------------------------------------- specs


def wide_spec(folder: Path, n: int, rules: bool = True) -> Path:
    """n x Linear(4096, 4096); with the chapter's rules: xavier on weights, zeros on biases."""
    lines = ["seed: 0", "model:"] + ["  - Linear: [4096, 4096]"] * n
    if rules:
        lines += ["init:", '  - "xavier:*"', '  - "zeros:*.bias"']
    path = folder / f"wide{n}{'' if rules else '_plain'}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def narrow_spec(folder: Path, placed: bool) -> Path:
    """A 100-layer MLP of Linear(64, 64) + ReLU; with `device: cpu` on every Linear when placed."""
    extra = ", device: cpu" if placed else ""
    lines = ["input: [64, 64]", "model:"]
    for _ in range(100):
        lines += [f"  - {{Linear: [64, 64]{extra}}}", "  - ReLU"]
    path = folder / f"narrow{'_placed' if placed else ''}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def seventy_b_spec(folder: Path) -> Path:
    """A Llama-2-70B-sized stack: embedding, 80 blocks (GQA attention projections, SwiGLU MLP), head."""
    text = """\
name: seventy_b
vars: {d: 8192, kv: 1024, ff: 28672, vocab: 32000}
blocks:
  layer:
    Sequential:
      norm1: {LayerNorm: "${d}"}
      q: {Linear: {in_features: "${d}", out_features: "${d}", bias: false}}
      k: {Linear: {in_features: "${d}", out_features: "${kv}", bias: false}}
      v: {Linear: {in_features: "${d}", out_features: "${kv}", bias: false}}
      o: {Linear: {in_features: "${d}", out_features: "${d}", bias: false}}
      norm2: {LayerNorm: "${d}"}
      gate: {Linear: {in_features: "${d}", out_features: "${ff}", bias: false}}
      up: {Linear: {in_features: "${d}", out_features: "${ff}", bias: false}}
      down: {Linear: {in_features: "${ff}", out_features: "${d}", bias: false}}
model:
  - Embedding: ["${vocab}", "${d}"]
  - {use: layer, repeat: 80}
  - LayerNorm: "${d}"
  - Linear: {in_features: "${d}", out_features: "${vocab}", bias: false}
"""
    path = folder / "seventy_b.yaml"
    path.write_text(text)
    return path


SEVENTY_B_HAND = """\
import torch
from collections import OrderedDict
from torch import nn
d, kv, ff, vocab = 8192, 1024, 28672, 32000
def layer():
    return nn.Sequential(OrderedDict(
        norm1=nn.LayerNorm(d), q=nn.Linear(d, d, bias=False), k=nn.Linear(d, kv, bias=False),
        v=nn.Linear(d, kv, bias=False), o=nn.Linear(d, d, bias=False), norm2=nn.LayerNorm(d),
        gate=nn.Linear(d, ff, bias=False), up=nn.Linear(d, ff, bias=False), down=nn.Linear(ff, d, bias=False)))
with torch.device("meta"):
    net = nn.Sequential(nn.Embedding(vocab, d), nn.Sequential(*[layer() for _ in range(80)]),
                        nn.LayerNorm(d), nn.Linear(d, vocab, bias=False))
print(sum(p.numel() for p in net.parameters()))
"""


# ---------------------------------------------------------------- figures


def figure1(reps: int, folder: Path) -> Figure:
    fig = Figure(1, "Start-up: `netcli --help` against `python -c \"import torch\"`")
    r = alternate({"help": lambda: run_quiet([NETCLI, "--help"]),
                   "schema": lambda: run_quiet([NETCLI, "schema"]),
                   "torch": lambda: run_quiet([PY, "-c", "import torch"]),
                   "python": lambda: run_quiet([PY, "-c", "pass"])}, reps)
    torch_s = med(r["torch"])
    fig.rows.append(Row("`netcli --help` wall", med(r["help"]), torch_s, "s", "< 0.3 s",
                        med(r["help"]) < 0.3, f"range {spread(r['help'])}"))
    fig.rows.append(Row("`netcli schema` wall", med(r["schema"]), torch_s, "s", "no torch import",
                        None, f"range {spread(r['schema'])}"))
    fig.notes.append(f"bare `python -c pass`: {med(r['python']):.3f} s; `import torch` range {spread(r['torch'])} s")
    imports = subprocess.run([PY, "-X", "importtime", NETCLI, "--help"], capture_output=True, text=True)
    pulled = [line for line in imports.stderr.splitlines() if line.rstrip().endswith(" torch")]
    fig.notes.append("`python -X importtime netcli --help` imports torch: " + ("YES" if pulled else "no")
                     + " (tests/test_startup.py checks every command's --help)")
    return fig


def figure2_3(reps: int, folder: Path, sizes: list[int]) -> list[Figure]:
    fig2 = Figure(2, "Build + init, n x Linear(4096, 4096), rules xavier:* and zeros:*.bias "
                     "(hand-written: build with default init, then re-init)")
    fig3 = Figure(3, "Peak memory of that build, above the interpreter's baseline (after imports)")
    for n in sizes:
        spec = str(wide_spec(folder, n))
        r = alternate({"default": lambda: job("build_netcli", spec, "default"),
                       "fast": lambda: job("build_netcli", spec, "fast"),
                       "hand": lambda: job("build_hand", str(n), "0")}, reps)
        hand = med(r["hand"])
        fig2.rows.append(Row(f"n={n}, default path (bit-identical to hand-written)", med(r["default"]), hand, "s",
                             "ratio <= 1.05", med(r["default"]) / hand <= 1.05,
                             f"ranges {spread(r['default'])} / {spread(r['hand'])}"))
        fig2.rows.append(Row(f"n={n}, --fast-init (one pass)", med(r["fast"]), hand, "s",
                             "ratio <= 0.7", med(r["fast"]) / hand <= 0.7, f"range {spread(r['fast'])}"))
        pbytes = r["hand"][0]["param_bytes"]
        for key, label in (("default", "default path"), ("fast", "--fast-init"), ("hand", "hand-written")):
            above = med(r[key], "above")
            fig3.rows.append(Row(f"n={n}, {label}: peak above baseline / parameter bytes ({pbytes / GB:.2f} GiB)",
                                 above / pbytes, None, "x", "<= 1.1" if key != "hand" else "(baseline)",
                                 above / pbytes <= 1.1 if key != "hand" else None,
                                 f"{above / GB:.2f} GiB above {med(r[key], 'baseline') / MB:.0f} MiB"))
    return [fig2, fig3]


def figure4(reps: int, folder: Path) -> Figure:
    import torch
    from torch import nn
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec
    fig = Figure(4, "Forward pass of a 100-layer narrow MLP (Linear(64, 64) + ReLU, batch 64), per call")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread, so other processes' load does not make threads wait on each other
    built = build_model(load_spec(str(narrow_spec(folder, False))), seed=0).net
    placed = build_model(load_spec(str(narrow_spec(folder, True))), seed=0).net
    torch.manual_seed(0)
    layers = []
    for _ in range(100):
        layers += [nn.Linear(64, 64), nn.ReLU()]
    hand = nn.Sequential(*layers)
    twin = copy.deepcopy(hand)  # a second hand-written net: the A/A control shows the noise floor
    x = torch.rand(64, 64)
    with torch.no_grad():
        same = torch.equal(built(x), hand(x)) and torch.equal(placed(x), hand(x))
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in placed.modules())
    calls = 100

    def timed(net) -> Callable[[], dict]:
        def run() -> dict:
            with torch.no_grad():
                for _ in range(10):
                    net(x)
                start = time.perf_counter()
                for _ in range(calls):
                    net(x)
                return {"seconds": (time.perf_counter() - start) / calls}
        return run

    r = alternate({"netcli": timed(built), "placed": timed(placed), "hand": timed(hand), "twin": timed(twin)}, reps * 4)
    hand_s = med(r["hand"])
    fig.rows.append(Row("netcli-built", med(r["netcli"]) * 1e6, hand_s * 1e6, "µs", "ratio <= 1.02",
                        med(r["netcli"]) / hand_s <= 1.02, f"{reps * 4} blocks of {calls} calls"))
    fig.rows.append(Row("netcli-built, `device: cpu` on every Linear", med(r["placed"]) * 1e6, hand_s * 1e6, "µs",
                        "ratio <= 1.02, no hooks", med(r["placed"]) / hand_s <= 1.02 and hooks == 0,
                        f"forward hooks registered: {hooks}"))
    fig.rows.append(Row("control: a second hand-written copy", med(r["twin"]) * 1e6, hand_s * 1e6, "µs",
                        "(noise floor)", None))
    fig.notes.append(f"outputs equal to the hand-written net under the same seed: {same}; "
                     "torch threads: 1 for this figure")
    torch.set_num_threads(threads)
    return fig


def figure5_6(reps: int, folder: Path, n: int) -> list[Figure]:
    fig5 = Figure(5, f"Load a checkpoint ({n} x Linear(4096, 4096)) until every tensor is usable in the built net "
                     "(hand-written: build, torch.load(weights_only=True), load_state_dict)")
    fig6 = Figure(6, "Save the same network, including fsync and rename (hand-written: safetensors.torch.save_file "
                     "alone, no fsync)")
    spec = str(wide_spec(folder, n, rules=False))
    st, pt = str(folder / "ckpt.safetensors"), str(folder / "ckpt.pt")
    size = job("make_checkpoints", spec, st, pt)["bytes"]
    r = alternate({"netcli": lambda: job("load_netcli", st), "hand": lambda: job("load_hand", pt, str(n))}, reps)
    hand = med(r["hand"])
    fig5.rows.append(Row(f"load {size / GB:.2f} GiB", med(r["netcli"]), hand, "s", "ratio <= 0.5",
                         med(r["netcli"]) / hand <= 0.5, f"ranges {spread(r['netcli'])} / {spread(r['hand'])}"))
    for key, label in (("netcli", "netcli"), ("hand", "hand-written")):
        above = med(r[key], "above")
        fig5.rows.append(Row(f"{label}: peak above baseline / file size", above / size, None, "x",
                             "<= 1.2" if key == "netcli" else "(baseline)",
                             above / size <= 1.2 if key == "netcli" else None, f"{above / GB:.2f} GiB"))
    os.unlink(pt)
    os.unlink(st)
    out_a, out_b = str(folder / "save_a.safetensors"), str(folder / "save_b.safetensors")
    dd_file = folder / "dd.bin"
    count = max(1, size // (16 * MB))

    def dd() -> dict:
        res = run_quiet(["dd", "if=/dev/zero", f"of={dd_file}", "bs=16M", f"count={count}", "conv=fsync"])
        dd_file.unlink()
        os.sync()
        return res

    def fresh(name: str, out: str) -> Callable[[], dict]:
        def run() -> dict:  # each save writes a new file, as dd does: no old file to truncate or replace
            res = job(name, spec, out)
            os.unlink(out)
            # save_file leaves its bytes dirty in the page cache; without this the next case's writes
            # would wait for that writeback (the kernel throttles writers), charging one case's cost to the other
            os.sync()
            return res
        return run

    r = alternate({"netcli": fresh("save_netcli", out_a), "hand": fresh("save_hand", out_b), "dd": dd}, reps)
    hand = med(r["hand"])
    fig6.rows.append(Row(f"save {size / GB:.2f} GiB", med(r["netcli"]), hand, "s", "ratio <= 1.1",
                         med(r["netcli"]) / hand <= 1.1, f"ranges {spread(r['netcli'])} / {spread(r['hand'])}"))
    fig6.rows.append(Row(f"`dd bs=16M count={count} conv=fsync` (the disk's limit)", med(r["dd"]), hand, "s",
                         "(reference)", None, f"range {spread(r['dd'])}"))
    for p in (out_a, out_b):
        if os.path.exists(p):
            os.unlink(p)
    return [fig5, fig6]


def figure7(reps: int, folder: Path) -> Figure:
    fig = Figure(7, "`netcli build --device meta` of a 69-billion-parameter spec (80 Llama-2-70B-sized blocks)")
    spec = str(seventy_b_spec(folder))
    hand_py = folder / "seventy_b_hand.py"
    hand_py.write_text(SEVENTY_B_HAND)
    r = alternate({"netcli": lambda: run_quiet([NETCLI, "build", spec, "--device", "meta"]),
                   "hand": lambda: run_quiet([PY, str(hand_py)]),
                   "torch": lambda: run_quiet([PY, "-c", "import torch"])}, reps)
    count = subprocess.run([PY, str(hand_py)], capture_output=True, text=True).stdout.strip()
    fig.rows.append(Row(f"wall ({int(count) / 1e9:.1f} B parameters)", med(r["netcli"]), med(r["hand"]), "s",
                        "< 3 s", med(r["netcli"]) < 3, f"range {spread(r['netcli'])}"))
    fig.rows.append(Row("peak resident memory", med(r["netcli"], "peak") / MB, med(r["hand"], "peak") / MB, "MiB",
                        "< 1024 MiB", med(r["netcli"], "peak") < GB))
    fig.notes.append(f"`python -c \"import torch\"` alone: {med(r['torch']):.2f} s, "
                     f"{med(r['torch'], 'peak') / MB:.0f} MiB")
    return fig


# ---------------------------------------------------------------- report


def figure8(reps: int, folder: Path) -> Figure:
    """Whole-process start-up of the everyday commands: each is a process, so this is the user's wait."""
    fig = Figure(8, "Start-up: `netcli build --print` against a hand-written script; `validate` against `build --print`")
    rgnet, mlp = str(ROOT / "configs" / "rgnet.yaml"), str(ROOT / "configs" / "mlp.yaml")
    r = alternate({"print": lambda: run_quiet([NETCLI, "build", rgnet, "--print"]),
                   "hand": lambda: run_quiet([PY, str(ROOT / "bench" / "handwritten" / "rgnet_print.py")]),
                   "validate": lambda: run_quiet([NETCLI, "validate", mlp]),
                   "print_mlp": lambda: run_quiet([NETCLI, "build", mlp, "--print"])}, reps)
    ratio = med(r["print"]) / med(r["hand"])
    fig.rows.append(Row("`netcli build configs/rgnet.yaml --print` wall", med(r["print"]), med(r["hand"]), "s",
                        "<= 1.10x", ratio <= 1.10,
                        f"netcli {spread(r['print'])}, hand-written {spread(r['hand'])}"))
    ratio = med(r["validate"]) / med(r["print_mlp"])
    fig.rows.append(Row("`netcli validate configs/mlp.yaml` wall (baseline: `build --print`)", med(r["validate"]),
                        med(r["print_mlp"]), "s", "<= 1.15x", ratio <= 1.15,
                        f"validate {spread(r['validate'])}, build --print {spread(r['print_mlp'])}"))
    fig.notes.append("the hand-written script is bench/handwritten/rgnet_print.py (imports torch, builds, prints)")
    return fig


def figure9(reps: int, folder: Path) -> Figure:
    """Custom blocks: configs/resnet18.yaml against the hand-written ResNet-18 (tests/handwritten_nets.py)."""
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    import handwritten_nets
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model
    fig = Figure(9, "Custom blocks: `configs/resnet18.yaml` against the hand-written ResNet-18 "
                    "(torchvision's resnet18 as tests/handwritten_nets.py writes it)")
    spec = str(ROOT / "configs" / "resnet18.yaml")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the other processes on the machine do not make threads wait
    built = build_model(load_spec(spec), seed=0).net.eval()
    torch.manual_seed(0)
    hand = handwritten_nets.resnet18().eval()
    twin = copy.deepcopy(hand)  # A/A control: the noise floor of this comparison
    for batch, calls, rounds in ((1, 2, reps * 12), (16, 1, reps * 4)):
        x = torch.rand(batch, 3, 224, 224)
        with torch.no_grad():
            same = torch.equal(built(x), hand(x))

        def timed(net, x=x, calls=calls) -> Callable[[], dict]:
            def run() -> dict:
                with torch.no_grad():
                    start = time.perf_counter()
                    for _ in range(calls):
                        net(x)
                    return {"seconds": (time.perf_counter() - start) / calls}
            return run
        with torch.no_grad():  # warm: the first calls pay for allocations the others reuse
            for net in (built, hand, twin):
                net(x)
        r = alternate({"netcli": timed(built), "hand": timed(hand), "twin": timed(twin)}, rounds)
        hand_s = med(r["hand"])
        fig.rows.append(Row(f"forward, batch {batch}, eval, CPU", med(r["netcli"]) * 1e3, hand_s * 1e3, "ms",
                            "ratio <= 1.02", med(r["netcli"]) / hand_s <= 1.02,
                            f"{rounds} blocks of {calls} call(s); same output: {same}; "
                            f"ranges {spread(r['netcli'])} / {spread(r['hand'])} s"))
        fig.rows.append(Row(f"control: a second hand-written copy, batch {batch}", med(r["twin"]) * 1e3,
                            hand_s * 1e3, "ms", "(noise floor)", None))
    torch.set_num_threads(threads)
    r = alternate({"netcli": lambda: job("build_spec_netcli", spec, "0"),
                   "hand": lambda: job("build_resnet18_hand", "0")}, reps * 2)
    hand_s = med(r["hand"])
    fig.rows.append(Row("build + init (the spec read; torchvision's init loop as 3 rules), fresh process",
                        med(r["netcli"]), hand_s, "s", "ratio <= 1.05", med(r["netcli"]) / hand_s <= 1.05,
                        f"ranges {spread(r['netcli'])} / {spread(r['hand'])}; reading and checking the spec "
                        f"before it: {med(r['netcli'], 'load_seconds'):.3f} s"))
    loaded = load_spec(spec)

    def warm(make: Callable[[], object]) -> Callable[[], dict]:
        def run() -> dict:
            start = time.perf_counter()
            make()
            return {"seconds": time.perf_counter() - start}
        return run
    r = alternate({"netcli": warm(lambda: build_model(loaded, seed=0)),
                   "hand": warm(lambda: (torch.manual_seed(0), handwritten_nets.resnet18()))}, reps * 4)
    fig.rows.append(Row("build + init again in the same process (the spec's checked calls and compiled "
                        "forwards kept)", med(r["netcli"]), med(r["hand"]), "s", "(reference)", None,
                        f"ranges {spread(r['netcli'])} / {spread(r['hand'])}"))
    r = alternate({"validate": lambda: run_quiet([NETCLI, "validate", spec]),
                   "print": lambda: run_quiet([NETCLI, "build", spec, "--print"])}, reps * 2)
    fig.rows.append(Row("`netcli validate configs/resnet18.yaml` wall (baseline: `build --print`)",
                        med(r["validate"]), med(r["print"]), "s", "< 2x", med(r["validate"]) / med(r["print"]) < 2,
                        f"validate {spread(r['validate'])}, build --print {spread(r['print'])}"))
    fig.notes.append("forward: in one process, netcli's net, the hand-written net and a deep copy of it called in "
                     "alternating blocks; torch threads: 1")
    return fig


# ---------------------------------------------------------------- figure 13: netcli.build from Python (issue 20)

API = 13


def figure13(reps: int, folder: Path) -> Figure:
    """`netcli.build` in a user's script against the hand-written resnet18, first call and later calls."""
    fig = Figure(API, "From Python: `netcli.build(\"configs/resnet18.yaml\", seed=0)` against the hand-written "
                      "resnet18 + its init loop (tests/handwritten_nets.py), in a process that has imported torch")
    spec = str(ROOT / "configs" / "resnet18.yaml")
    # as a user's machine runs them: byte-compiled modules cached (here in a temp folder, not the checkout)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    for imported in ("cold", "warm"):
        job("api_build_first", spec, "0", imported, env=env)  # writes the .pyc files
    job("build_resnet18_hand", "0", env=env)
    r = alternate({"cold": lambda: job("api_build_first", spec, "0", "cold", env=env),
                   "warm": lambda: job("api_build_first", spec, "0", "warm", env=env),
                   "hand": lambda: job("build_resnet18_hand", "0", env=env)}, reps * 2)
    hand = med(r["hand"])
    fig.rows.append(Row("first call, `import torch; import netcli` before the clock (netcli's own modules "
                        "load inside the call)", med(r["cold"]), hand, "s", "ratio <= 1.10",
                        med(r["cold"]) / hand <= 1.10, f"ranges {spread(r['cold'])} / {spread(r['hand'])}"))
    fig.rows.append(Row("first call, netcli's modules imported before the clock (spec read, checked, built, "
                        "initialized)", med(r["warm"]), hand, "s", "(reference)", None,
                        f"range {spread(r['warm'])}"))
    rounds = reps * 8
    again = [job("api_build_again", spec, "0", str(rounds), env=env) for _ in range(2)]
    ours, theirs = statistics.median(a["netcli"] for a in again), statistics.median(a["hand"] for a in again)
    paired = statistics.median(a["paired"] for a in again)
    fig.rows.append(Row("later calls in the same process (the checked spec kept)", ours, theirs, "s",
                        "ratio <= 1.03", ours / theirs <= 1.03,
                        f"2 processes x {rounds} alternating rounds; median of the per-round ratios: {paired:.3f}"))
    control = statistics.median(a["control"] for a in again)
    fig.rows.append(Row("control: the hand-written code again, same rounds", control, theirs, "s", "(noise floor)",
                        None, "median of the per-round ratios: "
                        f"{statistics.median(a['paired_control'] for a in again):.3f}"))
    fig.notes.append("later calls, minor page faults per call (median; each process: netcli / hand-written): "
                     + ", ".join(f"{a['faults']['netcli']:.0f} / {a['faults']['hand']:.0f}" for a in again)
                     + "; where one side maps its tensors' pages afresh and the other reuses freed ones, the "
                     "ratio moves with the allocator, not with the code")
    fig.notes.append("first call: fresh processes (bench/jobs.py api_build_first, build_resnet18_hand), "
                     f"{reps * 2} alternating repetitions; both sides import torch before the clock, the hand-written "
                     "side also its module; torch's default threads")
    return fig


# ---------------------------------------------------------------- figure 14: netcli plot (issue 22)

PLOT = 14


def figure14(reps: int, folder: Path) -> Figure:
    """`netcli plot` of resnet18 (built on meta, drawn, rendered by Graphviz) against `build --print` (built, printed)."""
    fig = Figure(PLOT, "`netcli plot configs/resnet18.yaml -o x.svg` against `netcli build configs/resnet18.yaml "
                       "--print`, whole process")
    spec = str(ROOT / "configs" / "resnet18.yaml")
    if shutil.which("dot") is None:
        fig.notes.append("not measured: Graphviz's dot is not installed (apt-get install graphviz)")
        return fig
    r = alternate({"svg": lambda: run_quiet([NETCLI, "plot", spec, "-o", str(folder / "x.svg")]),
                   "dot": lambda: run_quiet([NETCLI, "plot", spec, "--format", "dot"]),
                   "print": lambda: run_quiet([NETCLI, "build", spec, "--print"])}, reps)
    base = med(r["print"])
    fig.rows.append(Row("`netcli plot configs/resnet18.yaml -o x.svg` wall (baseline: `build --print`)", med(r["svg"]),
                        base, "s", "< 1.5x", med(r["svg"]) / base < 1.5,
                        f"plot {spread(r['svg'])}, build --print {spread(r['print'])}"))
    fig.rows.append(Row("`netcli plot configs/resnet18.yaml --format dot` wall (no Graphviz)", med(r["dot"]), base,
                        "s", "(reference)", None, f"range {spread(r['dot'])}"))
    fig.notes.append(f"{reps} alternating repetitions of the three commands (fresh processes); the SVG is rendered "
                     "by Graphviz's dot through the graphviz package")
    return fig


# ---------------------------------------------------------------- figure 15: the transformer era (issue 24)

MODERN = 15  # figure number: the transformer-era configs' forward (SPEC 1.8)


def figure15(reps: int, folder: Path, stems: tuple[str, ...] = ("vit_tiny", "gpt_nano")) -> Figure:
    """Forward of configs/vit_tiny.yaml and gpt_nano.yaml against their twins (tests/handwritten_modern.py)."""
    import torch
    sys.path.insert(0, str(ROOT / "tests"))
    import handwritten_modern
    from netcli.builder.validate import load_spec
    from netcli.init.engine import build_model
    fig = Figure(MODERN, "Transformer era: `configs/vit_tiny.yaml` and `configs/gpt_nano.yaml` against their "
                         "hand-written twins (timm-style ViT, nanoGPT; tests/handwritten_modern.py)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the other processes on the machine do not make threads wait
    for stem in stems:
        built = build_model(load_spec(str(ROOT / "configs" / f"{stem}.yaml")), seed=0).net.eval()
        torch.manual_seed(0)
        hand = handwritten_modern.MODERN_TWINS[stem]().eval()
        twin = copy.deepcopy(hand)  # A/A control: the noise floor of this comparison
        xs = handwritten_modern.example_inputs(stem, torch.Generator().manual_seed(0))
        with torch.no_grad():
            same = torch.equal(built(*xs), hand(*xs))
        calls = 20

        def timed(net, xs=xs) -> Callable[[], dict]:
            def run() -> dict:
                with torch.no_grad():
                    start = time.perf_counter()
                    for _ in range(calls):
                        net(*xs)
                    return {"seconds": (time.perf_counter() - start) / calls}
            return run
        with torch.no_grad():  # warm: the first calls pay for allocations the others reuse
            for net in (built, hand, twin):
                for _ in range(3):
                    net(*xs)
        rounds = reps * 12
        r = alternate({"netcli": timed(built), "hand": timed(hand), "twin": timed(twin)}, rounds)
        hand_s = med(r["hand"])
        shapes = " and ".join("x".join(map(str, x.shape)) + f" {str(x.dtype).removeprefix('torch.')}" for x in xs)
        fig.rows.append(Row(f"`{stem}.yaml` forward, input {shapes}, eval, CPU", med(r["netcli"]) * 1e6,
                            hand_s * 1e6, "µs", "ratio <= 1.02", med(r["netcli"]) / hand_s <= 1.02,
                            f"{rounds} blocks of {calls} calls; same output: {same}; "
                            f"ranges {spread(r['netcli'])} / {spread(r['hand'])} s"))
        fig.rows.append(Row(f"control: a second hand-written copy of `{stem}`", med(r["twin"]) * 1e6, hand_s * 1e6,
                            "µs", "(noise floor)", None))
    torch.set_num_threads(threads)
    fig.notes.append("in one process, netcli's net, the hand-written net and a deep copy of it called in "
                     "alternating blocks (A B C, C B A, ...); torch threads: 1; the inputs are the configs' "
                     "`input:` (tests/handwritten_modern.py MODERN_INPUTS)")
    return fig


# ---------------------------------------------------------------- figures 10-12: torchrun + FSDP2 + DCP (issue 15)

DIST_INIT, DIST_RSS, DIST_IO = 10, 11, 12  # figure numbers (9 is the custom-blocks figure)
DIST_N = 2


def ranks(folder: Path, n: int | None, name: str, *args: str) -> dict:
    """Run a bench/jobs.py job as the n ranks of a torchrun job (n=None: one plain process).

    Returns the whole job's wall time, rank 0's stdout, and each rank's own report
    (PREFIX.RANK.json: its ru_maxrss, not the maximum over the job's processes).
    """
    prefix = folder / f"rank-{name}-{time.monotonic_ns()}"
    launch = [PY] if n is None else [PY, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n)]
    cmd = [*launch, str(JOBS), name, str(prefix), *args]
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-3000:]}")
    reports = []
    for rank in range(n or 1):
        path = Path(f"{prefix}.{rank}.json")
        reports.append(json.loads(path.read_text()))
        path.unlink()
    return {"seconds": seconds, "ranks": reports, "stdout": r.stdout}


def last_json(stdout: str) -> dict:
    """The JSON object rank 0 printed last (`--json`), skipping anything torchrun wrote before it."""
    return json.loads(stdout[stdout.index("{"):stdout.rindex("}") + 1])


def evict(path: Path) -> None:
    """Drop a file's (clean, already fsynced) pages from the page cache, so the next read goes to the disk."""
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def per_rank(results: list[dict], key: str) -> list[float]:
    """The median over repetitions of each rank's `key`."""
    return [statistics.median(r["ranks"][i][key] for r in results) for i in range(len(results[0]["ranks"]))]


def figures_dist(reps: int, folder: Path, only: set[int]) -> list[Figure]:
    """Figures 10-12: sharded init at N=2 against one process, each rank's peak memory, DCP save/load against dd."""
    n = DIST_N
    spec = str(wide_spec(folder, 8))
    fig_init = Figure(DIST_INIT, f"Sharded init (`--shard fsdp`), N={n} gloo ranks on the CPU against one process "
                                 "(`--fast-init`, the same values bit for bit), 8 x Linear(4096, 4096)")
    fig_rss = Figure(DIST_RSS, "Peak resident memory per rank under torchrun, net of each rank's measured baseline "
                               "(`import torch` + joining the process group)")
    fig_io = Figure(DIST_IO, f"Sharded save and load (DCP folder, N={n} ranks) against `dd` for the same bytes")
    base = baseline = []
    if only & {DIST_INIT, DIST_RSS}:
        base = alternate({"base": lambda: ranks(folder, n, "dist_baseline")}, reps)["base"]
        baseline = per_rank(base, "peak")
    load_avg = [os.getloadavg()[0]]
    rss: list[tuple[str, list[dict]]] = []
    pbytes = largest = None
    if only & {DIST_INIT, DIST_RSS}:
        r = alternate({"phase_n": lambda: ranks(folder, n, "dist_init", spec),
                       "phase_1": lambda: job("build_netcli", spec, "fast"),
                       "phase_s1": lambda: ranks(folder, 1, "dist_init", spec),
                       "cli_n": lambda: ranks(folder, n, "cli", "init", spec, "--shard", "fsdp"),
                       "cli_1": lambda: ranks(folder, None, "cli", "init", spec, "--fast-init"),
                       "torch_1": lambda: run_quiet([PY, "-c", "import torch"])}, reps)
        load_avg.append(os.getloadavg()[0])
        first = r["phase_n"][0]["ranks"][0]
        pbytes, largest = first["param_bytes"], first["largest"]
        phase_n = statistics.median(max(k["seconds"] for k in x["ranks"]) for x in r["phase_n"])
        phase_1 = med(r["phase_1"])
        fig_init.rows.append(Row(f"build + init ({pbytes / MB:.0f} MiB of parameters), fresh processes: "
                                 f"N={n} slowest rank, barrier to barrier / one process", phase_n, phase_1, "s",
                                 "ratio <= 0.65", phase_n / phase_1 <= 0.65,
                                 f"ranges {spread([{'seconds': max(k['seconds'] for k in x['ranks'])} for x in r['phase_n']])}"
                                 f" / {spread(r['phase_1'])}; each rank's own time (rank 0, 1): "
                                 + ", ".join(f"{v:.3g}" for v in per_rank(r['phase_n'], 'own_seconds'))))
        phase_s1 = statistics.median(x["ranks"][0]["seconds"] for x in r["phase_s1"])
        fig_init.rows.append(Row(f"control: the same sharded code at N={n} / at N=1 (torchrun, one rank)", phase_n,
                                 phase_s1, "s", "(reference)", None,
                                 f"N=1 range {spread([{'seconds': x['ranks'][0]['seconds']} for x in r['phase_s1']])}"))
        cli_n, cli_1 = med(r["cli_n"]), med(r["cli_1"])
        fig_init.rows.append(Row(f"whole command: `torchrun --nproc-per-node {n} -m netcli init SPEC --shard fsdp` "
                                 "/ `python -m netcli init SPEC --fast-init`", cli_n, cli_1, "s", "(reference)",
                                 None, f"ranges {spread(r['cli_n'])} / {spread(r['cli_1'])}"))
        fig_init.rows.append(Row(f"fixed cost: torchrun N={n} whose ranks only `import torch` and join / "
                                 "`python -c \"import torch\"`", med(base), med(r["torch_1"]), "s", "(reference)",
                                 None, f"ranges {spread(base)} / {spread(r['torch_1'])}"))
        fig_init.notes.append("one process: bench/jobs.py build_netcli (load_spec + build_model(fast_init=True), "
                              f"as figure 2); N={n}: bench/jobs.py dist_init, the calls `init --shard fsdp` makes "
                              "(load_spec + sharded.build), timed on every rank from a barrier after joining to a "
                              "barrier after the build; torchrun's default OMP_NUM_THREADS=1 per rank, one process "
                              "with torch's default threads; whole commands run through bench/jobs.py cli "
                              "(`python -m netcli` in the job's process, which writes its ru_maxrss at exit)")
        rss += [("`init SPEC --shard fsdp`", r["cli_n"]), ("bench/jobs.py dist_init (init calls only)", r["phase_n"])]
        one_net = statistics.median(x["ranks"][0]["peak"] for x in r["cli_1"])
        torch_peak = med(r["torch_1"], "peak")
        fig_rss.notes.append(f"one process for comparison: `init SPEC --fast-init` peak {one_net / MB:.0f} MiB, "
                             f"{(one_net - torch_peak) / MB:.0f} MiB above `python -c \"import torch\"` "
                             f"({torch_peak / MB:.0f} MiB) = {(one_net - torch_peak) / pbytes:.2f} x the parameters")
        imports = statistics.median(k["after_import"] for x in r["phase_n"] for k in x["ranks"])
        fig_rss.notes.append("what the subtracted baseline leaves in: dist_init's resident memory after importing "
                             "torch.distributed.fsdp and netcli's sharded modules, before joining, is "
                             f"{imports / MB:.0f} MiB against {statistics.median(k['after_import'] for x in base for k in x['ranks']) / MB:.0f} MiB "
                             "after `import torch` alone (the CLI also imports typer and rich)")
    if only & {DIST_IO, DIST_RSS}:
        ckpt, out, dd_file = folder / "dcp_load", folder / "dcp_save", folder / "dd.bin"
        made = ranks(folder, n, "cli", "save", spec, "--shard", "fsdp", "-o", f"{ckpt}/", "--json")
        size = last_json(made["stdout"])["bytes"]  # every file of the folder: rank files, .metadata, spec
        dd_write = ["dd", "if=/dev/zero", f"of={dd_file}", "bs=16M", f"count={size}", "iflag=count_bytes", "conv=fsync"]
        dd_read = ["dd", f"if={dd_file}", "of=/dev/null", "bs=16M"]
        run_quiet(dd_write)  # the file the read reference reads

        def save() -> dict:
            res = ranks(folder, n, "cli", "save", spec, "--shard", "fsdp", "-o", f"{out}/", "--json")
            res["phase"] = last_json(res["stdout"])["seconds"]
            shutil.rmtree(out)
            os.sync()  # no dirty pages left for the next case to wait on
            return res

        def load() -> dict:
            evict(ckpt)
            res = ranks(folder, n, "cli", "load", f"{ckpt}/", "--shard", "fsdp", "--json")
            res["phase"] = last_json(res["stdout"])["seconds"]
            return res

        def write() -> dict:
            other = folder / "dd_write.bin"
            res = run_quiet([*dd_write[:2], f"of={other}", *dd_write[3:]])
            other.unlink()
            os.sync()
            return res

        def read() -> dict:
            evict(dd_file)
            return run_quiet(dd_read)

        one_file = folder / "one.safetensors"
        run_quiet([PY, "-m", "netcli", "convert", f"{ckpt}/", "-o", str(one_file)])

        def load_one(path: str) -> Callable[[], dict]:
            return lambda: run_quiet([PY, "-m", "netcli", "load", path])  # whole command, one process, warm cache

        r = alternate({"save": save, "dd_write": write, "load": load, "dd_read": read,
                       "one_dcp": load_one(f"{ckpt}/"), "one_st": load_one(str(one_file))}, reps)
        paired = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(r["one_dcp"], r["one_st"]))
        load_avg.append(os.getloadavg()[0])
        s, w, ld, rd = med(r["save"], "phase"), med(r["dd_write"]), med(r["load"], "phase"), med(r["dd_read"])
        pair_s = statistics.median(a["phase"] / b["seconds"] for a, b in zip(r["save"], r["dd_write"]))
        pair_l = statistics.median(a["phase"] / b["seconds"] for a, b in zip(r["load"], r["dd_read"]))
        fig_io.rows.append(Row(f"save {size / MB:.0f} MiB: `save --shard fsdp -o DIR/`'s save (dcp.save on every "
                               "rank, fsync, spec, rename) / `dd if=/dev/zero bs=16M conv=fsync`", s, w, "s",
                               "ratio <= 1.3", s / w <= 1.3,
                               f"{size / MB / s:.0f} / {size / MB / w:.0f} MiB/s; paired ratio {pair_s:.3f}; ranges "
                               f"{spread(r['save'], 'phase')} / {spread(r['dd_write'])}"))
        fig_io.rows.append(Row(f"load {size / MB:.0f} MiB, page cache dropped: `load DIR/ --shard fsdp`'s restore "
                               "(rebuild sharded, DCP read) / `dd of=/dev/null bs=16M`", ld, rd, "s",
                               "ratio <= 1.5", ld / rd <= 1.5,
                               f"{size / MB / ld:.0f} / {size / MB / rd:.0f} MiB/s; paired ratio {pair_l:.3f}; ranges "
                               f"{spread(r['load'], 'phase')} / {spread(r['dd_read'])}"))
        fig_io.rows.append(Row("`netcli load DIR/` in one process (the DCP folder read whole), whole command / "
                               "`netcli load one.safetensors` of the same weights (`convert DIR/ -o`)",
                               med(r["one_dcp"]), med(r["one_st"]), "s", "paired ratio <= 1.1", paired <= 1.1,
                               f"met judged on the paired ratio (each repetition's own ratio), median {paired:.3f}; ranges "
                               f"{spread(r['one_dcp'])} / {spread(r['one_st'])}; page cache warm for both"))
        fig_io.rows.append(Row("load against the disk's write reference (the `dd ... conv=fsync` above)", ld, w, "s",
                               "(reference)", None))
        fig_io.rows.append(Row(f"whole commands under torchrun N={n}: save / load", med(r["save"]), med(r["load"]),
                               "s", "(reference)", None, f"ranges {spread(r['save'])} / {spread(r['load'])}"))
        fig_io.notes.append("netcli's times are the ones the commands print with --json (rank 0's clock: the "
                            "save from its start to the last barrier after the rename; the load from reading the "
                            "folder's metadata to the last tensor read); bytes are every file of the DCP folder; "
                            "before each read the files' pages are dropped from the page cache "
                            "(posix_fadvise DONTNEED); `sync` after each write case, outside the timings")
        rss += [("`save SPEC --shard fsdp -o DIR/`", r["save"]), ("`load DIR/ --shard fsdp`", r["load"])]
        shutil.rmtree(ckpt)
        dd_file.unlink()
        one_file.unlink()
    if pbytes is None:
        pbytes, largest = 8 * (4096 * 4096 + 4096) * 4, 4096 * 4096 * 4
    budget = 1.1 * pbytes / n + 64 * MB  # issue 21: 1.1 x params/N + 64 MiB
    for what, results in rss:
        net = [p - b for p, b in zip(per_rank(results, "peak"), baseline)]
        fig_rss.rows.append(Row(f"{what}: the larger rank's peak above its baseline", max(net) / MB, None, "MiB",
                                f"<= 1.1 x {pbytes / n / MB:.0f} + 64 = {budget / MB:.0f} MiB",
                                max(net) <= budget,
                                "ranks 0, 1: " + ", ".join(f"{v / MB:.0f}" for v in net) + " MiB net; peaks "
                                + ", ".join(f"{v / MB:.0f}" for v in per_rank(results, "peak")) + " MiB"))
    fig_rss.notes.insert(0, "baseline subtracted, rank by rank: the median ru_maxrss of a torchrun job of "
                            f"N={n} ranks (bench/jobs.py dist_baseline) that only `import torch`, join the process "
                            "group (netcli.distributed.group.join: gloo, TCP store) and pass a barrier, run in this same "
                            "figure: " + ", ".join(f"{b / MB:.0f}" for b in baseline) + " MiB; each rank's peak "
                            "is the ru_maxrss it writes itself at exit (its own, not the job's maximum)")
    for fig in (fig_init, fig_rss, fig_io):
        fig.notes.append("1-minute load average during the figure's cases: "
                         + " / ".join(f"{v:.2f}" for v in load_avg) + f" on {os.cpu_count()} CPUs "
                         "(the machine was shared with other processes)")
    return [fig_init, fig_rss, fig_io]


def machine() -> list[str]:
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    return [f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- machine: {platform.node()}, {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB memory, {platform.platform()}",
            f"- Python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}"]


def render(figures: list[Figure], args, started: float) -> str:
    lines = ["# netcli benchmarks", "",
             "Generated by `python bench/run.py" + (" --quick" if args.quick else "") + "` "
             f"({args.reps} alternating repetitions; medians; ratio = netcli / hand-written, lower is better).",
             "Each figure's baseline is measured in the same run, alternating with netcli.", ""]
    lines += machine()
    lines += [f"- total time: {time.time() - started:.0f} s", ""]
    for fig in sorted(figures, key=lambda f: f.number):
        lines += [f"## Figure {fig.number}: {fig.title}", "",
                  f"Load average (1 min) before / after: {fig.load[0]:.2f} / {fig.load[1]:.2f}", "",
                  "| measure | netcli | hand-written | ratio | target | met | notes |",
                  "|---|---|---|---|---|---|---|"]
        for row in fig.rows:
            theirs = "" if row.theirs is None else f"{row.theirs:.4g} {row.unit}"
            ratio = "" if row.ratio is None else f"{row.ratio:.3f}"
            met = "" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(f"| {row.what} | {row.ours:.4g} {row.unit} | {theirs} | {ratio} | {row.target} | {met} | {row.note} |")
        lines.append("")
        lines += [f"- {note}" for note in fig.notes]
        if fig.notes:
            lines.append("")
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    return "\n".join(lines)


def with_bytecode() -> None:
    """Measure netcli as installed: its modules compiled to bytecode, as `pip install` leaves a package.

    A shell with PYTHONDONTWRITEBYTECODE set (this VM's default) would make every child compile netcli's
    ~150 modules from source on each start (about 60 ms of `build --print`), a cost no installed copy pays;
    torch's bytecode was written when it was installed. The children inherit the environment without it.
    """
    import compileall

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(ROOT / "netcli"), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions, n=8 builds only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per case (default 5, --quick 3)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", help="figures to run, e.g. 1,4,7")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    args.reps = args.reps or (3 if args.quick else 5)
    only = {int(x) for x in args.only.split(",")}
    with_bytecode()
    started = time.time()
    folder = Path(tempfile.mkdtemp(prefix="netcli-bench-"))
    free = shutil.disk_usage(folder).free
    if only & {5, 6} and free < 6 * GB:
        sys.exit(f"bench: {folder} has {free / GB:.1f} GB free; figures 5 and 6 need 6 GB")
    plan: list[tuple[set[int], Callable[[], list[Figure] | Figure]]] = [
        ({1}, lambda: figure1(args.reps * 2, folder)),
        ({8}, lambda: figure8(args.reps * 2, folder)),
        ({4}, lambda: figure4(args.reps, folder)),
        ({7}, lambda: figure7(args.reps, folder)),
        ({2, 3}, lambda: figure2_3(args.reps, folder, [8] if args.quick else [8, 16])),
        ({5, 6}, lambda: figure5_6(args.reps, folder, 16)),
        ({9}, lambda: figure9(args.reps, folder)),
        ({API}, lambda: figure13(args.reps, folder)),
        ({PLOT}, lambda: figure14(args.reps * 2, folder)),
        ({MODERN}, lambda: figure15(args.reps, folder)),
        ({DIST_INIT, DIST_RSS, DIST_IO}, lambda: figures_dist(args.reps, folder, only)),
    ]
    figures: list[Figure] = []
    try:
        for numbers, make in plan:
            if not numbers & only:
                continue
            before = os.getloadavg()[0]
            made = make()
            made = made if isinstance(made, list) else [made]
            after = os.getloadavg()[0]
            for fig in made:
                fig.load = (before, after)
                if fig.number in only:
                    figures.append(fig)
                    print(f"figure {fig.number}: " + "; ".join(
                        f"{r.what}: {r.ours:.4g} {r.unit}" + (f" (ratio {r.ratio:.3f})" if r.ratio else "")
                        for r in fig.rows), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    Path(args.out).write_text(render(figures, args, started))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
