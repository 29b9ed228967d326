"""What the builder needs for custom blocks (SPEC 1.6) and for arguments that are modules.

- One class per definition (`block_class_for`), printing as the definition's
  name or its `class:`; with a `forward:` a `CustomBlock` whose forward is
  compiled once (forward_graph.py), without one a Sequential of that name.
- The forward text parsed once per definition and located in the YAML file
  (`program_for`).
- Constructor arguments that take a module (`nn.TransformerEncoder`'s
  `encoder_layer`, a plugin's `body`) are written as nodes (`module_arguments`).
- On the shape-inference pass, a layer inside a custom block whose input size
  is left out is a `Deferred` stand-in: the forward decides what flows into it,
  so it is created when the forward first calls it, from what it is called with.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from torch import nn

from netcli import registry
from netcli.builder.cache import BuildCache, build_cache
from netcli.core.errors import NetcliError
from netcli.specfile.schema import OPTIONS, BlockNode, is_block
from netcli.specfile.tree import block_members, class_name


def block_class_for(cache: BuildCache, node: BlockNode, path: tuple) -> type[nn.Module]:
    """The class of the modules a block node builds: one per definition, shared by every build of the spec."""
    name = class_name(node, path)
    key = (path, name, node.forward is None)
    cls = cache.classes.get(key)
    if cls is None:
        if node.forward is None:
            from netcli.builder.custom_block import SequentialBlock

            cls = (
                nn.Sequential
                if name == "Sequential"
                else type(
                    name,
                    (SequentialBlock,),
                    {
                        "__module__": __name__,
                        "__qualname__": name,
                        "__doc__": "A custom block without forward: its children in order.",
                    },
                )
            )
        else:
            from netcli.builder.custom_block import block_class

            cls = block_class(name)
        cache.classes[key] = cls
    return cls


def program_for(loaded, node: BlockNode, path: tuple):
    """The block's forward, parsed and checked once per definition; located in the spec file."""
    from netcli.builder.forward import parse_forward

    inputs = tuple(node.inputs or ("x",))
    # a child a null param leaves out is still a name the forward may test (`if downsample is not None:`)
    children = tuple(node.children) + tuple(n for n in node.left_out if n not in node.children)
    assert node.forward is not None  # only a block with a forward is compiled (the others are Sequentials)
    programs = build_cache(loaded).programs
    key = (path, node.forward, inputs, children)
    program = programs.get(key)
    if program is None:
        at = loaded.doc.text_start(path + ("forward",))
        from netcli.specfile.yamldoc import render_path

        program = parse_forward(
            node.forward,
            inputs=inputs,
            children=children,
            # Parameter/Buffer children (SPEC 1.8) are values in the forward, not modules to call
            tensors=tuple(name for name, _, tensor in block_members(node, path) if tensor is not None),
            optional=_left_out(loaded, node, path),
            source=at.source,
            line=at.line,
            column=at.column,
            where=render_path(path + ("forward",)),
        )
        programs[key] = program
    return program


def _left_out(loaded, node: BlockNode, path: tuple) -> tuple[str, ...]:
    """The children `children:` writes that this use leaves out (a module-valued param that is null).

    The forward may still name them in `if downsample is not None:`.
    """
    from netcli.specfile.loading import doc_get

    written = doc_get(loaded.doc.data, path)
    children = written.get("children") if isinstance(written, dict) else None
    if not isinstance(children, dict):
        return ()
    return tuple(str(name) for name in children if str(name) not in node.children)


# ---------------------------------------------------------------- arguments that are modules


def module_arguments(cls: type, args: list, kwargs: dict) -> dict[str | int, Any]:
    """Return the written arguments that are nodes: position or name -> the written node.

    An argument is a module when the constructor's type hint says so
    (`encoder_layer: TransformerEncoderLayer`, `body: nn.Module`), or, without
    a hint, when its value is written as a node of a registered type, a
    `use`/`ref`, or a custom block.
    """
    from netcli.builder.inference import constructor_signature

    sig = constructor_signature(cls)
    if sig is None:
        return {}
    params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    hints = registry.type_hints(cls)
    out: dict[str | int, Any] = {}

    def wants_module(name: str, value: Any) -> bool:
        if name in hints:
            return _is_module_hint(hints[name]) and _node_like(value, strings=True)
        return _node_like(value, strings=False)

    for i, value in enumerate(args):
        if i < len(params) and wants_module(params[i].name, value):
            out[i] = value
    for name, value in kwargs.items():
        if wants_module(name, value):
            out[name] = value
    return out


