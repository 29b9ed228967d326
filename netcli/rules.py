"""Init rules (SPEC 1.4): parse `INIT:TARGET`, find what it targets, check it, apply it.

A rule is the text `normal(std=0.01):*` (in the spec's `init:` and in
`--rule`) or the long form `{init, args, target, params}`. Rules are all
resolved and dry-run on meta tensors before any tensor changes, so a bad rule
leaves the network as it was. Module targets are visited in `nn.Module.apply`
order (children before their parent), so `xavier:0` draws the same random
numbers as the chapter's `net[0].apply(init_xavier)`. A tied tensor is
initialized once per rule, however many modules hold it.
"""
from __future__ import annotations

import ast
import fnmatch
import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from netcli import registry
from netcli.errors import Location, NetcliError, Problem, did_you_mean
from netcli.schema import InitRuleSpec

PARAMS = ("weight", "bias", "all")
MAX_RULE_CHARS = 500
_CONST = re.compile(r"^const(?:ant)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")
_GLOB = re.compile(r"[*?\[]")
EXAMPLES = "e.g. xavier:0, normal(std=0.01):Linear, const42:2, zeros:*.bias"


@dataclass(frozen=True)
class Touched:
    """One tensor a rule set: the rule's text, the parameter's name and shape."""

    rule: str
    name: str
    shape: tuple[int, ...]
    tied: tuple[str, ...] = ()  # the tensor's other names, when it is tied

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "parameter": self.name, "shape": list(self.shape), "tied": list(self.tied)}


@dataclass(eq=False)
class Rule:
    """A parsed rule: which initializer with which arguments, on which target."""

    text: str  # as the user wrote it (the long form rendered short), for tables
    init: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    target: str = "*"
    params: str | None = None  # weight | bias | all; None: weights on a module target
    location: Location = field(default_factory=Location)
    where: str = ""

    def problem(self, message: str, hint: str | None = None) -> Problem:
        """Return a Problem located at this rule."""
        return Problem(message, self.where, self.location, hint)

    @property
    def fn(self) -> Callable:
        return registry.initializers.get(self.init)


# --- parsing -----------------------------------------------------------------


def parse_rule(text_or_mapping: Any, label: str, *, location: Location | None = None,
               where: str = "") -> Rule:
    """Parse one rule (text or long form) and check its initializer and arguments.

    `label` names the rule in messages ("--rule xavier:5"); a spec rule passes
    its document `location` and `where` ("init[0]") instead.
    """
    registry.ensure_loaded()
    loc = location if location is not None else Location(label)
    if isinstance(text_or_mapping, str):
        init_text, target = _split(text_or_mapping, loc, where)
        name, args, kwargs = _parse_init(init_text, loc, where)
        rule = Rule(text_or_mapping.strip(), name, args, kwargs, target, None, loc, where)
    else:
        rule = _parse_long(text_or_mapping, loc, where)
    _check_call(rule)
    return rule


def _fail(loc: Location, where: str, message: str, hint: str | None) -> NetcliError:
    return NetcliError(Problem(message, where, loc, hint))


def _split(text: str, loc: Location, where: str) -> tuple[str, str]:
    """Split `INIT:TARGET` at the first colon outside parentheses and quotes."""
    if len(text) > MAX_RULE_CHARS:
        raise _fail(loc, where, f"a rule is at most {MAX_RULE_CHARS} characters", "split it into several rules")
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ":" and depth == 0:
            init, target = text[:i].strip(), text[i + 1:].strip()
            if not init:
                raise _fail(loc, where, f"the rule '{text}' names no initializer before ':'",
                            f"write INIT:TARGET, {EXAMPLES}")
            if not target:
                raise _fail(loc, where, f"the rule '{text}' has no target after ':'",
                            f"write {init}:* for every module, or a path such as {init}:0")
            return init, target
    if depth or quote:
        raise _fail(loc, where, f"unbalanced {'quotes' if quote else 'parentheses'} in the rule '{text}'",
                    "write arguments as normal(std=0.01)")
    raise _fail(loc, where, f"the rule '{text}' has no target: a rule is INIT:TARGET",
                f"write {text.strip() or 'xavier'}:* for every module, or {EXAMPLES}")


