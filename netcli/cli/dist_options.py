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
NprocOpt = Annotated[
    int | None,
    typer.Option(
        "--nproc",
        min=1,
        help="with --shard fsdp: start N ranks on this host (gloo on CPU, nccl on GPUs) and run the command "
        "on each; a failure is one line naming its rank (across hosts use torchrun)",
        show_default=False,
    ),
]

NPROC_COMMANDS = ("build", "init", "run", "save", "load")


def split_nproc(args: list[str]) -> tuple[int | None, list[str]]:
    """`--nproc N` (or `--nproc=N`) taken out of `args` (before any `--`), checked; (None, args) without it."""
    from netcli.core.errors import Location, NetcliError, Problem

    end = args.index("--") if "--" in args else len(args)
    n, rest, i = None, [], 0
    while i < end:
        arg = args[i]
        if arg == "--nproc" or arg.startswith("--nproc="):
            text = arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < end else "")
            i += 1 if "=" in arg else 2
            if not text.isdigit() or int(text) < 1:
                raise NetcliError(
                    Problem(f"'{text}' is not a number of ranks", location=Location("--nproc"), hint="e.g. --nproc 2")
                )
            n = int(text)
            continue
        rest.append(arg)
        i += 1
    if n is None:
        return None, args
    rest += args[end:]
    if not any(a == "--shard" or a.startswith("--shard=") for a in rest[:end]):
        raise NetcliError(
            Problem(
                "--nproc runs a sharded command on several ranks",
                location=Location("--nproc"),
                hint="add --shard fsdp (build, init, run, save, load)",
            )
        )
    command = next((a for a in rest if not a.startswith("-")), None)
    if command not in NPROC_COMMANDS:
        raise NetcliError(
            Problem(
                f"--nproc is for the sharded commands ({', '.join(NPROC_COMMANDS)})",
                location=Location("--nproc"),
            )
        )
    return n, rest