def _is_module_hint(hint: Any) -> bool:
    if isinstance(hint, type):
        return issubclass(hint, nn.Module)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_module_hint(a) for a in typing.get_args(hint) if a is not type(None))
    return False


def _node_like(value: Any, *, strings: bool) -> bool:
    if isinstance(value, str):
        return strings and value in registry.types
    if isinstance(value, list):
        return strings
    if not isinstance(value, dict) or not value:
        return False
    if is_block(value) or "use" in value or "ref" in value:
        return True
    keys = [k for k in value if k not in OPTIONS]
    return len(keys) == 1 and isinstance(keys[0], str) and (keys[0] in registry.types or keys[0] == "Sequential")


def parse_node(loaded, value: Any, path: tuple):
    """Validate a node written as an argument; raise NetcliError located at `path` inside it."""
    from pydantic import TypeAdapter, ValidationError

    from netcli.specfile.loading import _problem_from_pydantic, pydantic_errors
    from netcli.specfile.schema import NodeField

    try:
        return TypeAdapter(NodeField).validate_python(value)
    except ValidationError as exc:
        raise NetcliError(
            [_problem_from_pydantic(loaded.doc, err, data=value, prefix=path) for err in pydantic_errors(exc)]
        ) from None


# ---------------------------------------------------------------- tuples


def as_tuples(cls: type, args: list, kwargs: dict) -> tuple[list, dict]:
    """Turn YAML lists into tuples, as a hand-written call passes them: `output_size=(1, 1)` prints as one.

    An argument whose type hint asks for a list keeps its list.
    """
    hints = registry.type_hints(cls)
    from netcli.builder.inference import constructor_signature

    sig = constructor_signature(cls)
    names = [p.name for p in sig.parameters.values()] if sig is not None else []

    def convert(name: str | None, value: Any) -> Any:
        if not isinstance(value, list) or (name is not None and _wants_list(hints.get(name))):
            return value
        return tuple(convert(None, v) for v in value)

    return (
        [convert(names[i] if i < len(names) else None, v) for i, v in enumerate(args)],
        {k: convert(k, v) for k, v in kwargs.items()},
    )


def _wants_list(hint: Any) -> bool:
    if hint is None:
        return False
    if hint is list or typing.get_origin(hint) is list:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return bool(args) and all(_wants_list(a) for a in args)
    return False


# ---------------------------------------------------------------- the inference pass


class Deferred(nn.Module):
    """A layer inside a custom block whose input size is inferred: created when the forward first calls it.

    Only on the shape-inference pass, on meta. `create(x)` makes the real
    layer for input `x` (and records the sizes it inferred); the stand-in
    then runs it, so the forward goes on with the right shapes.
    """

    def __init__(self, create: Callable[[Any], nn.Module], label: str):
        super().__init__()
        self._create = create
        self._label = label
        self.made: nn.Module | None = None

    def forward(self, *args, **kwargs):
        if self.made is None:
            self.made = self._create(args[0] if args else None)
        return self.made(*args, **kwargs)

    def extra_repr(self) -> str:
        return self._label


def compile_once(cache: BuildCache, program, module: nn.Module) -> nn.Module:
    """Give `module` its compiled forward; instances whose children are named alike share the work.

    compile_forward writes the forward once per definition, but would still
    trace the program for each instance to see how its child paths resolve;
    that depends only on the names of the modules under it, so the class made
    for the first instance with those names serves every later one.
    """
    from netcli.builder.forward_graph import compile_forward

    key = (id(program), type(module), tuple(name for name, _ in module.named_modules()))
    cls = cache.compiled.get(key)
    if cls is not None:
        module.__class__ = cls
        return module
    compile_forward(program, module)
    cache.compiled[key] = type(module)
    return module