def _parse_init(text: str, loc: Location, where: str) -> tuple[str, tuple, dict]:
    """Parse `name`, `name(1, b=2)` or `const42` into (name, args, kwargs) with literal values only."""
    text = text.strip()
    const = _CONST.match(text)
    if const:
        value = ast.literal_eval(const.group(1))
        return "constant", (value,), {}
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise _fail(loc, where, f"'{text}' is not an initializer call",
                    "write a name with optional arguments, e.g. normal(std=0.01) or uniform(-10, 10)") from None
    if isinstance(tree, ast.Name):
        return _known(tree.id, loc, where), (), {}
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise _fail(loc, where, f"'{text}' is not an initializer call",
                    "write a registered name with optional arguments, e.g. normal(std=0.01)")
    name = _known(tree.func.id, loc, where)
    try:
        args = tuple(ast.literal_eval(a) for a in tree.args)
        kwargs = {}
        for kw in tree.keywords:
            if kw.arg is None:
                raise ValueError("**")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
    except ValueError:
        raise _fail(loc, where, f"the arguments of '{text}' must be plain values (numbers, text, lists)",
                    "write e.g. normal(mean=0, std=0.01); expressions and calls are not evaluated") from None
    return name, args, kwargs


def _known(name: str, loc: Location, where: str) -> str:
    """Return the registered initializer called `name` (a trailing `_` as in torch is fine)."""
    if name in registry.initializers:
        return name
    if name.rstrip("_") in registry.initializers:
        return name.rstrip("_")
    names = registry.initializers.names()
    hint = did_you_mean(name.rstrip("_"), names) or f"the initializers are {', '.join(names)}"
    if name.startswith("const"):
        hint = "write const42 or constant(42)"
    raise _fail(loc, where, f"unknown initializer '{name}'", hint)


def _parse_long(raw: Any, loc: Location, where: str) -> Rule:
    """Parse the long form `{init, args, target, params}`."""
    from pydantic import ValidationError
    try:
        spec = raw if isinstance(raw, InitRuleSpec) else InitRuleSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(Problem(f"unknown key '{key}' in an init rule", where, loc,
                                        did_you_mean(key, InitRuleSpec.model_fields) or
                                        "the keys are init, args, target, params"))
            elif key == "params":
                problems.append(Problem(f"params must be one of {', '.join(PARAMS)}, not {err.get('input')!r}",
                                        where, loc, did_you_mean(str(err.get("input")), PARAMS) or
                                        "write params: weight, bias or all"))
            else:
                problems.append(Problem(f"{key}: {err['msg']}", where, loc,
                                        "write {init: normal, args: {std: 0.01}, target: '*', params: weight}"))
        raise NetcliError(problems) from None
    name, args, kwargs = _parse_init(spec.init, loc, where)
    for key in spec.args:
        if key in kwargs:
            raise _fail(loc, where, f"argument '{key}' is given twice (in init: and in args:)",
                        "give it in one place")
    kwargs = {**kwargs, **spec.args}
    shown = spec.init if not spec.args else (
        f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})")
    text = f"{shown}:{spec.target}" + (f" [{spec.params}]" if spec.params else "")
    return Rule(text, name, args, kwargs, spec.target.strip() or "*", spec.params, loc, where)


def _check_call(rule: Rule) -> None:
    """Bind the rule's arguments to the initializer's signature and check their types."""
    fn = rule.fn
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    shown = _signature_text(sig)
    hint = f"{rule.init} takes ({shown})" if shown else f"{rule.init} takes no arguments: write {rule.init}:{rule.target}"
    names = [p for p in list(sig.parameters)[1:]]
    for key in rule.kwargs:
        if key not in sig.parameters or key == next(iter(sig.parameters)):
            if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
                raise NetcliError(rule.problem(f"{rule.init} has no argument '{key}'",
                                               did_you_mean(key, names) or hint))
    try:
        bound = sig.bind(None, *rule.args, **rule.kwargs)
    except TypeError as exc:
        extra = " (write const42 or constant(42))" if rule.init == "constant" else ""
        raise NetcliError(rule.problem(f"bad arguments for {rule.init}: {exc}", hint + extra)) from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a plugin's unresolvable annotations: binding was still checked
        return
    first = next(iter(sig.parameters))
    for name, value in bound.arguments.items():
        if name == first or name not in hints:
            continue
        adapter = registry._adapter(hints[name])
        if adapter is None:
            continue
        try:
            adapter.validate_python(value, strict=isinstance(value, str))
        except Exception:
            raise NetcliError(rule.problem(
                f"argument '{name}' of {rule.init} must be {_type_text(hints[name])}, not {value!r}",
                hint)) from None


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def spec_rules(loaded) -> list[Rule]:
    """Parse the spec's `init:` entries, each located in the document; raise with every problem."""
    rules, problems = [], []
    for i, raw in enumerate(loaded.spec.init):
        here = loaded.problem(("init", i), "")
        label = raw if isinstance(raw, str) else f"init[{i}]"
        try:
            rules.append(parse_rule(raw, label, location=here.location, where=here.where))
        except NetcliError as exc:
            problems += exc.problems
    if problems:
        raise NetcliError(problems)
    return rules


