"""The options commands share, declared once: a spec, --set, --seed, --device, --plugin, --rule, --json."""

from __future__ import annotations

from typing import Annotated

import typer

from netcli.cli.completion import complete_device, complete_rule
from netcli.core.limits import SEED_MAX, SEED_MIN


def _check_seed(value: int | None) -> int | None:
    if value is not None and not SEED_MIN <= value <= SEED_MAX:
        raise typer.BadParameter("a seed is an integer from -2**63 to 2**64-1")
    return value


SpecArg = Annotated[
    str | None,
    typer.Argument(
        help="spec file (default: $NETCLI_SPEC, ./netcli.yaml, else the built-in [Linear(4, 8), ReLU, Linear(8, 1)])",
        show_default=False,
    ),
]
SpecOrCheckpointArg = Annotated[
    str | None,
    typer.Argument(
        help="spec file or checkpoint (default: $NETCLI_SPEC, ./netcli.yaml, else the built-in network)",
        show_default=False,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="override PATH=VALUE before validation, e.g. vars.hidden=64 (repeatable)", show_default=False
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(help="seed torch before building (bit-reproducible)", show_default=False, callback=_check_seed),
]
InputSeedOpt = Annotated[
    int | None,
    typer.Option(help="seed torch before making a random --input", show_default=False, callback=_check_seed),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        help="cpu | cuda | cuda:N | auto | auto:N | mps | meta", show_default=False, autocompletion=complete_device
    ),
]
PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin", help="import this module to register types and initializers (repeatable)", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
FastInitOpt = Annotated[
    bool,
    typer.Option(
        "--fast-init",
        help="build on meta, allocate once, initialize each tensor once from per-path seeds "
        "(faster; same weights on every device; not the values hand-written code draws)",
    ),
]
RuleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--rule",
        help="INIT:TARGET applied after the spec's init:, e.g. xavier:0, normal(std=0.01):Linear, const42:2, "
        "zeros:*.bias (repeatable)",
        autocompletion=complete_rule,
        show_default=False,
    ),
]
InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        help="rand:2,20 | randn:SHAPE | ones:SHAPE | zeros:SHAPE | FILE (.npy, .pt, .safetensors; FILE:KEY one "
        "tensor of it); repeat it for a forward with several inputs, in order, or give one .safetensors whose "
        "tensors are named after the inputs",
        show_default=False,
    ),
]
EvalOpt = Annotated[
    bool, typer.Option("--eval", help="run in eval mode, as net.eval() (dropout off, batch norm's running stats)")
]
