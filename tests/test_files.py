"""Tests for netcli.io.checkpoint and the save / load / show commands, against hand-written PyTorch."""
from __future__ import annotations

import io
import json
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from netcli.core.progress import Progress
from netcli.io.checkpoint_load import load_into
from netcli.io.checkpoint_save import save_checkpoint
from netcli.app.restore import load_checkpoint
from netcli.init.engine import build_model
from netcli.core.errors import NetcliError
from netcli.builder.validate import load_spec

from conftest import CONFIGS, ROOT
CPU_CONFIGS = [c for c in CONFIGS if "cuda" not in c.read_text()]


def config(name: str) -> str:
    return str(ROOT / "configs" / f"{name}.yaml")


class MLP(nn.Module):
    """The chapter's MLP of "reading and writing files": hidden, output, F.relu."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.output = nn.Linear(256, 10)

    def forward(self, x):
        return self.output(F.relu(self.hidden(x)))


def built_of(spec: str, seed: int = 0, **kw):
    return build_model(load_spec(spec), seed=seed, **kw)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ---------------------------------------------------------------- interoperability


def test_safetensors_file_loads_with_the_library_alone_into_handwritten_module(tmp_path):
    path = tmp_path / "mlp.safetensors"
    built = built_of(config("mlp"))
    save_checkpoint(built, path)
    tensors = load_file(str(path))  # the safetensors library alone, no netcli
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))  # the chapter's 5.1 net
    net.load_state_dict(tensors, strict=True)
    assert_same_state(net, built.net)
    x = torch.rand(2, 20)
    assert torch.equal(net(x), built.net(x))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    loaded = built.loaded
    assert meta["netcli.spec"] == loaded.resolved_text
    assert meta["netcli.spec_sha256"] == loaded.sha256
    import hashlib
    assert hashlib.sha256(meta["netcli.spec"].encode()).hexdigest() == meta["netcli.spec_sha256"]
    assert meta["torch.version"] == torch.__version__
    assert meta["netcli.version"]


def test_tied_tensors_are_stored_once_and_their_other_names_recorded(tmp_path):
    path = tmp_path / "shared.safetensors"
    built = built_of(config("shared"))
    save_checkpoint(built, path)
    tensors = load_file(str(path))
    assert "2.weight" in tensors and "4.weight" not in tensors and "4.bias" not in tensors
    with safe_open(str(path), framework="pt") as f:
        aliases = json.loads(f.metadata()["netcli.aliases"])
    assert aliases == {"4.weight": "2.weight", "4.bias": "2.bias"}
    # the library alone restores the hand-written net once the recorded names are filled in
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
    net.load_state_dict({**tensors, **{a: tensors[s] for a, s in aliases.items()}}, strict=True)
    assert_same_state(net, built.net)


def test_chapter_mlp_params_loads_into_named_spec_with_identical_outputs(tmp_path, run_cli):
    torch.manual_seed(7)
    net = MLP()
    X = torch.randn(size=(2, 20))
    Y = net(X)
    params = tmp_path / "mlp.params"
    torch.save(net.state_dict(), params)  # exactly the chapter's line
    torch.save(X, tmp_path / "x.pt")

    clone = load_checkpoint(params, config("named")).net
    clone.eval()
    Y_clone = clone(X)
    assert torch.equal(Y_clone, Y)  # the chapter's Y_clone == Y

    r = run_cli("run", config("named"), "--checkpoint", params, "--input", tmp_path / "x.pt", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["values"] == Y.tolist()

    r = run_cli("load", params, config("named"), "--input", tmp_path / "x.pt", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["output"]["values"] == Y.tolist()
    assert sorted(data["loaded"]) == sorted(net.state_dict())


def test_torch_format_is_a_plain_state_dict_the_chapter_can_read(tmp_path, run_cli):
    out = tmp_path / "named.params"
    r = run_cli("save", config("named"), "-o", out, "--seed", "3")
    assert r.code == 0, r.err
    state = torch.load(out, weights_only=True)
    assert isinstance(state, OrderedDict)
    net = MLP()
    net.load_state_dict(state)  # the chapter's clone.load_state_dict(torch.load('mlp.params'))
    torch.manual_seed(3)
    hand = nn.Sequential(OrderedDict([("hidden", nn.Linear(20, 256)), ("act", nn.ReLU()),
                                      ("output", nn.Linear(256, 10))]))
    for k, v in hand.state_dict().items():
        assert torch.equal(state[k], v), k


def test_torch_format_keeps_tied_tensors_shared(tmp_path):
    out = tmp_path / "shared.pt"
    save_checkpoint(built_of(config("shared")), out)
    state = torch.load(out, weights_only=True)
    assert state["2.weight"].data_ptr() == state["4.weight"].data_ptr()
    net = load_checkpoint(out, config("shared")).net
    assert net[2].weight is net[4].weight


# ---------------------------------------------------------------- save, load, run


@pytest.mark.parametrize("path", CPU_CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_save_load_run_gives_identical_outputs(path, suffix, tmp_path, run_cli):
    out = tmp_path / f"net{suffix}"
    r = run_cli("save", path, "-o", out, "--seed", "0")
    assert r.code == 0, r.err
    original = built_of(str(path), seed=0)
    clone = load_checkpoint(out, str(path)).net
    assert_same_state(clone, original.net)
    spec_input = original.loaded.spec.input
    if spec_input is not None:
        from netcli.io.inputs import call, make_input
        x = make_input(None, spec_input, "cpu")
        original.net.eval(), clone.eval()
        ours, theirs = (torch.utils._pytree.tree_leaves(call(n, x)) for n in (clone, original.net))
        assert len(ours) == len(theirs) and all(map(torch.equal, ours, theirs))  # a tuple of outputs too


@pytest.mark.parametrize("path", CPU_CONFIGS, ids=lambda p: p.stem)
def test_load_without_spec_rebuilds_the_same_network(path, tmp_path, run_cli):
    out = tmp_path / "net.safetensors"
    assert run_cli("save", path, "-o", out).code == 0
    printed = run_cli("build", path, "--print")
    loaded = run_cli("load", out)
    assert loaded.code == 0, loaded.err
    assert loaded.out == printed.out
    original = built_of(str(path), seed=0)
    assert loaded.out.rstrip("\n") == str(original.net)


def test_shared_layers_are_one_tensor_again_after_load(tmp_path, run_cli):
    out = tmp_path / "shared.safetensors"
    assert run_cli("save", config("shared"), "-o", out, "--seed", "1").code == 0
    net = load_checkpoint(out).net
    assert net[2].weight is net[4].weight
    assert net[2].bias.data_ptr() == net[4].bias.data_ptr()
    # and the saved values are the hand-written net's under the same seed
    torch.manual_seed(1)
    shared = nn.Linear(8, 8)
    hand = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1))
    assert_same_state(net, hand)
    x = torch.rand(2, 4)
    assert torch.equal(net(x), hand(x))
    # a change through one name is seen through the other, as with the chapter's net[2].weight.data[0, 0] = 100
    with torch.no_grad():
        net[2].weight[0, 0] = 100
    assert net[4].weight[0, 0] == 100


def test_save_then_load_then_run_through_the_cli(tmp_path, run_cli):
    out = tmp_path / "rgnet.safetensors"
    x = tmp_path / "x.pt"
    torch.save(torch.rand(2, 4), x)
    assert run_cli("save", config("rgnet"), "-o", out, "--seed", "5").code == 0
    ran = run_cli("run", config("rgnet"), "--seed", "5", "--input", x, "--json")
    loaded = run_cli("load", out, "--input", x, "--json")
    via_checkpoint = run_cli("run", config("rgnet"), "--checkpoint", out, "--input", x, "--json")
    assert ran.code == loaded.code == via_checkpoint.code == 0
    y = json.loads(ran.out)["values"]
    assert json.loads(loaded.out)["output"]["values"] == y
    assert json.loads(via_checkpoint.out)["values"] == y


def test_save_with_rules_stores_the_initialized_values(tmp_path, run_cli):
    out = tmp_path / "init.safetensors"
    r = run_cli("save", "-o", out, "--rule", "xavier:0", "--rule", "const42:2", "--seed", "0")
    assert r.code == 0, r.err
    tensors = load_file(str(out))
    assert torch.equal(tensors["2.weight"], torch.full((1, 8), 42.0))
    # the chapter's hand-written initialization, same seed
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    nn.init.xavier_uniform_(net[0].weight)
    assert torch.equal(tensors["0.weight"], net[0].weight.detach())


def test_save_default_name_and_unknown_extension(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli("save", config("mlp"))
    assert r.code == 0, r.err
    assert (tmp_path / "mlp.safetensors").is_file()
    r = run_cli("save", config("mlp"), "-o", "mlp.bin")
    assert r.code == 2
    assert "unknown checkpoint format '.bin'" in r.err and ".safetensors" in r.err
    assert not (tmp_path / "mlp.bin").exists()


def test_save_refuses_meta(tmp_path, run_cli):
    r = run_cli("save", config("mlp"), "--device", "meta", "-o", tmp_path / "m.safetensors")
    assert r.code == 2
    assert "on meta has no values" in r.err


# ---------------------------------------------------------------- loads that do not fit


def test_mismatched_load_changes_nothing_and_lists_every_key(tmp_path):
    out = tmp_path / "mlp.safetensors"
    save_checkpoint(built_of(config("mlp")), out)
    other = built_of(write(tmp_path, "model:\n  - Linear: [20, 256]\n  - ReLU\n  - Linear: [256, 5]\n"
                                     "  - Linear: [5, 2]\n"), seed=9)
    before = {k: v.clone() for k, v in other.net.state_dict().items()}
    with pytest.raises(NetcliError) as info:
        load_into(other, out)
    text = str(info.value)
    assert "key '2.weight' has shape [10, 256], expected [5, 256]" in text
    assert "key '2.bias' has shape [10], expected [5]" in text
    assert "missing key '3.weight', expected shape [2, 5]" in text
    assert "missing key '3.bias', expected shape [2]" in text
    assert "nothing was loaded" in text and "--no-strict" in text
    for k, v in other.net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed by a failed load"

    report = load_into(other, out, strict=False)
    assert sorted(report.loaded) == ["0.bias", "0.weight"]
    assert len(report.skipped) == 4
    assert torch.equal(other.net[0].weight, load_file(str(out))["0.weight"])
    assert torch.equal(other.net[2].weight, before["2.weight"])


def test_unexpected_keys_and_no_strict_through_the_cli(tmp_path, run_cli):
    out = tmp_path / "rgnet.pt"
    assert run_cli("save", config("rgnet"), "-o", out).code == 0
    small = write(tmp_path, "input: [2, 4]\nmodel:\n  - Sequential:\n      block 0: [{Linear: [4, 8]}, ReLU, {Linear: [8, 4]}, ReLU]\n"
                            "  - ReLU\n  - Linear: [4, 1]\n")
    r = run_cli("load", out, small)
    assert r.code == 2
    assert "unexpected key '0.block 1.0.weight', shape [8, 4]" in r.err
    assert "missing key '2.weight', expected shape [1, 4]" in r.err
    assert "unexpected key '1.weight', shape [1, 4]" in r.err
    assert "Traceback" not in r.err
    r = run_cli("load", out, small, "--no-strict")
    assert r.code == 0, r.err
    assert "skipped: unexpected key '0.block 3.2.bias'" in r.err
    assert r.out.startswith("Sequential(")


def test_renamed_children_get_a_hint(tmp_path, run_cli):
    params = tmp_path / "mlp.params"
    torch.save(MLP().state_dict(), params)
    r = run_cli("load", params, config("mlp"))
    assert r.code == 2
    assert "same shapes in the same order under other names" in r.err


def test_plain_torch_file_needs_a_spec(tmp_path, run_cli):
    params = tmp_path / "mlp.params"
    torch.save(MLP().state_dict(), params)
    r = run_cli("load", params)
    assert r.code == 2
    assert "holds no spec" in r.err and f"netcli load {params} SPEC" in r.err


def test_a_tensor_file_is_not_a_state_dict(tmp_path, run_cli):
    torch.save(torch.arange(4), tmp_path / "x-file")
    r = run_cli("run", config("mlp"), "--checkpoint", tmp_path / "x-file")
    assert r.code == 2
    assert "holds a tensor, not a state_dict" in r.err


# ---------------------------------------------------------------- unsafe and damaged files


class WritesAFile:
    """A pickle payload: unpickling it calls open(target, 'w'), creating the file."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_pickle_that_would_run_code_is_refused(tmp_path, run_cli, zipped):
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.params"
    torch.save({"0.weight": torch.zeros(1), "x": WritesAFile(target)}, evil, _use_new_zipfile_serialization=zipped)
    for args in (("show", evil), ("load", evil, config("mlp")), ("run", config("mlp"), "--checkpoint", evil)):
        r = run_cli(*args)
        assert r.code == 2, args
        assert f"{evil}: not a weights-only checkpoint (it would run code on load); refusing to read it" in r.err
        assert not target.exists()
    # the payload is real: an unsafe load does create the file
    torch.load(evil, weights_only=False)
    assert target.exists()


