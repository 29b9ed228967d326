"""What an init rule targets (SPEC 1.4): `*`, a path, a type name or a glob, resolved to tensors.

Module targets are visited in `nn.Module.apply` order (children before their
parent), so `xavier:0` draws the same random numbers as the hand-written
`net[0].apply(init_xavier)`. A tied tensor is selected once per rule, however
many modules hold it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from netcli import registry
from netcli.core.errors import NetcliError, did_you_mean
from netcli.core.ties import canonical_names
from netcli.init.params import PathError, find
from netcli.init.rule_text import Rule

_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Selected:
    """One tensor a rule will set, and the module that owns it."""

    name: str  # canonical name (its first name in named_parameters)
    module: Any
    attr: str

    @property
    def tensor(self):
        return getattr(self.module, self.attr)


def apply_order(module) -> Iterator[Any]:
    """Yield modules in the order `module.apply(fn)` calls fn: children first, then the parent."""
    for child in module.children():
        yield from apply_order(child)
    yield module


def _wanted(attr: str, params: str | None) -> bool:
    if params == "all":
        return True
    return (params or "weight") in attr


def select(net, rule: Rule, names: dict[int, str] | None = None) -> list[Selected]:
    """Return the tensors `rule` targets, in the order it sets them; raise if it targets nothing.

    `names`: `canonical_names(net)[0]`, when the caller selects for several rules.
    """
    if names is None:
        names, _ = canonical_names(net)
    target = rule.target
    if target == "*":
        return _from_modules(net, apply_order(net), rule, names, "'*'")
    if _GLOB.search(target):
        return _from_glob(net, rule, names)
    try:
        found = find(net, target)
    except PathError as exc:
        by_type = _modules_of_type(net, target)
        if by_type:
            return _from_modules(net, by_type, rule, names, f"type '{target}'")
        raise NetcliError(rule.problem(*_explain_miss(net, rule, exc))) from None
    if found.attr is not None:
        tensor = found.tensor
        if id(tensor) not in names:
            raise NetcliError(
                rule.problem(
                    f"'{found.name}' is a buffer, not a parameter: rules set parameters",
                    "write the path of a parameter, e.g. 0.weight",
                )
            )
        if rule.params not in (None, "all") and not _wanted(found.attr, rule.params):
            raise NetcliError(
                rule.problem(
                    f"'{found.name}' is not a {rule.params}, so params: {rule.params} leaves nothing",
                    "drop params: for a parameter path",
                )
            )
        return [Selected(names[id(tensor)], found.module, found.attr)]
    return _from_modules(net, apply_order(found.module), rule, names, f"'{found.name or '(root)'}'")


def _from_modules(net, modules, rule: Rule, names: dict[int, str], what: str) -> list[Selected]:
    seen, out, types = set(), [], []
    for module in modules:
        types.append(own_class(module).__name__)
        for attr, p in module._parameters.items():
            if p is None or id(p) in seen or not _wanted(attr, rule.params):
                continue
            seen.add(id(p))
            out.append(Selected(names.get(id(p), attr), module, attr))
    if not out:
        kind = rule.params or "weight"
        has = sorted({n.rsplit(".", 1)[-1] for n in names.values() if _owned_by(net, n, modules)})
        shown = ", ".join(dict.fromkeys(types))
        if has:
            hint = (
                f"its parameters are named {', '.join(has)}: use params: all, "
                f"or a path such as {_first_path(names, modules, net)}"
            )
        else:
            hint = "pick a block with parameters; `netcli inspect` lists them"
        raise NetcliError(
            rule.problem(
                f"target {what} matches nothing: it holds no "
                f"{'parameters' if kind == 'all' else kind + ' parameters'} ({shown})",
                hint,
            )
        )
    return out


def _owned_by(net, name: str, modules) -> bool:
    mods = {id(m) for m in modules}
    owner = net.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net
    return id(owner) in mods


def _first_path(names: dict[int, str], modules, net) -> str:
    for n in names.values():
        if _owned_by(net, n, modules):
            return n
    return "0.weight"


def _from_glob(net, rule: Rule, names: dict[int, str]) -> list[Selected]:
    out, seen = [], set()
    for name, p in net.named_parameters(remove_duplicate=False):
        attr = name.rsplit(".", 1)[-1]
        if id(p) in seen or not fnmatch.fnmatchcase(name, rule.target):
            continue
        if rule.params not in (None, "all") and not _wanted(attr, rule.params):
            continue
        seen.add(id(p))
        owner = net.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net
        out.append(Selected(names[id(p)], owner, attr))
    if not out:
        all_names = list(names.values())
        shown = ", ".join(all_names[:12]) + (", ..." if len(all_names) > 12 else "")
        head, _, leaf = rule.target.rpartition(".")
        leaves = sorted({n.rsplit(".", 1)[-1] for n in all_names})
        close = None
        if leaf and not _GLOB.search(leaf) and leaf not in leaves:  # '*.bais': correct the glob itself
            near = did_you_mean(leaf, leaves)
            close = near and f"did you mean '{head + '.' if head else ''}{near.split(chr(39))[1]}'?"
        close = close or did_you_mean(rule.target, all_names)
        raise NetcliError(
            rule.problem(
                f"the glob '{rule.target}' matches no parameter name",
                (close + "; " if close else "") + f"the parameters are {shown or '(none)'}",
            )
        )
    return out


def own_class(module) -> type:
    """The module's class; for a module FSDP2's `fully_shard` wrapped (class `FSDP<Name>`), the class it wrapped.

    `fully_shard(m)` swaps m's class for `type("FSDP" + name, (FSDPModule, cls), ...)`: a rule for
    `Conv2d` still means the Conv2d a user sharded (netcli.initialize after the user's own fully_shard).
    """
    cls = type(module)
    bases = cls.__bases__
    if len(bases) == 2 and bases[0].__name__ == "FSDPModule" and cls.__name__ == f"FSDP{bases[1].__name__}":
        return bases[1]
    return cls


def _modules_of_type(net, name: str) -> list:
    """The modules of type `name`; a custom block's type (SPEC 1.6) selects each such block whole, its
    layers included, as a path to it does (`ones:BasicBlock` is `block.apply(...)` on every BasicBlock)."""
    found = [m for m in apply_order(net) if own_class(m).__name__ == name]
    if found and all(own_class(m).__module__.startswith("netcli.builder.") for m in found):
        return [inner for m in found for inner in apply_order(m)]
    return found


def _explain_miss(net, rule: Rule, exc: NetcliError) -> tuple[str, str | None]:
    """Say why a target matched nothing: a path that stops, or a type that is not there."""
    target = rule.target
    present = list(dict.fromkeys(own_class(m).__name__ for m in apply_order(net)))
    looks_like_type = target[:1].isupper() and target.replace("_", "").isalnum()
    if looks_like_type:
        if target in registry.types:
            return (
                f"target '{target}' matches nothing: the network has no {target}",
                f"its types are {', '.join(present)}",
            )
        close = did_you_mean(target, present)
        return (
            f"target '{target}' is neither a path nor a type in the network",
            close or f"its types are {', '.join(present)}",
        )
    level, parent = getattr(exc, "level", ""), getattr(exc, "parent", "")
    if not level:
        return exc.problems[0].message, exc.problems[0].hint
    first = next((f"{parent}.{n}" if parent else n for n, _ in find(net, parent).module.named_children()), None)
    example = f"{rule.init}:{first}" if first else f"{rule.init}:{parent or '*'}"
    return f"target '{target}' matches nothing; {level}", f"write e.g. {example}"
