"""What one init rule is, and reading its text: `INIT` with its arguments, `INIT:TARGET`, checked calls.

`Rule` and `Touched` are the data every init module shares; the parsing of
an initializer call (`normal(std=0.01)`, `const42`), the split at `:` and the
checks of its arguments against the initializer's signature live here, below
rules.py (which reads whole rules: text, long form, `apply`) and branches.py
(the `apply` rules), so neither imports the other's reader.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netcli import registry
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean

PARAMS = ("weight", "bias", "all")
MAX_RULE_CHARS = 500
_CONST = re.compile(r"^const(?:ant)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$")
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

    @property
    def dims(self) -> tuple[int, int | None, str] | None:
        """(low, high, why): the tensor dimensions the initializer is defined for, if it says."""
        return registry.initializers.entry(self.init).meta.get("dims")

    @property
    def module_scope(self) -> bool:
        """True for `default`: the owning module's reset_parameters() sets the tensors."""
        return bool(registry.initializers.entry(self.init).meta.get("module_scope"))


# --- parsing -----------------------------------------------------------------
def _non_finite(value: Any) -> float | complex | None:
    """The first infinite or NaN number in an argument (lists and mappings searched), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, complex):
        return None if math.isfinite(value.real) and math.isfinite(value.imag) else value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            bad = _non_finite(item)
            if bad is not None:
                return bad
    return None


def _check_finite(rule: Rule) -> None:
    """Refuse an infinite or NaN argument (`normal(std=1e400)` reads as inf): it would fill tensors with inf/nan."""
    named = [(f"argument {i + 1}", a) for i, a in enumerate(rule.args)] + [
        (f"argument '{k}'", v) for k, v in rule.kwargs.items()
    ]
    for label, value in named:
        bad = _non_finite(value)
        if bad is not None:
            raise NetcliError(
                rule.problem(
                    f"{label} of {rule.init} is {bad!r}: an initializer's arguments must be finite numbers",
                    ("a number beyond ±1.8e308 reads as inf; " if math.isinf(abs(bad)) else "")
                    + "write a finite value, e.g. normal(std=0.01)",
                )
            )


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
            init, target = text[:i].strip(), text[i + 1 :].strip()
            if not init:
                raise _fail(
                    loc, where, f"the rule '{text}' names no initializer before ':'", f"write INIT:TARGET, {EXAMPLES}"
                )
            if not target:
                raise _fail(
                    loc,
                    where,
                    f"the rule '{text}' has no target after ':'",
                    f"write {init}:* for every module, or a path such as {init}:0",
                )
            return init, target
    if depth or quote:
        raise _fail(
            loc,
            where,
            f"unbalanced {'quotes' if quote else 'parentheses'} in the rule '{text}'",
            "write arguments as normal(std=0.01)",
        )
    raise _fail(
        loc,
        where,
        f"the rule '{text}' has no target: a rule is INIT:TARGET",
        f"write {text.strip() or 'xavier'}:* for every module, or {EXAMPLES}",
    )


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
        raise _fail(
            loc,
            where,
            f"'{text}' is not an initializer call",
            "write a name with optional arguments, e.g. normal(std=0.01) or uniform(-10, 10)",
        ) from None
    if isinstance(tree, ast.Name):
        return _known(tree.id, loc, where), (), {}
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise _fail(
            loc,
            where,
            f"'{text}' is not an initializer call",
            "write a registered name with optional arguments, e.g. normal(std=0.01)",
        )
    name = _known(tree.func.id, loc, where)
    try:
        args = tuple(ast.literal_eval(a) for a in tree.args)
        kwargs = {}
        for kw in tree.keywords:
            if kw.arg is None:
                raise ValueError("**")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
    except ValueError:
        raise _fail(
            loc,
            where,
            f"the arguments of '{text}' must be plain values (numbers, text, lists)",
            "write e.g. normal(mean=0, std=0.01); expressions and calls are not evaluated",
        ) from None
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


def _check_call(rule: Rule) -> None:
    """Bind the rule's arguments to the initializer's signature and check their types."""
    fn = rule.fn
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    shown = _signature_text(sig)
    hint = (
        f"{rule.init} takes ({shown})" if shown else f"{rule.init} takes no arguments: write {rule.init}:{rule.target}"
    )
    names = [p for p in list(sig.parameters)[1:]]
    for key in rule.kwargs:
        if key not in sig.parameters or key == next(iter(sig.parameters)):
            if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
                raise NetcliError(
                    rule.problem(f"{rule.init} has no argument '{key}'", did_you_mean(key, names) or hint)
                )
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
        adapter = registry.type_adapter(hints[name])
        if adapter is None:
            continue
        try:
            adapter.validate_python(value, strict=isinstance(value, str))
        except Exception:
            raise NetcliError(
                rule.problem(f"argument '{name}' of {rule.init} must be {_type_text(hints[name])}, not {value!r}", hint)
            ) from None


def _type_text(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _signature_text(sig: inspect.Signature) -> str:
    """Render an initializer's arguments as `(mean=0.0, std=1.0)`, without the tensor."""
    out = []
    for p in list(sig.parameters.values())[1:]:
        out.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(out)
