"""Property-based tests: generated and mutated specs never crash or hang netcli.

For every generated spec, `validate` and `build` either succeed (exit 0) or
exit 2 with every problem located (`FILE:LINE:COL:`, `FILE:` for file-level
problems, or `--set ...`). Never a traceback, never an "internal error",
never a hang (a per-example alarm).

CI runs 60 examples per generator; `NETCLI_FUZZ=long` runs 3,000 per
generator, 12,000 specs in all (see docs/RELIABILITY.md). `NETCLI_FUZZ_REPORT=FILE` appends the
counts of each run to FILE as JSON lines.
"""
from __future__ import annotations

import copy
import json
import os
import re
import signal
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CONFIGS, ROOT

LONG = os.environ.get("NETCLI_FUZZ") == "long"
EXAMPLES = int(os.environ.get("NETCLI_FUZZ_EXAMPLES", 3_000 if LONG else 60))  # long: 4 x 3,000 specs
HANG_SECONDS = 20  # far above the slowest real spec (~0.1 s); a generous machine-load margin
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

COUNTS: Counter = Counter()  # (generator, command, outcome) -> examples


class Hang(BaseException):
    """Raised by the alarm: a BaseException so that no `except Exception` swallows it."""


@contextmanager
def alarm(seconds: float):
    """Raise Hang in this thread if the block runs longer than `seconds`."""
    def fire(signum, frame):
        raise Hang(f"no answer after {seconds} s")
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def write_report(module: str, start: float, *, files: bool) -> None:
    """Append one module's counts to $NETCLI_FUZZ_REPORT (for docs/RELIABILITY.md)."""
    target = os.environ.get("NETCLI_FUZZ_REPORT")
    if target:
        counts = {"/".join(k): v for k, v in sorted(COUNTS.items()) if k[0].startswith("file") == files}
        with open(target, "a") as f:
            f.write(json.dumps({"module": module, "seconds": round(time.time() - start, 1), "counts": counts}) + "\n")


@pytest.fixture(scope="module", autouse=True)
def report():
    start = time.time()
    yield
    write_report("specs", start, files=False)


@pytest.fixture(autouse=True)
def small_machine(monkeypatch):
    """Pretend the CPU has 256 MiB free, so a generated huge layer is refused, never allocated."""
    from netcli.core import devices
    real = devices.free_memory
    monkeypatch.setattr(devices, "free_memory",
                        lambda d: min(256 << 20, real(d) or 256 << 20) if d.type == "cpu" else real(d))


# --- checking one run -----------------------------------------------------------

LOCATED = re.compile(r"^(?P<src>.+?):(?P<line>\d+):(?P<col>\d+): ")
EXCERPT = re.compile(r"^  \d* +\| ")  # the spec's line and the caret under the column
FILE_LEVEL = ("the file is larger than", "the spec is empty", "invalid YAML", "not UTF-8 text")


def check_result(result, spec_path: str, generator: str, command: str) -> None:
    """Assert exit 0, or exit 2 with each problem line located; count the outcome."""
    err = result.err
    assert "Traceback" not in err and "internal error" not in err, err
    assert result.code in (0, 2), f"exit {result.code}\n{err}"
    COUNTS[(generator, command, "ok" if result.code == 0 else "error")] += 1
    if result.code == 0:
        return
    lines = [ln for ln in err.splitlines()
             if ln.strip() and not ln.startswith("FAILED ") and not EXCERPT.match(ln)]
    assert lines, f"exit 2 with no message:\n{err}"
    for line in lines:
        if line.startswith(("--set ", "--rule ", "--device", "--seed", "--plugin")):
            continue
        assert line.startswith(spec_path + ":"), f"problem not located:\n{line}"
        if not LOCATED.match(line):
            assert any(m in line for m in FILE_LEVEL), f"problem without line:col:\n{line}"


def run_both(run_cli, path: Path, text: str, generator: str, extra=()) -> None:
    """Write `text` to `path`, run validate and build on it, check both."""
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    for command in ("validate", "build"):
        with alarm(HANG_SECONDS):
            result = run_cli(command, str(path), *extra)
        check_result(result, str(path), generator, command)


@pytest.fixture
def spec_file(tmp_path) -> Path:
    return tmp_path / "fuzz.yaml"


# --- strategies -----------------------------------------------------------------

