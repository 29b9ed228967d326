"""The shape check: run the example input through the network without memory for values, block by block.

A small network of torch.nn modules runs on the CPU on zeros (the meta
device's kernels are Python references whose first call imports torch._dynamo,
about 1 s per process); anything else runs on meta, whatever its size. Either
way, the first block whose shapes do not fit is named, at its place in the spec.
"""

from __future__ import annotations

from netcli.builder.call_bound import check_calls
from netcli.builder.origins import origin_of
from netcli.core.errors import NetcliError, Problem, first_line
from netcli.io.format import numel
from netcli.specfile.loading import LoadedSpec, walk_nodes
from netcli.specfile.schema import InputEntry
from netcli.specfile.yamldoc import render_path


def check_shapes(loaded: LoadedSpec, input_shape: list[int] | None = None):
    """Build on the meta device and run the example input through it.

    Return (trace, built, note): raise NetcliError at the block where the
    shapes stop fitting; `note` says when a block needs real values (a `while`
    on a tensor) so shapes past it cannot be checked without memory.
    """
    from netcli.builder.builder import build_network
    from netcli.builder.preflight import prepare

    entries = [InputEntry(shape=input_shape)] if input_shape is not None else loaded.spec.inputs
    dev, _, inferred = prepare(loaded, device="meta", input_shape=input_shape, check_readings=True)
    built = build_network(loaded, dev, inferred)
    check_calls(loaded, built.net, built.origins)  # before any forward runs: calls multiply
    if entries is None:
        return None, built, None
    trace = _trace(loaded, built.net, entries)
    if trace.error is None:
        return trace, built, None
    name = trace.failed_at or ""
    if trace.data_dependent:
        return (
            trace,
            built,
            (
                f"shapes after '{name or '(root)'}' are not checked: it needs real values "
                f"({type(built.net.get_submodule(name)).__name__} has data-dependent control flow)"
            ),
        )
    path = origin_of(built.origins, name)
    got = trace.inputs.get(name)
    message = first_line(trace.error)
    module = built.net.get_submodule(name) if name else built.net
    hint = f"its input has shape {list(got)}" if got is not None else None
    from netcli.builder.forward import failure_location

    at = failure_location(trace.error)  # the statement of a custom block's forward that failed
    if at is not None and type(module).__module__.startswith("netcli.builder."):
        raise NetcliError(
            Problem(
                f"shapes stop fitting in the forward of block '{name or '(root)'}' "
                f"({type(module).__name__}): {message}",
                render_path(path + ("forward",)),
                at,
                hint,
            )
        ) from trace.error
    from netcli.builder.diagnose import explain

    known = explain(module, trace.error, got, entries[0].shape if len(entries) == 1 else None)  # a cause torch's
    # words hide (BatchNorm on a batch of one)
    if known is not None:
        raise NetcliError(loaded.problem(path, known[0], known[1])) from trace.error
    if at is not None:
        hint = f"{hint + '; ' if hint else ''}called from the forward at {at}"
    raise NetcliError(
        loaded.problem(path, f"shapes stop fitting at block '{name or '(root)'}' ({_label(module)}): {message}", hint)
    ) from trace.error


def _label(module) -> str:
    """The module as its one-line repr (`Embedding(100, 32)`), or its class name where the repr spans lines."""
    text = repr(module)
    return text if "\n" not in text and len(text) <= 120 else type(module).__name__


# Networks up to this many bytes of tensors are checked with the CPU's kernels on zeros: torch's meta
# kernels for most ops are Python references whose first call imports torch._dynamo (~1 s per process,
# more than a ResNet-18's forward on zeros). The example inputs are bounded too (the activations grow
# with them).
# Modules whose forward has no `while` on values: torch.nn's, and custom blocks (their forward has no loops).
_NO_CONTROL_FLOW = ("torch.nn.", "netcli.builder.custom_block", "netcli.builder.blocks")
CPU_CHECK_BYTES = 64 << 20
CPU_CHECK_INPUT = 1 << 22  # elements of the example inputs together


def _trace(loaded: LoadedSpec, net, entries: list[InputEntry]):
    """Run the example input through `net` (built on meta) and trace each block's output shape.

    A small network of torch.nn modules only (no `while` on values, no device
    placement) runs on the CPU, on a copy whose tensors are zeros: no memory
    to speak of, no random draws, the same shapes and shape errors as on meta.
    Anything else runs on meta, where nothing is allocated whatever its size.
    """
    import copy

    import torch

    from netcli.builder.shapes import trace_shapes

    def example(device):
        xs = tuple(torch.zeros(*e.shape, dtype=getattr(torch, e.dtype), device=device) for e in entries)
        return xs[0] if len(xs) == 1 else xs

    if _cpu_checkable(loaded, net) and sum(numel(e.shape) for e in entries) <= CPU_CHECK_INPUT:
        zeros = copy.deepcopy(net)._apply(lambda t: torch.zeros(t.shape, dtype=t.dtype))
        from netcli.core.devices import cpu_allocation_cap

        # dropout's draws must not move the caller's RNG; activations beyond free memory fail, not kill
        with torch.random.fork_rng(devices=[]), cpu_allocation_cap():
            trace = trace_shapes(zeros, example("cpu"))
        from netcli.builder.diagnose import out_of_memory

        if not out_of_memory(trace.error):
            return trace
        del zeros, trace  # the activations did not fit on the CPU: the same shapes on meta allocate nothing
    return trace_shapes(net, example("meta"))


def _cpu_checkable(loaded: LoadedSpec, net) -> bool:
    tensors = list(net.parameters()) + list(net.buffers())
    return (
        sum(t.numel() * t.element_size() for t in tensors) <= CPU_CHECK_BYTES
        and all(type(m).__module__.startswith(_NO_CONTROL_FLOW) for m in net.modules())
        and not any(at.node.device is not None for at in walk_nodes(loaded))
    )
