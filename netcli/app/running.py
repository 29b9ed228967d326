"""A forward pass: on values, or on meta (shapes only); a failure names the block it happened in."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from netcli.app.options import Building, Reading
from netcli.builder.builder import Built
from netcli.builder.origins import origin_of
from netcli.builder.shapes import trace_shapes
from netcli.core.errors import NetcliError, Problem, first_line
from netcli.core.nested import leaves
from netcli.io.inputs import call


def forward(built: Built, x: Any) -> Any:
    """Run the network; a failure inside a block becomes a located error naming it."""
    from netcli.core.devices import cpu_allocation_cap

    try:
        with cpu_allocation_cap() if built.device.type == "cpu" else contextlib.nullcontext():
            return call(built.net, x)  # activations beyond free memory: an error, not the OOM killer
    except Exception as exc:
        raise _located(built, x, exc) from exc


def backward(built: Built, x: Any) -> None:
    """One forward and backward pass (`inspect --grad`); a failure in a block is located as `forward` locates it."""
    from netcli.init.params import run_backward

    try:
        run_backward(built.net, x)
    except NetcliError:
        raise
    except Exception as exc:
        raise _located(built, x, exc) from exc


def _located(built: Built, x: Any, exc: Exception) -> NetcliError:
    """The error of a forward that failed with `exc`, at the block it failed in (found by running it again)."""
    trace = trace_shapes(built.net, x)  # run again with hooks, only on failure, to find the block
    name = trace.failed_at or ""
    got = trace.inputs.get(name, tuple(x.shape) if hasattr(x, "shape") else None)
    hint = f"its input has shape {list(got)}" if got is not None else None
    from netcli.builder.forward import failure_location

    at = failure_location(exc)  # a statement of a custom block's forward
    module = built.net.get_submodule(name) if name else built.net
    from netcli.builder.diagnose import explain

    known = explain(module, exc, got, getattr(x, "shape", None))  # a cause torch's words hide (BatchNorm, batch 1)
    if known is not None:
        return NetcliError(built.loaded.problem(origin_of(built.origins, name), *known))
    if at is not None and type(module).__module__.startswith("netcli.builder."):
        from netcli.specfile.yamldoc import render_path

        return NetcliError(
            Problem(
                f"the run failed in the forward of block '{name or '(root)'}' "
                f"({type(module).__name__}): {first_line(exc)}",
                render_path(origin_of(built.origins, name) + ("forward",)),
                at,
                hint,
            )
        )
    if at is not None:
        hint = f"{hint + '; ' if hint else ''}called from the forward at {at}"
    return NetcliError(
        built.loaded.problem(
            origin_of(built.origins, name), f"the run failed in block '{name or '(root)'}': {first_line(exc)}", hint
        )
    )


def _ensure_output_fits(built: Built, x: Any) -> None:
    """Refuse a run whose output the device cannot hold, found on meta before running (a 22 GB output was OOM-killed).

    The shapes come from the spec's own check (build.shape_check.check_shapes, on
    meta or on a small network's zeros); a network whose shapes need real
    values there is not checked.
    """
    import torch

    from netcli.builder.shape_check import check_shapes
    from netcli.core.devices import ensure_room

    shape = list(x.shape) if isinstance(x, torch.Tensor) else None
    if shape is None:
        return  # several inputs: the spec's own entries were checked when it was loaded
    entries = built.loaded.spec.inputs or []
    if len(entries) == 1 and list(entries[0].shape) == shape:
        trace, _, note = check_shapes(built.loaded)  # the spec's entry: its dtype too (token ids)
    elif x.is_floating_point():
        trace, _, note = check_shapes(built.loaded, shape)
    else:
        return
    if trace is None or note is not None or trace.error is not None:
        return
    outputs = [t for t in leaves(trace.output) if isinstance(t, torch.Tensor)]
    nbytes = sum(t.numel() * t.element_size() for t in outputs)
    shapes = " and ".join(str(list(t.shape)) for t in outputs[:3]) + (", ..." if len(outputs) > 3 else "")
    ensure_room(
        built.device,
        nbytes,
        f"the output ({shapes})",
        "give a smaller input (fewer samples in a batch), or --device meta to see the output's shape",
    )


def forward_inputs(loaded) -> list[str] | None:
    """The names of the network's forward inputs (a custom block's `inputs:`), or None where the spec does not say.

    A sequence or a layer at the top takes its one input (None: not checked by name).
    """
    from netcli.specfile.tree import model_inputs

    return model_inputs(loaded)


def given_inputs(spec: str | None, texts, sets=(), plugins=()):
    """Read `--input` once: return (a function of the built network giving its input, the `--set input=...` list).

    The files are read first, so their shapes and dtypes are the ones shape
    inference and the shape check use; a file whose tensors are named after the
    forward's inputs fills them by name (the spec is read, unchecked, for them).
    """
    from netcli.io.inputs import arrange, input_set, make_input, read_inputs

    if not texts:
        return (lambda built: make_input(None, built.loaded.spec.input, built.device)), []
    from netcli.builder.validate import load_spec

    given = read_inputs(texts)
    names = forward_inputs(load_spec(spec, sets, plugins, check=False))  # which input is which: the spec says
    arranged = arrange(given, names)

    def materialize(built: Built):
        return make_input(texts, built.loaded.spec.input, built.device, forward_inputs(built.loaded), given=given)

    return materialize, [input_set(arranged)]


def run_network(built: Built, x: Any) -> Any:
    """Return the output for `x`: values, or on meta a meta tensor of the output's shape."""
    if built.device.type != "meta":
        _ensure_output_fits(built, x)
        return forward(built, x)
    trace = trace_shapes(built.net, x)
    if trace.error is not None:
        raise NetcliError(
            f"the run on meta stopped at '{trace.failed_at or '(root)'}': {first_line(trace.error)}",
            hint="run it on cpu to see values",
        )
    return trace.output


def run_spec(
    spec: str | None,
    reading: Reading,
    building: Building,
    *,
    inputs: Sequence[str] = (),
    output: str | None = None,
    checkpoint: str | None = None,
    eval_mode: bool = False,
) -> Any:
    """`netcli run`: build `spec` (sharded with `building.shard`), load `checkpoint`, run it on `inputs`, write
    `output`.

    `inputs`' shapes and dtypes are the ones shape inference uses (as `--set input=[...]` would).
    Returns the output: values, or on meta a meta tensor of the output's shape.
    """
    from netcli.app import sharded
    from netcli.app.network import build_network
    from netcli.core.atomic import refuse_overwriting_inputs

    refuse_overwriting_inputs(output, spec, checkpoint, *inputs)  # -o onto what this run reads
    given, input_set = given_inputs(spec, inputs, reading.sets, reading.plugins)
    built = build_network(spec, replace(reading, sets=(*input_set, *reading.sets)), building)
    if checkpoint is not None:
        sharded.run_checkpoint(built, checkpoint)
    if eval_mode:
        built.net.eval()
    y = run_network(built, given(built))
    if output is not None:
        from netcli.io.outputs import save_output

        save_output(y, output)
    return y
