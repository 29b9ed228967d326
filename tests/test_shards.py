"""Sharded files in one process: the HF index layout, DCP folders, conversions between them (issue 15)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from netcli.core.errors import NetcliError
from netcli.io import checkpoint, convert, shards
from conftest import ROOT


@pytest.fixture
def saved(tmp_path, run_cli):
    path = tmp_path / "a.safetensors"
    assert run_cli("save", str(ROOT / "configs/shared.yaml"), "-o", str(path), "--seed", "3").code == 0
    return path


def _same(a, b):
    a, b = checkpoint.read_checkpoint(a), checkpoint.read_checkpoint(b)
    assert a.names == b.names
    for name in a.infos:
        assert torch.equal(a.tensor(name), b.tensor(name)), name
    return b


def test_parse_size():
    assert shards.parse_size("5GB") == 5 * 10**9
    assert shards.parse_size("500MB") == 500 * 10**6
    assert shards.parse_size("2GiB") == 2 << 30
    assert shards.parse_size("1234") == 1234
    for bad in ("5 parsecs", "-1", "0"):
        with pytest.raises(NetcliError):
            shards.parse_size(bad)


def test_greedy_in_key_order_and_a_big_tensor_alone():
    info = lambda n: checkpoint.TensorInfo("x", (n,), "uint8", n)  # noqa: E731
    infos = {"a": info(40), "b": info(50), "c": info(300), "d": info(10), "e": info(100)}
    assert shards.plan_shards(list(infos), infos, 100) == [["a", "b"], ["c"], ["d"], ["e"]]


def test_index_layout_round_trip_with_ties_stored_once(saved, tmp_path):
    out = tmp_path / "hf"
    report = convert.convert(str(saved), str(out) + "/", max_shard_size="200B")
    index = json.loads((out / shards.INDEX_NAME).read_text())
    n = len(report["shards"])
    assert n > 1 and sorted(os.listdir(out)) == sorted(report["shards"] + [shards.INDEX_NAME])
    assert all(f == f"model-{i:05d}-of-{n:05d}.safetensors" for i, f in enumerate(report["shards"], 1))
    assert "4.weight" not in index["weight_map"] and index["metadata"]["netcli.aliases"]["4.weight"] == "2.weight"
    ckpt = _same(saved, out)
    assert index["metadata"]["total_size"] == ckpt.nbytes
    # the index file itself reads too; each shard is a netcli file of its own
    _same(saved, out / shards.INDEX_NAME)
    for shard in report["shards"]:
        checkpoint.read_checkpoint(out / shard)


def test_dcp_round_trip_and_back(saved, tmp_path):
    convert.convert(str(saved), str(tmp_path / "d") + "/")
    assert (tmp_path / "d" / ".metadata").exists() and (tmp_path / "d" / "netcli.yaml").exists()
    ckpt = _same(saved, tmp_path / "d")
    assert ckpt.aliases == {"4.bias": "2.bias", "4.weight": "2.weight"}
    convert.convert(str(tmp_path / "d"), str(tmp_path / "b.safetensors"))
    _same(saved, tmp_path / "b.safetensors")
    convert.convert(str(tmp_path / "d"), str(tmp_path / "c.pt"))
    _same(saved, tmp_path / "c.pt")


def test_damaged_dcp_folders_name_the_file(saved, tmp_path):
    d = tmp_path / "d"
    convert.convert(str(saved), str(d) + "/")
    data = d / "__0_0.distcp"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(NetcliError, match="cut short") as exc:
        checkpoint.read_checkpoint(d)
    assert "__0_0.distcp" in str(exc.value)
    data.unlink()
    with pytest.raises(NetcliError, match="missing") as exc:
        checkpoint.read_checkpoint(d)
    assert "__0_0.distcp" in str(exc.value)


def test_damaged_index(saved, tmp_path):
    out = tmp_path / "hf"
    report = convert.convert(str(saved), str(out), to="hf", max_shard_size="200B")
    (out / report["shards"][-1]).unlink()
    with pytest.raises(NetcliError, match="missing"):
        checkpoint.read_checkpoint(out)


def test_a_folder_of_other_files_is_not_replaced(saved, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(NetcliError, match="other files"):
        convert.convert(str(saved), str(tmp_path / "mine"), to="dcp")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_cli_convert_and_save_max_shard_size(run_cli, saved, tmp_path):
    r = run_cli("convert", str(saved), "-o", str(tmp_path / "hf") + "/", "--max-shard-size", "300B")
    assert r.code == 0, r.err
    _same(saved, tmp_path / "hf")
    r = run_cli(
        "save",
        str(ROOT / "configs/shared.yaml"),
        "--seed",
        "3",
        "-o",
        str(tmp_path / "s") + "/",
        "--max-shard-size",
        "300B",
    )
    assert r.code == 0, r.err
    _same(saved, tmp_path / "s")
    r = run_cli("load", str(tmp_path / "s"), "--input", "ones:1,4")
    assert r.code == 0, r.err
    r = run_cli("convert", str(saved), "-o", str(tmp_path / "x.safetensors"), "--max-shard-size", "1MB")
    assert r.code == 2 and "folder" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("shard", ["a" * 300, "nul\0.safetensors", "sub"])
def test_an_index_naming_an_impossible_or_non_file_shard_is_refused(saved, tmp_path, run_cli, shard):
    """Found by the long fuzz: a weight_map value longer than a file name may be (ENAMETOOLONG) was an
    internal error; a NUL byte or a folder of that name are refused the same way, before anything is read."""
    out = tmp_path / "hf"
    report = convert.convert(str(saved), str(out), to="hf", max_shard_size="200B")
    (out / "sub").mkdir()
    index_path = out / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    first = sorted(index["weight_map"])[0]
    index["weight_map"][first] = shard
    index_path.write_text(json.dumps(index))
    for command in ("show", "load", "convert"):
        args = (command, str(out)) + (("-o", str(tmp_path / "x.safetensors")) if command == "convert" else ())
        result = run_cli(*args)
        assert result.code == 2, (command, result.err)
        assert "internal error" not in result.err and "Traceback" not in result.err
    assert report["shards"]
