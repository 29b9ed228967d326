"""Damaged tensor files: generated corruptions of .safetensors and torch zip files.

`show` and `load` on each damaged file exit 0 or exit 2 with a message that
names the file; never a traceback, a crash or a hang. A netcli .safetensors
file that still loads gives exactly the saved values (its crc32s and spec
sha256 catch the rest). A subprocess runs a systematic batch of corruptions
and checks that its peak memory stays far below what the damaged headers
declare.

`NETCLI_FUZZ=long` runs 1,500 generated corruptions per format
(docs/RELIABILITY.md).
"""
from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from test_fuzz_specs import CANARY, CLASS_EXAMPLES, COUNTS, HANG_SECONDS, SLOW, alarm, check_output, write_report

LONG = os.environ.get("NETCLI_FUZZ") == "long"
EXAMPLES = int(os.environ.get("NETCLI_FUZZ_FILE_EXAMPLES", 1_500 if LONG else 40))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large], print_blob=False)
SPECS = ["mlp.yaml", "shared.yaml", "named.yaml"]  # plain, tied, named children


@functools.lru_cache(maxsize=None)
def saved_files() -> dict:
    """Save each spec once in both formats; return {file name: (bytes, state_dict)}."""
    import tempfile
    from netcli.io.checkpoint_save import save_checkpoint
    from netcli.init.engine import build_model
    from netcli.builder.validate import load_spec
    folder = Path(tempfile.mkdtemp(prefix="netcli-fuzz-"))
    out = {}
    for name in SPECS:
        built = build_model(load_spec(str(ROOT / "configs" / name)), seed=0)
        state = {k: v.clone() for k, v in built.net.state_dict().items()}
        for suffix in (".safetensors", ".pt"):
            path = folder / (Path(name).stem + suffix)
            save_checkpoint(built, path)
            out[path.name] = (path.read_bytes(), state)
    torch.save([torch.arange(6.0), {"w": torch.ones(2, 3)}], folder / "list.pt")
    out["list.pt"] = ((folder / "list.pt").read_bytes(), None)
    return out


@pytest.fixture
def originals() -> dict:
    """The saved files (a plain function underneath, so hypothesis does not print them)."""
    return saved_files()


@pytest.fixture(scope="module", autouse=True)
def report():
    start = time.time()
    yield
    write_report("files", start, files=True)


# --- corruptions ----------------------------------------------------------------

class Blob(bytes):
    """Bytes that print as their length, so a failing example's report stays short."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


def st_regions(data: bytes) -> dict[str, tuple[int, int]]:
    """The byte ranges of a safetensors file: length prefix, JSON header, tensor data."""
    n = struct.unpack("<Q", data[:8])[0]
    return {"prefix": (0, 8), "header": (8, 8 + n), "data": (8 + n, len(data))}


def zip_regions(data: bytes) -> dict[str, tuple[int, int]]:
    """The byte ranges of a torch zip file: each entry's local header+data, the central directory."""
    import io
    zf = zipfile.ZipFile(io.BytesIO(data))
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    regions = {}
    for a, b in zip(infos, infos[1:] + [None]):
        end = b.header_offset if b else zf.start_dir
        regions[a.filename.split("/", 1)[-1]] = (a.header_offset, end)
    regions["central directory"] = (zf.start_dir, len(data))
    return regions


def rebuild_safetensors(header: dict, data: bytes, *, declared: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if declared is None else declared) + text + data


