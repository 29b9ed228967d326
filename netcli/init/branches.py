"""`apply` init rules (SPEC 1.8): `net.apply(fn)` where fn initializes a module by its first matching type.

DCGAN's `weights_init` and timm's `_init_weights` are written as

    def weights_init(m):
        if isinstance(m, nn.Conv2d): nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d): nn.init.normal_(m.weight, 1.0, 0.02); nn.init.zeros_(m.bias)
    net.apply(weights_init)

and the rule `{apply: {Conv2d: "normal(0, 0.02):weight", BatchNorm2d: ["normal(1, 0.02):weight",
"zeros:bias"]}}` means exactly that. The order is `Module.apply`'s: it recurses into each child
before calling fn on the module itself (post-order, `targets.apply_order`), so a block's layers are
visited before the block, and a Sequential after its last layer. The draws interleave as the
hand-written function's do (a conv's normal, then a BatchNorm's normal, then the next conv's),
which rules by type cannot: those run one type after the other. A module is matched with
`isinstance` (a subclass matches), or by its class name for a custom block, and only by the first
type that matches, as `if ... elif` does. The text after `:` names the module's parameters:
`weight`, `bias`, `all` (its own), or a glob of names relative to it (`*.bias`).

Each (module, entry) becomes one step of the init plan, in visiting order, so the default path
draws in the hand-written order, `--fast-init` seeds each tensor by its name as for any rule, and
`init --explain` and `netcli code` see the steps.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netcli import registry
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean
from netcli.init.rule_text import MAX_RULE_CHARS, Rule, _check_call, _check_finite, _parse_init, _split

EXAMPLE = '{apply: {Conv2d: "normal(0, 0.02):weight", BatchNorm2d: ["normal(1, 0.02):weight", "zeros:bias"]}}'
if TYPE_CHECKING:
    from netcli.init.targets import Selected

Locate = Callable[..., tuple[Location, str]]  # (a path inside the rule, key=) -> its location and where


@dataclass(eq=False)
class Branch:
    """One `Type: entries` of an apply rule: the type's name, its rules in order, where it is written."""

    type_name: str
    rules: list[Rule]
    location: Location
    where: str

    def problem(self, message: str, hint: str | None = None) -> Problem:
        return Problem(message, self.where, self.location, hint)


@dataclass(eq=False)
class ApplyRule(Rule):
    """An `apply` rule: its branches in order (the `if ... elif` of the hand-written function)."""

    branches: list[Branch] = field(default_factory=list)


def parse_apply(raw: Any, loc: Location, where: str, locate: Locate | None = None) -> ApplyRule:
    """Parse `{apply: {Type: "INIT:PARAM" | [...]}}`; each entry's initializer and arguments are checked here."""
    from pydantic import ValidationError

    from netcli.specfile.schema import ApplyRuleSpec

    def at(*path: Any, key: bool = False) -> tuple[Location, str]:
        return locate(path, key=key) if locate is not None else (loc, where)

    example = EXAMPLE
    try:
        spec = raw if isinstance(raw, ApplyRuleSpec) else ApplyRuleSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        message = (
            f"unknown key '{key}' beside apply in an init rule"
            if err["type"] == "extra_forbidden"
            else f"apply takes a mapping of type -> INIT:PARAM or a list of them ({key}: {err['msg']})"
        )
        raise NetcliError(Problem(message, where, loc, f"write e.g. {example}")) from None
    if not spec.apply:
        raise NetcliError(Problem("apply names no type", where, loc, f"write e.g. {example}"))
    branches, problems = [], []
    for type_name, entries in spec.apply.items():
        branch_loc, branch_where = at("apply", type_name, key=True)
        texts = [entries] if isinstance(entries, str) else list(entries)
        if not texts:
            problems.append(Problem(f"apply: {type_name} has no rule", branch_where, branch_loc, f"write {example}"))
        rules = []
        for i, text in enumerate(texts):
            entry_loc, entry_where = at("apply", type_name) if isinstance(entries, str) else at("apply", type_name, i)
            try:
                init_text, target = _split(text, entry_loc, entry_where)
                name, args, kwargs = _parse_init(init_text, entry_loc, entry_where)
                rule = Rule(f"apply {type_name}: {text.strip()}", name, args, kwargs, target, None, entry_loc)
                rule.where = entry_where
                _check_finite(rule)
                _check_call(rule)
                rules.append(rule)
            except NetcliError as exc:
                problems += exc.problems
        branches.append(Branch(type_name, rules, branch_loc, branch_where))
    if problems:
        raise NetcliError(problems)
    shown = ", ".join(f"{b.type_name}: {[r.text.split(': ', 1)[1] for r in b.rules]}" for b in branches)
    return ApplyRule(f"apply {{{shown}}}", "apply", target="*", location=loc, where=where, branches=branches)


