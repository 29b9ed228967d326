"""The init plan: every rule resolved to its tensors and dry-run, before any value changes.

Both ways of setting values consume this one plan: `apply` (the default path:
each rule in order over torch's one RNG stream, as hand-written code) and
`fastinit` (one pass: each tensor set once, by the last rule that covers it).
So a rule means the same, and is checked the same, on both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netcli.builder.meta import SkipMetaFills
from netcli.core.errors import NetcliError, first_line
from netcli.core.ties import canonical_names
from netcli.init.rules import Rule, Touched
from netcli.init.targets import Selected, select


@dataclass
class InitPlan:
    """The rules in order, each with the tensors it sets."""

    steps: list[tuple[Rule, list[Selected]]] = field(default_factory=list)
    # the tie groups of the network it was planned on (id(net), id -> other names), for `report`
    tied: tuple[int, dict[int, tuple[str, ...]]] | None = None

    def last_rule(self) -> dict[int, tuple[Rule, Selected]]:
        """id(tensor) -> the last rule that sets it (a later rule overwrites an earlier one)."""
        return {id(s.tensor): (rule, s) for rule, selected in self.steps for s in selected}

    def report(self, net: Any) -> list[Touched]:
        """What each rule sets, in order: the rule's text, the tensor's name, shape and tied names."""
        if self.tied is not None and self.tied[0] == id(net):
            tied = self.tied[1]  # the same network (its tensors moved by to_empty keep their identity)
        else:
            _, tied = canonical_names(net)
        return [
            Touched(rule.text, s.name, tuple(s.tensor.shape), tied.get(id(s.tensor), ()))
            for rule, selected in self.steps
            for s in selected
        ]


def plan_rules(net: Any, rules: Sequence[Rule]) -> InitPlan:
    """Resolve every rule and dry-run it on meta tensors; raise listing every problem."""
    plan, problems = InitPlan(), []
    names: dict[int, str] = {}
    if rules:  # once for all the rules, and for the report
        names, tied = canonical_names(net)
        plan.tied = (id(net), tied)
    for rule in rules:
        try:
            if getattr(rule, "branches", None):  # an `apply` rule: one step per (module, entry), in apply order
                _plan_apply(plan, net, rule, names)
                continue
            selected = select(net, rule, names)
            _dry_run(rule, selected)
            plan.steps.append((rule, selected))
        except NetcliError as exc:
            problems += exc.problems
    if problems:
        raise NetcliError(problems)
    return plan


def _plan_apply(plan: InitPlan, net: Any, rule: Rule, names: dict[int, str]) -> None:
    from netcli.init.branches import ApplyRule, expand

    assert isinstance(rule, ApplyRule)
    steps = expand(net, rule, names)
    by_entry: dict[int, tuple[Rule, list[Selected]]] = {}
    for entry, selected in steps:  # each entry dry-run once, on every tensor it sets
        by_entry.setdefault(id(entry), (entry, []))[1].extend(selected)
    for entry, selected in by_entry.values():
        _dry_run(entry, selected)
    plan.steps += steps


def check_rules(net: Any, rules: Sequence[Rule]) -> None:
    """Raise NetcliError listing every bad rule, without changing any tensor."""
    plan_rules(net, rules)


# (initializer, its arguments, shape, dtype) of the dry runs that passed in this process: a network built
# again (netcli.build in a loop) is checked without running them again (a verdict depends on nothing else)
_PASSED: dict[tuple, None] = {}
_PASSED_LIMIT = 4096


def _dry_run(rule: Rule, selected: list[Selected]) -> None:
    import torch

    if rule.module_scope:
        for s in selected:
            if not callable(getattr(s.module, "reset_parameters", None)):
                raise NetcliError(
                    rule.problem(
                        f"'default' cannot apply to '{s.name}': {type(s.module).__name__} has no reset_parameters()",
                        "use an explicit initializer such as normal(std=0.01) for it",
                    )
                )
        return
    tried: set[tuple] = set()
    for s in selected:
        t = s.tensor
        shape = list(t.shape)
        if (tuple(shape), t.dtype) in tried:  # the same rule on the same shape: the same verdict
            continue
        tried.add((tuple(shape), t.dtype))
        _check_range(rule, s.name, t.dtype)
        if rule.dims is not None:
            low, high, why = rule.dims
            if t.dim() < low or (high is not None and t.dim() > high):
                raise NetcliError(
                    rule.problem(
                        f"{rule.init} cannot apply to '{s.name}' ({t.dim()}-D, shape {shape}): {why}",
                        _dims_hint(rule, s),
                    )
                )
        verdict = (rule.fn, repr(rule.args), repr(rule.kwargs), tuple(shape), t.dtype)
        if verdict in _PASSED:  # this initializer with these arguments already ran on this shape
            continue
        try:
            # random fills skipped: on meta they have no values, and torch's meta kernel for normal_
            # imports torch._dynamo (seconds, once per process)
            with SkipMetaFills():
                rule.fn(torch.empty(t.shape, dtype=t.dtype, device="meta"), *rule.args, **rule.kwargs)
            if len(_PASSED) >= _PASSED_LIMIT:
                _PASSED.clear()
            _PASSED[verdict] = None
        except Exception as exc:
            raise NetcliError(
                rule.problem(
                    f"{rule.init} cannot apply to '{s.name}' (shape {shape}): {first_line(exc)}",
                    "check the arguments against the initializer (`netcli init --help` lists the rule forms)",
                )
            ) from None


def _numbers(value: Any):
    """Every number in an argument (lists and mappings searched)."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _numbers(item)


def _check_range(rule: Rule, name: str, dtype: Any) -> None:
    """Refuse an argument beyond what the tensor's dtype holds (`const1e39` on float32 would write inf)."""
    import torch

    if not dtype.is_floating_point:
        return
    largest = torch.finfo(dtype).max
    named = [(f"argument {i + 1}", a) for i, a in enumerate(rule.args)] + [
        (f"argument '{k}'", v) for k, v in rule.kwargs.items()
    ]
    for label, value in named:
        for number in _numbers(value):
            if abs(number) > largest:
                dtype_name = str(dtype).removeprefix("torch.")
                raise NetcliError(
                    rule.problem(
                        f"{label} of {rule.init} is {number:g}, beyond what '{name}' ({dtype_name}) holds "
                        f"(at most {largest:.4g}): its values would be inf",
                        "write a value the tensor's dtype can hold",
                    )
                )


def _dims_hint(rule: Rule, s: Selected) -> str:
    if "bias" in s.attr:
        return f"rules on a block set only weights unless params: says otherwise; for biases write e.g. zeros:{s.name}"
    low = rule.dims[0] if rule.dims else 0
    return (
        f"pick a convolution's weights, e.g. {rule.init}:Conv2d"
        if low >= 3
        else f"pick matrix weights, e.g. {rule.init}:Linear"
    )
