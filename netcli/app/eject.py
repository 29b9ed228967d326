"""`netcli code`: write a spec's network as the plain PyTorch a person would write (SPEC 1.7).

The spec is walked the way the builder walks it (netcli/build/builder.py), so
the code creates the same modules in the same order: `ref` definitions first,
as shared objects; a `use` as a call of the definition's factory function; a
list as `nn.Sequential(...)`, named children through an `OrderedDict`; `repeat`
as a generator; `frozen` as `requires_grad_(False)`; a `device:` as modules
created under `with torch.device(...)` and a forward pre-hook that moves the
inputs. Sizes shape inference filled in are written as numbers, read from a
build on the meta device. `build(seed)` seeds, builds and applies the init rules
(eject_init.py), so it returns what netcli's default path returns.
"""
from __future__ import annotations

import importlib
import inspect
import io
import tokenize
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Sequence

from netcli import registry
from netcli.app.eject_chapter import CHAPTER_CLASSES, CHAPTER_MODULE
from netcli.app.eject_init import init_function
from netcli.app.eject_source import (
    Assign, Attr, Block, Call, Code, Comment, Deferred, Def, Do, Gen, Inferred, Items, Return, Text, flat,
    identifier, is_identifier, literal, module_text, sort_imports, statement, string,
)
from netcli.build import inference
from netcli.core.devices import parse_device
from netcli.core.errors import NetcliError
from netcli.spec.loading import LoadedSpec, children_of, type_path
from netcli.spec.schema import LayerNode, RefNode, SequenceNode, UseNode

# Names the generated module defines or imports itself: a spec name never takes one of them.
RESERVED = {"torch", "nn", "F", "OrderedDict", "math", "build", "init_weights", "net", "seed", "try_gpu",
            "move_inputs_to", "my_init", "name", "param", "m", "kept", "tensor", "device", "i", "_"}


HELPERS = {
    "try_gpu": '''
def try_gpu(i=0):
    """Return GPU i if it exists, else the CPU (D2L's try_gpu; netcli's auto:i)."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")
''',
    "move_inputs_to": '''
def move_inputs_to(device):
    """Return a forward pre-hook that moves a block's inputs to `device` first."""

    def hook(module, args):
        return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)

    return hook
''',
}


class SharedName(Code):
    """The variable holding a `ref` definition's one instance."""


@dataclass
class Piece:
    """A node written out: statements that must run first, the expression, the device its output is on."""

    stmts: list
    expr: Any
    out: str


def eject(loaded: LoadedSpec, *, seed: int | None = None, device: str | None = None,
          rules: Sequence[str] = (), spec_args: str = "") -> str:
    """Return the spec's network as the text of a standalone PyTorch module with a `build(seed)` function.

    `seed` (default: the spec's `seed:`) becomes build's default seed; `device`
    (default: the spec's `device:`) is where build creates the network; `rules`
    are `--rule` texts applied after the spec's `init:`. `spec_args` names the
    spec as the command line did (`configs/rgnet.yaml --set vars.hidden=16`),
    for the docstring. Raise NetcliError naming the block when a
    type cannot be written (a plugin class that cannot be imported by name).
    """
    import torch

    from netcli.build.builder import build_network, infer_sizes
    from netcli.init.rules import all_rules
    device = device if device is not None else loaded.spec.device
    if device is not None:
        parse_device(device)
    registry.ensure_loaded()
    rule_list = all_rules(loaded, rules)
    with torch.random.fork_rng(devices=[]):  # the meta build draws nothing; the caller's RNG stays as it was
        inferred = infer_sizes(loaded, getattr(loaded.spec, "inputs", loaded.spec.input))
        built = build_network(loaded, torch.device("meta"), inferred)
    writer = Writer(loaded, inferred, device)
    net_piece = writer.network()
    init = init_function(built.net, rule_list, writer.class_expr)
    seed = seed if seed is not None else loaded.spec.seed
    top = writer.helpers() + (init.helpers if init else []) + writer.factories()
    top += ([init.function] if init else []) + [writer.build_function(net_piece, seed, init is not None)]
    body = "\n".join(line for stmt in top for line in statement(stmt, ""))
    imports = _imports(body, {**writer.plugin_imports, **(init.imports if init else {})})
    return module_text(_docstring(loaded, spec_args, seed, writer), imports, top)


