"""Read a spec: find the file, parse it, apply --set and ${vars}, validate it.

`read_spec_text` returns a `LoadedSpec` (the pydantic model plus the
document, for error locations) or raises NetcliError listing every problem in
the file; `build.validate.load_spec` adds the checks that need the registry.
Walking the node tree is tree.py's, mapping pydantic's errors back to the
YAML pydantic_problems.py's (both re-exported here).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from netcli.core.errors import Location, NetcliError, Problem, relocated
from netcli.specfile.overrides import apply_sets
from netcli.specfile.pydantic_problems import _problem_from_pydantic, doc_get, pydantic_errors
from netcli.specfile.schema import Spec
from netcli.specfile.tree import (
    NodeAt,
    block_children,
    children_of,
    class_name,
    declared_params,
    has_params,
    node_children,
    type_path,
    walk_nodes,
    walk_tree,
)
from netcli.specfile.variables import substitute_vars
from netcli.specfile.yamldoc import Document, Path, parse_yaml, render_path

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_SPEC",
    "LoadedSpec",
    "NodeAt",
    "_problem_from_pydantic",
    "block_children",
    "children_of",
    "doc_get",
    "has_params",
    "node_children",
    "pydantic_errors",
    "read_spec_text",
    "resolve_spec_source",
    "type_path",
    "validate_document",
    "walk_nodes",
    "walk_tree",
]

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
    # id of a `use` node -> the node it builds (see `instance`); a node is the spec's for as long as this is
    uses: dict[int, NodeAt | None] = field(default_factory=dict, repr=False)
    # what builders share across builds of this spec: the build layer's BuildCache (netcli.builder.cache
    # makes it on first use; this layer never reads it)
    build_cache: object = field(default=None, repr=False)

    def instance(self, node: Any, path: Path) -> NodeAt | None:
        """The node a `use` builds, its definition's params filled in from `with:`; None if it cannot be bound.

        A definition without params is its own node. Problems (an unknown or
        missing param, a value the definition cannot take) are recorded in
        `instance_problems`, located where they were written.
        """
        if id(node) in self.uses:
            return self.uses[id(node)]
        target = self.spec.blocks.get(node.use)
        if target is None:
            return None
        at = NodeAt(target, ("blocks", node.use))
        if has_params(target) or node.with_:
            bound = self.bind(at, node.with_, path)  # None: a bad `with:`, reported once and kept
            self.uses[id(node)] = bound
            return bound
        self.uses[id(node)] = at
        return at

    def bind(self, at: NodeAt, given: dict | None = None, use_path: Path | None = None) -> NodeAt | None:
        """Return the block at `at` with its params bound to their defaults and `given`; None on problems."""
        from netcli.specfile.params import (
            MAX_INSTANCES,
            instance_key,
            module_children,
            module_params,
            resolve_values,
            substitute,
        )

        label = class_name(at.node, at.path, "this block")
        defaults = declared_params(at.node)
        given = dict(given or {})
        via = f" (from {render_path(use_path)})" if use_path is not None and given else ""

        def at_given(name, message, hint):
            assert use_path is not None  # only a use (instance() above) passes `with:` arguments
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
        if use_path is not None and not self._modules_given(raw, given, use_path):
            self.instances[key] = None
            return None
        bound = substitute(raw, values)
        first, left_out = module_params(raw, {**{k: v for k, v in values.items() if k not in given}, **given})
        if left_out:  # a null module param registers nothing
            bound["children"] = {k: v for k, v in bound["children"].items() if str(k) not in left_out}
        try:
            from pydantic import TypeAdapter

            from netcli.specfile.schema import NodeField

            node = TypeAdapter(NodeField).validate_python(bound)
            if first or left_out:
                where = {child: param for param, child in module_children(raw, given).items()}
                given_at = tuple((c, use_path + ("with", where[c])) for c in first if c in where and use_path)
                update = {"given_first": tuple(first), "given_at": given_at, "left_out": tuple(left_out)}
                node = node.model_copy(update=update)
        except ValidationError as exc:
            found = [_problem_from_pydantic(self.doc, err, data=bound, prefix=at.path) for err in pydantic_errors(exc)]
            for p in found:
                p.where += via
            self._record(found)
            self.instances[key] = None
            return None
        self.instances[key] = NodeAt(node, at.path, values)
        return self.instances[key]

    def _modules_given(self, raw: Any, given: dict, use_path: Path) -> bool:
        """Check each node a `with:` gives a module-valued param, located where `with:` writes it."""
        from pydantic import TypeAdapter

        from netcli.specfile.params import module_children
        from netcli.specfile.schema import NodeField

        problems = []
        for param in module_children(raw, given):
            if given[param] is None:
                continue
            try:
                TypeAdapter(NodeField).validate_python(given[param])
            except ValidationError as exc:
                where = use_path + ("with", param)
                problems += [
                    _problem_from_pydantic(self.doc, err, data=given[param], prefix=where)
                    for err in pydantic_errors(exc)
                ]
        self._record(problems)
        return not problems

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