def flow_mapping(text: str, loc: Location, where: str) -> Any:
    """A rule given as text in YAML's flow style (`--rule '{apply: {Linear: "zeros:bias"}}'`), read as YAML."""
    import yaml

    if len(text) > MAX_RULE_CHARS or "&" in text:  # no anchors, so no aliases that multiply what is read
        raise NetcliError(
            Problem(f"a rule is at most {MAX_RULE_CHARS} characters, without YAML anchors (&)", where, loc)
        )
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem", None) or "not YAML"
        raise NetcliError(
            Problem(f"the rule '{text.strip()}' is not a YAML mapping: {mark}", where, loc, f"write e.g. {EXAMPLE}")
        ) from None
    if not isinstance(value, dict):
        raise NetcliError(Problem(f"the rule '{text.strip()}' is not a mapping", where, loc, f"write e.g. {EXAMPLE}"))
    return value


def expand(net: Any, rule: ApplyRule, names: dict[int, str]) -> list[tuple[Rule, list[Selected]]]:
    """The rule's steps in `net.apply` order: (entry, the tensors it sets on one module); raise if one misses."""
    from netcli.init.targets import apply_order  # imports torch: not when a spec's rules are only read

    matchers = [(matcher(net, b), b) for b in rule.branches]
    steps: list[tuple[Rule, list[Selected]]] = []
    hits: dict[int, int] = {id(r): 0 for b in rule.branches for r in b.rules}
    taken: dict[int, list[str]] = {id(b): [] for b in rule.branches}  # modules of this type an earlier branch took
    for module in apply_order(net):
        first = next((b for match, b in matchers if match(module)), None)
        if first is None:
            continue
        for match, b in matchers:
            if b is not first and match(module) and rule.branches.index(b) > rule.branches.index(first):
                taken[id(b)].append(first.type_name)
        for entry in first.rules:
            selected = _within(module, entry.target, names)
            if selected:
                hits[id(entry)] += 1
                steps.append((entry, selected))
    problems = []
    for match, b in matchers:
        visited = [m for m in apply_order(net) if match(m)]
        for entry in b.rules:
            if hits[id(entry)]:
                continue
            problems.append(_miss(net, b, entry, visited, taken[id(b)]))
    if problems:
        raise NetcliError(problems)
    return steps


def matcher(net: Any, branch: Branch) -> Callable[[Any], bool]:
    """`isinstance(m, cls)` for a registered class; the class name for a custom block of the spec."""
    from netcli.init.targets import apply_order, own_class

    name = branch.type_name
    if name in registry.types:
        cls = registry.types.entry(name).obj
        if isinstance(cls, type):
            return lambda m: isinstance(m, cls)
        raise NetcliError(
            branch.problem(f"apply: '{name}' is a registered function, not a class; isinstance needs a class")
        )
    present = list(dict.fromkeys(own_class(m).__name__ for m in apply_order(net)))
    if name in present:
        return lambda m: own_class(m).__name__ == name
    close = did_you_mean(name, present) or did_you_mean(name, registry.types.names())
    raise NetcliError(
        branch.problem(f"apply: unknown type '{name}'", close or f"the network's types are {', '.join(present)}")
    )


def _within(module: Any, target: str, names: dict[int, str]) -> list[Selected]:
    """The module's parameters the entry names: weight, bias, all (its own), or a glob relative to it."""
    from netcli.init.targets import Selected

    if target == "all":
        found = [(a, module, a) for a, p in module._parameters.items() if p is not None]
    else:
        found = []
        for relative, _ in module.named_parameters():
            if fnmatch.fnmatchcase(relative, target):
                owner_path, _, attr = relative.rpartition(".")
                found.append((relative, module.get_submodule(owner_path) if owner_path else module, attr))
    return [Selected(names.get(id(getattr(owner, attr)), rel), owner, attr) for rel, owner, attr in found]


def _miss(net: Any, branch: Branch, entry: Rule, visited: list, taken_by: list[str]) -> Problem:
    from netcli.init.targets import apply_order, own_class

    name = branch.type_name
    if not visited:
        present = ", ".join(dict.fromkeys(own_class(m).__name__ for m in apply_order(net)))
        return branch.problem(f"apply: the network has no {name}", f"its types are {present}")
    if len(taken_by) == len(visited):
        earlier = ", ".join(dict.fromkeys(taken_by))
        return branch.problem(
            f"apply: every {name} is initialized by the earlier type {earlier} (the first matching type wins, "
            "as in if/elif)",
            f"put {name} before {earlier}",
        )
    params = sorted({n for m in visited for n, _ in m.named_parameters()})
    return entry.problem(
        f"apply: '{entry.target}' matches no parameter of any {name} ({len(visited)} visited)",
        (did_you_mean(entry.target, params) or f"its parameters are {', '.join(params) or '(none)'}")
        + "; write weight, bias, all, or a glob such as *.bias",
    )