def write_code(loaded: LoadedSpec, output: str | None, *, seed: int | None = None, device: str | None = None,
               rules: Sequence[str] = (), spec_args: str = "") -> str:
    """Write the spec's network as PyTorch source to `output` (atomically), or return it when `output` is None.

    Refuses to write over the spec itself. Returns the text.
    """
    from pathlib import Path
    if output is not None and Path(output).exists() and Path(loaded.doc.source).exists() \
            and Path(output).resolve() == Path(loaded.doc.source).resolve():
        raise NetcliError(f"-o {output} is the spec itself; writing the code there would replace it",
                          hint="write the code to a .py file, e.g. -o model.py")
    text = eject(loaded, seed=seed, device=device, rules=rules, spec_args=spec_args)
    if output is not None:
        from netcli.core.atomic import atomic_write
        atomic_write(output, lambda path: path.write_text(text, encoding="utf-8"))
    return text


def command_args(spec: str | None, sets: Sequence[str] = (), plugins: Sequence[str] = (), rules: Sequence[str] = (),
                 seed: int | None = None, device: str | None = None) -> str:
    """The arguments that name this network on a command line (`configs/x.yaml --set vars.h=16`), for the docstring."""
    import shlex
    parts = [spec] if spec else []
    parts += [f"--set {shlex.quote(s)}" for s in sets] + [f"--plugin {shlex.quote(p)}" for p in plugins]
    parts += [f"--rule {shlex.quote(r)}" for r in rules]
    parts += ([f"--seed {seed}"] if seed is not None else []) + ([f"--device {shlex.quote(device)}"] if device else [])
    return " ".join(parts)


