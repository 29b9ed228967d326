"""Walk an nn.Module tree in registration order and write the spec that builds it.

`nn.Sequential` is a list (or named children), a registered torch.nn type its
node with the recovered constructor arguments, any other class a custom block
(its tensors, children and traced forward). Instances of one class with the
same structure become one definition; the argument values that differ
between them become its `params`, each passed by `with:` where a use differs
from the first. A module used in several places is one `ref`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from netcli import registry
from netcli.app.codespec.arguments import rebuilds, recover_call
from netcli.app.codespec.forward import forward_text
from netcli.core.errors import NetcliError, Problem
from netcli.core.qualnames import join

_SKIP_KEYS = frozenset({"forward", "inputs", "class", "use", "ref", "name", "repeat", "names", "frozen", "children"})


class Pending(dict):
    """A custom block's use, filled in once every instance of its class has been seen and grouped."""

    def __init__(self, module: Any, body: dict):
        super().__init__()
        self.module = module
        self.body = body


class SpecWriter:
    """Collect the spec of one network: its definitions, its model node and its ties."""

    def __init__(self, root: Any, leaves: set[str]):
        self.root = root
        self.leaves = leaves
        self.pending: dict[type, list[Pending]] = {}
        self.contains: dict[type, set[type]] = {}  # class -> custom classes found inside its instances
        self.blocks: dict[str, Any] = {}
        self.names: dict[type, str] = {}  # a class's first definition name
        self._stack: list[type] = []
        counts = Counter(id(m) for _, m in root.named_modules(remove_duplicate=False))
        self.shared = {i for i, n in counts.items() if n > 1 and i != id(root)}
        self.refs: dict[int, str] = {}

    # --- the walk ------------------------------------------------------------------------

    def node(self, m: Any, path: str) -> Any:
        """The spec node of module `m` found at `path`."""
        if id(m) in self.shared:
            if id(m) not in self.refs:
                name = self._fresh_block_name(path.replace(".", "_") or "shared")
                self.refs[id(m)] = name
                self.blocks[name] = self._plain_node(m, path)
            return {"ref": self.refs[id(m)]}
        return self._plain_node(m, path)

    def _plain_node(self, m: Any, path: str) -> Any:
        import torch.nn as nn

        node = self._node_of(m, path, nn)
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):  # a frozen block: requires_grad_(False)
            if isinstance(node, Pending):
                node.body["__frozen__"] = True
            elif isinstance(node, dict):
                node = {**node, "frozen": True}
            elif isinstance(node, list):
                node = {"Sequential": node, "frozen": True}
            else:
                node = {node: {}, "frozen": True}
        return node

    def _node_of(self, m: Any, path: str, nn: Any) -> Any:
        cls = type(m)
        entry = registry.types.entry_of(cls)
        if cls is nn.Sequential:
            return self._sequential(m, path)
        if cls in (nn.ModuleList, nn.ModuleDict):
            return self._container(m, path, cls)
        if entry is not None:  # torch.nn's types, the chapter's, a plugin's: a node of its own
            return self._layer(m, cls, entry.name, path)
        if cls.__name__ in self.leaves:
            raise NetcliError(
                Problem(
                    f"--leaf {cls.__name__}: the class is not a registered type",
                    hint=f"register it with @netcli.register_block in {cls.__module__}, and name that module "
                    "with --plugin",
                )
            )
        return self._custom(m, path)

    def _sequential(self, m: Any, path: str) -> Any:
        names = list(m._modules)
        items = [self.node(child, join(path, name)) for name, child in m._modules.items()]
        if names == [str(i) for i in range(len(names))]:
            return items
        return {"Sequential": dict(zip(names, items, strict=True))}

    def _container(self, m: Any, path: str, cls: type) -> Any:
        items = {name: self.node(child, join(path, name)) for name, child in m._modules.items()}
        if cls.__name__ == "ModuleDict":
            return {"ModuleDict": items}
        return {"ModuleList": Runs(items.values())}

    def _layer(self, m: Any, cls: type, name: str, path: str) -> Any:
        positional, keywords = recover_call(m, cls)
        problem = rebuilds(m, cls, positional, keywords)
        if problem is not None:  # (1, 1) where the module keeps the tuple it was given
            positional, keywords = recover_call(m, cls, simplify=False)
            problem = rebuilds(m, cls, positional, keywords)
        if problem is not None:
            raise NetcliError(
                Problem(
                    f"{path or 'the network'}: cannot recover the arguments of {name}: {problem}",
                    hint=f"keep it as it is with --leaf {name} (a plugin type)",
                )
            )
        positional = [self._argument(v, path) for v in positional]
        keywords = {k: self._argument(v, path) for k, v in keywords.items()}
        if not positional and not keywords:
            return name
        if keywords:
            from netcli.builder.inference import constructor_signature

            sig = constructor_signature(cls)
            params = list(sig.parameters) if sig is not None else []
            keywords = {**{params[i]: v for i, v in enumerate(positional)}, **keywords}
            return {name: keywords}
        if len(positional) == 1 and not isinstance(positional[0], list | dict):
            return {name: positional[0]}
        return {name: positional}

    def _argument(self, value: Any, path: str) -> Any:
        import torch.nn as nn

        if isinstance(value, nn.Module):
            return self._plain_node(value, path)
        if isinstance(value, tuple):
            return [self._argument(v, path) for v in value]
        return value

    def _custom(self, m: Any, path: str) -> Pending:
        import torch.nn as nn

        cls = type(m)
        if self._stack:
            self.contains.setdefault(self._stack[-1], set()).add(cls)
        self._stack.append(cls)
        try:
            children: dict[str, Any] = {}
            for name, t in m._parameters.items():
                if t is not None:
                    children[name] = _tensor_node("Parameter", t, persistent=True)
            for name, t in m._buffers.items():
                if t is not None:
                    children[name] = _tensor_node("Buffer", t, persistent=name not in m._non_persistent_buffers_set)
            for name, child in m._modules.items():
                if child is not None:
                    children[name] = self.node(child, join(path, name))
            if isinstance(m, nn.Sequential) and cls.forward is nn.Sequential.forward:
                inputs, forward = ["x"], None  # a Sequential under its own class name: its children in order
            else:
                inputs, forward = forward_text(m, set(m._parameters) | set(m._buffers))
        finally:
            self._stack.pop()
        body: dict[str, Any] = {"children": children}
        if inputs != ["x"]:
            body["inputs"] = inputs
        if forward is not None:
            body["forward"] = forward
        pending = Pending(m, body)
        self.pending.setdefault(cls, []).append(pending)
        return pending

    # --- grouping ------------------------------------------------------------------------

    def group(self) -> None:
        """Give every custom class its definitions (one per structure) and every use its `with:`."""
        done: set[type] = set()

        def visit(cls: type, trail: tuple[type, ...]) -> None:
            if cls in done or cls in trail:
                return
            for inner in sorted(self.contains.get(cls, ()), key=lambda c: c.__name__):
                visit(inner, (*trail, cls))
            self._group_class(cls)
            done.add(cls)

        for cls in list(self.pending):
            visit(cls, ())

    def _group_class(self, cls: type) -> None:
        groups: dict[str, list[Pending]] = {}
        for pending in self.pending[cls]:
            groups.setdefault(_template(pending.body), []).append(pending)
        for index, members in enumerate(groups.values()):
            name = self._fresh_block_name(cls.__name__ if index == 0 else f"{cls.__name__}_{index + 1}")
            definition, uses = _parametrize([p.body for p in members])
            frozen = definition.pop("__frozen__", None)
            if name != cls.__name__:
                definition = {"class": cls.__name__, **definition}
            self.blocks[name] = definition
            for pending, given in zip(members, uses, strict=True):
                pending["use"] = name
                if given:
                    pending["with"] = given
                if frozen:
                    pending["frozen"] = True

    def _fresh_block_name(self, base: str) -> str:
        name, n = base, 2
        while name in self.blocks:
            name, n = f"{base}_{n}", n + 1
        self.blocks[name] = None  # reserved
        return name


