"""Issue 26, item 1: a DCP folder's pickle runs no code, on every command that opens one.

`.metadata` is a pickle, and DCP's own reader unpickles it unrestricted; a
`.distcp` item stored as bytes is loaded with `torch.load(weights_only=False)`.
Each test plants a payload that would create a canary file, runs the real
command, and checks the canary is absent and the exit is 2 naming the global.
"""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import pytest
import torch

SPEC = "input: [2, 4]\nmodel:\n  - Linear: [4, 2]\n"


class _Payload:
    """Pickles as a call of builtins.open: unpickling it creates the canary file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _dcp_folder(tmp_path: Path, run_cli) -> Path:
    spec = tmp_path / "net.yaml"
    spec.write_text(SPEC)
    assert run_cli("save", str(spec), "--seed", "0", "-o", str(tmp_path / "net.safetensors")).code == 0
    folder = tmp_path / "ck"
    assert run_cli("convert", str(tmp_path / "net.safetensors"), "-o", str(folder) + "/").code == 0
    assert (folder / ".metadata").exists()
    return folder


def _commands(folder: Path, spec: Path, out: Path) -> list[tuple[str, ...]]:
    return [("show", str(folder)),
            ("load", str(folder)),
            ("run", str(spec), "--checkpoint", str(folder)),
            ("convert", str(folder), "-o", str(out)),
            ("export", str(folder), "-o", str(out.with_suffix(".pt2")))]


@pytest.mark.parametrize("where", ["whole", "nested"])
def test_1_a_dcp_metadata_pickle_runs_no_code(tmp_path, run_cli, where):
    folder = _dcp_folder(tmp_path, run_cli)
    marker = tmp_path / "PWNED-dcp-metadata"
    if where == "whole":
        data = pickle.dumps(_Payload(marker))
    else:  # a real Metadata whose storage_meta is the payload
        from netcli.io.dcp_metadata import read_metadata_file
        meta = read_metadata_file(folder / ".metadata")
        meta.storage_meta = _Payload(marker)
        data = pickle.dumps(meta)
    (folder / ".metadata").write_bytes(data)
    for args in _commands(folder, tmp_path / "net.yaml", tmp_path / "out.safetensors"):
        result = run_cli(*args)
        assert not marker.exists(), f"netcli {args[0]} ran the pickle's code"
        assert result.code == 2, (args, result.err)
        assert "io.open" in result.err, (args, result.err)
        assert "Traceback" not in result.err


def test_1_dcp_bytes_items_are_not_unpickled(tmp_path):
    """A tensor's name stored as pickled bytes would go through torch.load(weights_only=False)."""
    import torch.distributed.checkpoint as dcp
    from netcli.core.errors import NetcliError
    from netcli.io.shards import load_dcp_state
    marker = tmp_path / "PWNED-dcp-bytes"
    folder = tmp_path / "ck"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"0.weight": _Payload(marker)}, storage_writer=dcp.FileSystemWriter(str(folder)), no_dist=True)
    assert not marker.exists()
    with pytest.raises(NetcliError, match="pickled bytes"):
        load_dcp_state({"0.weight": torch.empty(2, 4)}, folder)
    assert not marker.exists()


def test_1_dcp_rank_files_stay_inside_the_folder(tmp_path, run_cli):
    """A storage entry naming ../secret.distcp is refused before any file is opened."""
    from netcli.io.dcp_metadata import read_metadata_file
    folder = _dcp_folder(tmp_path, run_cli)
    meta = read_metadata_file(folder / ".metadata")
    for info in meta.storage_data.values():
        info.relative_path = "../secret.distcp"
    (folder / ".metadata").write_bytes(pickle.dumps(meta))
    result = run_cli("load", str(folder))
    assert result.code == 2
    assert "not a .distcp file inside the folder" in result.err


def test_1_dcp_metadata_shared_chunk_lists_are_bounded(tmp_path, run_cli, monkeypatch):
    """One chunk list shared by every tensor: counted per use, refused past the bound."""
    import netcli.io.dcp_metadata as dm
    folder = _dcp_folder(tmp_path, run_cli)
    meta = dm.read_metadata_file(folder / ".metadata")
    shared = next(iter(meta.state_dict_metadata.values())).chunks * 50
    for md in meta.state_dict_metadata.values():
        md.chunks = shared
    (folder / ".metadata").write_bytes(pickle.dumps(meta))
    monkeypatch.setattr(dm, "MAX_METADATA_ITEMS", 60)
    result = run_cli("show", str(folder))
    assert result.code == 2 and "more than 60 items" in result.err


def test_1_netcli_dcp_folders_still_load(tmp_path, run_cli):
    """The restricted reader reads what DCP writes: values equal the single file's."""
    from safetensors.torch import load_file
    folder = _dcp_folder(tmp_path, run_cli)
    back = tmp_path / "back.safetensors"
    assert run_cli("convert", str(folder), "-o", str(back)).code == 0
    a, b = load_file(str(tmp_path / "net.safetensors")), load_file(str(back))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("field", ["state_dict_metadata", "properties", "chunks", "offsets", "relative_path"])
def test_1_dcp_metadata_with_a_field_renamed_is_refused(tmp_path, run_cli, field):
    """One flipped byte in a field's name (the long fuzz flipped one in `state_dict_metadata`) left a Metadata
    without that field: an internal error (AttributeError). Every field of DCP's dataclasses is now checked."""
    folder = _dcp_folder(tmp_path, run_cli)
    data = (folder / ".metadata").read_bytes()
    name = field.encode()
    assert name in data
    renamed = data.replace(name, name[:-1] + (b"X" if name[-1:] != b"X" else b"Y"), 1)
    (folder / ".metadata").write_bytes(renamed)
    for args in _commands(folder, tmp_path / "net.yaml", tmp_path / "out.safetensors"):
        result = run_cli(*args)
        assert result.code == 2, (args, result.err)
        assert "internal error" not in result.err and "Traceback" not in result.err
        assert f"no '{field}'" in result.err, (args, result.err)


def test_1_dcp_metadata_without_storage_meta_still_loads(tmp_path, run_cli):
    """`storage_meta` is optional in DCP's Metadata (older writers leave it None): such a folder loads, through
    the command and through dcp.load with the safe reader."""
    from netcli.io.dcp_metadata import read_metadata_file
    folder = _dcp_folder(tmp_path, run_cli)
    meta = read_metadata_file(folder / ".metadata")
    meta.storage_meta = None
    (folder / ".metadata").write_bytes(pickle.dumps(meta))
    result = run_cli("load", str(folder))
    assert result.code == 0, result.err
    from netcli.io.shards import load_dcp_state  # dcp.load itself, through the safe reader
    state = {name: torch.empty(info.size) for name, info in meta.state_dict_metadata.items()}
    load_dcp_state(state, folder)
    assert all(t.abs().sum() > 0 for t in state.values() if t.numel())