class Writer:
    """Walks a spec as the builder does and writes each node as an expression."""

    def __init__(self, loaded: LoadedSpec, inferred: dict, device: str | None):
        self.loaded = loaded
        self.inferred = inferred
        self.device = device
        self.meta = device is not None and parse_device(device)[0] == "meta"
        self.root = device or "cpu"
        self.taken = set(RESERVED)
        self.shared: dict[str, str] = {}  # definition -> variable of its one instance
        self.prologue: list = []  # statements creating the shared instances, in creation order
        self.uses: dict[str, list[tuple[Piece, Deferred]]] = {}  # definition -> each use, inner definitions first
        self.classes: dict[str, str] = {}  # class name -> its source (chapter types), in order of first use
        self.plugin_imports: dict[str, str] = {}  # import line -> its comment
        self.needs: set[str] = set()  # helpers: try_gpu, move_inputs_to
        self._types: dict[type, str] = {}

    # --- the walk -------------------------------------------------------------------

    def network(self) -> Piece:
        """Write the whole network; the `ref` definitions first, as builder.create_shared creates them."""
        referenced = {at.node.ref for at in _walk(self.loaded) if isinstance(at.node, RefNode)}
        for name in self.loaded.spec.blocks:
            if name in referenced:
                self.shared_instance(name)
        return self.node(self.loaded.spec.model, ("model",), "", self.root, self.root)

    def shared_instance(self, name: str) -> str:
        if name not in self.shared:
            node = self.loaded.spec.blocks[name]
            piece = self.node(node, ("blocks", name), f"<{name}>", self.root, self.root)
            var = identifier(name, self.taken)
            self.shared[name] = var
            self.prologue += piece.stmts + [Assign(var, piece.expr)]
        return self.shared[name]

    def node(self, node: Any, path: tuple, qualname: str, parent: str, incoming: str) -> Piece:
        """Write one node with its options: repeat, frozen, device (and the input move it needs)."""
        own = node.device if node.device is not None and not self.meta else parent
        if node.repeat is not None:
            piece = self.repeat(node, path, qualname, own)
        else:
            piece = self.one(node, path, qualname, own)
        if node.frozen:
            piece.expr = Call(Attr(piece.expr, "requires_grad_"), (Code("False"),))
        if own != parent:  # created on its device, as the builder creates it
            piece = self.hoist(piece, path, qualname, own)
        if own != incoming and not self.meta:  # builder.link_devices: the input comes from another device
            piece = self.hoist(piece, path, qualname, None)
            self.needs.add("move_inputs_to")
            piece.stmts.append(Do(Call(Attr(piece.expr, "register_forward_pre_hook"),
                                       (Call("move_inputs_to", (self.device_expr(own),)),))))
        return piece

    def one(self, node: Any, path: tuple, qualname: str, own: str) -> Piece:
        if isinstance(node, RefNode):
            return Piece([], SharedName(self.shared_instance(node.ref)), own)
        if isinstance(node, UseNode):
            inner = self.node(self.loaded.spec.blocks[node.use], ("blocks", node.use), qualname, own, own)
            call = Deferred(node.use, body=(inner.stmts, inner.expr))
            self.uses.setdefault(node.use, []).append((inner, call))
            return Piece([], call, inner.out)
        if isinstance(node, SequenceNode):
            return self.sequence(node, path, qualname, own)
        if isinstance(node, LayerNode):
            return Piece([], self.layer(node, path, qualname), own)
        raise NetcliError(self.loaded.problem(path, f"netcli code cannot write a '{node.kind}' node yet",
                                              "build it with netcli build instead"))

    def sequence(self, node: SequenceNode, path: tuple, qualname: str, own: str) -> Piece:
        names, pieces, incoming = [], [], own
        for name, child in children_of(node, path):
            piece = self.node(child.node, child.path, _join(qualname, name), own, incoming)
            names.append(name)
            pieces.append(piece)
            incoming = piece.out
        stmts = self.in_order(pieces, names)
        return Piece(stmts, sequential([p.expr for p in pieces], names), incoming)

    def in_order(self, pieces: list[Piece], names: list[str]) -> list:
        """Return the statements the pieces need, with every earlier sibling hoisted before them (creation order)."""
        last = max((i for i, p in enumerate(pieces) if p.stmts), default=-1)
        stmts: list = []
        for i, (piece, name) in enumerate(zip(pieces, names)):
            stmts += piece.stmts
            if i < last and not isinstance(piece.expr, Code):
                var = self.variable(name)
                stmts.append(Assign(var, piece.expr))
                piece.expr = Code(var)
        return stmts

    def repeat(self, node: Any, path: tuple, qualname: str, own: str) -> Piece:
        """`repeat: N`: a generator when the copies are alike, else each copy written out."""
        names = [node.names.format(i=i) if node.names else str(i) for i in range(node.repeat)]
        copies = [self.one(node, path, _join(qualname, n), own) for n in names]
        alike = all(not c.stmts and repr(c.expr) == repr(copies[0].expr) for c in copies)
        if not alike:
            return Piece(self.in_order(copies, names), sequential([c.expr for c in copies], names), copies[-1].out)
        count = node.repeat
        if node.names is None:
            return Piece([], Call("nn.Sequential", (Gen(copies[0].expr, f"for _ in range({count})", star=True),)),
                         copies[-1].out)
        pair = Items((Code("f" + string(node.names)), copies[0].expr), "()")
        return Piece([], Call("nn.Sequential", (Call("OrderedDict", (Gen(pair, f"for i in range({count})",
                                                                              bare=True),)),)), copies[-1].out)

    def hoist(self, piece: Piece, path: tuple, qualname: str, device: str | None) -> Piece:
        """Assign the piece to a variable (under `with torch.device(...)` when `device` is given)."""
        if isinstance(piece.expr, Code):  # a name: nothing to create
            return piece
        var = self.variable(qualname.rsplit(".", 1)[-1] if qualname else "net_part")
        body = piece.stmts + [Assign(var, piece.expr)]
        if device is not None:
            body = [Block("with ", Call("torch.device", (self.device_expr(device),)), body)]
        return Piece(body, Code(var), piece.out)

    def variable(self, name: str) -> str:
        return identifier(name if is_identifier(name) else f"block_{name}", self.taken)

    def device_expr(self, text: str):
        kind, index = parse_device(text)
        if kind == "auto":
            self.needs.add("try_gpu")
            return Call("try_gpu", (Code(str(index)),) if index else ())
        return Code(string(text))

    # --- layers -----------------------------------------------------------------------

    def layer(self, node: LayerNode, path: tuple, qualname: str) -> Call:
        """A registered type's constructor call, written as the spec writes it, inferred sizes filled in."""
        entry = registry.types.entry(node.type)
        func = self.type_expr(entry.obj, node, path)
        plan = inference.plan_arguments(entry, node.args, node.kwargs)
        args, kwargs, values = list(node.args), dict(node.kwargs), {}
        if plan.missing:
            values = self.inferred.get(qualname, {})
            args, kwargs = plan.complete(values)
        args, kwargs, _ = registry.bind_arguments(entry.obj, args, kwargs)  # dtype names, 2.0 -> 2, as built
        sig = inference.constructor_signature(entry.obj)
        try:
            bound = sig.bind(*args, **kwargs).arguments if sig is not None else None
        except TypeError:
            bound = None
        if bound is None:
            return Call(func, tuple(self.value(v, node, path) for v in args),
                        tuple((k, self.value(v, node, path)) for k, v in kwargs.items()))
        written = list(plan.positions) if plan.missing else list(bound)[:len(node.args)]
        by_position = set(written) | (set(values) if node.args or not node.kwargs else set())
        order = {name: i for i, name in enumerate([*values, *written, *node.kwargs])}
        pos, kw = [], []
        for name, param in sig.parameters.items():
            if param.kind is param.VAR_POSITIONAL:
                pos += [self.value(v, node, path) for v in bound.get(name, ())]
            elif param.kind is param.VAR_KEYWORD:
                kw += [(k, self.value(v, node, path)) for k, v in bound.get(name, {}).items()]
            elif name not in bound:
                by_position = set()  # a gap: what follows is written by name
            else:
                value = Inferred(bound[name], name) if name in values else self.value(bound[name], node, path)
                if name in by_position and param.kind is not param.KEYWORD_ONLY and not kw:
                    pos.append(value)
                else:
                    by_position = set()
                    kw.append((name, value))
        kw.sort(key=lambda item: order.get(item[0], len(order)))
        return Call(func, tuple(pos), tuple(kw))

    def value(self, value: Any, node: Any, path: tuple):
        try:
            return literal(value)
        except ValueError as exc:
            raise NetcliError(self.loaded.problem(type_path(node, path), f"cannot write {node.type} as code: {exc}",
                                                  "write the argument as a number, text or list")) from None

    def type_expr(self, cls: type, node: Any = None, path: tuple = ()) -> str:
        """How the code names a registered class: nn.Linear, a chapter class written out, a plugin's import."""
        if cls in self._types:
            return self._types[cls]
        import torch.nn as nn
        name = cls.__name__
        if getattr(nn, name, None) is cls:
            text = f"nn.{name}"
        elif cls.__module__ == CHAPTER_MODULE and name in CHAPTER_CLASSES:
            self.classes[name] = CHAPTER_CLASSES[name]
            self.taken.add(name)
            text = name
        else:
            text = self.plugin_type(cls, node, path)
        self._types[cls] = text
        return text

    def class_expr(self, cls: type) -> str | None:
        """The class as the code names it, for init rules on a type; None for one the code does not name."""
        return self._types.get(cls)

    def plugin_type(self, cls: type, node: Any, path: tuple) -> str:
        module, qual = cls.__module__, cls.__qualname__
        problem = _importable(cls)
        if problem:
            where = type_path(node, path) if node is not None else path
            raise NetcliError(self.loaded.problem(
                where, f"cannot write '{getattr(node, 'type', cls.__name__)}' as code: {problem}",
                "define the class at the top level of an importable module (a plugin), or replace the block"))
        top = qual.split(".")[0]
        alias = top if top not in self.taken else identifier(f"{top}_{module.split('.')[0]}", self.taken)
        self.taken.add(alias)
        line = f"from {module} import {top}" + (f" as {alias}" if alias != top else "")
        self.plugin_imports[line] = "netcli plugin type"
        return alias + qual[len(top):]

    # --- the file's functions ---------------------------------------------------------

    def factories(self) -> list:
        """One function per `use`d definition; sizes that differ between uses become its arguments."""
        out = []
        for name, uses in self.uses.items():
            groups: dict[str, list[tuple[Piece, Deferred]]] = {}
            for piece, call in uses:
                groups.setdefault(_shape(piece), []).append((piece, call))
            for group in groups.values():
                out.append(self.factory(name, group))
        return out

    def factory(self, name: str, uses: list[tuple[Piece, Deferred]]) -> Def:
        fname = identifier(name, self.taken)
        first = uses[0][0]
        sizes = [_inferred((p.stmts, p.expr)) for p, _ in uses]
        varying = [k for k in range(len(sizes[0])) if len({repr(s[k].value) for s in sizes}) > 1]
        taken = set(self.taken)
        shared = list(dict.fromkeys(_shared_names((first.stmts, first.expr))))
        taken.update(shared)
        params = {k: identifier(sizes[0][k].arg, taken) for k in varying}
        swap = {id(sizes[0][k]): Code(params[k]) for k in varying}
        stmts, expr = _substitute((first.stmts, first.expr), swap)
        for (_, call), values in zip(uses, sizes):
            call.func = fname
            call.args = [SharedName(v) for v in shared] + [values[k] for k in varying]
        return Def(f"def {fname}({', '.join(shared + list(params.values()))})", None,
                   list(stmts) + [Return(expr)])

    def helpers(self) -> list:
        out: list = [Text(source) for source in self.classes.values()]
        out += [Text(HELPERS[name]) for name in ("try_gpu", "move_inputs_to") if name in self.needs]
        return out

    def build_function(self, piece: Piece, seed: int | None, init: bool) -> Def:
        body: list = self.prologue + piece.stmts + [Assign("net", piece.expr)]
        if self.device is not None and self.device != "cpu":
            body = [Block("with ", self.root_device_expr(), body)]
        head = [Block("if ", Code("seed is not None"), [Do(Call("torch.manual_seed", (Code("seed"),)))])]
        tail = [Do(Call("init_weights", (Code("net"),)))] if init else []
        doc = ("Return the network, built and initialized as netcli's default path does.\n\n"
               "With a seed, torch is seeded first: the values are then those that\n"
               "`netcli build --seed SEED` gives.")
        return Def(f"def build(seed={seed!r})", doc, head + body + tail + [Return(Code("net"))])

    def root_device_expr(self):
        return Call("torch.device", (self.device_expr(self.device),))


