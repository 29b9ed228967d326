"""The init rules written as `torch.nn.init` calls, in the order netcli's default path makes them.

netcli resolves each rule to its tensors (init/plan.py) and sets them in order on
torch's one random stream (init/apply.py). The code makes the same calls on the
same tensors in the same order, written the way a person would where that gives
the same tensors in the same order (`for m in net.modules(): if type(m) is
nn.Conv2d: ...`), else tensor by tensor, by name. Every shorter form is checked
against the plan on the built network before it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from netcli import registry
from netcli.app.eject.source import (
    Assign,
    Block,
    Call,
    Code,
    Comment,
    Def,
    Do,
    Items,
    Text,
    is_identifier,
    literal,
    string,
)
from netcli.core.errors import NetcliError

#: netcli's built-in initializers and the torch.nn.init function each one calls.
TORCH_INIT = {
    "zeros": "zeros_",
    "ones": "ones_",
    "constant": "constant_",
    "normal": "normal_",
    "uniform": "uniform_",
    "xavier": "xavier_uniform_",
    "xavier_uniform": "xavier_uniform_",
    "xavier_normal": "xavier_normal_",
    "kaiming": "kaiming_uniform_",
    "kaiming_uniform": "kaiming_uniform_",
    "kaiming_normal": "kaiming_normal_",
    "orthogonal": "orthogonal_",
    "trunc_normal": "trunc_normal_",
    "eye": "eye_",
    "dirac": "dirac_",
}
BUILTIN_MODULE = "netcli.registry.builtin_initializers"

MY_INIT = '''
def my_init(tensor, low=5.0, high=10.0):
    """The chapter's custom rule: U(-high, high), then 0 where |w| < low.

    w ~ U(5, 10) with probability 1/4, 0 with probability 1/2, U(-10, -5) with 1/4.
    """
    nn.init.uniform_(tensor, -high, high)
    tensor *= tensor.abs() >= low
'''

DIRECT = 2  # at most this many tensors: one call each, no loop


@dataclass
class InitCode:
    """`init_weights(net)`, and what it needs beside itself: helper functions, plugin imports."""

    function: Def
    helpers: list = field(default_factory=list)
    imports: dict = field(default_factory=dict)


def init_function(net: Any, rules: Sequence[Any], class_expr: Callable[[type], str | None]) -> InitCode | None:
    """Write the rules as `init_weights(net)`; None when there are none.

    `net` is the network built (on meta) from the spec; `class_expr` names a
    module class as the code does (`nn.Conv2d`), or None.
    """
    if not rules:
        return None
    from netcli.init.branches import ApplyRule
    from netcli.init.plan import plan_rules

    plan = plan_rules(net, rules)
    code = InitCode(Def("def init_weights(net)", None, []))
    body: list = []
    applies = {id(e): r for r in rules if isinstance(r, ApplyRule) for b in r.branches for e in b.rules}
    functions: dict[int, str] = {}  # id(apply rule) -> its function's name
    for rule, selected in plan.steps:
        if id(rule) in applies:  # an `apply` rule's steps come together: one net.apply(fn) writes them all
            parent = applies[id(rule)]
            if id(parent) not in functions:
                name = "weights_init" + (f"_{len(functions) + 1}" if functions else "")
                functions[id(parent)] = name
                code.helpers.append(_apply_function(net, parent, name, code, class_expr))
                where = parent.where or "apply"
                body += [
                    Comment(f"{where}: isinstance branches, in net.apply's order"),
                    Do(Call("net.apply", (Code(name),))),
                ]
            continue
        body.append(Comment(rule.text))
        if rule.module_scope:
            body += _resets(net, selected)
        else:
            body += _fills(net, rule, selected, _caller(rule, code), class_expr)
    code.function.doc = "Apply the spec's init rules in order, as netcli does (a later rule wins)."
    code.function.body = [Block("with ", Call("torch.no_grad"), body)]
    return code


def _caller(rule: Any, code: InitCode) -> Callable[[Any], Call]:
    """Return a function that writes the rule's call on one tensor expression."""
    entry = registry.initializers.entry(rule.init)
    fn = entry.obj
    args = tuple(literal(a) for a in rule.args)
    kwargs = tuple((k, literal(v)) for k, v in rule.kwargs.items())
    if fn.__module__ == BUILTIN_MODULE and rule.init in TORCH_INIT:
        name = f"nn.init.{TORCH_INIT[rule.init]}"
    elif fn.__module__ == BUILTIN_MODULE and fn.__name__ == "custom":
        if not code.helpers:
            code.helpers.append(Text(MY_INIT))
        name = "my_init"
    else:
        name = _plugin_initializer(rule, fn, code)
    return lambda tensor: Call(name, (tensor, *args), kwargs)