TYPES = ["Linear", "ReLU", "Conv2d", "Sequential", "LSTM", "Dropout", "BatchNorm1d", "Flatten",
         "LayerNorm", "Embedding", "MultiheadAttention", "AvgPool2d", "Identity", "Softmax",
         "MLP", "MyLinear", "CenteredLayer", "FixedHiddenMLP", "NestMLP", "Tanh", "Bilinear"]
KEYS = ["name", "input", "seed", "device", "vars", "plugins", "blocks", "model", "init",
        "use", "ref", "repeat", "names", "frozen", "args", "target", "params",
        "in_features", "out_features", "bias", "kernel_size", "dtype", "hidden", "block1"]
DEVICES = ["cpu", "meta", "auto", "auto:3", "cuda", "cuda:7", "mps", "tpu", "cpu:0", "", "cuda:-1"]
INITS = ["xavier", "normal(std=0.01)", "uniform(-10, 10)", "const42", "constant(42)", "zeros",
         "kaiming", "orthogonal", "eye", "dirac", "default", "custom", "nope", "normal(std=)",
         "constant(", "uniform(1e400)", "const", "normal(mean='a')", "xavier(gain=-1)"]
TARGETS = ["*", "0", "0.1.0", "2.bias", "Linear", "*.bias", "0.*.weight", "9", "", "..", "0.weight.x",
           "block 1", "[0]", "**", "Conv2d"]

huge_ints = st.sampled_from([0, -1, 2**31, 2**63, 2**64 + 1, 10**30, -(10**30), 10**400])
words = st.text(min_size=0, max_size=12)  # any unicode, including surrogates' neighbours and controls
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), huge_ints,
    st.floats(allow_nan=True, allow_infinity=True), words,
    st.sampled_from(TYPES + KEYS + DEVICES + ["${hidden}", "${nope}", "${hidden.x}", "{i}", "block {i}"]),
)


def trees(leaves=scalars, max_leaves=25):
    return st.recursive(
        leaves,
        lambda kids: st.one_of(st.lists(kids, max_size=5),
                               st.dictionaries(st.one_of(st.sampled_from(TYPES + KEYS), words), kids, max_size=5)),
        max_leaves=max_leaves)


rule_texts = st.builds(lambda i, t: f"{i}:{t}", st.sampled_from(INITS), st.sampled_from(TARGETS))
args = st.one_of(st.lists(st.one_of(st.integers(-3, 300), huge_ints, scalars), max_size=4),
                 st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3), scalars)


@st.composite
def nodes(draw, depth=0):
    """A node that looks like the spec language, with options right or wrong."""
    kind = draw(st.sampled_from(["bare", "layer", "list", "seq", "use", "ref", "junk"]
                                if depth < 4 else ["bare", "layer", "use", "ref"]))
    if kind == "bare":
        node = draw(st.sampled_from(TYPES))
    elif kind == "layer":
        node = {draw(st.sampled_from(TYPES)): draw(args)}
    elif kind == "list":
        node = draw(st.lists(nodes(depth + 1), max_size=4))
    elif kind == "seq":
        body = draw(st.one_of(st.lists(nodes(depth + 1), max_size=3),
                              st.dictionaries(st.sampled_from(["hidden", "out", "a.b", "", "0"]),
                                              nodes(depth + 1), max_size=3)))
        node = {"Sequential": body}
    elif kind in ("use", "ref"):
        node = {kind: draw(st.sampled_from(["b1", "b2", "missing", ""]))}
    else:
        node = draw(trees(max_leaves=6))
    if isinstance(node, dict) and draw(st.booleans()):
        option = draw(st.sampled_from(["name", "repeat", "names", "device", "frozen", "nme"]))
        node[option] = draw(st.one_of(st.integers(-2, 6), huge_ints, st.sampled_from(DEVICES),
                                      st.sampled_from(["block {i}", "{j}", "a.{i}", "x"]), scalars))
    return node


@st.composite
def specs(draw):
    """A whole spec made of spec-like nodes, top-level keys right or wrong."""
    spec: dict = {"model": draw(nodes())}
    if draw(st.booleans()):
        spec["blocks"] = {name: draw(nodes(2)) for name in draw(st.lists(st.sampled_from(["b1", "b2", "b3"]),
                                                                         max_size=3, unique=True))}
    if draw(st.booleans()):
        spec["input"] = draw(st.one_of(st.lists(st.integers(0, 40), min_size=1, max_size=4), scalars,
                                       st.lists(huge_ints, max_size=2)))
    if draw(st.booleans()):
        spec["init"] = draw(st.lists(st.one_of(rule_texts, trees(max_leaves=4),
                                               st.fixed_dictionaries({"init": st.sampled_from(INITS),
                                                                      "target": st.sampled_from(TARGETS)})),
                                     max_size=3))
    for key in draw(st.lists(st.sampled_from(["vars", "seed", "device", "name", "plugins", "nodel"]), max_size=3)):
        spec[key] = draw(st.one_of(scalars, trees(max_leaves=5),
                                   st.just({"hidden": 8}), st.sampled_from(DEVICES)))
    return spec