def sequential(exprs: list, names: list[str]) -> Call:
    """nn.Sequential of the children; an OrderedDict when they have names other than their positions."""
    if names == [str(i) for i in range(len(names))]:
        return Call("nn.Sequential", tuple(exprs))
    if all(is_identifier(n) for n in names):
        return Call("nn.Sequential", (Call("OrderedDict", (), tuple(zip(names, exprs))),))
    pairs = Items(tuple(Items((Code(string(n)), e), "()") for n, e in zip(names, exprs)), "[]")
    return Call("nn.Sequential", (Call("OrderedDict", (pairs,)),))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _walk(loaded: LoadedSpec):
    from netcli.spec.loading import walk_nodes
    return walk_nodes(loaded)


def _importable(cls: type) -> str | None:
    """Why `cls` cannot be imported by its module and name, or None when it can."""
    module, qual = cls.__module__, cls.__qualname__
    if module == "__main__" or "<" in qual:
        return f"its class {qual} is defined in {module}{' inside a function' if '<' in qual else ''}, " \
               "where an import cannot reach it"
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # any failure means: not importable by name
        return f"its class {qual} cannot be imported from {module} ({type(exc).__name__}: {exc})"
    if obj is not cls:
        return f"{module}.{qual} is another object than the registered class"
    return None


