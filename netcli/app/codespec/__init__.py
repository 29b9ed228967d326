"""`netcli spec`: the spec of an existing nn.Module, the reverse of `netcli code` (eject).

`spec_text(net)` writes the spec; before it is handed out, it is built on the
meta device and compared with the module (print and state_dict keys): a spec
that would build another network is an error, never a file. With `weights`,
the module's values are saved beside it in netcli's safetensors (the spec
embedded), so `netcli load FILE` gives the original network exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netcli.app.codespec.emit import to_yaml
from netcli.app.codespec.target import call_target, parse_args
from netcli.app.codespec.tree import SpecWriter, plain
from netcli.core.errors import NetcliError, Problem

__all__ = ["spec_of_module", "spec_text", "write_spec"]


def _ties(net: Any) -> list[str]:
    """`b = a` for each parameter reachable under two names whose modules are not one shared module."""
    owner = {}
    for path, m in net.named_modules(remove_duplicate=False):
        for name, _ in m.named_parameters(recurse=False, remove_duplicate=False):
            owner[f"{path}.{name}" if path else name] = m
    groups: dict[int, list[str]] = {}
    for name, p in net.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    lines = []
    for names in groups.values():
        first = names[0]
        for other in names[1:]:
            if owner[other] is not owner[first]:
                lines.append(f"{other} = {first}")
    return lines


def spec_of_module(
    net: Any, *, name: str | None = None, leaves: Sequence[str] = (), input_shape: list[int] | None = None
) -> dict[str, Any]:
    """The spec (a dict, in the order a person writes one) that builds `net`."""
    from netcli import registry

    registry.ensure_loaded()
    writer = SpecWriter(net, set(leaves))
    model = writer.node(net, "")
    writer.group()
    spec: dict[str, Any] = {}
    if name:
        spec["name"] = name
    if input_shape:
        spec["input"] = list(input_shape)
    blocks = {k: v for k, v in writer.blocks.items() if v is not None}
    if blocks:
        spec["blocks"] = plain(blocks)
    spec["model"] = plain(model)
    ties = _ties(net)
    if ties:
        spec["tie"] = ties
    return spec


def _first_difference(a: str, b: str) -> str:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False)):
        if x != y:
            return f"line {i + 1}: the module prints {x.strip()!r}, the spec builds {y.strip()!r}"
    return "their lengths differ"


def spec_text(
    net: Any,
    *,
    name: str | None = None,
    leaves: Sequence[str] = (),
    input_shape: list[int] | None = None,
    source: str = "<netcli spec>",
) -> str:
    """The spec of `net` as YAML, checked: it builds a network that prints and keys as `net` does."""
    from netcli.builder.validate import load_spec_text
    from netcli.init.engine import build_model

    spec = spec_of_module(net, name=name, leaves=leaves, input_shape=input_shape)
    text = to_yaml(spec)
    loaded = load_spec_text(text, source)
    built = build_model(loaded, device="meta")
    if repr(built.net) != repr(net):
        raise NetcliError(
            Problem(
                "the spec written for this module builds a different network: "
                + _first_difference(repr(net), repr(built.net)),
                hint="please report it, with the module's code; --leaf NAME keeps a class as it is",
            )
        )
    if list(built.net.state_dict()) != list(net.state_dict()):
        missing = sorted(set(net.state_dict()) - set(built.net.state_dict()))[:3]
        raise NetcliError(
            Problem(
                f"the spec written for this module has other tensor names (missing: {', '.join(missing) or '-'})",
                hint="please report it, with the module's code",
            )
        )
    return text


def write_spec(
    target: str,
    *,
    args: Sequence[str] = (),
    output: str | None = None,
    weights: str | None = None,
    leaves: Sequence[str] = (),
    input_shape: str | list[int] | None = None,
) -> dict[str, Any]:
    """Call `target` (MODULE:CALLABLE), write its spec to `output` (or return it), its values to `weights`."""
    from netcli.core.atomic import atomic_write
    from netcli.io.inputs import parse_shape

    if isinstance(input_shape, str):
        input_shape = parse_shape(input_shape, "--input")

    net = call_target(target, parse_args(list(args)))
    callable_name = target.rpartition(":")[2].split(".")[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", callable_name) or None
    text = spec_text(net, name=name, leaves=leaves, input_shape=input_shape, source=output or target)
    report: dict[str, Any] = {"target": target, "spec": text, "output": output, "weights": weights}
    if output:
        atomic_write(output, lambda p: Path(p).write_text(text))
    if weights:
        report["tensors"] = _save_weights(net, text, output or f"{name}.yaml", weights)
    return report


def _save_weights(net: Any, text: str, source: str, path: str) -> int:
    """Save `net`'s values with the spec embedded: the spec's network, loaded with them, written as netcli saves."""
    from netcli.builder.validate import load_spec_text
    from netcli.init.engine import build_model
    from netcli.io.checkpoint_save import save_checkpoint

    built = build_model(load_spec_text(text, source), device="cpu")
    state = {k: v.detach().to("cpu") for k, v in net.state_dict().items()}
    built.net.load_state_dict(state, strict=True)
    save_checkpoint(built, path)
    return len(state)
