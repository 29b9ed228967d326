"""Check a structurally valid spec against the registry, without building anything.

Every type is looked up, every constructor call is bound to its signature,
every `use`/`ref` is resolved and cycles are found; all problems of a file are
collected and raised together (torchtune's `validate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from netcli import registry
from netcli.builder import inference
from netcli.builder.names import check_nfkc_keys, check_spec_name, child_name_fault, names_format_fault
from netcli.builder.origins import check_cycles
from netcli.builder.size_check import check_size
from netcli.core.errors import NetcliError, Problem, did_you_mean
from netcli.specfile.loading import (
    LoadedSpec,
    NodeAt,
    block_children,
    children_of,
    doc_get,
    has_params,
    read_spec_text,
    resolve_spec_source,
    walk_nodes,
    walk_tree,
)
from netcli.specfile.schema import BlockNode, LayerNode
from netcli.specfile.tree import Walker, named_definition, repeat_names, required_params
from netcli.specfile.yamldoc import render_path


def load_spec(
    spec: str | None = None,
    sets: Iterable[str] = (),
    plugins: Iterable[str] = (),
    *,
    check: bool = True,
    notes: list[str] | None = None,
) -> LoadedSpec:
    """Read, override, validate and check a spec; raise NetcliError listing every problem.

    The one entry point every command uses. `spec` None: NETCLI_SPEC, else
    ./netcli.yaml, else the built-in default (a note in `notes` says which).
    """
    text, source, note = resolve_spec_source(spec)
    if note and notes is not None:
        notes.append(note)
    return load_spec_text(text, source, sets, plugins, check=check)


def load_spec_text(
    text: str,
    source: str,
    sets: Iterable[str] = (),
    plugins: Iterable[str] = (),
    *,
    check: bool = True,
    embedded: bool = False,
) -> LoadedSpec:
    """Like load_spec, from text already read (an embedded spec, the default).

    `embedded`: the text came out of a checkpoint, which anyone may have written;
    its `plugins:` are then never imported (see check_spec).
    """
    return read_spec_text(
        text,
        source,
        sets,
        check=(lambda loaded: check_spec(loaded, plugins, embedded=embedded)) if check else None,
        embedded=embedded,
    )


def check_spec(loaded: LoadedSpec, plugins: Iterable[str] = (), *, embedded: bool = False) -> None:
    """Raise NetcliError listing every problem of the spec; return if there are none.

    A spec embedded in a checkpoint is data from whoever made the file: importing
    its `plugins:` would run any installed module (`venv.__main__`). Such a
    spec's plugins must each be named with `--plugin` by the person running netcli.
    """
    problems: list[Problem] = []
    registry.ensure_loaded()
    plugins = list(plugins)
    for module in plugins:
        registry.load_plugin(module)
    for i, module in enumerate(loaded.spec.plugins):
        if embedded:
            if module not in plugins:
                problems.append(
                    loaded.problem(
                        ("plugins", i),
                        f"the checkpoint's spec asks for plugin '{module}'; plugins named inside a "
                        "file are never imported",
                        f"if you trust this file, name it yourself: --plugin {module}",
                    )
                )
            continue
        try:
            registry.load_plugin(module)
        except NetcliError as exc:
            problems += loaded.relocate(("plugins", i), exc.problems)
    problems += _check_device(loaded, ("device",), loaded.spec.device)
    problems += check_spec_name(loaded)
    problems += check_nfkc_keys(loaded)
    cycles = check_cycles(loaded)  # on the definitions as written: binding params must not recurse forever
    if cycles:
        raise NetcliError(problems + cycles)
    seen: set[tuple] = set()
    for at in walk_nodes(loaded):
        for problem in _check_node(loaded, at):
            key = (problem.location, problem.message)
            if key in seen:  # the same fault of a definition, met again through another use
                continue
            seen.add(key)
            if at.via:  # a fault of one use's values: say which use
                problem.where = f"{problem.where} ({at.via})"
            problems.append(problem)
    problems += [p for p in loaded.instance_problems.values() if str(p) not in {str(q) for q in problems}]
    if not problems:
        problems += check_size(loaded)
    if problems:
        raise NetcliError(problems)


def _check_device(loaded: LoadedSpec, path, text) -> list[Problem]:
    if text is None:
        return []
    from netcli.core.devices import resolve_device

    try:
        resolve_device(text)
    except NetcliError as exc:
        return loaded.relocate(path, exc.problems)
    return []


def _check_node(loaded: LoadedSpec, at: NodeAt) -> list[Problem]:
    node, path = at.node, at.path
    problems = _check_device(loaded, path + ("device",), node.device)
    if isinstance(node.repeat, int) and node.names is not None:
        fault = names_format_fault(node.names)
        try:
            if fault is not None:
                raise ValueError(fault)
            names = repeat_names(node)
        except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
            problems.append(loaded.problem(path + ("names",), f"cannot format names: {exc}", "write e.g. 'block {i}'"))
        else:
            if len(set(names)) != len(names):
                problems.append(
                    loaded.problem(
                        path + ("names",),
                        f"'{node.names}' gives the same name twice",
                        "put {i} in it, e.g. 'block {i}'",
                    )
                )
            bad = next(((n, why) for n in names if (why := child_name_fault(n)) is not None), None)
            if bad is not None:
                problems.append(
                    loaded.problem(
                        path + ("names",),
                        f"'{bad[0]}' cannot be a child's name: {bad[1]}",
                        "names are not empty, contain no '.' and no control characters, "
                        "and are not attributes of nn.Module",
                    )
                )
    return problems + _NodeChecks(loaded).dispatch(at)


class _NodeChecks(Walker[list[Problem]]):
    """Each kind of node's own faults, on the nodes walk_nodes yields (bound already, or templates)."""

    binds = False

    def __init__(self, loaded: LoadedSpec):
        self.loaded = loaded

    def other(self, at: NodeAt, *args: Any, **kwargs: Any) -> list[Problem]:
        return []

    def visit_layer(self, at: NodeAt) -> list[Problem]:
        return _check_layer(self.loaded, at.node, at.path)

    def visit_use(self, at: NodeAt, bound: Any) -> list[Problem]:
        return self._target(at)

    def visit_ref(self, at: NodeAt) -> list[Problem]:
        problems = self._target(at)
        target, loaded = at.node.ref, self.loaded
        required = required_params(loaded.spec.blocks[target]) if not problems else []
        if required:
            problems.append(
                loaded.problem(
                    at.path + ("ref",),
                    f"a ref is the one shared {target}: it is built with its params' defaults, "
                    f"and {', '.join(repr(r) for r in required)} has none",
                    f"give {target}'s params defaults, or use {{use: {target}, with: {{...}}}} for a fresh copy",
                )
            )
        return problems

    def _target(self, at: NodeAt) -> list[Problem]:
        """The definition a `use` or `ref` names must exist."""
        target, loaded = named_definition(at.node) or "", self.loaded
        if target in loaded.spec.blocks:
            return []
        defined = list(loaded.spec.blocks)
        hint = did_you_mean(target, defined) or (
            f"defined blocks: {', '.join(defined)}" if defined else "define it under blocks:"
        )
        return [loaded.problem(at.path + (at.node.kind,), f"'{target}' is not defined", hint)]

    def visit_block(self, at: NodeAt) -> list[Problem]:
        return _check_block(self.loaded, at.node, at.path, bound=at.params is not None or not has_params(at.node))

    def visit_sequence(self, at: NodeAt) -> list[Problem]:
        problems, seen = [], set()
        for name, child in children_of(at.node, at.path):
            if name in seen:
                problems.append(
                    self.loaded.problem(child.path, f"two children are named '{name}'", "give each child its own name")
                )
            elif (why := child_name_fault(name)) is not None:
                problems.append(
                    self.loaded.problem(
                        child.path,
                        f"'{name}' cannot be a child's name: {why}",
                        "names are not empty, contain no '.' and no control characters, "
                        "and are not attributes of nn.Module",
                    )
                )
            seen.add(name)
        return problems

    visit_container = visit_sequence