# --- walking the written expressions -------------------------------------------------


def _children(obj: Any) -> list:
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, Deferred):
        return list(obj.args)  # the factory's body is written once, in the factory
    if is_dataclass(obj) and not isinstance(obj, type):
        return [getattr(obj, f.name) for f in fields(obj)]
    return []


def _inferred(obj: Any) -> list[Inferred]:
    """Every inferred size in the written tree, in order (those inside factory calls included)."""
    if isinstance(obj, Inferred):
        return [obj]
    return [i for child in _children(obj) for i in _inferred(child)]


def _shared_names(obj: Any) -> list[str]:
    if isinstance(obj, SharedName):
        return [obj.text]
    return [n for child in _children(obj) for n in _shared_names(child)]


def _shape(piece: Piece) -> str:
    """What a definition's use writes, with the inferred sizes left out: uses alike in this share a factory."""
    def blank(obj):
        if isinstance(obj, Inferred):
            return "?"
        if isinstance(obj, Deferred):
            return f"{obj.func}({blank(obj.body)})"
        if isinstance(obj, (list, tuple)):
            return "[" + ",".join(blank(c) for c in obj) + "]"
        if is_dataclass(obj) and not isinstance(obj, type):
            return f"{type(obj).__name__}(" + ",".join(blank(getattr(obj, f.name)) for f in fields(obj)) + ")"
        return repr(obj)
    return blank((piece.stmts, piece.expr))


