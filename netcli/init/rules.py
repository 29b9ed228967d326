"""Init rules (SPEC 1.4): parse `INIT:TARGET`, the long form and `apply` into `Rule`s.

A rule is the text `normal(std=0.01):*` (in the spec's `init:` and in
`--rule`) or the long form `{init, args, target, params}`; the same text means
the same thing in both places. An `apply` rule is read by `branches`; what a
rule's text means, and `Rule` itself, is `rule_text`. What a rule selects is
`targets`; checking and ordering all rules is `plan`; setting the values is
`apply` (the default path) or `fastinit` (one pass), both from the one plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netcli import registry
from netcli.builder.cache import build_cache
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean
from netcli.init.branches import flow_mapping, parse_apply
from netcli.init.rule_text import (
    MAX_RULE_CHARS,
    PARAMS,
    Rule,
    Touched,
    _check_call,
    _check_finite,
    _fail,
    _parse_init,
    _split,
)
from netcli.specfile.schema import ApplyRuleSpec, InitRuleSpec

__all__ = ["MAX_RULE_CHARS", "PARAMS", "Rule", "Touched", "all_rules", "cli_rules", "parse_rule", "spec_rules"]


def parse_rule(raw: Any, label: str, *, location: Location | None = None, where: str = "", locate: Any = None) -> Rule:
    """Parse one rule (text, long form or `apply`) and check its initializer and arguments.

    `label` names the rule in messages ("--rule xavier:5"); a spec rule passes its document `location` and
    `where` ("init[0]") instead, and `locate` (path inside the rule -> location, where) for an `apply`'s entries.
    """
    registry.ensure_loaded()
    loc = location if location is not None else Location(label)
    if isinstance(raw, str) and raw.lstrip().startswith("{"):  # --rule '{apply: {...}}' or the long form
        raw = flow_mapping(raw, loc, where)
    if isinstance(raw, ApplyRuleSpec) or (isinstance(raw, dict) and "apply" in raw):
        return parse_apply(raw, loc, where, locate)
    if isinstance(raw, str):
        init_text, target = _split(raw, loc, where)
        name, args, kwargs = _parse_init(init_text, loc, where)
        rule = Rule(raw.strip(), name, args, kwargs, target, None, loc, where)
    else:
        rule = _parse_long(raw, loc, where)
    _check_finite(rule)
    _check_call(rule)
    return rule


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
                problems.append(
                    Problem(
                        f"unknown key '{key}' in an init rule",
                        where,
                        loc,
                        did_you_mean(key, InitRuleSpec.model_fields) or "the keys are init, args, target, params",
                    )
                )
            elif key == "params":
                problems.append(
                    Problem(
                        f"params must be one of {', '.join(PARAMS)}, not {err.get('input')!r}",
                        where,
                        loc,
                        did_you_mean(str(err.get("input")), PARAMS) or "write params: weight, bias or all",
                    )
                )
            else:
                problems.append(
                    Problem(
                        f"{key}: {err['msg']}",
                        where,
                        loc,
                        "write {init: normal, args: {std: 0.01}, target: '*', params: weight}",
                    )
                )
        raise NetcliError(problems) from None
    name, args, kwargs = _parse_init(spec.init, loc, where)
    for key in spec.args:
        if key in kwargs:
            raise _fail(loc, where, f"argument '{key}' is given twice (in init: and in args:)", "give it in one place")
    kwargs = {**kwargs, **spec.args}
    shown = (
        spec.init
        if not spec.args
        else (f"{name}({', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])})")
    )
    text = f"{shown}:{spec.target}" + (f" [{spec.params}]" if spec.params else "")
    return Rule(text, name, args, kwargs, spec.target.strip() or "*", spec.params, loc, where)


def spec_rules(loaded) -> list[Rule]:
    """Parse the spec's `init:` entries, each located in the document; raise with every problem.

    Parsed once per loaded spec (a later build of it, netcli.build again, reuses them).
    """
    cache = build_cache(loaded)
    if cache.init_rules is not None:
        return list(cache.init_rules)
    rules, problems = [], []
    for i, raw in enumerate(loaded.spec.init):
        here = loaded.problem(("init", i), "")
        label = raw if isinstance(raw, str) else f"init[{i}]"

        def locate(path: tuple, key: bool = False, i: int = i) -> tuple[Location, str]:
            at = loaded.problem(("init", i, *path), "", key=key)
            return at.location, at.where

        try:
            rules.append(parse_rule(raw, label, location=here.location, where=here.where, locate=locate))
        except NetcliError as exc:
            problems += exc.problems
    if problems:
        raise NetcliError(problems)
    cache.init_rules = tuple(rules)
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
