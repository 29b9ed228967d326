"""Issue 26, item 5: generators for the third round's surfaces.

Four classes, each beside the regression tests of tests/test_hardening3.py:

- forwards and names written through the fx compile and `netcli code`: every
  generated file that `code` writes is imported and its `build()` called, with
  canary payloads in names, class names, file names, `--set` values and rules;
  importing an ejected file must never run anything but torch;
- DCP folders with a mutated `.metadata` or `.distcp` (byte flips, cuts,
  insertions, pickles that would call `open`);
- Hugging Face indexes whose `weight_map` names files outside the folder,
  system files, devices, missing or repeated shards, hostile tensor names;
- `extends:` graphs: cycles, diamonds, chains, and bases that are system
  files, devices, FIFOs, folders, links into /proc or files holding a secret.

Every run must exit 0 or 2 without a traceback within the alarm, print no raw
terminal control, leave no canary file and print no secret line.
CI runs 8 examples per class; `NETCLI_FUZZ=long` runs 300
(`NETCLI_FUZZ_H3_EXAMPLES=N` sets the count); `NETCLI_FUZZ_REPORT=FILE`
appends the counts (docs/RELIABILITY.md).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_specs import COUNTS, HANG_SECONDS, SLOW, alarm, check_output, dump, write_report

LONG = os.environ.get("NETCLI_FUZZ") == "long"
EXAMPLES = int(os.environ.get("NETCLI_FUZZ_H3_EXAMPLES", 300 if LONG else 8))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
CANARY = "netcli-canary-h3"
SECRET = "netcli-secret-h3-5b1e"


SLOWEST: dict[str, float] = {}  # generator -> the longest single command, in seconds
ANSWER_SECONDS = 15  # every case answers (exit 0 or 2) within this, the bound


@pytest.fixture(scope="module", autouse=True)
def report():
    start = time.time()
    yield
    write_report("hardening3", start, files=False)
    target = os.environ.get("NETCLI_FUZZ_REPORT")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps({"module": "hardening3", "slowest_seconds": SLOWEST}) + "\n")


def checked(run_cli, generator: str, *args) -> object:
    """Run netcli; assert exit 0 or 2, no traceback, no raw control, no secret; count the outcome."""
    start = time.perf_counter()
    with alarm(HANG_SECONDS):
        result = run_cli(*args)
    seconds = time.perf_counter() - start
    SLOWEST[generator] = round(max(SLOWEST.get(generator, 0.0), seconds), 3)
    if seconds > SLOW:
        COUNTS[(generator, str(args[0]), "slow")] += 1
    assert seconds < ANSWER_SECONDS, f"netcli {args[0]} took {seconds:.1f} s"
    text = result.out + result.err
    assert "Traceback" not in text and "internal error" not in text, result.err
    assert result.code in (0, 2), f"exit {result.code}\n{result.err}"
    assert SECRET not in text, text[:2000]
    check_output(result)
    COUNTS[(generator, str(args[0]), "ok" if result.code == 0 else "error")] += 1
    return result


def no_canary(*folders: Path) -> None:
    for folder in folders:
        found = [p.name for p in folder.iterdir() if p.name.startswith(CANARY)] if folder.is_dir() else []
        assert not found, f"a canary was created in {folder}: {found}"


def fresh(tmp_path: Path, name: str) -> Path:
    work = tmp_path / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


# --- 1. generated forwards and names through the compile and `netcli code` --------------------

PAYLOAD = f'open("{CANARY}", "w")'
INJECTIONS = [
    f'"""; {PAYLOAD}; """',
    f"'''; {PAYLOAD}; '''",
    f'"; {PAYLOAD}; "',
    f"\\'; {PAYLOAD}; #",
    f"\n{PAYLOAD}\n",
    f"\r{PAYLOAD}",
    f"\u2028{PAYLOAD}",
    f"{{{PAYLOAD}}}",
    "\\",
    '"',
    '""',
    "\\N{",
    f"#{PAYLOAD}",
    f"\x0c{PAYLOAD}",
    "\ufb01",
    "\u212a",
    "\uff21",
]
PLAIN = [
    "a",
    "B",
    "net",
    "Block",
    "fi",
    "x",
    "y",
    "conv1",
    "self",
    "forward",
    "training",
    "torch",
    "nn",
    "F",
    "math",
    "inf",
    "nan",
    "None",
    "class",
    "def",
    "_0",
    "block_1",
    "Sequential",
    "OrderedDict",
    "build",
    "init_weights",
]
texts = st.one_of(
    st.sampled_from(PLAIN),
    st.sampled_from(INJECTIONS),
    st.builds(lambda a, b: a + b, st.sampled_from(PLAIN), st.sampled_from(INJECTIONS)),
)
CONSTANTS = ["1", "0.5", "-2", "1e999", "-1e999", "1e-320", "2 ** 70", "1e308", "0", "True"]


@st.composite
def forward_specs(draw) -> tuple[str, str, list[str]]:
    """(spec text, spec file name, extra command-line options) with hostile names and a generated forward.

    Half the cases keep the children, definitions and forward lines valid, so that `code` ejects a file and
    it is imported: the hostile text then sits only where a valid spec may hold any text (its name, file
    name, `--set` and `--rule` values, a shared `class:`), the places an ejected file quotes.
    """
    valid = draw(st.booleans())
    names = st.sampled_from(["l", "m", "fi", "conv", "a", "y"]) if valid else texts
    children = draw(
        st.lists(
            st.sampled_from(["l", "m", "fi", "conv", "a", "y"])
            if valid
            else st.one_of(st.sampled_from(["l", "m", "fi", "\ufb01", "conv", "x", "self"]), texts),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    kinds = {c: draw(st.sampled_from(["Linear", "ReLU", "Tanh", "Identity"])) for c in children}
    body = []
    for _ in range(draw(st.integers(1, 6))):
        child = draw(st.sampled_from(children))
        form = draw(st.sampled_from(["call", "mul", "add", "neg"] if valid else ["call", "mul", "add", "clamp", "neg", "text"]))
        constants = [c for c in CONSTANTS if "**" not in c] if valid else CONSTANTS
        if form == "call":
            body.append(f"x = {child}(x)")
        elif form == "mul":
            body.append(f"x = x * {draw(st.sampled_from(constants))}")
        elif form == "add":
            body.append(f"x = x + {draw(st.sampled_from(constants))}")
        elif form == "clamp":
            body.append(f"x = torch.clamp(x, max={draw(st.sampled_from(CONSTANTS))})")
        elif form == "neg":
            body.append("x = -x")
        else:
            body.append(draw(texts))
    forward = "\n".join(body + ["return x"])
    nodes = {c: ({"Linear": [4, 4]} if kinds[c] == "Linear" else kinds[c]) for c in children}
    first, second = draw(names).capitalize() if valid else draw(texts), draw(names) if valid else draw(texts)
    shared = draw(st.sampled_from([None, "Foo", draw(texts)]))
    blocks: dict = {first: {"children": nodes, "forward": forward}}
    if second != first:
        blocks[second] = {"children": {"l": {"Linear": [4, 4]}}, "forward": "return l(x)"}
    if shared is not None:
        for node in blocks.values():
            node["class"] = shared
    params = draw(st.sampled_from([None, st.sampled_from(["k", "n"]) if valid else texts]))
    if params is not None:
        blocks[first]["params"] = {draw(params): 1}
    spec: dict = {
        "input": [2, 4],
        "vars": {"w": 4},
        "blocks": blocks,
        "model": [{"use": name} for name in blocks] + [{"Linear": [4, "${w}"]}],
    }
    if draw(st.booleans()):
        spec["name"] = draw(texts)
    if draw(st.booleans()):
        spec["init"] = [draw(st.sampled_from(["zeros:*.bias", "normal(std=0.01):*", "const1e39:*"]))]
    extra = []
    if draw(st.booleans()):
        extra += ["--set", f"vars.w={draw(st.sampled_from(['4', '4 #' + INJECTIONS[0], chr(34) * 3]))}"]
    if draw(st.booleans()):
        extra += ["--rule", f"zeros:*.bias{draw(st.sampled_from(['', chr(13) + PAYLOAD, ' #' + INJECTIONS[0]]))}"]
    file_name = draw(
        st.sampled_from(
            ["spec.yaml", f"spec{INJECTIONS[0]}.yaml", "sp'ec.yaml", 'sp"ec.yaml', "spec\\.yaml", "sp\u2028ec.yaml"]
        )
    )
    return dump(spec), file_name.replace("/", ""), extra


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.pop(name, None)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


@FUZZ
@given(case=forward_specs())
def test_generated_forwards_compile_and_eject_without_running_code(run_cli, tmp_path, case):
    text, file_name, extra = case
    work = fresh(tmp_path, "work")
    here = os.getcwd()
    os.chdir(work)  # a payload that ran would write its canary here
    try:
        spec = work / file_name
        spec.write_text(text, encoding="utf-8")
        checked(run_cli, "forwards", "validate", spec, *extra)
        built = checked(run_cli, "forwards", "build", spec, *extra)
        code = checked(run_cli, "forwards", "code", spec, "-o", work / "model.py", *extra)
        if code.code == 0:
            import torch

            source = (work / "model.py").read_text(encoding="utf-8")
            compile(source, "model.py", "exec")  # what netcli writes is Python
            module = _import(work / "model.py", "netcli_fuzz_ejected")
            net = module.build(0)
            if built.code == 0:
                net(torch.rand(2, 4))
            COUNTS[("forwards", "import", "ok")] += 1
        no_canary(work, Path(here))
    finally:
        os.chdir(here)


# --- 2. DCP folders with a mutated .metadata or .distcp ---------------------------------------


class Payload:
    """Pickles as a call of builtins.open: unpickling it creates the canary file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@functools.cache