def dump(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


# --- mutations of the shipped configs ------------------------------------------

SHIPPED = {p.name: yaml.safe_load(p.read_text()) for p in CONFIGS}
SHIPPED_TEXT = {p.name: p.read_text() for p in CONFIGS}


def paths_of(data, path=()):
    yield path
    if isinstance(data, dict):
        for k, v in data.items():
            yield from paths_of(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths_of(v, path + (i,))


def get_at(data, path):
    for p in path:
        data = data[p]
    return data


@st.composite
def mutated_configs(draw):
    """A shipped config with 1-4 structural mutations."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    data = copy.deepcopy(SHIPPED[name])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in paths_of(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = get_at(data, path[:-1]), path[-1]
        op = draw(st.sampled_from(["delete", "replace", "retype", "rename", "insert", "nest",
                                   "huge", "unicode", "type", "option", "rule"]))
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(trees(max_leaves=8))
        elif op == "retype":  # the same value, another YAML type
            value = parent[last]
            parent[last] = (str(value) if not isinstance(value, str) else
                            draw(st.sampled_from([[value], {value: None}, 1, None, True])))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.one_of(words, st.sampled_from(KEYS + TYPES)))] = parent.pop(last)
        elif op == "insert":
            if isinstance(parent, dict):
                parent[draw(st.sampled_from(KEYS + TYPES))] = draw(scalars)
            else:
                parent.insert(draw(st.integers(0, len(parent))), draw(nodes(2)))
        elif op == "nest":  # deep nesting, sometimes past the limit
            value = parent[last]
            for _ in range(draw(st.sampled_from([1, 5, 40, 63, 64, 65, 100]))):
                value = [value]
            parent[last] = value
        elif op == "huge":
            parent[last] = draw(huge_ints)
        elif op == "unicode":
            parent[last] = draw(st.text(min_size=1, max_size=20))
        elif op == "type":
            parent[last] = draw(nodes(3))
        elif op == "option" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["repeat", "names", "device", "frozen", "name"]))] = draw(
                st.one_of(st.integers(-1, 5), huge_ints, st.sampled_from(DEVICES + ["{i}", "b {i}"]), scalars))
        elif op == "rule":
            data.setdefault("init", [])
            if isinstance(data["init"], list):
                data["init"].append(draw(rule_texts))
    return dump(data)


@st.composite
def text_mutations(draw):
    """A shipped config's text with characters or lines changed (bad YAML, duplicate keys, tabs)."""
    name = draw(st.sampled_from(sorted(SHIPPED_TEXT)))
    lines = SHIPPED_TEXT[name].splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["dup", "drop", "char", "indent", "insert"]))
        if op == "dup":
            lines.insert(i, lines[i])
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "char" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            c = draw(st.sampled_from(list(":-[]{}&*!|>'\"#%@`\t ,?") + ["\u00e9", "\u202e", "\x00", "\ufeff"]))
            lines[i] = lines[i][:j] + c + lines[i][j + 1:]
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["  ", "    ", "\t", " "])) + lines[i]
        else:
            lines.insert(i, draw(st.sampled_from(["model: []", "  - ReLU", "&a x: *a", "<<: {a: 1}",
                                                  "!!python/object:os.system", "init: [xavier:*]",
                                                  "--- ", "...", "%YAML 1.1"])))
    return "\n".join(lines) + "\n"


set_paths = st.one_of(
    st.sampled_from(["vars.hidden", "input", "model", "model.0", "model.1.Linear.1", "model.0.Linear",
                     "model.-1", "model.99", "blocks.block1.0", "init", "init.0", "seed", "device",
                     "name", "__class__", "model.0.__init__", "vars", "nope", "model.0.repeat"]),
    st.lists(st.one_of(words, st.integers(-3, 5).map(str)), min_size=1, max_size=4).map(".".join))