def cli_rules(texts: Sequence[str]) -> list[Rule]:
    """Parse `--rule` texts; raise with every problem."""
    rules, problems = [], []
    for text in texts:
        try:
            rules.append(parse_rule(text, f"--rule {text}"))
        except NetcliError as exc:
            problems += exc.problems
    if problems:
        raise NetcliError(problems)
    return rules


# --- targets -----------------------------------------------------------------


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


def _canonical(net) -> tuple[dict[int, str], dict[int, tuple[str, ...]]]:
    first: dict[int, str] = {}
    others: dict[int, list[str]] = {}
    for name, p in net.named_parameters(remove_duplicate=False):
        if id(p) in first:
            others.setdefault(id(p), []).append(name)
        else:
            first[id(p)] = name
    return first, {k: tuple(v) for k, v in others.items()}


def select(net, rule: Rule) -> list[Selected]:
    """Return the tensors `rule` targets, in the order it sets them; raise if it targets nothing."""
    from netcli.params import PathError, find
    names, _ = _canonical(net)
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
            raise NetcliError(rule.problem(f"'{found.name}' is a buffer, not a parameter: rules set parameters",
                                           "write the path of a parameter, e.g. 0.weight"))
        if rule.params not in (None, "all") and not _wanted(found.attr, rule.params):
            raise NetcliError(rule.problem(f"'{found.name}' is not a {rule.params}, so params: {rule.params} leaves nothing",
                                           "drop params: for a parameter path"))
        return [Selected(names[id(tensor)], found.module, found.attr)]
    return _from_modules(net, apply_order(found.module), rule, names, f"'{found.name or '(root)'}'")


def _from_modules(net, modules, rule: Rule, names: dict[int, str], what: str) -> list[Selected]:
    seen, out, types = set(), [], []
    for module in modules:
        types.append(type(module).__name__)
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
            hint = f"its parameters are named {', '.join(has)}: use params: all, or a path such as {_first_path(names, modules, net)}"
        else:
            hint = "pick a block with parameters; `netcli inspect` lists them"
        raise NetcliError(rule.problem(
            f"target {what} matches nothing: it holds no {'parameters' if kind == 'all' else kind + ' parameters'} ({shown})",
            hint))
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
        raise NetcliError(rule.problem(
            f"the glob '{rule.target}' matches no parameter name",
            (close + "; " if close else "") + f"the parameters are {shown or '(none)'}"))
    return out


def _modules_of_type(net, name: str) -> list:
    return [m for m in apply_order(net) if type(m).__name__ == name]


def _explain_miss(net, rule: Rule, exc: NetcliError) -> tuple[str, str | None]:
    """Say why a target matched nothing: a path that stops, or a type that is not there."""
    target = rule.target
    present = list(dict.fromkeys(type(m).__name__ for m in apply_order(net)))
    looks_like_type = target[:1].isupper() and target.replace("_", "").isalnum()
    if looks_like_type:
        if target in registry.types:
            return (f"target '{target}' matches nothing: the network has no {target}",
                    f"its types are {', '.join(present)}")
        close = did_you_mean(target, present)
        return (f"target '{target}' is neither a path nor a type in the network",
                close or f"its types are {', '.join(present)}")
    from netcli.params import find
    level, parent = getattr(exc, "level", ""), getattr(exc, "parent", "")
    if not level:
        return exc.problems[0].message, exc.problems[0].hint
    first = next((f"{parent}.{n}" if parent else n for n, _ in find(net, parent).module.named_children()), None)
    example = f"{rule.init}:{first}" if first else f"{rule.init}:{parent or '*'}"
    return f"target '{target}' matches nothing; {level}", f"write e.g. {example}"


# --- checking and applying ---------------------------------------------------


def _plan(net, rules: Sequence[Rule]) -> list[tuple[Rule, list[Selected]]]:
    """Resolve every rule and dry-run it on meta tensors; raise listing every problem."""
    plan, problems = [], []
    for rule in rules:
        try:
            selected = select(net, rule)
            _dry_run(rule, selected)
            plan.append((rule, selected))
        except NetcliError as exc:
            problems += exc.problems
    if problems:
        raise NetcliError(problems)
    return plan