def _tensor_node(kind: str, t: Any, *, persistent: bool) -> dict:
    """A Parameter/Buffer child as the spec writes it (its values come with --weights)."""
    import torch

    shape = list(t.shape)
    fill: dict[str, Any] = {"zeros": shape}
    if t.dtype == torch.bool and t.dim() == 2 and t.shape[0] == t.shape[1]:
        ones = torch.ones(shape, dtype=torch.bool)
        if torch.equal(t.cpu(), torch.tril(ones)):
            fill = {"tril": shape, "bool": True}
        elif torch.equal(t.cpu(), torch.triu(ones)):
            fill = {"triu": shape, "bool": True}
    elif t.dtype == torch.int64 and t.dim() == 1 and torch.equal(t.cpu(), torch.arange(t.numel())):
        fill = {"arange": t.numel()}
    elif t.dtype != torch.float32:
        raise NetcliError(
            Problem(
                f"a {kind} of dtype {str(t.dtype).removeprefix('torch.')} cannot be written as a spec's tensor",
                hint="keep its class as a plugin type (--leaf)",
            )
        )
    if kind == "Parameter" and not t.requires_grad:
        fill["requires_grad"] = False
    if kind == "Buffer" and not persistent:
        fill["persistent"] = False
    return {kind: fill}