def _check_block(loaded: LoadedSpec, node: BlockNode, path, *, bound: bool) -> list[Problem]:
    """A custom block's own faults: its class name, its children's names, its inputs, its forward text.

    The children themselves are walked as nodes; the forward is parsed (never
    run), so a wrong name in it is located at its FILE:LINE:COL.
    """
    problems = []
    if node.class_ is not None and not (node.class_.isidentifier() and not node.class_.startswith("__")):
        problems.append(
            loaded.problem(
                path + ("class",),
                f"'{node.class_}' cannot be a class name",
                "write a Python class name, e.g. BasicBlock",
            )
        )
    for name, child in block_children(node, path):
        if (why := child_name_fault(name)) is not None:
            problems.append(
                loaded.problem(
                    child.path,
                    f"'{name}' cannot be a child's name: {why}",
                    "names are not empty, contain no '.' and no control characters, "
                    "and are not attributes of nn.Module",
                    key=True,
                )
            )
        elif child.node.name is not None:
            problems.append(
                loaded.problem(
                    child.path + ("name",),
                    f"the child '{name}' is named by its key",
                    "remove name: (the key under children: is the name)",
                    key=True,
                )
            )
    if node.forward is None:
        if node.inputs is not None and len(node.inputs) > 1:
            problems.append(
                loaded.problem(
                    path + ("inputs",),
                    "without forward: the children run in order on one input",
                    "write a forward: that uses each input",
                )
            )
        return problems
    return problems + _check_forward(loaded, node, path)


