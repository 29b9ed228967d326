"""Read a spec: find the file, parse it, apply --set and ${vars}, validate it.

`read_spec_text` returns a `LoadedSpec` (the pydantic model plus the
document, for error locations) or raises NetcliError listing every problem in
the file; `build.validate.load_spec` adds the checks that need the registry.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from netcli.core.errors import Location, NetcliError, Problem, did_you_mean, relocated
from netcli.specfile.overrides import apply_sets
from netcli.specfile.schema import (
    OPTIONS,
    RULE_KEYS,
    TOP_LEVEL_KEYS,
    BlockNode,
    LayerNode,
    RefNode,
    SequenceNode,
    Spec,
    UseNode,
)
from netcli.specfile.variables import substitute_vars
from netcli.specfile.yamldoc import Document, Path, parse_yaml, render_path

# The chapter's parameter-management network, used when no spec is named.
DEFAULT_SPEC = """\
# netcli's built-in default: the network of D2L's parameter-management section
input: [2, 4]
model:
  - Linear: [4, 8]
  - ReLU
  - Linear: [8, 1]
"""
DEFAULT_NAME = "<default>"


@dataclass
class LoadedSpec:
    """A validated spec and the document it came from."""

    spec: Spec
    doc: Document
    name: str
    # (definition, params) -> its bound copy (see `instance`); problems found binding them
    instances: dict = field(default_factory=dict, repr=False)
    instance_problems: dict = field(default_factory=dict, repr=False)
    # what builders share across builds of this spec (block classes, parsed forwards)
    cache: dict = field(default_factory=dict, repr=False)

    def instance(self, node: Any, path: Path) -> NodeAt | None:
        """The node a `use` builds, its definition's params filled in from `with:`; None if it cannot be bound.

        A definition without params is its own node. Problems (an unknown or
        missing param, a value the definition cannot take) are recorded in
        `instance_problems`, located where they were written.
        """
        key = ("use", id(node))  # a node is the spec's for as long as this cache is
        if key in self.cache:
            return self.cache[key]
        target = self.spec.blocks.get(node.use)
        if target is None:
            return None
        at = NodeAt(target, ("blocks", node.use))
        if (isinstance(target, BlockNode) and target.params) or node.with_:
            at = self.bind(at, node.with_, path)
        self.cache[key] = at
        return at

    def bind(self, at: NodeAt, given: dict | None = None, use_path: Path | None = None) -> NodeAt | None:
        """Return the block at `at` with its params bound to their defaults and `given`; None on problems."""
        from netcli.specfile.params import MAX_INSTANCES, instance_key, resolve_values, substitute
        from netcli.specfile.schema import param_defaults

        block = at.node
        label = (
            block.class_
            if isinstance(block, BlockNode) and block.class_
            else at.path[1]
            if at.path[:1] == ("blocks",) and len(at.path) == 2
            else "this block"
        )
        defaults = param_defaults(block.params) if isinstance(block, BlockNode) else {}
        given = dict(given or {})
        via = f" (from {render_path(use_path)})" if use_path is not None and given else ""

        def at_given(name, message, hint):
            return self.problem(use_path + ("with", name), message, hint, key=True)

        def at_use(message, hint):
            return self.problem((use_path + ("use",)) if use_path is not None else at.path, message, hint)

        values, problems = resolve_values(defaults, given, block=label, at_given=at_given, at_use=at_use)
        if problems:
            self._record(problems)
            return None
        key = instance_key(render_path(at.path), values)
        if key in self.instances:
            return self.instances[key]
        if len(self.instances) >= MAX_INSTANCES:
            self._record(
                [
                    self.problem(
                        use_path or at.path,
                        f"more than {MAX_INSTANCES} differently parameterized copies of blocks",
                        "fewer distinct with: values",
                    )
                ]
            )
            return None
        raw = doc_get(self.doc.data, at.path)
        bound = substitute(raw, values)
        try:
            from pydantic import TypeAdapter

            from netcli.specfile.schema import NodeField

            node = TypeAdapter(NodeField).validate_python(bound)
        except ValidationError as exc:
            found = [_problem_from_pydantic(self.doc, err, data=bound, prefix=at.path) for err in pydantic_errors(exc)]
            for p in found:
                p.where += via
            self._record(found)
            self.instances[key] = None
            return None
        self.instances[key] = NodeAt(node, at.path, values)
        return self.instances[key]

    def _record(self, problems: list[Problem]) -> None:
        for p in problems:
            self.instance_problems.setdefault(str(p), p)

    def locate(self, path: Path, *, key: bool = False) -> Location:
        return self.doc.locate(path, key=key)

    def problem(
        self, path: Path, message: str, hint: str | None = None, *, key: bool = False, where: str | None = None
    ) -> Problem:
        return Problem(message, where if where is not None else render_path(path), self.locate(path, key=key), hint)

    def relocate(
        self, path: Path, problems: Iterable[Problem], *, key: bool = False, where: str | None = None
    ) -> list[Problem]:
        """Say `problems` (found by a lower layer) of the place `path` in this spec."""
        return relocated(problems, where if where is not None else render_path(path), self.locate(path, key=key))

    @property
    def resolved_text(self) -> str:
        """The spec after --set and ${vars}, as YAML: what a checkpoint embeds."""
        import yaml

        return yaml.safe_dump(self.doc.data, sort_keys=False, allow_unicode=True)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.resolved_text.encode()).hexdigest()


def resolve_spec_source(spec: str | None) -> tuple[str, str, str | None]:
    """Return (text, source name, note) for a named file, NETCLI_SPEC, ./netcli.yaml or the default."""
    note = None
    if spec is None:
        env = os.environ.get("NETCLI_SPEC")
        if env:
            spec, note = env, f"netcli: using {env} (from NETCLI_SPEC)"
        elif FsPath("netcli.yaml").is_file():
            spec, note = "netcli.yaml", "netcli: using ./netcli.yaml"
        else:
            return (
                DEFAULT_SPEC,
                DEFAULT_NAME,
                ("netcli: no spec given; using the built-in default [Linear(4, 8), ReLU, Linear(8, 1)]"),
            )
    path = FsPath(spec)
    if not path.exists():
        raise NetcliError(
            Problem(f"no such file: {spec}", location=Location(spec), hint="give the path of a .yaml spec")
        )
    if path.is_dir():
        raise NetcliError(Problem("is a folder, not a spec file", location=Location(spec)))
    from netcli.specfile.yamldoc import MAX_BYTES

    try:
        # Read at most the limit: a device or a FIFO (/dev/zero, /dev/urandom) has size 0 and no end.
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise NetcliError(Problem(f"cannot read: {exc.strerror}", location=Location(spec))) from exc
    if len(data) > MAX_BYTES:
        raise NetcliError(
            Problem(
                f"the file is larger than {MAX_BYTES // 1024} KiB",
                location=Location(spec),
                hint="a spec should be a short file",
            )
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetcliError(
            Problem(f"not UTF-8 text (byte {exc.start})", location=Location(spec), hint="a spec is a YAML text file")
        ) from exc
    except OSError as exc:
        raise NetcliError(Problem(f"cannot read: {exc.strerror}", location=Location(spec))) from exc
    return text, spec, note


def _raw_at(data: Any, loc: tuple) -> tuple[Path, bool]:
    """Follow a pydantic error location through the raw document.

    Pydantic's locations pass through the tagged node models (`sequence`,
    `children`, `layer`, ...); this maps them back to the YAML path. Returns
    the path and whether its last step is a mapping key (so point at the key).
    """
    node, path, is_key = data, (), False
    for part in loc:  # a part that names no step (a tag, a union member) keeps the place found so far
        if isinstance(node, dict):
            if part in node:
                node, path, is_key = node[part], path + (part,), True
            elif part == "children" and "Sequential" in node:
                node, path, is_key = node["Sequential"], path + ("Sequential",), False
            elif isinstance(part, int) and all(isinstance(k, str) for k in node) and "Sequential" not in node:
                keys = list(node)
                if 0 <= part < len(keys):  # a named child: children[i] is the i-th key
                    node, path, is_key = node[keys[part]], path + (keys[part],), False
            elif part in ("args", "kwargs", "type"):
                key = next((k for k in node if k not in OPTIONS), None)
                if key is not None:
                    node, path, is_key = node[key], path + (key,), False
            continue
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node, path, is_key = node[part], path + (part,), False
    return path, is_key


def _problem_from_pydantic(doc: Document, err: dict, *, data: Any = None, prefix: Path = ()) -> Problem:
    """A pydantic error as a located problem; `data` at `prefix` is the part of the document validated."""
    loc = tuple(err["loc"])
    path, is_key = _raw_at(doc.data if data is None else data, loc)
    path = tuple(prefix) + path
    kind, message, hint = err["type"], err["msg"], None
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = loc[-1]
        if len(path) == 1:
            valid = TOP_LEVEL_KEYS
            message = f"unknown top-level key '{key}'"
        elif path and path[0] == "init":
            valid = RULE_KEYS
            message = f"unknown key '{key}' in an init rule"
        else:
            valid = OPTIONS
            message = f"unknown option '{key}'"
        hint = did_you_mean(str(key), valid) or f"valid keys: {', '.join(valid)}"
        return Problem(message, render_path(path[:-1]), doc.locate(path, key=True), hint)
    if "(did you mean" in message:
        message, _, rest = message.partition(" (")
        hint = rest.rstrip(")")
    if "key" in ctx and isinstance(doc_get(doc.data, path), dict) and ctx["key"] in doc_get(doc.data, path):
        path, is_key = path + (ctx["key"],), True
    if kind == "literal_error" and isinstance(err.get("input"), str):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(err["input"], choices)
    if kind == "missing":
        message = f"missing required key '{loc[-1]}'"
        if loc == ("model",):
            hint = "a spec needs model: the network, e.g. model: [{Linear: [4, 8]}, ReLU]"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        message = f"{message.rstrip('.')}, got {err.get('input')!r}"
    return Problem(message, render_path(path), doc.locate(path, key=is_key), hint)


def pydantic_errors(exc: ValidationError) -> list[dict]:
    """The errors to report: without the `${param}` alternative an option also accepts (it is never the fix)."""
    from netcli.specfile.schema import PARAM_TEXT

    errors = exc.errors()
    kept = [
        e
        for e in errors
        if not (e["type"] == "string_pattern_mismatch" and (e.get("ctx") or {}).get("pattern") == PARAM_TEXT)
    ]
    return kept or errors


def doc_get(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def validate_document(doc: Document) -> Spec:
    """Check the document's structure with the pydantic models; raise with every problem."""
    if doc.data is None:
        raise NetcliError(
            Problem("the spec is empty", location=Location(doc.source), hint="a spec needs at least model: [...]")
        )
    if not isinstance(doc.data, dict):
        raise NetcliError(
            Problem(
                "a spec is a mapping of keys (model:, blocks:, ...)", location=doc.locate(()), hint="start with model:"
            )
        )
    try:
        return Spec.model_validate(doc.data)
    except ValidationError as exc:
        problems, seen = [], set()
        for err in pydantic_errors(exc):
            problem = _problem_from_pydantic(doc, err)
            if str(problem) not in seen:
                seen.add(str(problem))
                problems.append(problem)
        raise NetcliError(problems) from None