@st.composite
def safetensors_damage(draw, data: bytes) -> tuple[str, bytes]:
    regions = st_regions(data)
    n = regions["header"][1] - 8
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    names = [k for k in header if k != "__metadata__"]
    kind = draw(st.sampled_from(["truncate", "flip", "length", "dtype", "shape", "offsets", "overlap",
                                 "drop", "metadata", "junk"]))
    if kind == "truncate":
        region = draw(st.sampled_from(sorted(regions)))
        lo, hi = regions[region]
        return f"truncate in {region}", Blob(data[:draw(st.integers(lo, max(lo, hi - 1)))])
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(out) - 1))
            out[i] ^= draw(st.integers(1, 255))
        return "flipped bytes", Blob(out)
    if kind == "length":  # a huge or wrong declared header length
        declared = draw(st.sampled_from([0, 1, n - 1, n + 1, len(data), 2**31, 2**32 + n, 2**63, 2**64 - 1]))
        return f"header length {declared}", Blob(struct.pack("<Q", declared) + data[8:])
    name = draw(st.sampled_from(names)) if names else None
    if kind == "dtype" and name:
        header[name]["dtype"] = draw(st.sampled_from(["F16", "F64", "I8", "BOOL", "U64", "X9", "", 3, None]))
    elif kind == "shape" and name:
        header[name]["shape"] = draw(st.sampled_from([[2**40], [2**31, 2**31], [-1], [0], [], ["a"], [1] * 70,
                                                      [3, 3], None]))
    elif kind == "offsets" and name:
        header[name]["data_offsets"] = draw(st.sampled_from([[0, 2**62], [2**62, 2**62 + 4], [8, 4], [-4, 0],
                                                             [0, len(body) + 1], [0], "x", [0.5, 1]]))
    elif kind == "overlap" and len(names) > 1:
        a, b = draw(st.permutations(names))[:2]
        header[b]["data_offsets"] = list(header[a]["data_offsets"])
    elif kind == "drop" and name:
        del header[name]
    elif kind == "metadata":
        meta = header.setdefault("__metadata__", {})
        key = draw(st.sampled_from(["netcli.aliases", "netcli.crc32", "netcli.spec", "netcli.spec_sha256", "x"]))
        meta[key] = draw(st.one_of(st.sampled_from(["{", "[]", '{"a": "b"}', "{}", "null", '{"0.weight": "x"}',
                                                     "model: [ReLU]\n", "model: *x"]),
                                   st.integers(), st.none(), st.text(max_size=10)))
    else:
        header[draw(st.text(max_size=8))] = draw(st.one_of(st.integers(), st.text(max_size=5),
                                                           st.just({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})))
    return kind, Blob(rebuild_safetensors(header, body))