def saved_folders() -> Path:
    """A spec, its .safetensors, a DCP folder and an HF layout of it, made once."""
    from conftest import invoke

    folder = Path(tempfile.mkdtemp(prefix="netcli-fuzz-h3-"))
    (folder / "net.yaml").write_text("input: [2, 4]\nmodel:\n  - Linear: [4, 8]\n  - ReLU\n  - Linear: [8, 2]\n")
    assert invoke("save", folder / "net.yaml", "--seed", "0", "-o", folder / "net.safetensors").code == 0
    assert invoke("convert", folder / "net.safetensors", "-o", str(folder / "dcp") + "/").code == 0
    assert (
        invoke("convert", folder / "net.safetensors", "-o", str(folder / "hf") + "/", "--max-shard-size", "100").code
        == 0
    )
    (folder / "secret.txt").write_text(f"{SECRET}\n")
    return folder


def _mutate(data: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["flip", "cut", "insert", "zero", "repeat"]))
    if not data:
        return b"\x80"
    at = draw(st.integers(0, len(data) - 1))
    if how == "flip":
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if how == "cut":
        return data[:at]
    if how == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if how == "zero":
        return data[:at] + bytes(min(16, len(data) - at)) + data[at + 16 :]
    return data[:at] + data[at : at + 64] * draw(st.integers(2, 50)) + data[at + 64 :]