set_values = st.one_of(st.sampled_from(["64", "[8,4]", "ReLU", "{Linear: [4, 4]}", "null", "", "[", "&a [*a]",
                                        "!!python/name:os.system", "1e999", "cuda:9", "meta", "${hidden}"]),
                       words)


# --- the properties -------------------------------------------------------------

@FUZZ
@given(text=st.one_of(trees().map(dump), specs().map(dump)))
def test_generated_specs(run_cli, spec_file, text):
    run_both(run_cli, spec_file, text, "generated")


@FUZZ
@given(text=mutated_configs())
def test_mutated_configs(run_cli, spec_file, text):
    run_both(run_cli, spec_file, text, "mutated")


@FUZZ
@given(text=text_mutations())
def test_text_mutations(run_cli, spec_file, text):
    run_both(run_cli, spec_file, text, "text")


@FUZZ
@given(name=st.sampled_from(sorted(SHIPPED_TEXT)),
       sets=st.lists(st.builds(lambda p, v: f"{p}={v}", set_paths, set_values), min_size=1, max_size=3))
def test_set_overrides(run_cli, spec_file, name, sets):
    extra = [a for s in sets for a in ("--set", s)]
    run_both(run_cli, spec_file, SHIPPED_TEXT[name], "set", extra)


# --- the limits, each a clear error --------------------------------------------

def test_over_one_mib_is_refused(run_cli, write_spec):
    path = write_spec("model: [ReLU]\n" + "# padding\n" * (1 << 17))
    result = run_cli("validate", path)
    assert result.code == 2
    assert f"{path}: the file is larger than 1024 KiB" in result.err


@pytest.mark.parametrize("depth, ok", [(60, True), (64, False), (200, False), (10_000, False)])
def test_nesting_limit(run_cli, write_spec, depth, ok):
    path = write_spec("model: " + "[" * depth + "ReLU" + "]" * depth + "\n")
    with alarm(HANG_SECONDS):
        result = run_cli("validate", path)
    if ok:
        assert result.code == 0, result.err
    else:
        assert result.code == 2 and "nesting deeper than 64 levels" in result.err, result.err
        assert result.err.startswith(f"{path}:")


def test_billion_laughs_fails_fast(run_cli, write_spec):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = write_spec("\n".join(lines) + "\nmodel: *a9\n")  # 9**10 values once expanded
    run_cli("validate", "configs/mlp.yaml")  # warm imports, so the timing is netcli's own
    start = time.perf_counter()
    result = run_cli("validate", path)
    elapsed = time.perf_counter() - start
    assert result.code == 2
    assert "expands to more than 200000 values" in result.err
    assert elapsed < 1.0, f"{elapsed:.2f} s"  # ~0.3 s on an idle core


def test_recursive_alias_is_refused(run_cli, write_spec):
    path = write_spec("model: &m [ReLU, *m]\n")
    result = run_cli("validate", path)
    assert result.code == 2 and path.name in result.err and "Traceback" not in result.err


def test_duplicate_keys(run_cli, write_spec):
    path = write_spec("input: [2, 4]\nmodel: [ReLU]\nmodel: [Tanh]\n")
    result = run_cli("validate", path)
    assert result.code == 2
    assert f"{path}:3:1: the key 'model' is written twice (first at line 2)" in result.err


def test_repeat_beyond_limit(run_cli, write_spec):
    path = write_spec("model: {ReLU: [], repeat: 100000000}\n")
    result = run_cli("validate", path)
    assert result.code == 2 and f"{path}:1:" in result.err and "repeat" in result.err


def test_nested_repeats_do_not_hang(run_cli, write_spec):
    """Repeats multiply: 1000 copies of 1000 copies is a million modules, refused before building."""
    path = write_spec("blocks:\n  a: {Linear: [4, 4], repeat: 1000}\n  b: {use: a, repeat: 1000}\n"
                      "model: [{use: b}]\n")
    for command in ("validate", "build"):
        start = time.perf_counter()
        with alarm(HANG_SECONDS):
            result = run_cli(command, path, "--device", "meta")
        assert result.code == 2, result.err
        assert "modules" in result.err and f"{path}:" in result.err
        assert time.perf_counter() - start < 2


def test_parameters_the_device_cannot_hold(run_cli, write_spec, monkeypatch):
    """A network larger than the free memory is refused before allocating, suggesting --device meta."""
    path = write_spec("model:\n  - Linear: [100000, 100000]\n  - {Linear: [10, 10], repeat: 1000}\n")
    result = run_cli("build", path)
    assert result.code == 2
    assert f"{path}:2:" in result.err and "but only" in result.err and "--device meta" in result.err
    result = run_cli("build", path, "--device", "meta")
    assert result.code == 0, result.err
    assert "Linear" in result.out