@st.composite
def zip_damage(draw, data: bytes) -> tuple[str, bytes]:
    regions = zip_regions(data)
    kind = draw(st.sampled_from(["truncate", "flip", "flip-in", "declared-size", "entry"]))
    if kind == "truncate":
        region = draw(st.sampled_from(sorted(regions)))
        lo, hi = regions[region]
        return f"truncate in {region}", Blob(data[:draw(st.integers(lo, max(lo, hi - 1)))])
    out = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] ^= draw(st.integers(1, 255))
        return "flipped bytes", Blob(out)
    if kind == "flip-in":  # inside one entry: the pickle, a storage, the version record
        region = draw(st.sampled_from(sorted(regions)))
        lo, hi = regions[region]
        i = draw(st.integers(lo, hi - 1))
        out[i] ^= draw(st.integers(1, 255))
        return f"flip in {region}", Blob(out)
    if kind == "declared-size":  # the central directory's sizes of one entry
        cd = regions["central directory"][0]
        heads = [i for i in range(cd, len(out) - 46) if out[i:i + 4] == b"PK\x01\x02"]
        i = draw(st.sampled_from(heads))
        field = draw(st.sampled_from([20, 24, 42]))  # compressed size, uncompressed size, local header offset
        value = draw(st.sampled_from([0, 1, 0xFFFFFFFE, 0xFFFFFFFF, 2**31]))
        out[i + field:i + field + 4] = struct.pack("<I", value)
        return f"declared size at +{field} = {value}", Blob(out)
    # rewrite one entry of the archive: shorter, longer, or another entry's bytes
    import io
    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    victim = draw(st.sampled_from(names))
    how = draw(st.sampled_from(["empty", "double", "swap", "drop"]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for name in names:
            body = src.read(name)
            if name == victim:
                if how == "drop":
                    continue
                body = b"" if how == "empty" else body * 2 if how == "double" else src.read(
                    names[(names.index(name) + 1) % len(names)])
            dst.writestr(name, body)
    return f"entry {victim.split('/', 1)[-1]}: {how}", Blob(buf.getvalue())


# --- checking -------------------------------------------------------------------

def check(result, path: Path, generator: str, command: str) -> None:
    err = result.err
    assert "Traceback" not in err and "internal error" not in err, err
    assert result.code in (0, 2), f"exit {result.code}\n{err}"
    COUNTS[(generator, command, "ok" if result.code == 0 else "error")] += 1
    if result.code == 2:
        first = err.strip().splitlines()[0]
        assert first.startswith(str(path)), f"the message does not name the file:\n{err}"


def damage_and_run(run_cli, tmp_path, originals, name, damage, generator):
    what, data = damage
    path = tmp_path / name
    path.write_bytes(data)
    results = {}
    for command in ("show", "load"):
        if command == "load" and name == "list.pt":
            continue
        with alarm(HANG_SECONDS):
            results[command] = result = run_cli(command, str(path))
        check(result, path, generator, command)
    load = results.get("load")
    if load is not None and load.code == 0 and name.endswith(".safetensors"):
        from netcli.app.restore import load_checkpoint
        state = load_checkpoint(path).net.state_dict()
        saved = originals[name][1]
        assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved), \
            f"{what}: a damaged file loaded other values without an error"


@FUZZ
@given(data=st.data(), name=st.sampled_from([s.replace(".yaml", ".safetensors") for s in SPECS]))
def test_damaged_safetensors(run_cli, tmp_path, data, name):
    damage = data.draw(safetensors_damage(saved_files()[name][0]), label="damage")
    damage_and_run(run_cli, tmp_path, saved_files(), name, damage, "file-safetensors")


@FUZZ
@given(data=st.data(), name=st.sampled_from([s.replace(".yaml", ".pt") for s in SPECS] + ["list.pt"]))
def test_damaged_torch_zip(run_cli, tmp_path, data, name):
    damage = data.draw(zip_damage(saved_files()[name][0]), label="damage")
    damage_and_run(run_cli, tmp_path, saved_files(), name, damage, "file-torch")


def test_every_truncation_point_of_a_small_file(run_cli, tmp_path, originals):
    """Cut the mlp files at every 97th byte and at each region's edges: each is a clear error."""
    for name in ("shared.safetensors", "shared.pt"):
        data = originals[name][0]
        regions = st_regions(data) if name.endswith(".safetensors") else zip_regions(data)
        cuts = set(range(0, len(data), 97)) | {e + d for lo, hi in regions.values() for e in (lo, hi)
                                               for d in (-1, 0, 1) if 0 <= e + d < len(data)}
        for cut in sorted(cuts):
            path = tmp_path / name
            path.write_bytes(data[:cut])
            for command in ("show", "load"):
                result = run_cli(command, str(path))
                check(result, path, "file-truncate", command)
                assert result.code == 2, f"{name} cut at {cut}/{len(data)} {command}: exit 0"


# --- memory: nothing the damaged header declares is allocated ------------------

MEMORY_CHILD = textwrap.dedent('''
    import json, os, resource, struct, sys
    from netcli.cli import commands

    def run(*args):
        try:
            commands.main(list(args))
        except SystemExit as exc:
            return exc.code
        return 0

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

    folder = sys.argv[1]
    good = os.path.join(folder, "good.safetensors")
    run("show", good), run("load", good)  # warm: imports and one real load
    base = peak()
    results = []
    for name in sorted(os.listdir(folder)):
        if name.startswith("bad"):
            path = os.path.join(folder, name)
            codes = (run("show", path), run("load", path))
            results.append([name, codes, peak() - base])
    print(json.dumps({"base": base, "results": results}))
''')


def test_huge_declared_sizes_allocate_nothing(tmp_path, originals):
    """Headers that declare terabytes: the peak RSS of the process grows by less than 64 MiB.

    RSS counts pages actually touched; an allocation the kernel only reserves
    is not seen, but reading or zeroing a declared terabyte would be.
    """
    data = originals["mlp.safetensors"][0]
    (tmp_path / "good.safetensors").write_bytes(data)
    n = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8:8 + n]), data[8 + n:]
    cases = {"length": struct.pack("<Q", 2**40) + data[8:], "length-file": struct.pack("<Q", len(data) - 8) + data[8:]}
    for i, shape in enumerate([[2**20, 2**20], [2**31, 4], [2**40]]):
        h = json.loads(json.dumps(header))
        h["0.weight"]["shape"] = shape
        h["0.weight"]["data_offsets"] = [0, 4 * shape[0] * (shape[1] if len(shape) > 1 else 1)]
        cases[f"shape{i}"] = rebuild_safetensors(h, body)
    for name, blob in cases.items():
        (tmp_path / f"bad-{name}.safetensors").write_bytes(blob)
    pt = bytearray(originals["mlp.pt"][0])
    for i in range(len(pt) - 46):  # every entry's declared sizes: 4 GiB
        if pt[i:i + 4] == b"PK\x01\x02":
            pt[i + 20:i + 28] = struct.pack("<II", 0xFFFFFFF0, 0xFFFFFFF0)
    (tmp_path / "bad-zip-sizes.pt").write_bytes(bytes(pt))
    script = tmp_path / "child.py"
    script.write_text(MEMORY_CHILD)
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(found["results"]) == len(cases) + 1
    if os.environ.get("NETCLI_FUZZ_REPORT"):
        with open(os.environ["NETCLI_FUZZ_REPORT"], "a") as f:
            f.write(json.dumps({"module": "memory", **found}) + "\n")
    for name, codes, grew in found["results"]:
        assert codes == [2, 2], (name, codes, out.stderr)
        assert grew < 64 << 20, f"{name}: peak memory grew by {grew / 2**20:.0f} MiB"