def _damage_cases(data: bytes, header_end: int):
    yield "empty", b""
    for cut in (4, 9, header_end - 3, header_end + 10, len(data) // 2, len(data) - 1):
        yield f"cut{cut}", data[:cut]
    for pos in (0, 3, 8, 30, header_end - 5, header_end + 1, len(data) // 2, len(data) - 2):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        yield f"flip{pos}", bytes(flipped)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_truncated_and_flipped_files_exit_2_with_a_clear_message(tmp_path, run_cli, suffix):
    good = tmp_path / f"good{suffix}"
    save_checkpoint(built_of(config("mlp")), good)
    data = good.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little") if suffix == ".safetensors" else 200
    seen = 0
    for label, damaged in _damage_cases(data, header_end):
        bad = tmp_path / f"bad{suffix}"
        bad.write_bytes(damaged)
        r = run_cli("load", bad, config("mlp"))
        if r.code == 0:
            # a flip in bytes nothing reads (zip version fields) is harmless: the values must be intact
            assert suffix == ".pt", label
            clone = load_checkpoint(bad, config("mlp")).net
            assert_same_state(clone, load_checkpoint(good, config("mlp")).net)
            continue
        seen += 1
        assert r.code == 2, (label, r.err)
        assert "Traceback" not in r.err and "internal error" not in r.err, (label, r.err)
        assert r.err.startswith(f"{bad}: "), (label, r.err)
        assert any(word in r.err for word in ("damaged", "empty", "cut short")), (label, r.err)
        assert r.out == ""
    assert seen >= 13


def test_a_flipped_value_is_caught_by_its_checksum(tmp_path, run_cli):
    path = tmp_path / "mlp.safetensors"
    save_checkpoint(built_of(config("mlp")), path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit of the last tensor's data; the header still parses
    path.write_bytes(bytes(data))
    r = run_cli("load", path)
    assert r.code == 2
    assert "does not match its checksum: the file is damaged" in r.err


def test_a_damaged_file_changes_nothing(tmp_path):
    path = tmp_path / "mlp.safetensors"
    save_checkpoint(built_of(config("mlp"), seed=1), path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    target = built_of(config("mlp"), seed=2)
    before = {k: v.clone() for k, v in target.net.state_dict().items()}
    with pytest.raises(NetcliError, match="checksum"):
        load_into(target, path)
    for k, v in target.net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_other_safetensors_files_load_with_a_spec(tmp_path):
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    path = tmp_path / "other.safetensors"
    save_file(net.state_dict(), str(path))  # no netcli metadata
    clone = load_checkpoint(path, config("mlp")).net
    assert_same_state(clone, net)
    with pytest.raises(NetcliError, match="holds no spec"):
        load_checkpoint(path)


# ---------------------------------------------------------------- show


def test_show_the_chapters_four_files(tmp_path, run_cli):
    x, y = torch.arange(4), torch.zeros(4)
    torch.save(x, tmp_path / "x-file")
    torch.save([x, y], tmp_path / "x-files")
    torch.save({"x": x, "y": y}, tmp_path / "mydict")
    torch.save(MLP().state_dict(), tmp_path / "mlp.params")

    def show(name, *extra):
        r = run_cli("show", tmp_path / name, "--json", *extra)
        assert r.code == 0, r.err
        return json.loads(r.out)

    one = show("x-file", "--values")
    assert one["kind"] == "tensor" and one["tensors"][0]["values"] == [0, 1, 2, 3]
    assert one["tensors"][0]["dtype"] == "int64" and one["total_bytes"] == 32
    pair = show("x-files", "--values")
    assert pair["kind"] == "list" and [t["name"] for t in pair["tensors"]] == ["0", "1"]
    assert pair["tensors"][1]["values"] == [0.0, 0.0, 0.0, 0.0]
    mydict = show("mydict")
    assert mydict["kind"] == "dict" and [t["name"] for t in mydict["tensors"]] == ["x", "y"]
    state = show("mlp.params")
    assert state["kind"] == "state_dict" and state["spec"] is None
    assert [(t["name"], t["shape"]) for t in state["tensors"]] == [
        ("hidden.weight", [256, 20]), ("hidden.bias", [256]), ("output.weight", [10, 256]), ("output.bias", [10])]
    assert state["total_bytes"] == sum(v.numel() * 4 for v in MLP().state_dict().values())

    r = run_cli("show", tmp_path / "x-files", "--values")
    assert r.code == 0
    assert "a list" in r.out and "index" in r.out and "tensor([0, 1, 2, 3])" in r.out
    r = run_cli("show", tmp_path / "mlp.params", "--values")
    assert "5,120 values, more than 100; not shown" in r.out
    assert "20,480" in r.out and "31,784" in r.out  # bytes of hidden.weight, and the total


def test_show_a_netcli_safetensors_file(tmp_path, run_cli):
    out = tmp_path / "shared.safetensors"
    assert run_cli("save", config("shared"), "-o", out).code == 0
    r = run_cli("show", out, "--json")
    info = json.loads(r.out)
    assert info["format"] == "safetensors" and info["checksums"] is True
    tied = {t["name"]: t["tied"] for t in info["tensors"]}
    assert tied["2.weight"] == ["4.weight"] and tied["2.bias"] == ["4.bias"]
    loaded = load_spec(config("shared"))
    assert info["spec"]["text"] == loaded.resolved_text and info["spec"]["sha256"] == loaded.sha256
    r = run_cli("show", out)
    assert "embedded spec (sha256 " + loaded.sha256 in r.out
    assert "ref: shared" in r.out and "4.weight" in r.out


def test_show_missing_and_unknown_files(tmp_path, run_cli):
    r = run_cli("show", tmp_path / "nope.safetensors")
    assert r.code == 2 and "no such file" in r.err
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, this is not a tensor file\n")
    r = run_cli("show", junk)
    assert r.code == 2 and "not a safetensors or torch file" in r.err


# ---------------------------------------------------------------- progress


def test_progress_bar_only_on_a_terminal_and_only_after_a_second():
    from rich.console import Console
    quick, slow, piped = io.StringIO(), io.StringIO(), io.StringIO()
    with Progress("saving quick", 100, console=Console(file=quick, force_terminal=True)) as bar:
        bar.advance(100)
    with Progress("saving slow", 100, console=Console(file=slow, force_terminal=True)) as bar:
        bar.advance(40)
        time.sleep(Progress.DELAY + 0.4)
        bar.advance(60)
    with Progress("saving piped", 100, console=Console(file=piped)) as bar:
        time.sleep(Progress.DELAY + 0.2)
    assert quick.getvalue() == ""
    assert "saving slow" in slow.getvalue()
    assert piped.getvalue() == ""


def test_save_in_a_pipe_prints_only_its_result(tmp_path, run_cli):
    out = tmp_path / "m.safetensors"
    r = run_cli("save", config("mlp"), "-o", out)
    assert r.code == 0 and r.err == ""
    assert r.out.startswith("saved 4 tensors to") and r.out.count("\n") == 1


# ---------------------------------------------------------------- helpers


def write(folder: Path, text: str, name: str = "spec.yaml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)