# --- what the long runs found (each was an internal error; now a located one) ----

@pytest.mark.parametrize("text, message", [
    ("seed: 18446744073709551617\nmodel: ReLU\n", "seed: Input should be less than or equal to"),
    ("input: []\nmodel: [ReLU]\n", "input: List should have at least 1 item"),
    ("input: [9223372036854775808, 8]\nmodel: [{Linear: [8, 128]}]\n", "more elements than a tensor can hold"),
    ("input: [100000, 100000, 100000, 100000]\nmodel: [ReLU]\n", "more elements than a tensor can hold"),
    ("'\\n': null\n", "unknown top-level key '\\n'"),
    ("blocks:\n  a: {Linear: [4, 4], repeat: 1000}\n  b: {use: a, repeat: 1000}\nmodel: [{use: b}]\n",
     "more than 10,000 modules"),
])
def test_found_by_fuzzing(run_cli, write_spec, text, message):
    path = write_spec(text)
    for command in ("validate", "build"):
        with alarm(HANG_SECONDS):
            result = run_cli(command, path)
        check_result(result, str(path), "regression", command)
        assert result.code == 2 and message in result.err, result.err


# --- issue 16: generators for each class the red team found ----------------------------
#
# Each defect of issue 16 has a regression test in test_hardening.py; these
# generate the class around it. Besides exit 0 or 2, located, in time: no
# output carries a raw terminal control (ESC, C1, bidi), no canary file
# appears, and `save` (the one command here that writes without -o) writes
# only into its own folder.

CLASS_EXAMPLES = int(os.environ.get("NETCLI_FUZZ_CLASS_EXAMPLES", 600 if LONG else 10))  # long: 7 x 600
CLASS_FUZZ = settings(FUZZ, max_examples=CLASS_EXAMPLES)
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
CANARY = "netcli-canary"
SLOW = 1.0  # seconds: an example slower than this is counted ("slow"), not failed


def check_output(result) -> None:
    """What netcli printed holds no raw terminal control (names from a spec or file are escaped)."""
    for stream, text in (("stdout", result.out), ("stderr", result.err)):
        found = RAW_CONTROL.search(text)
        assert found is None, f"raw {found.group()!r} on {stream}:\n{text[:2000]!r}"


def run_class(run_cli, path: Path, text: str | None, generator: str, commands=("validate", "build"),
              extra=()) -> dict:
    """Run each command on the spec at `path` (written from `text`); check, count, and return the results."""
    if text is not None:
        path.write_text(text, encoding="utf-8")
    results = {}
    for command in commands:
        argv = command.split() if isinstance(command, str) else list(command)
        start = time.perf_counter()
        with alarm(HANG_SECONDS):
            result = run_cli(*argv, str(path), *extra)
        if time.perf_counter() - start > SLOW:
            COUNTS[(generator, argv[0], "slow")] += 1
        check_result(result, str(path), generator, argv[0])
        check_output(result)
        results[argv[0]] = result
    return results


def _module_attributes() -> list[str]:
    from torch import nn
    return sorted(n for n in dir(nn.Sequential()) if not n.isdigit())


NASTY = ["\x1b[8m", "\x1b]0;owned\x07", "\x1b[2J", "\x1bc", "\x9b31m", "\x85", "\u202e", "\u2066", "\u200f",
         "\u061c", "\u2028", "\r", "\b", "\x00", "\x7f", "\t", "\n", "\x1b"]
PATHS = ["../victim", "../../victim", "/tmp/netcli-victim", "..\\victim", "a/b", "..", ".", "-rf", ".hidden",
         f"$(touch {CANARY})", f"`touch {CANARY}`", f"__import__('os').system('touch {CANARY}')"]
attribute_names = st.deferred(lambda: st.sampled_from(_module_attributes()))
plain_parts = st.sampled_from(["a", "b0", "0", "12", "forward", "x y", "\u00e9t\u00e9", "\uff0e", "\u2024", "\u0663",
                               "_", "-", "{i}", "[0m", "]0;t"])