# --- issue 16: generators for the file classes ------------------------------------------
#
# Shared-reference pickle DAGs (9), zip central directories that list one
# compressed entry many times (10), tied-name aliases that shadow stored
# tensors (20). Sizes are bounded: each file is under 1 MiB on disk and
# inflates to at most 8 MiB per entry.

CLASS_FUZZ = settings(FUZZ, max_examples=CLASS_EXAMPLES)


class Canary:
    """Unpickled, it would create the canary file: weights_only must refuse it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def run_file(run_cli, path: Path, generator: str, commands=("show", "load")) -> dict:
    results = {}
    for command in commands:
        start = time.perf_counter()
        with alarm(HANG_SECONDS):
            results[command] = result = run_cli(command, str(path))
        if time.perf_counter() - start > SLOW:
            COUNTS[(generator, command, "slow")] += 1
        check(result, path, generator, command)
        check_output(result)
    return results


@st.composite
def pickle_dags(draw) -> tuple[str, object, bool]:
    """(what, a nested object whose levels reuse earlier ones, whether it holds a canary)."""
    depth = draw(st.integers(1, 130))
    levels: list = [draw(st.sampled_from(["tensor", "int", "text"]))]
    levels[0] = {"tensor": torch.ones(1), "int": 3, "text": "x\x1b[8m"}[levels[0]]
    for i in range(1, depth + 1):
        width = draw(st.integers(1, 4))
        back = draw(st.sampled_from([1, 1, 1, 2, 5, i]))  # how far back a level may reach
        kids = [levels[draw(st.integers(max(0, i - back), i - 1))] for _ in range(width)]
        kind = draw(st.sampled_from(["list", "tuple", "dict", "dict"]))
        if kind == "dict":
            keys = draw(st.lists(st.sampled_from(["a", "w", "0", "weight", "\u202eb", "x.y", "\x1b]0;t\x07"]),
                                 min_size=width, max_size=width, unique=True))
            levels.append(dict(zip(keys, kids)))
        else:
            levels.append(kids if kind == "list" else tuple(kids))
    top = levels[-1]
    canary = draw(st.integers(0, 9)) == 0
    if canary:
        top = {"model": top, "note": Canary(CANARY)}
    return f"depth {depth}", top, canary


@CLASS_FUZZ
@given(dag=pickle_dags())
def test_shared_reference_dags(run_cli, tmp_path, dag):
    """Issue 16, 9: pickles whose containers share references, at random depth and width."""
    what, obj, canary = dag
    path = tmp_path / "dag.pt"
    torch.save(obj, path)
    assert path.stat().st_size < 1 << 20, what
    here = os.getcwd()
    os.chdir(tmp_path)  # a canary that ran would be written here
    try:
        results = run_file(run_cli, path, "file-dag")
    finally:
        os.chdir(here)
    assert not (tmp_path / CANARY).exists() and not (ROOT / CANARY).exists(), what
    if canary:
        assert results["show"].code == 2, results["show"].out


def _one_entry_listed(copies: int, size: int, name: str, same_name: bool, method: int, real: bytes | None) -> bytes:
    """A zip whose central directory lists one compressed entry `copies` times (plus a real torch file's)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        if real is not None:
            src = zipfile.ZipFile(io.BytesIO(real))
            for info in src.infolist():
                zf.writestr(info.filename, src.read(info.filename))
            name = src.namelist()[0].split("/", 1)[0] + "/data/" + name
        with zf.open(name, "w") as f:
            chunk = bytes(min(size, 1 << 20))
            left = size
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
    data = buf.getvalue()
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12:eocd + 20])
    records, i = [], cd_offset
    while i < cd_offset + cd_size:
        n, m, k = struct.unpack("<HHH", data[i + 28:i + 34])
        records.append(data[i:i + 46 + n + m + k])
        i += 46 + n + m + k
    bomb, encoded = records[-1], name.encode()
    copied = [bomb if same_name else bomb.replace(encoded, encoded[:-1] + b"%d" % j, 1)
              for j in range(copies)]
    if not same_name:  # the renamed records keep their length field right
        copied = [r[:28] + struct.pack("<H", len(encoded) - 1 + len(b"%d" % j)) + r[30:] for j, r in enumerate(copied)]
    table = b"".join(records[:-1] + copied)
    end = bytearray(data[eocd:eocd + 22])
    total = len(records) - 1 + copies
    end[8:10] = end[10:12] = struct.pack("<H", min(total, 0xFFFF))
    end[12:16] = struct.pack("<I", len(table))
    return data[:cd_offset] + table + bytes(end)