@st.composite
def dcp_mutations(draw) -> tuple[str, str, bytes | None]:
    """(which file, how, new bytes or None for a payload made in the test)."""
    target = draw(st.sampled_from([".metadata", ".metadata", "distcp"]))
    how = draw(st.sampled_from(["bytes", "bytes", "payload", "nested", "empty"]))
    return target, how, draw(st.integers(0, 2**32))


@FUZZ
@given(case=dcp_mutations(), data=st.data())
def test_mutated_dcp_folders(run_cli, tmp_path, case, data):
    target, how, _ = case
    base = saved_folders()
    work = fresh(tmp_path, "work")
    folder = work / "ck"
    shutil.copytree(base / "dcp", folder)
    marker = str(work / CANARY)
    path = folder / ".metadata" if target == ".metadata" else sorted(folder.glob("*.distcp"))[0]
    if how == "bytes":
        path.write_bytes(_mutate(path.read_bytes(), data.draw))
    elif how == "payload":
        path.write_bytes(pickle.dumps(Payload(marker)))
    elif how == "nested" and target == ".metadata":
        from netcli.io.dcp_metadata import read_metadata_file

        meta = read_metadata_file(folder / ".metadata")
        meta.storage_meta = Payload(marker)
        path.write_bytes(pickle.dumps(meta))
    elif how == "nested":
        path.write_bytes(path.read_bytes() + pickle.dumps(Payload(marker)))
    else:
        path.write_bytes(b"")
    for args in (("show", folder), ("load", folder), ("convert", folder, "-o", work / "out.safetensors")):
        checked(run_cli, "dcp", *args)
    no_canary(work)


# --- 3. Hugging Face indexes with hostile weight_maps ----------------------------------------

SHARD_NAMES = [
    "../net.safetensors",
    "../../etc/passwd",
    "/etc/passwd",
    "/proc/self/environ",
    "/dev/zero",
    "",
    ".",
    "..",
    "sub/../model-00001-of-00002.safetensors",
    "model-00001-of-00002.safetensors\x00x",
    "a" * 300,
    "\u202emodel.safetensors",
    "secret.safetensors",
    "zero.safetensors",
    "fifo.safetensors",
    "folder.safetensors",
    "missing.safetensors",
    "link.safetensors",
    "model.safetensors.index.json",
]
TENSOR_NAMES = [
    "0.weight",
    "0.bias",
    "2.weight",
    "2.bias",
    "x",
    "",
    "\x1b[2J",
    "0.weight\n",
    "a" * 300,
    "__class__",
    "0..weight",
]