name_texts = st.one_of(
    attribute_names,
    st.lists(st.one_of(plain_parts, attribute_names), min_size=2, max_size=4).map(".".join),  # dotted
    st.builds(lambda a, b, c: a + b + c, plain_parts, st.sampled_from(NASTY), st.sampled_from(["", "x", "0m", "{i}"])),
    st.text(st.characters(whitelist_categories=("Cc", "Cf", "Zl", "Zp", "Ll")), min_size=1, max_size=6),
    st.sampled_from(PATHS),
    st.integers(250, 270).map(lambda n: "a" * n),  # around the 256-character limit
    plain_parts,
)
names_formats = st.one_of(
    st.sampled_from(["{i}", "b{i}", "{i:>400000000}", "{i:>{i}}", "{i.__class__}", "{i.real}", "{0}", "{j}", "{}",
                     "{i:.1f}", "{i:x}", "{i:c}", "{i!r}", "{i!a}", "{i:,}", "{{i}}", "{", "}", "{i:>64}", "{i:>65}",
                     "{i:%}", "{i:e}", "{i[0]}", "x", "", "{i}{i}", "{i:\x1b}", "{i:\u202e>3}"]),
    st.builds(lambda n, f: n + f, name_texts, st.sampled_from(["{i}", "", "{i:c}"])),
    st.builds(lambda s: "{i:" + s + "}", st.text(alphabet="<>^=+- #0123456789,_.bcdeEfFgGnosxX%{}", max_size=6)),
)


@st.composite
def named_specs(draw) -> str:
    """A small spec whose child names, `name:`, `names:` formats and top-level name come from name_texts."""
    model: list = [{"Linear": [4, 4]}]
    if draw(st.booleans()):
        model.append({"ReLU": [], "name": draw(name_texts)})
    if draw(st.booleans()):
        model.append({"Linear": [4, 4], "repeat": draw(st.integers(1, 14)), "names": draw(names_formats)})
    if draw(st.booleans()):
        keys = draw(st.lists(name_texts, min_size=1, max_size=3, unique=True))
        model.append({"Sequential": {k: draw(st.sampled_from(["ReLU", "Tanh", "Identity"])) for k in keys}})
    spec: dict = {"input": [2, 4], "model": model}
    if draw(st.booleans()):
        spec["name"] = draw(name_texts)
    if draw(st.booleans()):
        spec["blocks"] = {draw(name_texts): [{"ReLU": [], "name": draw(name_texts)}]}
    return dump(spec)


