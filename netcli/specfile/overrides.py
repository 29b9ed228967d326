"""`--set PATH=VALUE`: overrides applied to the YAML document before validation.

A path names keys and list positions of the document, never Python
attributes; a key that does not exist is an error unless the schema lets its
mapping grow (vars:, blocks:) and the new key is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from netcli.core.errors import Location, NetcliError, Problem, did_you_mean
from netcli.specfile.arithmetic import referenced_names
from netcli.specfile.schema import TOP_LEVEL_KEYS
from netcli.specfile.yamldoc import Document, Path, parse_value, render_path


def apply_sets(doc: Document, sets: Iterable[str]) -> None:
    """Apply `--set PATH=VALUE` overrides to the document, before validation.

    A path exists, or ends in a new key the schema then checks (an option, an
    argument, a top-level key); a new variable or block must be used by the
    spec (after all the --set), or it is a misspelling that would change nothing.
    """
    created: list[tuple[Path, list[str], str]] = []  # new keys under vars:/blocks:, checked once all are applied
    for item in sets:
        label = f"--set {item}"
        if "=" not in item:
            raise NetcliError(
                Problem("expected PATH=VALUE", location=Location(label), hint="e.g. --set vars.hidden=64")
            )
        dotted, text = item.split("=", 1)
        value = parse_value(text, label)
        parts = dotted.strip().split(".")
        if not dotted.strip() or any(p == "" for p in parts):
            raise NetcliError(
                Problem(f"'{dotted}' is not a path", location=Location(label), hint="e.g. model.1.Linear.1")
            )
        if doc.data is None:
            doc.data = {}
        node, path, made = doc.data, cast(tuple, ()), None
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) <= len(node):
                    raise NetcliError(
                        Problem(
                            f"'{render_path(path) or 'the document'}' is a list of {len(node)}; "
                            f"'{part}' is not an index in it",
                            location=Location(label),
                        )
                    )
                key: Any = int(part) % (len(node) + 1) if int(part) < 0 else int(part)
                if key == len(node):
                    node.append(None)
            elif isinstance(node, dict):
                key = _existing_key(node, part)
                if made is None and key not in node and path:  # a new top-level key is checked below
                    made = (path + (key,), sorted(str(k) for k in node))
            else:
                raise NetcliError(
                    Problem(
                        f"'{render_path(path)}' is a value ({node!r}), it has no '{part}'", location=Location(label)
                    )
                )
            path = path + (key,)
            if last:
                node[key] = value
            else:
                current = node[key] if isinstance(node, list) else node.get(key)
                if current is None:
                    node[key] = {}
                node = node[key]
        if len(path) == 1 and path[0] not in TOP_LEVEL_KEYS:
            hint = did_you_mean(path[0], TOP_LEVEL_KEYS)
            raise NetcliError(Problem(f"'{path[0]}' is not a top-level key", location=Location(label), hint=hint))
        doc.overrides[path] = label
        if made is not None and made[0][:1] in (("vars",), ("blocks",)) and len(made[0]) > 1:
            created.append((made[0], made[1], label))
    for made_path, siblings, label in created:
        problem = _unused_new_key(doc.data, made_path, siblings, label)
        if problem is not None:
            raise NetcliError(problem)


def _unused_new_key(data: Any, path: Path, siblings: list[str], label: str) -> Problem | None:
    """A key --set added under vars: or blocks: that nothing uses: a misspelling, not a new variable or block.

    Elsewhere a new key is checked by the schema (an unknown option, argument
    or top-level key is named there); vars and blocks take any name, so a key
    that is there only because of a typo would be silently ignored.
    """
    words = _words_outside(data, path)
    name = ".".join(str(p) for p in path[1:])
    if path[0] == "vars":
        refs = {name for w in words for name in referenced_names(w)}
        if any(r == name or r.startswith(name + ".") or name.startswith(r + ".") for r in refs):
            return None
        what = f"no ${{{name}}} in the spec uses it"
        if len(path) == 2:  # the names the spec uses, defined or not yet
            siblings = sorted(set(siblings) | {r.partition(".")[0] for r in refs})
    else:
        if name in words:
            return None
        what = f"no use: {name} or ref: {name} in the spec uses it"
    hint = did_you_mean(str(path[-1]), siblings) or (
        f"{render_path(path[:-1])} has {', '.join(siblings)}"
        if siblings
        else f"{render_path(path[:-1])} is empty here; refer to the new one, or set an existing path"
    )
    return Problem(f"'{render_path(path)}' does not exist and {what}", location=Location(label), hint=hint)


def _words_outside(data: Any, skip: Path) -> set[str]:
    """Every text (values and keys) in the document except under `skip`."""
    words: set[str] = set()
    stack: list[tuple[Any, Path]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if path == skip:
            continue
        if isinstance(value, dict):
            words.update(k for k in value if isinstance(k, str) and path + (k,) != skip)
            stack.extend((v, path + (k,)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(value))
        elif isinstance(value, str):
            words.add(value)
    return words


def _existing_key(node: dict, part: str) -> Any:
    if part in node:
        return part
    for k in node:
        if str(k) == part:
            return k
    return part