def _dry_run(rule: Rule, selected: list[Selected]) -> None:
    import torch
    fn = rule.fn
    if getattr(fn, "netcli_module_scope", False):
        for s in selected:
            if not callable(getattr(s.module, "reset_parameters", None)):
                raise NetcliError(rule.problem(
                    f"'default' cannot apply to '{s.name}': {type(s.module).__name__} has no reset_parameters()",
                    "use an explicit initializer such as normal(std=0.01) for it"))
        return
    dims = getattr(fn, "netcli_dims", None)
    for s in selected:
        t = s.tensor
        shape = list(t.shape)
        if dims is not None:
            low, high, why = dims
            if t.dim() < low or (high is not None and t.dim() > high):
                raise NetcliError(rule.problem(
                    f"{rule.init} cannot apply to '{s.name}' ({t.dim()}-D, shape {shape}): {why}",
                    _dims_hint(rule, s)))
        try:
            fn(torch.empty(t.shape, dtype=t.dtype, device="meta"), *rule.args, **rule.kwargs)
        except Exception as exc:
            raise NetcliError(rule.problem(
                f"{rule.init} cannot apply to '{s.name}' (shape {shape}): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                "check the arguments against the initializer (`netcli init --help` lists the rule forms)")) from None


def _dims_hint(rule: Rule, s: Selected) -> str:
    if "bias" in s.attr:
        return (f"rules on a block set only weights unless params: says otherwise; "
                f"for biases write e.g. zeros:{s.name}")
    low = rule.fn.netcli_dims[0]
    return (f"pick a convolution's weights, e.g. {rule.init}:Conv2d" if low >= 3
            else f"pick matrix weights, e.g. {rule.init}:Linear")


def _signature_text(sig: inspect.Signature) -> str:
    """Render an initializer's arguments as `(mean=0.0, std=1.0)`, without the tensor."""
    out = []
    for p in list(sig.parameters.values())[1:]:
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(out)


def check_rules(net, rules: Sequence[Rule]) -> None:
    """Raise NetcliError listing every bad rule, without changing any tensor."""
    _plan(net, rules)


def apply_rules(net, rules: Sequence[Rule]) -> list[Touched]:
    """Apply `rules` in order (a later rule wins); return what each set."""
    import torch
    plan = _plan(net, rules)
    _, tied = _canonical(net)
    touched: list[Touched] = []
    with torch.no_grad():
        for rule, selected in plan:
            if getattr(rule.fn, "netcli_module_scope", False):
                _reset(selected)
            else:
                for s in selected:
                    try:
                        rule.fn(s.tensor, *rule.args, **rule.kwargs)
                    except Exception as exc:  # what the meta dry run could not foresee
                        raise NetcliError(rule.problem(
                            f"{rule.init} failed on '{s.name}': {type(exc).__name__}: {exc}".splitlines()[0],
                            "check the rule's arguments")) from exc
            touched += [Touched(rule.text, s.name, tuple(s.tensor.shape), tied.get(id(s.tensor), ()))
                        for s in selected]
    return touched


def _reset(selected: list[Selected]) -> None:
    """Run each owning module's reset_parameters once; keep the tensors the rule did not select."""
    by_module: dict[int, tuple[Any, set[str]]] = {}
    for s in selected:
        by_module.setdefault(id(s.module), (s.module, set()))[1].add(s.attr)
    for module, attrs in by_module.values():
        keep = {n: p.detach().clone() for n, p in module._parameters.items()
                if p is not None and n not in attrs}
        module.reset_parameters()
        for n, value in keep.items():
            module._parameters[n].copy_(value)


def initialize(built, extra: Sequence[str] = ()) -> list[Touched]:
    """Apply the spec's `init:` rules, then the `--rule` texts in `extra`, to `built.net`.

    `build_model(loaded, rules=extra)` already calls this; call it yourself only
    on a net built some other way, or the spec's rules run (and draw) twice.
    """
    return apply_rules(built.net, all_rules(built.loaded, extra))


def all_rules(loaded, extra: Sequence[str] = ()) -> list:
    """Parse the spec's `init:` rules, then the `--rule` texts; raise with every bad one."""
    problems, rules = [], []
    for parse in (lambda: spec_rules(loaded), lambda: cli_rules(extra)):
        try:
            rules += parse()
        except NetcliError as exc:
            problems += exc.problems
    if problems:
        raise NetcliError(problems)
    return rules


def explain(net, touched: Sequence[Touched]) -> list[dict[str, Any]]:
    """For every parameter, the rule that last set it, or `default`."""
    last = {t.name: t.rule for t in touched}
    _, tied = _canonical(net)
    return [{"parameter": name, "shape": list(p.shape), "set_by": last.get(name, "default"),
             "tied": list(tied.get(id(p), ()))}
            for name, p in net.named_parameters()]