def _listing(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


@CLASS_FUZZ
@given(text=named_specs())
def test_generated_names(run_cli, tmp_path, text):
    """Issue 16, 3/5/12/17: names from controls, escapes, bidi, nn.Module attributes, dotted names, paths."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    for old in work.iterdir():
        old.unlink()
    path = tmp_path / "names.yaml"
    path.write_text(text, encoding="utf-8")
    watched = {p: _listing(p) for p in (tmp_path, tmp_path.parent)}  # others' folders: only our names below
    results = run_class(run_cli, path, None, "names")
    if results["build"].code == 0:  # save without -o writes NAME.safetensors into the current folder
        here = os.getcwd()
        os.chdir(work)
        try:
            run_class(run_cli, path, None, "names", commands=("save",))
        finally:
            os.chdir(here)
        assert all(p.suffix == ".safetensors" for p in work.iterdir()), sorted(os.listdir(work))
    for folder, before in watched.items():
        assert _listing(folder) <= before, folder
    assert not any(p.name.startswith((CANARY, "netcli-victim", "victim")) for folder in (work, ROOT, Path("/tmp"))
                   for p in folder.iterdir())


@st.composite
def multiplying_vars(draw) -> str:
    """`${}` variables that each use earlier ones several times, at a random depth (sometimes a cycle)."""
    n = draw(st.integers(2, 48))
    variables: dict = {"v0": draw(st.sampled_from(["xxxxxxxxxxxxxxxx", "8", "a", "", "4.0", "${v0}"]))}
    for i in range(1, n):
        refs = [f"${{v{draw(st.integers(max(0, i - draw(st.integers(1, 4))), i if draw(st.integers(0, 30)) else n))}}}"
                for _ in range(draw(st.integers(1, 4)))]
        shape = draw(st.sampled_from(["text", "text", "list", "map", "one"]))
        if shape == "text":
            variables[f"v{i}"] = draw(st.sampled_from(["", "-", " "])).join(refs)
        elif shape == "list":
            variables[f"v{i}"] = refs
        elif shape == "map":
            variables[f"v{i}"] = {f"k{j}": r for j, r in enumerate(refs)}
        else:
            variables[f"v{i}"] = refs[0]
    top = f"${{v{draw(st.integers(max(0, n - 3), n - 1))}}}"
    where = draw(st.sampled_from(["dropout", "linear", "name", "names", "input", "init", "model", "nested"]))
    model: list = [{"Linear": [4, 4]}]
    spec: dict = {"input": [2, 4], "vars": variables, "model": model}
    if where == "dropout":
        model.append({"Dropout": top})
    elif where == "linear":
        model.append({"Linear": [4, top]})
    elif where == "name":
        model.append({"ReLU": [], "name": top})
    elif where == "names":
        model.append({"ReLU": [], "repeat": 2, "names": top + "{i}"})
    elif where == "input":
        spec["input"] = [top, 4]
    elif where == "init":
        spec["init"] = [f"normal(std={top}):*"]
    elif where == "model":
        spec["model"] = top
    else:
        model.append({"Sequential": [{"Dropout": {"p": top}}, {"ReLU": [], "name": f"r{top}"}]})
    return dump(spec)


@CLASS_FUZZ
@given(text=multiplying_vars())
def test_multiplying_variables(run_cli, tmp_path, text):
    """Issue 16, 11: variables that multiply the spec's text or values are bounded, never a hang."""
    try:
        run_class(run_cli, tmp_path / "vars.yaml", text, "vars")
    except Hang as exc:  # an Exception, so that hypothesis reports (and shrinks) the spec
        raise AssertionError(f"no answer after {HANG_SECONDS} s:\n{text}") from exc


INIT_NAMES = ["normal", "uniform", "constant", "trunc_normal", "xavier", "xavier_normal", "kaiming", "kaiming_normal",
              "orthogonal", "sparse", "eye", "zeros", "ones", "dirac"]
ARG_NAMES = ["std", "mean", "a", "b", "gain", "val", "sparsity", "mode", "nonlinearity", "low", "high"]
TEXT_NUMBERS = ["1e400", "-1e400", "1e999", "-1e999", "1e+400", "inf", "-inf", "nan", "NaN", "Infinity", "1e308",
                "1.7976931348623157e308", "1e-400", "-1e-400", "5e-324", "1e-320", "0", "-0.0", "1e39", "-1e39",
                "10**400", "9" * 400, "-" + "9" * 400, "1_000", "0x10", "1/0", "float('inf')", "'1e400'",
                "[1e400]", "{'a': 1e400}", "(1e400,)", "True", "None", "1e400j", "()", ""]
YAML_NUMBERS = [".nan", ".NaN", ".inf", "-.inf", "+.inf", "1.0e+400", "-1.0e+999", "1e400", "1.0e-400", "5.0e-324",
                "1.0e+308", "9" * 400, "-" + "9" * 400, "0x" + "f" * 120, "[1.0e+400]", "{x: .nan}", "[[.inf]]",
                "0", "1.5", "'1e400'", "null"]


@st.composite
def init_rules(draw) -> tuple[str, str]:
    """(how it is given, the rule): a text rule with inf/nan/huge/tiny arguments, or the long form in YAML."""
    init = draw(st.sampled_from(INIT_NAMES))
    target = draw(st.sampled_from(["*", "0", "Linear", "*.bias", "1.weight"]))
    form = draw(st.sampled_from(["rule", "text", "long", "const"]))
    if form == "const":
        return "text", f"const{draw(st.sampled_from(TEXT_NUMBERS))}:{target}"
    if form in ("rule", "text"):
        positional = draw(st.lists(st.sampled_from(TEXT_NUMBERS), max_size=2))
        keywords = draw(st.dictionaries(st.sampled_from(ARG_NAMES), st.sampled_from(TEXT_NUMBERS), max_size=2))
        inner = ", ".join(positional + [f"{k}={v}" for k, v in keywords.items()])
        return form, f"{init}({inner}):{target}"
    values = draw(st.lists(st.sampled_from(YAML_NUMBERS), min_size=1, max_size=3))
    if draw(st.booleans()):
        arguments = "{" + ", ".join(f"{k}: {v}" for k, v in zip(draw(st.permutations(ARG_NAMES)), values)) + "}"
    else:
        arguments = "[" + ", ".join(values) + "]"
    return "long", f"{{init: {init}, args: {arguments}, target: '{target}'}}"


@CLASS_FUZZ
@given(rules=st.lists(init_rules(), min_size=1, max_size=3))
def test_non_finite_init_arguments(run_cli, tmp_path, rules):
    """Issue 16, 22: initializer arguments inf, nan, huge or tiny, in the text and the long form."""
    base = "input: [2, 4]\nmodel:\n  - Linear: [4, 3]\n  - ReLU\n  - Linear: [3, 2]\n"
    in_spec = [r for form, r in rules if form != "rule"]
    on_line = [a for form, r in rules if form == "rule" for a in ("--rule", r)]
    text = base + ("init:\n" + "".join(f"  - {r if r.startswith('{') else json.dumps(r)}\n" for r in in_spec)
                   if in_spec else "")
    path = tmp_path / "init.yaml"
    path.write_text(text, encoding="utf-8")
    run_class(run_cli, path, None, "init-args", commands=("validate",))
    run_class(run_cli, path, None, "init-args", commands=("init",), extra=on_line)


def _set_spec_paths():
    out = []
    for name, data in sorted(SHIPPED.items()):
        out += [(name, p) for p in paths_of(data) if p]
    return out


def _typo(draw, word: str) -> str:
    how = draw(st.sampled_from(["drop", "add", "swap", "case", "suffix"]))
    if not word or how == "suffix":
        return word + draw(st.sampled_from(["x", "_", "s", "2", "\u200f", "\x1b[8m"]))
    i = draw(st.integers(0, len(word) - 1))
    if how == "drop":
        return word[:i] + word[i + 1:] or "x"
    if how == "add":
        return word[:i] + draw(st.sampled_from("aeiouxz_")) + word[i:]
    if how == "swap" and len(word) > 1:
        j = min(i + 1, len(word) - 1)
        return word[:i] + word[j] + word[i] + word[j + 1:] if j != i else word + "x"
    return word.swapcase() if word.swapcase() != word else word + "X"


@st.composite
def missing_set_paths(draw) -> tuple[str, list[str], bool]:
    """(config, --set arguments, must it fail): paths next to real ones that do not exist."""
    name, real = draw(st.deferred(lambda: st.sampled_from(_set_spec_paths())))
    parts = [str(p) for p in real]
    how = draw(st.sampled_from(["typo", "deeper", "index", "new-var", "new-block", "top", "under"]))
    must_fail = False
    if how == "typo":
        parts[-1] = _typo(draw, parts[-1])
    elif how == "deeper":
        parts += draw(st.lists(st.sampled_from(["x", "0", "hidden", "Linear", "__dict__", "repeat"]), min_size=1,
                               max_size=3))
    elif how == "index":
        parts[-1] = draw(st.sampled_from(["99", "-99", "1000000000000", "-1", "1.5", "0x1"]))
    elif how == "new-var":  # a fresh variable nothing uses: always an error (issue 16, 23)
        parts, must_fail = ["vars", "zz_" + draw(st.text(alphabet="abcdefgh_", min_size=1, max_size=6))], True
    elif how == "new-block":
        parts, must_fail = ["blocks", "zz_" + draw(st.text(alphabet="abcdefgh_", min_size=1, max_size=6))], True
    elif how == "top":
        parts = [_typo(draw, draw(st.sampled_from(["vars", "blocks", "model", "input", "init", "seed", "name"])))]
    else:
        parts = [draw(st.sampled_from(["vars", "blocks", "init", "input", "seed"]))] + parts[1:] + ["x"]
    value = draw(st.one_of(set_values, st.sampled_from(["8", "[ReLU]", "{Linear: [4, 4]}", "${hidden}"])))
    sets = [f"{'.'.join(parts)}={value}"]
    if draw(st.integers(0, 3)) == 0:
        sets.append(draw(st.builds(lambda p, v: f"{p}={v}", set_paths, set_values)))
    return name, sets, must_fail and len(sets) == 1


@CLASS_FUZZ
@given(case=missing_set_paths())
def test_set_paths_that_do_not_exist(run_cli, case):
    """Issue 16, 23: --set onto keys that do not exist, under vars, blocks and elsewhere."""
    name, sets, must_fail = case
    path = ROOT / "configs" / name  # in place: its `extends:` resolve; nothing is written
    results = run_class(run_cli, path, None, "set-missing", extra=[a for s in sets for a in ("--set", s)])
    if must_fail and "${zz_" not in SHIPPED_TEXT[name]:
        for command, result in results.items():
            assert result.code == 2 and f"--set {sets[0].split('=')[0]}=" in result.err, (command, result.err)