def read_spec_text(
    text: str,
    source: str,
    sets: Iterable[str] = (),
    *,
    check: Callable[[LoadedSpec], None] | None = None,
    embedded: bool = False,
) -> LoadedSpec:
    """Parse text already read (a file, an embedded spec, the default): --set, ${vars}, the schema.

    `check` (build.validate's registry, shape and size checks) runs on the
    result, and its problems are reported together with this file's.
    `embedded`: the text came out of a checkpoint (its `extends:` is refused).
    """
    from netcli.specfile.compose import compose

    # extends: merged first, so --set and ${vars} apply to the result
    doc = compose(parse_yaml(text, source), embedded=embedded)
    apply_sets(doc, sets)
    problems = substitute_vars(doc)
    try:
        model = validate_document(doc)
        name = model.name or (FsPath(source).stem if source != DEFAULT_NAME else "default")
        loaded = LoadedSpec(model, doc, name)
        if check is not None:
            check(loaded)
    except NetcliError as exc:
        # A value left as "${name}" also fails its type check: report the variable once.
        bad = {p.location for p in problems}
        raise NetcliError(problems + [p for p in exc.problems if p.location not in bad]) from exc
    if problems:
        raise NetcliError(problems)
    return loaded


@dataclass
class NodeAt:
    """A node and its path in the document (and, for a bound block, its params' values)."""

    node: Any
    path: Path
    params: dict | None = None
    via: str = ""  # under a use's bound copy: "with planes=128, from model.layer2[0]", for messages


