"""The network written for other software: `netcli export` (ONNX, TorchScript, a torch.export program, checked on
an example input) and `netcli code` (plain PyTorch source)."""

from __future__ import annotations

from netcli.app.options import Building, Reading
from netcli.core.atomic import refuse_overwriting_inputs
from netcli.io.export import Exported, export_model, format_for


def export_network(
    source: str | None,
    output: str,
    reading: Reading,
    building: Building,
    *,
    fmt: str | None = None,
    spec: str | None = None,
    input_: str | None = None,
    static: bool = False,
) -> Exported:
    """Build `source` (or rebuild the checkpoint, from `spec` or its own), export it to `output` in `fmt`.

    `fmt` defaults to what `output`'s extension names; a bad one, or an output
    that is one of the files read, is refused before anything is built.
    """
    from netcli.app.network import open_network
    from netcli.io.inputs import make_input

    fmt = format_for(fmt, output)
    refuse_overwriting_inputs(
        output, source, spec, input_
    )  # `export model.pt -o model.pt` would replace the state_dict
    built = open_network(source, reading, building, spec=spec)
    return export_model(built, make_input(input_, built.loaded.spec.input, built.device), fmt, output, static=static)


def write_network_code(
    spec: str | None,
    reading: Reading,
    building: Building,
    *,
    output: str | None = None,
) -> str:
    """`netcli code`: the PyTorch source of the spec (or a checkpoint's embedded spec), written to `output` if given.

    The source's docstring names the command line that made it; a checkpoint given as `spec` is never overwritten.
    """
    from netcli.app.eject import command_args, write_code
    from netcli.app.network import open_spec

    refuse_overwriting_inputs(output, spec)  # a checkpoint as SPEC: its bytes stay
    loaded = open_spec(spec, reading)
    args = command_args(spec, reading.sets, reading.plugins, building.rules, building.seed, building.device)
    return write_code(loaded, output, seed=building.seed, device=building.device, rules=building.rules, spec_args=args)