def _substitute(obj: Any, swap: dict[int, Any]) -> Any:
    """A copy of the written tree with the objects in `swap` (by id) replaced."""
    if id(obj) in swap:
        return swap[id(obj)]
    if isinstance(obj, Deferred):
        return Deferred(obj.func, [_substitute(a, swap) for a in obj.args], obj.body)
    if isinstance(obj, list):
        return [_substitute(c, swap) for c in obj]
    if isinstance(obj, tuple):
        return tuple(_substitute(c, swap) for c in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: _substitute(getattr(obj, f.name), swap) for f in fields(obj)})
    return obj


# --- the module around the functions --------------------------------------------------------


def _imports(body: str, plugin_imports: dict[str, str]) -> list[str]:
    """The imports the code uses: torch always, nn, F, OrderedDict and math where a name needs them."""
    names = {tok.string for tok in tokenize.generate_tokens(io.StringIO(body).readline) if tok.type == tokenize.NAME}
    stdlib, third = set(), {"import torch"}
    if "OrderedDict" in names:
        stdlib.add("from collections import OrderedDict")
    if "math" in names:
        stdlib.add("import math")
    if "nn" in names:
        third.add("from torch import nn")
    if "F" in names:
        third.add("import torch.nn.functional as F")
    third |= {f"{line}  # {comment}" for line, comment in plugin_imports.items()}
    return sort_imports(stdlib, third)


def _docstring(loaded: LoadedSpec, spec_args: str, seed: int | None, writer: Writer) -> str:
    import textwrap
    wrap = lambda text: textwrap.wrap(text, 84, break_long_words=False, break_on_hyphens=False)  # noqa: E731
    lines = wrap(f"{loaded.name}, written as plain PyTorch by `netcli code {spec_args}`.")
    lines += [""] + wrap(
        "build() reproduces netcli's default path: it creates the modules in the order netcli creates them "
        "and applies the spec's init rules with the same torch.nn.init calls on the same tensors, so under "
        "the same seed it returns the network `netcli build` builds: the same print, state_dict keys, "
        "values and outputs.")
    lines += [""] + wrap(
        "The values --fast-init gives are netcli's own (each tensor drawn from a seed of its own, not from "
        "torch's one random stream), so no plain torch code repeats them. To use them, save a checkpoint "
        "and load its state_dict:")
    lines += ["", *(f"    {line}" for line in wrap(f"netcli save {spec_args} --fast-init -o {loaded.name}.pt")),
              "", "    net = build()", f"    net.load_state_dict(torch.load({string(loaded.name + '.pt')}))"]
    if writer.plugin_imports:
        modules = sorted({line.split()[1] for line in writer.plugin_imports})
        lines += [""] + wrap(f"Plugin types come from their own modules ({', '.join(modules)}), which "
                             "register them with netcli when imported.")
    return "\n".join(lines)
