"""netcli's DCP reader (netcli/io/dcp_read.py): one positioned read per item into its destination, what it cannot
take handed to DCP's own reader, and nothing in an item's pickle run."""

from __future__ import annotations

import dataclasses
import io
import pickle
import warnings
import zipfile

import pytest
import torch
import torch.distributed.checkpoint as dcp

from netcli.io import dcp_read
from netcli.io.dcp_metadata import read_metadata_file
from netcli.io.shards import load_dcp_state


def save(state: dict, folder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, storage_writer=dcp.FileSystemWriter(str(folder)), no_dist=True)


@pytest.fixture
def counted(monkeypatch):
    """How many items netcli's reader took itself and how many it left to DCP's."""
    seen = {"items": 0, "left": 0}
    real = dcp_read.read_plan_items

    def spy(folder, storage_data, items, planner):
        left = real(folder, storage_data, items, planner)
        seen["items"] += len(items)
        seen["left"] += len(left)
        return left

    monkeypatch.setattr(dcp_read, "read_plan_items", spy)
    return seen


def test_plain_tensors_are_read_in_one_read_each_equal_to_what_was_saved(tmp_path, counted):
    g = torch.Generator().manual_seed(0)
    state = {
        "w": torch.randn(64, 33, generator=g),
        "b": torch.randn(7, generator=g).to(torch.bfloat16),
        "i": torch.arange(10, dtype=torch.int64),
        "s": torch.tensor(3.5),
        "e": torch.empty(0, 4),
    }
    save(state, tmp_path / "ck")
    out = {k: torch.full_like(v, 7) for k, v in state.items()}
    load_dcp_state(out, tmp_path / "ck")
    for k, v in state.items():
        assert torch.equal(out[k], v), k
    assert counted == {"items": 4, "left": 0}  # the empty tensor has nothing to read


def test_a_part_of_a_stored_tensor_is_one_read(tmp_path):
    """Rows 10..20 of a stored 64-row tensor, as a rank of a load at another world size asks: one run of bytes."""
    import os

    w = torch.randn(64, 33, generator=torch.Generator().manual_seed(2))
    save({"w": w}, tmp_path / "ck")
    (info,) = read_metadata_file(tmp_path / "ck" / ".metadata").storage_data.values()
    fd = os.open(tmp_path / "ck" / info.relative_path, os.O_RDONLY)
    try:
        stored, at = dcp_read.locate(fd, info.offset, info.length)
        rows = torch.zeros(10, 33)
        assert dcp_read.read_into(fd, stored, at, [10, 0], [10, 33], rows)
        assert torch.equal(rows, w[10:20])
        cols = torch.zeros(64, 3)  # columns are not one run: left to DCP's reader
        assert not dcp_read.read_into(fd, stored, at, [0, 5], [64, 3], cols)
    finally:
        os.close(fd)


def test_what_it_cannot_take_goes_to_dcps_reader_with_the_same_values(tmp_path, counted):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(6, 9, generator=g)
    state = {"t": base.t(), "plain": torch.randn(5, generator=g)}  # a transposed view is stored with its strides
    save(state, tmp_path / "ck")
    out = {"t": torch.zeros(9, 6), "plain": torch.zeros(5, dtype=torch.float64)}  # float64: a conversion
    load_dcp_state(out, tmp_path / "ck")
    assert torch.equal(out["t"], base.t())
    assert torch.equal(out["plain"], state["plain"].double())
    assert counted == {"items": 2, "left": 2}


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_an_items_pickle_runs_no_code(tmp_path, run_cli):
    """An item whose data.pkl calls open(): netcli's unpickler refuses it, DCP's weights_only load refuses it."""
    folder = tmp_path / "ck"
    save({"w": torch.ones(4, 2)}, folder)
    marker = tmp_path / "canary"
    crafted = io.BytesIO()
    with zipfile.ZipFile(crafted, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Payload(marker), protocol=2))
        z.writestr("archive/data/0", b"\0" * 32)
        z.writestr("archive/version", "3\n")
    meta = read_metadata_file(folder / ".metadata")
    (key, info), *_ = meta.storage_data.items()
    (folder / info.relative_path).write_bytes(crafted.getvalue())
    meta.storage_data[key] = dataclasses.replace(info, offset=0, length=len(crafted.getvalue()))
    (folder / ".metadata").write_bytes(pickle.dumps(meta))
    with pytest.raises(dcp_read._NotPlain):
        dcp_read._TensorPickle(io.BytesIO(pickle.dumps(_Payload(marker), protocol=2))).load()
    from netcli.core.errors import NetcliError

    with pytest.raises(NetcliError, match="cannot read the DCP checkpoint"):
        load_dcp_state({"w": torch.zeros(4, 2)}, folder)
    assert not marker.exists()
