"""The default init path: apply the plan's rules in order on torch's one RNG stream.

This is what hand-written code does after building (`net[0].apply(init_xavier)`,
then `net[2].apply(init_42)`): every rule draws in order, a later rule over an
earlier one, so the values equal that code's under the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from netcli.core.errors import NetcliError, first_line
from netcli.core.ties import canonical_names
from netcli.init.plan import plan_rules
from netcli.init.rules import Rule, Touched, all_rules
from netcli.init.targets import Selected


def apply_rules(net: Any, rules: Sequence[Rule]) -> list[Touched]:
    """Apply `rules` in order (a later rule wins); return what each set."""
    import torch

    plan = plan_rules(net, rules)
    with torch.no_grad():
        for rule, selected in plan.steps:
            if rule.module_scope:
                _reset(selected)
                continue
            for s in selected:
                try:
                    rule.fn(s.tensor, *rule.args, **rule.kwargs)
                except Exception as exc:  # what the meta dry run could not foresee
                    raise NetcliError(
                        rule.problem(
                            f"{rule.init} failed on '{s.name}': {type(exc).__name__}: {first_line(exc)}",
                            "check the rule's arguments",
                        )
                    ) from exc
    return plan.report(net)


def _reset(selected: list[Selected]) -> None:
    """Run each owning module's reset_parameters once; keep the tensors the rule did not select."""
    by_module: dict[int, tuple[Any, set[str]]] = {}
    for s in selected:
        by_module.setdefault(id(s.module), (s.module, set()))[1].add(s.attr)
    for module, attrs in by_module.values():
        keep = {n: p.detach().clone() for n, p in module._parameters.items() if p is not None and n not in attrs}
        module.reset_parameters()
        for n, value in keep.items():
            module._parameters[n].copy_(value)


def initialize(built: Any, extra: Sequence[str] = ()) -> list[Touched]:
    """Apply the spec's `init:` rules, then the `--rule` texts in `extra`, to `built.net`.

    `build_model(loaded, rules=extra)` already calls this; call it yourself only
    on a net built some other way, or the spec's rules run (and draw) twice.
    """
    return apply_rules(built.net, all_rules(built.loaded, extra))


def explain(net: Any, touched: Sequence[Touched]) -> list[dict[str, Any]]:
    """For every parameter, the rule that last set it, or `default`."""
    last = {t.name: t.rule for t in touched}
    _, tied = canonical_names(net)
    return [
        {
            "parameter": name,
            "shape": list(p.shape),
            "set_by": last.get(name, "default"),
            "tied": list(tied.get(id(p), ())),
        }
        for name, p in net.named_parameters()
    ]