def _plugin_initializer(rule: Any, fn: Any, code: InitCode) -> str:
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    try:
        if module is None:
            raise ImportError(f"{fn!r} names no module")
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
        ok = obj is fn and "<" not in qual and module != "__main__"
    except Exception:
        ok = False
    if not ok:
        raise NetcliError(
            rule.problem(
                f"cannot write the initializer '{rule.init}' as code: {module}.{qual} cannot be imported by name",
                "define it at the top level of an importable module (a plugin)",
            )
        )
    top = qual.split(".")[0]
    code.imports[f"from {module} import {top}"] = "netcli plugin initializer"
    return qual


# --- apply rules: def weights_init(m): if isinstance(m, ...): ... and net.apply(weights_init) ---------------


def _apply_function(net: Any, rule: Any, name: str, code: InitCode, class_expr: Callable[[type], str | None]) -> Def:
    """Write an `apply` rule as the hand-written function with isinstance branches."""
    from netcli.init.branches import matcher

    branches = []
    for k, branch in enumerate(rule.branches):
        match = matcher(net, branch)
        visited = [m for m in net.modules() if match(m)]
        if branch.type_name in registry.types:
            written = class_expr(registry.types.entry(branch.type_name).obj)
            if written is None:
                raise NetcliError(
                    branch.problem(f"cannot write the type '{branch.type_name}' of an apply rule as code")
                )
            branch_test = Code(f"isinstance(m, {written})")
        else:  # a custom block: its class prints under this name, in netcli and in the code alike
            branch_test = Code(f"type(m).__name__ == {string(branch.type_name)}")
        stmts: list = []
        for entry in branch.rules:
            call = _caller(entry, code)
            target = entry.target
            if target == "all":
                params = Call("m.parameters", (), (("recurse", Code("False")),))
                stmts.append(Block("for param in ", params, [Do(call(Code("param")))]))
            elif is_identifier(target) and all(m._parameters.get(target) is not None for m in visited):
                stmts.append(Do(call(Code(f"m.{target}"))))
            elif is_identifier(target) and all(target in m._parameters for m in visited):
                # a parameter some of the modules hold as None (Linear(..., bias=False)), as nanoGPT writes it
                stmts.append(Block("if ", Code(f"m.{target} is not None"), [Do(call(Code(f"m.{target}")))]))
            else:
                test = Code(f"fnmatch.fnmatchcase(name, {string(target)})")
                loop = [Block("if ", test, [Do(call(Code("param")))])]
                stmts.append(Block("for name, param in ", Call("m.named_parameters"), loop))
        branches.append(Block("if " if k == 0 else "elif ", branch_test, stmts))
    doc = "Initialize m by its first matching type (net.apply calls it on each module, children first)."
    return Def(f"def {name}(m)", doc, branches)


# --- filling tensors ------------------------------------------------------------------------


def _fills(net: Any, rule: Any, selected: list, call: Callable[[Any], Call], class_expr) -> list:
    want = [id(s.tensor) for s in selected]
    if len(selected) > DIRECT:
        for form in (_by_type, _by_predicate):
            stmts = form(net, rule, selected, want, call, class_expr)
            if stmts:
                return stmts
    accessors = [_access(net, s.name) for s in selected]
    if len(selected) <= DIRECT:
        return [Do(call(Code(a))) for a in accessors]
    if all(not a.startswith("net.get_") for a in accessors):
        return [Block("for param in ", Items(tuple(Code(a) for a in accessors)), [Do(call(Code("param")))])]
    names = Items(tuple(Code(string(s.name)) for s in selected))
    return [Block("for name in ", names, [Do(call(Call("net.get_parameter", (Code("name"),))))])]


def _by_type(net, rule, selected, want, call, class_expr) -> list | None:
    """`for m in net.modules(): if type(m) is nn.Conv2d: init(m.weight)`, when that is the plan."""
    from netcli.init.params import PathError, find

    target = rule.target
    if target == "*" or any(c in target for c in "*?["):
        return None
    try:
        find(net, target)
        return None  # a path, not a type
    except (PathError, NetcliError):
        pass
    modules = [m for m in net.modules() if type(m).__name__ == target]
    classes = {type(m) for m in modules}
    if len(classes) != 1 or class_expr(next(iter(classes))) is None:
        return None
    attrs = list(dict.fromkeys(s.attr for s in selected))
    tensors = [m._parameters.get(a) for m in modules for a in attrs]
    if any(t is None for t in tensors) or [id(t) for t in _once(tensors)] != want:
        return None
    body = [Do(call(Code(f"m.{a}"))) for a in attrs]
    return [
        Block(
            "for m in ", Call("net.modules"), [Block("if ", Code(f"type(m) is {class_expr(type(modules[0]))}"), body)]
        )
    ]


