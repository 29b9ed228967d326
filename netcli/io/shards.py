"""Sharded checkpoints: the Hugging Face index layout and torch.distributed.checkpoint (DCP) folders.

- The HF layout: `model-00001-of-00003.safetensors` ... and
  `model.safetensors.index.json` ({"metadata": {"total_size": N, ...},
  "weight_map": {name: shard file}}). Shards are filled greedily in key order
  up to `--max-shard-size`; a tensor larger than the limit sits alone in its
  shard. Tied tensors are stored once; their other names are in the index's
  metadata ("netcli.aliases"), as in a single netcli .safetensors file. Each
  shard is itself a netcli .safetensors file (spec, sha256, crc32s).
- A DCP folder: what `torch.distributed.checkpoint.save` writes (`.metadata`
  and one `__R_0.distcp` file per rank), plus `netcli.yaml` (the resolved
  spec) and `netcli.json` (sha256, versions, tied names) beside it.

Conversions (`netcli.io.convert`) stream one tensor at a time: each tensor is read, written and
dropped before the next (peak memory: the largest tensor plus buffers). A DCP
folder is written from one process here (`convert`); `netcli.distributed` writes one
from every rank of a job.
"""

from __future__ import annotations

from netcli.io.shards_dcp import (
    check_dcp,
    load_dcp_state,
    read_dcp,
    read_sidecar,
    save_dcp_single,
    sidecar,
    without_record_checksums,
)
from netcli.io.shards_hf import plan_shards, read_index, save_index, save_single, write_stream
from netcli.io.shards_layout import (
    DCP_INFO,
    DCP_METADATA,
    DCP_SPEC,
    INDEX_NAME,
    INDEX_SUFFIX,
    index_file,
    layout_of,
    owned_name,
    parse_size,
)

__all__ = [
    "DCP_INFO",
    "DCP_METADATA",
    "DCP_SPEC",
    "INDEX_NAME",
    "INDEX_SUFFIX",
    "check_dcp",
    "index_file",
    "layout_of",
    "load_dcp_state",
    "owned_name",
    "parse_size",
    "plan_shards",
    "read_dcp",
    "read_index",
    "read_sidecar",
    "save_dcp_single",
    "save_index",
    "save_single",
    "sidecar",
    "without_record_checksums",
    "write_stream",
]