def children_of(node: SequenceNode, path: Path) -> Iterator[tuple[str, NodeAt]]:
    """Yield (child name, child) for a sequence node, with each child's document path."""
    base = path + ("Sequential",) if node.spelled else path
    for i, child in enumerate(node.children):
        if node.child_names is not None:
            key = node.child_names[i]
            name = key if child.name is None else str(child.name)
            yield name, NodeAt(child, base + (key,))
        else:
            yield (str(i) if child.name is None else str(child.name)), NodeAt(child, base + (i,))


def block_children(node: BlockNode, path: Path) -> Iterator[tuple[str, NodeAt]]:
    """Yield (child name, child) for a custom block, in the order `children:` writes them."""
    for name, child in node.children.items():
        yield name, NodeAt(child, path + ("children", name))


def node_children(at: NodeAt) -> Iterator[tuple[str, NodeAt]]:
    """The children a node writes: a sequence's or a custom block's (nothing for other nodes)."""
    if isinstance(at.node, SequenceNode):
        return children_of(at.node, at.path)
    if isinstance(at.node, BlockNode):
        return block_children(at.node, at.path)
    return iter(())


def has_params(node: Any) -> bool:
    return isinstance(node, BlockNode) and bool(node.params)


def walk_tree(
    loaded: LoadedSpec, at: NodeAt, *, templates: bool = False, done: set[int] | None = None
) -> Iterator[NodeAt]:
    """Yield `at` and every node under it; a `use` of a definition with params goes on into its bound copy
    (each copy once per `done`), an inline block with params is bound to its defaults (see walk_nodes)."""
    done = set() if done is None else done
    if not templates and has_params(at.node) and at.params is None:
        bound = loaded.bind(at)  # an inline block with params: its defaults
        if bound is None:
            return
        at = NodeAt(bound.node, bound.path, bound.params, at.via)
    yield at
    for _, child in node_children(at):
        child.via = at.via
        yield from walk_tree(loaded, child, templates=templates, done=done)
    if not templates and isinstance(at.node, UseNode):
        bound = loaded.instance(at.node, at.path)
        if bound is not None and bound.params is not None and id(bound) not in done:
            done.add(id(bound))
            given = ", ".join(f"{k}={v!r}" for k, v in at.node.with_.items())
            via = f"with {given}, from {render_path(at.path)}" if given else at.via
            yield from walk_tree(
                loaded, NodeAt(bound.node, bound.path, bound.params, via), templates=templates, done=done
            )