@st.composite
def hostile_indexes(draw) -> dict:
    real = json.loads((saved_folders() / "hf" / "model.safetensors.index.json").read_text())
    weight_map = dict(real["weight_map"])
    shards = sorted(set(weight_map.values()))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["value", "value", "key", "drop", "add", "swap"]))
        names = list(weight_map)
        if how == "value" and names:
            weight_map[draw(st.sampled_from(names))] = draw(st.sampled_from(SHARD_NAMES + shards))
        elif how == "key" and names:
            old = draw(st.sampled_from(names))
            weight_map[draw(st.sampled_from(TENSOR_NAMES))] = weight_map.pop(old)
        elif how == "drop" and names:
            weight_map.pop(draw(st.sampled_from(names)))
        elif how == "add":
            weight_map[draw(st.sampled_from(TENSOR_NAMES))] = draw(st.sampled_from(SHARD_NAMES + shards))
        elif how == "swap" and len(shards) > 1:
            weight_map = {
                k: shards[(shards.index(v) + 1) % len(shards)] if v in shards else v for k, v in weight_map.items()
            }
    index = {"metadata": real.get("metadata", {}), "weight_map": weight_map}
    if draw(st.integers(0, 9)) == 0:
        index["metadata"] = draw(st.sampled_from([None, [], "x", {"total_size": -1}, {"netcli.spec": "model: [ReLU]"}]))
    if draw(st.integers(0, 9)) == 0:
        index = draw(st.sampled_from([[], "x", None, {"weight_map": []}, {"weight_map": {"a": 1}}]))
    return index


@FUZZ
@given(index=hostile_indexes())
def test_hostile_hf_weight_maps(run_cli, tmp_path, index):
    base = saved_folders()
    work = fresh(tmp_path, "work")
    folder = work / "hf"
    shutil.copytree(base / "hf", folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "secret.safetensors").write_text(f"{SECRET}\n")
    (folder / "zero.safetensors").symlink_to("/dev/zero")
    (folder / "link.safetensors").symlink_to(base / "secret.txt")
    (folder / "folder.safetensors").mkdir()
    os.mkfifo(folder / "fifo.safetensors")
    for args in (
        ("show", folder),
        ("load", folder, base / "net.yaml"),
        ("convert", folder, "-o", work / "out.safetensors"),
    ):
        checked(run_cli, "hf", *args)
    no_canary(work)


# --- 4. extends: graphs ------------------------------------------------------------------------

BASES = [
    "secret.txt",
    "secret.yaml",
    "/proc/self/environ",
    "/dev/zero",
    "fifo.yaml",
    "folder.yaml",
    "proc.yaml",
    "secret_link.yaml",
    "missing.yaml",
    "a\x00b.yaml",
    "~/nope.yaml",
    "../x.yaml",
    "/etc/passwd",
    "bad.yaml",
    "list.yaml",
]


@st.composite
def extends_graphs(draw) -> dict[str, str]:
    """Spec files f0..fn whose `extends:` name each other (cycles, diamonds) or hostile bases."""
    n = draw(st.integers(1, 6))
    files = {}
    for i in range(n):
        targets = draw(
            st.lists(
                st.one_of(st.integers(0, n - 1).map(lambda j: f"f{j}.yaml"), st.sampled_from(BASES)),
                min_size=0,
                max_size=3,
            )
        )
        doc: dict = {}
        if targets:
            doc["extends"] = targets if len(targets) > 1 or draw(st.booleans()) else targets[0]
        if draw(st.booleans()):
            doc["input"] = [2, 4]
        if draw(st.booleans()):
            doc["model"] = [{"Linear": [4, draw(st.sampled_from([2, "${w}"]))]}]
        if draw(st.booleans()):
            doc["vars"] = {"w": draw(st.sampled_from([2, 3, None]))}
        if draw(st.booleans()):
            doc["model+="] = ["ReLU"]
        files[f"f{i}.yaml"] = dump(doc) if doc else ""
    return files


@FUZZ
@given(files=extends_graphs())
def test_extends_graphs(run_cli, tmp_path, files):
    work = fresh(tmp_path, "work")
    (work / "secret.txt").write_text(f"root:{SECRET}:0:0\n")
    (work / "secret.yaml").write_text(f"- [{SECRET}\n")  # YAML that does not parse
    (work / "bad.yaml").write_text(f"key: {SECRET}\n\tbad: indent\n")
    (work / "list.yaml").write_text(f"- {SECRET}\n")
    os.mkfifo(work / "fifo.yaml")
    (work / "folder.yaml").mkdir()
    (work / "proc.yaml").symlink_to("/proc/self/environ")
    (work / "secret_link.yaml").symlink_to(work / "secret.txt")
    for name, text in files.items():
        (work / name).write_text(text)
    for name in files:
        checked(run_cli, "extends", "validate", work / name)
    no_canary(work)
