"""One layer of a spec as its constructor call: `nn.Conv2d(1, 6, kernel_size=5, padding=2)`.

The arguments are those the builder passes (registry.bind_arguments, lists as
tuples), written the way the spec writes them: positional ones by position,
named ones by name, a size shape inference filled in where the spec left it
out, `${param}` as the param's name, and an argument that is a module as that
module's own expression (`encoder_layer=nn.TransformerEncoderLayer(...)`).
"""

from __future__ import annotations

from typing import Any

from netcli import registry
from netcli.app.eject.source import Call, Inferred
from netcli.builder import inference
from netcli.builder.blocks import as_tuples, module_arguments, parse_node
from netcli.specfile.loading import doc_get, type_path


class _ModuleArgument:
    """Stands for an argument that is a module while the other arguments are bound."""

    def __init__(self, expr: Any):
        self.expr = expr


def layer_call(writer, node, path: tuple, qualname: str, own: str):
    """Return the Piece that creates the layer `node` (module arguments first, as the builder creates them)."""
    from netcli.app.eject.walk import Piece

    entry = registry.types.entry(node.type)
    cls = entry.obj
    func = writer.type_expr(cls, node, path)
    plan = inference.plan_arguments(entry, node.args, node.kwargs)
    args, kwargs, values = list(node.args), dict(node.kwargs), {}
    if plan.missing:
        values = writer.inferred.get(qualname, {})
        args, kwargs = plan.complete(values)
    raw = _raw_arguments(writer, node, path, plan, cls)
    stmts: list = []
    for key, value in module_arguments(cls, args, kwargs).items():
        at = type_path(node, path) + (key,)
        piece = writer.node(parse_node(writer.loaded, value, at), at, f"{qualname}.{key}", own, own)
        stmts += piece.stmts
        if isinstance(key, int):
            args[key] = _ModuleArgument(piece.expr)
        else:
            kwargs[key] = _ModuleArgument(piece.expr)
    args, kwargs, _ = registry.bind_arguments(cls, args, kwargs)  # dtype names, 2.0 -> 2, as built
    args, kwargs = as_tuples(cls, args, kwargs)

    def written(name: str, value: Any):
        if isinstance(value, _ModuleArgument):
            return value.expr
        if name in values:
            return Inferred(value, name)
        return writer.param_value(value, raw.get(name), node, path, tuples=False)

    sig = inference.constructor_signature(cls)
    try:
        bound = sig.bind(*args, **kwargs).arguments if sig is not None else None
    except TypeError:
        bound = None
    if bound is None:
        return Piece(
            stmts,
            Call(func, tuple(written("", v) for v in args), tuple((k, written(k, v)) for k, v in kwargs.items())),
            own,
        )
    return Piece(stmts, _call(func, sig, bound, node, plan, values, written), own)


def _call(func: str, sig, bound: dict, node, plan, values: dict, written) -> Call:
    """The call with positional arguments as the spec gives them by position, the others by name."""
    names = list(plan.positions) if plan.missing else list(bound)[: len(node.args)]
    by_position = set(names) | (set(values) if node.args or not node.kwargs else set())
    order = {name: i for i, name in enumerate([*values, *names, *node.kwargs])}
    pos, kw = [], []
    for name, param in sig.parameters.items():
        if param.kind is param.VAR_POSITIONAL:
            pos += [written("", v) for v in bound.get(name, ())]
        elif param.kind is param.VAR_KEYWORD:
            kw += [(k, written(k, v)) for k, v in bound.get(name, {}).items()]
        elif name not in bound:
            by_position = set()  # a gap: what follows is written by name
        elif name in by_position and param.kind is not param.KEYWORD_ONLY and not kw:
            pos.append(written(name, bound[name]))
        else:
            by_position = set()
            kw.append((name, written(name, bound[name])))
    kw.sort(key=lambda item: order.get(item[0], len(order)))
    return Call(func, tuple(pos), tuple(kw))


def _raw_arguments(writer, node, path: tuple, plan, cls: type) -> dict[str, Any]:
    """Each argument's value as the YAML writes it (`${planes}` included), by parameter name."""
    raw = doc_get(writer.loaded.doc.data, type_path(node, path))
    out: dict[str, Any] = {}
    if isinstance(raw, dict):
        out.update(raw)
        return out
    raw_list = raw if isinstance(raw, list) else ([raw] if raw is not None else [])
    if plan.missing and plan.positions:
        return {name: raw_list[i] for name, i in plan.positions.items() if i < len(raw_list)}
    sig = inference.constructor_signature(cls)
    if sig is None:
        return out
    params = [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return {name: value for name, value in zip(params, raw_list, strict=False)}
