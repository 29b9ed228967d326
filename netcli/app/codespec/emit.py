"""Write a spec as the shipped configs are written: block style for structure, one flow line per layer.

PyYAML writes either everything in block style (a `Linear` over four lines)
or everything in flow style (one unreadable line); a spec reads best with
definitions, children and lists in block style, each small node on one line
(`conv1: {Conv2d: [3, 64, 7, 2, 3, {bias: false}]}`) and a forward as a
literal block.
"""

from __future__ import annotations

from typing import Any

import yaml

FLOW_WIDTH = 120  # a node whose one-line form is longer than this is written in block style
SCALARS_WIDTH = 160  # ... and a mapping of plain values (params, with:) longer than this


def flow(value: Any) -> str:
    """One value on one line, quoted where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False, allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[: -len("\n...\n")]
    return text.strip()


def _multiline(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value


def _flowable(value: Any) -> bool:
    if _multiline(value):
        return False
    if isinstance(value, dict):
        if any(k in value for k in ("children", "forward", "blocks", "model")):
            return False
        scalars = all(not isinstance(v, dict | list) for v in value.values())
        return all(_flowable(v) for v in value.values()) and len(flow(value)) <= (
            SCALARS_WIDTH if scalars else FLOW_WIDTH
        )
    if isinstance(value, list):
        return all(_flowable(v) for v in value) and len(flow(value)) <= FLOW_WIDTH
    return True


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{pad}{flow(key)}:"
            if _multiline(item):
                out.append(head + " |")
                out += [f"{pad}  {line}" if line else "" for line in item.rstrip("\n").split("\n")]
            elif _flowable(item) and key not in ("children", "blocks", "model"):  # structure reads top-down
                out.append(f"{head} {flow(item)}")
            else:
                out.append(head)
                out += _lines(item, indent + 2)
    elif isinstance(value, list):
        for item in value:
            if _flowable(item):
                out.append(f"{pad}- {flow(item)}")
            else:
                inner = _lines(item, indent + 2)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out += inner[1:]
    else:
        out.append(pad + flow(value))
    return out


def to_yaml(spec: dict[str, Any], header: str = "") -> str:
    """The spec as YAML text, top-level keys separated by their own lines."""
    body = "\n".join(_lines(spec, 0)) + "\n"
    return header + body