def _check_forward(loaded: LoadedSpec, node: BlockNode, path) -> list[Problem]:
    from netcli.builder.blocks import program_for

    try:
        program_for(loaded, node, path)
    except NetcliError as exc:
        return list(exc.problems)
    return []


def _check_layer(loaded: LoadedSpec, node: LayerNode, path) -> list[Problem]:
    type_path = path + (node.type,)
    try:
        entry = registry.types.entry(node.type)
    except NetcliError as exc:
        return loaded.relocate(type_path, exc.problems, key=True, where=render_path(path))
    # With an input: shape, an inferable input size may be left out and the build
    # infers it ({Linear: 120} is then out_features=120, SPEC 1.1); without one,
    # the problem says which argument to write.
    has_input = loaded.spec.input is not None
    plan = inference.plan_arguments(entry, node.args, node.kwargs, shift=has_input)
    placeholders = {arg: 1 for arg in plan.missing}  # stands in for the inferred size while binding
    _, _, bound_problems = registry.bind_arguments(entry.obj, plan.args, {**plan.kwargs, **placeholders})
    # each problem at the place the spec wrote it: a position, or an argument's name
    found: list[tuple[str | int, Problem]] = [
        (plan.positions.get(arg, arg) if isinstance(arg, str) else arg, problem)
        for arg, problem in bound_problems
        if arg not in placeholders
    ]
    inner: list[Problem] = []
    nodes = _module_arguments(entry.obj, node.args, node.kwargs)
    if nodes:  # arguments written as nodes (encoder_layer): checked as nodes, built before the layer
        from netcli.builder.blocks import parse_node

        found = [(arg, problem) for arg, problem in found if arg not in nodes]
        for key, value in nodes.items():
            try:
                sub = parse_node(loaded, value, type_path + (key,))
            except NetcliError as exc:
                inner += exc.problems
                continue
            for at in walk_tree(loaded, NodeAt(sub, type_path + (key,))):
                inner += _check_node(loaded, at)
    shifted = None if has_input or not found else inference.plan_arguments(entry, node.args, node.kwargs)
    if shifted is not None and shifted.positions:  # with an input shape it would infer a size
        meant = ", ".join(f"{name}={shifted.kwargs[name]!r}" for name in shifted.positions)
        hint = (
            f"with an input: shape, {' and '.join(shifted.missing)} is inferred and this reads "
            f"{meant}; without one, {inference.cannot_infer_hint(node.type, shifted)}"
        )
        found = [(arg, dataclasses.replace(problem, hint=hint)) for arg, problem in found]
    if plan.missing and not has_input and not found:
        found = [
            (
                "",
                Problem(
                    f"cannot infer {' and '.join(plan.missing)}: the spec has no input: shape",
                    hint=inference.cannot_infer_hint(node.type, plan, no_input=True),
                ),
            )
        ]
    out = []
    for arg, problem in found:
        arg_path = _argument_path(loaded, type_path, arg)
        out.append(
            loaded.problem(
                arg_path,
                problem.message,
                problem.hint,
                key=isinstance(arg, str) and arg != "",
                where=render_path(type_path),
            )
        )
    return out + inner


def _argument_path(loaded: LoadedSpec, type_path, arg) -> tuple:
    """Where an argument is written: `Linear.bias`, or in the list's trailing keyword mapping (`Linear.2.bias`)."""
    if arg == "":
        return type_path
    written = doc_get(loaded.doc.data, type_path)
    if isinstance(arg, str) and isinstance(written, list) and written and isinstance(written[-1], dict):
        if arg in written[-1]:
            return type_path + (len(written) - 1, arg)
    return type_path + (arg,)


def _module_arguments(cls, args, kwargs) -> dict:
    if not isinstance(cls, type):
        return {}
    from netcli.builder.blocks import module_arguments

    return module_arguments(cls, args, kwargs)
