"""The options of SPEC §6 (sharding and sharded files), declared once for the commands that take them."""

from __future__ import annotations

from typing import Annotated

import typer

ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="fsdp: build on meta, shard over the torchrun job's ranks with FSDP2, allocate and initialize "
        "only this rank's part (values equal one process's --fast-init)",
        show_default=False,
    ),
]
MaxShardSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--max-shard-size",
        help="write the Hugging Face sharded layout (DIR/ with model-0000i-of-0000n.safetensors "
        "and model.safetensors.index.json), shards up to SIZE: 4GiB, 500MiB or bytes "
        "(GB and MB count powers of 10, as Hugging Face does)",
        show_default=False,
    ),
]