class Runs(list):
    """A ModuleList's items; written with equal neighbours as one item with `repeat: N` once uses are known."""


def runs(items: list) -> list:
    """Consecutive equal items of a ModuleList as one item with `repeat: N` (`[Block() for _ in range(N)]`)."""
    out: list = []
    for item in items:
        if out and isinstance(item, dict) and out[-1][0] == item:
            out[-1][1] += 1
        else:
            out.append([item, 1])
    return [item if n == 1 else {**item, "repeat": n} for item, n in out]


def plain(node: Any) -> Any:
    """A node as plain data: pending uses resolved, a ModuleList's equal neighbours as `repeat: N`."""
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, Runs):
        return runs([plain(v) for v in node])
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def _leaves(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """The argument values of a body, with their paths: what may differ between two instances of a class."""
    out: list[tuple[tuple, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SKIP_KEYS and key != "children":
                continue
            out += _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _leaves(value, (*path, i))
    elif path and path[-1] not in ("__frozen__",):
        out.append((path, node))
    return out


def _template(body: dict) -> str:
    """The structure of a body with its argument values blanked: equal templates may share one definition."""

    def blank(node: Any, key: Any = None) -> Any:
        if isinstance(node, dict):
            return {k: (v if k in _SKIP_KEYS - {"children"} else blank(v, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [blank(v) for v in node]
        return "?" if not isinstance(node, bool) else node

    return repr(blank(plain(body)))


def _param_name(path: tuple, taken: set[str]) -> str:
    """Name a param after the argument it fills: `in_channels`, or for `{Conv2d: [a, b]}`'s b, `out_channels`."""
    base = None
    if len(path) >= 2 and isinstance(path[-1], int) and isinstance(path[-2], str) and path[-2] in registry.types:
        names = [n for n in registry.parameters(registry.types.get(path[-2])) if n != "self"]
        if path[-1] < len(names):
            base = names[path[-1]]
    if base is None:
        words = (str(p) for p in reversed(path) if isinstance(p, str) and p.isidentifier() and p[0].islower())
        base = next(words, "arg")
    name, n = base, 2
    while name in taken:
        name, n = f"{base}{n}", n + 1
    taken.add(name)
    return name


def _parametrize(bodies: list[dict]) -> tuple[dict, list[dict]]:
    """One definition for bodies of one structure: values that differ become params (defaults: the first)."""
    data = [plain(b) for b in bodies]
    columns = [_leaves(b) for b in data]
    params: dict[str, Any] = {}
    where: dict[tuple, str] = {}
    by_values: dict[tuple, str] = {}
    taken: set[str] = set()
    for i, (path, first) in enumerate(columns[0]):
        values = tuple(repr(col[i][1]) for col in columns)
        if len(set(values)) == 1:
            continue
        if values not in by_values:
            name = _param_name(path, taken)
            by_values[values] = name
            params[name] = first
        where[path] = by_values[values]
    definition = _substitute(data[0], where)
    if params:
        definition = {"params": params, **definition}
    uses = []
    for col in columns:
        given: dict[str, Any] = {}
        for path, value in col:
            param = where.get(path)
            if param is not None and value != params[param] and param not in given:
                given[param] = value
        uses.append(given)
    return definition, uses


def _substitute(node: Any, where: dict[tuple, str], path: tuple = ()) -> Any:
    if isinstance(node, dict):
        return {
            k: (v if k in _SKIP_KEYS - {"children"} else _substitute(v, where, (*path, k))) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, where, (*path, i)) for i, v in enumerate(node)]
    if path in where:
        return "${" + where[path] + "}"
    return node