_PREDICATES = {
    "weight": ['name.endswith("weight")', '"weight" in name.rpartition(".")[2]'],
    "bias": ['name.endswith("bias")', '"bias" in name.rpartition(".")[2]'],
}


def _by_predicate(net, rule, selected, want, call, class_expr) -> list | None:
    """`for name, param in net[0].named_parameters(): if name.endswith("weight"): ...`, when that is the plan."""
    from netcli.init.params import PathError, find

    glob = any(c in rule.target for c in "*?[") and rule.target != "*"
    if rule.target == "*" or glob:
        root, where = net, "net"
    else:
        try:
            found = find(net, rule.target)
        except (PathError, NetcliError):
            return None
        if found.attr is not None:
            return None
        root, where = found.module, _access(net, found.name, "submodule")
    named = list(root.named_parameters())
    if rule.params == "all" and not glob:
        if [id(p) for _, p in named] == want:
            return [Block("for param in ", Call(f"{where}.parameters"), [Do(call(Code("param")))])]
        return None
    candidates = _glob_tests(rule.target) if glob else _PREDICATES[rule.params or "weight"]
    for text in candidates:
        test = _predicate(text)
        if [id(p) for n, p in named if test(n)] == want:
            return [
                Block(
                    "for name, param in ",
                    Call(f"{where}.named_parameters"),
                    [Block("if ", Code(text), [Do(call(Code("param")))])],
                )
            ]
    return None


def _glob_tests(pattern: str) -> list[str]:
    """`*.bias` -> `name.endswith(".bias")`; `0.*.weight` -> a startswith and an endswith (one `*` only)."""
    if pattern.count("*") != 1 or any(c in pattern for c in "?["):
        return []
    head, tail = pattern.split("*")
    tests = ([f"name.startswith({string(head)})"] if head else []) + (
        [f"name.endswith({string(tail)})"] if tail else []
    )
    return [" and ".join(tests)] if tests else []


def _predicate(text: str) -> Callable[[str], bool]:
    """The test a predicate's text writes, as a function (only the forms this module writes)."""
    tests = []
    for part in text.split(" and "):
        arg = part.split('"')[1]
        if part.startswith("name.endswith("):
            tests.append(lambda name, a=arg: name.endswith(a))
        elif part.startswith("name.startswith("):
            tests.append(lambda name, a=arg: name.startswith(a))
        else:
            tests.append(lambda name, a=arg: a in name.rpartition(".")[2])
    return lambda name: all(t(name) for t in tests)


def _once(tensors: list) -> list:
    seen, out = set(), []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


# --- default: the module's own reset_parameters ------------------------------------------


def _resets(net: Any, selected: list) -> list:
    """`m.reset_parameters()` per module, keeping the tensors the rule did not select (as init/apply.py)."""
    by_module: dict[int, tuple[Any, str, set]] = {}
    for s in selected:
        owner = s.name.rsplit(".", 1)[0] if "." in s.name else ""
        by_module.setdefault(id(s.module), (s.module, owner, set()))[2].add(s.attr)
    out: list = []
    for module, owner, attrs in by_module.values():
        where = _access(net, owner, "submodule")
        keep = [n for n, p in module._parameters.items() if p is not None and n not in attrs]
        if keep and where.startswith("net.get_"):
            out.append(Assign("block", Code(where)))
            where = "block"
        for n in keep:
            out.append(Assign(f"kept_{n}", Code(f"{where}.{n}.detach().clone()")))
        out.append(Do(Call(f"{where}.reset_parameters")))
        for n in keep:
            out.append(Do(Call(f"{where}.{n}.copy_", (Code(f"kept_{n}"),))))
    return out


# --- naming a tensor or a block ---------------------------------------------------------


def _access(net: Any, dotted: str, kind: str = "parameter") -> str:
    """`net[0].weight`, `net.hidden.bias`; `net.get_parameter("0.block 0.0.weight")` where a step is not a name.

    `kind` is what `dotted` names: a "parameter" or a "submodule".
    """
    import torch.nn as nn

    text, module = "net", net
    for step in dotted.split(".") if dotted else []:
        children = list(module._modules) if module is not None else []
        if (
            isinstance(module, (nn.Sequential, nn.ModuleList))
            and step in children
            and step == str(children.index(step))
        ):
            text += f"[{step}]"
        elif is_identifier(step):
            text += f".{step}"
        else:
            return f"net.get_{kind}({string(dotted)})"
        module = module._modules.get(step) if module is not None else None
    return text