@CLASS_FUZZ
@given(copies=st.integers(1, 3000), size=st.sampled_from([0, 1, 1000, 1 << 16, 1 << 20, 8 << 20]),
       name=st.sampled_from(["0", "bomb", "data.pkl", "\x1b[8m"]), same_name=st.booleans(),
       method=st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]), real=st.booleans())
def test_zip_directories_listing_one_entry(run_cli, tmp_path, copies, size, name, same_name, method, real):
    """Issue 16, 10: many central-directory entries pointing at one compressed entry."""
    if method == zipfile.ZIP_STORED:
        size = min(size, 1 << 16)  # the file on disk stays small
    data = _one_entry_listed(copies, size, name, same_name, method,
                             saved_files()["mlp.pt"][0] if real else None)
    assert len(data) < 1 << 20
    path = tmp_path / "listed.pt"
    path.write_bytes(data)
    results = run_file(run_cli, path, "file-zip-listed")
    if copies > 1:  # entries that share bytes are damage, whatever they are called
        assert results["show"].code == 2 and results["load"].code == 2, results["show"].out


@st.composite
def shadowing_aliases(draw, stored: list[str], aliases: dict) -> dict:
    """A tied-name table whose names (some of them) are stored names, aliases, cycles, or junk."""
    table = dict(aliases) if draw(st.booleans()) else {}
    names = st.one_of(st.sampled_from(stored), st.sampled_from(sorted(aliases) or stored),
                      st.sampled_from(["x", "0.weight.x", "", "\x1b[8m0.weight", "\u202e1.bias", "../w"]))
    for _ in range(draw(st.integers(1, 4))):
        table[draw(names)] = draw(names)
    return table


@CLASS_FUZZ
@given(data=st.data())
def test_tied_aliases_that_shadow_stored_names(run_cli, tmp_path, data):
    """Issue 16, 20: a tied name in the metadata that is also a stored tensor is damage, never a second value."""
    raw = saved_files()["shared.safetensors"][0]
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    stored = sorted(k for k in header if k != "__metadata__")
    aliases = json.loads(header["__metadata__"].get("netcli.aliases", "{}"))
    table = data.draw(shadowing_aliases(stored, aliases), label="aliases")
    header["__metadata__"]["netcli.aliases"] = json.dumps(table)
    path = tmp_path / "shared.safetensors"
    path.write_bytes(rebuild_safetensors(header, body))
    results = run_file(run_cli, path, "file-aliases")
    if any(k in stored and v != k for k, v in table.items()):
        assert results["show"].code == 2 and results["load"].code == 2, (table, results["show"].out)
    if results["load"].code == 0:
        from netcli.app.restore import load_checkpoint
        state = load_checkpoint(path).net.state_dict()
        saved = saved_files()["shared.safetensors"][1]
        assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved), table