def walk_nodes(loaded: LoadedSpec, *, templates: bool = False) -> Iterator[NodeAt]:
    """Yield every node of the spec (definitions, then the model) with its path.

    A definition with params is walked once per distinct set of values it is
    used with (each bound copy, see LoadedSpec.instance), and once with its
    defaults when it has a default for each; `templates=True` walks each
    definition once as written instead (for checks that must not expand, such
    as finding cycles). Problems binding a copy go to `loaded.instance_problems`.
    """
    done: set[int] = set()

    def walk(at: NodeAt) -> Iterator[NodeAt]:
        return walk_tree(loaded, at, templates=templates, done=done)

    for name, node in loaded.spec.blocks.items():
        at = NodeAt(node, ("blocks", name))
        if not templates and has_params(node):
            from netcli.specfile.schema import REQUIRED, param_defaults

            if any(v is REQUIRED for v in param_defaults(node.params).values()):
                yield at  # checked through each use, which gives its values
                continue
            at = loaded.bind(at)
            if at is None or id(at) in done:
                continue
            done.add(id(at))
        yield from walk(at)
    yield from walk(NodeAt(loaded.spec.model, ("model",)))


def type_path(node: Any, path: Path) -> Path:
    """The document path of a node's type key (`model.1.Linear`), for messages."""
    if isinstance(node, LayerNode):
        return path + (node.type,)
    if isinstance(node, (UseNode, RefNode)):
        return path + (node.kind,)
    return path
