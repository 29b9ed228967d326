"""The merge of `extends:` (SPEC 1.7): a later file onto its base, key by key, every value keeping its position.

Mappings merge recursively, the later file winning on every value; lists and
scalars replace whole, and so does a node of another type; `KEY+=:` appends
to the base's list; `~` deletes a key a base wrote. Each value keeps the file,
line and column it was written at, so an error in the merged spec points into
whichever file wrote it. compose.py reads the files; this module only merges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netcli.core.errors import Location, NetcliError, Problem
from netcli.specfile.yamldoc import MAX_NODES, Document, Path

KEY = "extends"
APPEND = "+="


@dataclass
class Budget:
    """What reading one spec's files has spent: files, bytes, values."""

    files: int = 0
    bytes: int = 0
    values: int = 0
    texts: dict[str, str] = field(default_factory=dict)  # each base's text, for locations inside strings


@dataclass
class Layer:
    """A document being merged: its data, and the file/line/column of each value and key."""

    data: Any
    at: dict[Path, tuple[str, int, int]] = field(default_factory=dict)
    key_at: dict[Path, tuple[str, int, int]] = field(default_factory=dict)


def layer_of(doc: Document) -> Layer:
    return Layer(
        doc.data,
        {p: (doc.sources.get(p, doc.source), *pos) for p, pos in doc.positions.items()},
        {p: (doc.key_sources.get(p, doc.source), *pos) for p, pos in doc.key_positions.items()},
    )


def location(entry: tuple[str, int, int] | None, fallback: str) -> Location:
    return Location(*entry) if entry is not None else Location(fallback)


def render(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def merge(base: Layer | None, over: Layer, budget: Budget) -> Layer:
    """Merge `over` onto `base` (None: nothing), keeping every value's position."""
    merger = _Merger(base, over, budget)
    if base is None:
        merger.out.data = merger.copy(over, (), (), over.data, True)
    else:
        merger.out.data = merger.merge(base.data, over.data, ())
    return merger.out


class _Merger:
    """One merge of a later file onto its base: the merged values and, for each, where it was written."""

    def __init__(self, base: Layer | None, over: Layer, budget: Budget):
        self.base, self.over, self.budget = base, over, budget
        self.out = Layer(None)

    def spend(self, path: Path, src: Layer) -> None:
        self.budget.values += 1
        if self.budget.values > MAX_NODES:
            raise NetcliError(
                Problem(
                    f"the spec and its bases merge to more than {MAX_NODES} values",
                    render(path),
                    location(src.at.get(path), ""),
                )
            )

    def copy(self, src: Layer, sp: Path, dp: Path, value: Any, normalize: bool) -> Any:
        """Copy a value written in `src` at `sp` to `dp`; in the top file, `KEY+=` keys become `KEY`."""
        self.spend(dp, src)
        if sp in src.at:
            self.out.at[dp] = src.at[sp]
        if isinstance(value, dict):
            result = {}
            for k, v in value.items():
                key = k
                if normalize and _is_append(k):
                    key = k[: -len(APPEND)]
                    _check_append(src, sp, k, v, value)
                if sp + (k,) in src.key_at:
                    self.out.key_at[dp + (key,)] = src.key_at[sp + (k,)]
                result[key] = self.copy(src, sp + (k,), dp + (key,), v, normalize)
            return result
        if isinstance(value, list):
            return [self.copy(src, sp + (i,), dp + (i,), v, normalize) for i, v in enumerate(value)]
        return value

    def key_from(self, src: Layer, path: Path, k: Any, key: Any) -> None:
        if path + (k,) in src.key_at:
            self.out.key_at[path + (key,)] = src.key_at[path + (k,)]

    def merge(self, b: Any, o: Any, path: Path) -> Any:
        """Merge the later file's `o` onto the base's `b` at `path`: mappings key by key, the rest replaced."""
        base, over = (self.base if self.base is not None else Layer(None)), self.over
        if not (isinstance(b, dict) and isinstance(o, dict)) or _other_type(b, o, path):
            return self.copy(over, path, path, o, True)  # lists, values and a node of another type replace whole
        self.spend(path, over)
        where = over.at.get(path) or base.at.get(path)
        if where is not None:
            self.out.at[path] = where
        result: dict = {}
        appends = {k[: -len(APPEND)]: k for k in o if _is_append(k)}
        for k, v in o.items():
            if _is_append(k):
                _check_append(over, path, k, v, o)
        for k, v in b.items():  # the base's keys keep their order; the later file's values win
            if k in o:
                if o[k] is None:  # `key: ~` deletes what a base wrote
                    continue
                result[k] = self.merge(v, o[k], path + (k,))
                self.key_from(over, path, k, k)
            elif k in appends:
                result[k] = self.append(v, o[appends[k]], path, k, appends[k])
            else:
                result[k] = self.copy(base, path + (k,), path + (k,), v, False)
                self.key_from(base, path, k, k)
        for k, v in o.items():  # keys only the later file writes (a null there has nothing to delete)
            key = k[: -len(APPEND)] if _is_append(k) else k
            if key not in b:
                result[key] = self.copy(over, path + (k,), path + (key,), v, True)
                self.key_from(over, path, k, key)
        return result

    def append(self, items: Any, added_items: list, path: Path, k: Any, added: str) -> list:
        """`KEY+=: [...]`: the base's list, then the later file's items."""
        base, over = (self.base if self.base is not None else Layer(None)), self.over
        if not isinstance(items, list):
            raise NetcliError(
                Problem(
                    f"'{added}' appends to a list, but the base's '{k}' is not one",
                    render(path + (added,)),
                    location(over.key_at.get(path + (added,)), ""),
                    f"write '{k}:' to replace it",
                )
            )
        result = [self.copy(base, path + (k, i), path + (k, i), item, False) for i, item in enumerate(items)]
        result += [
            self.copy(over, path + (added, j), path + (k, len(items) + j), item, True)
            for j, item in enumerate(added_items)
        ]
        where = base.at.get(path + (k,)) or over.at.get(path + (added,))
        if where is not None:
            self.out.at[path + (k,)] = where
        self.key_from(over, path, added, k)
        return result


# Mappings whose keys are names the user chose (definitions, children, variables, params), not types.
_NAMED = ("blocks", "children", "Sequential", "vars", "with", "params")


def _type_keys(mapping: dict) -> set:
    return {k for k in mapping if isinstance(k, str) and (k[:1].isupper() or k in ("use", "ref"))}


def _other_type(base: dict, over: dict, path: Path) -> bool:
    """Tell whether `over` is a node of another type than `base` ({GELU: ...} over {ReLU: ...}).

    Merging them would give one node two types; the later file means the new
    node, so it replaces the base's whole, options included.
    """
    if not path or (isinstance(path[-1], str) and path[-1] in _NAMED):
        return False
    types, base_types = _type_keys(over), _type_keys(base)
    return len(types) == 1 and len(base_types) == 1 and types != base_types


def _is_append(key: Any) -> bool:
    return isinstance(key, str) and key.endswith(APPEND) and len(key) > len(APPEND)


def _check_append(src: Layer, path: Path, key: str, value: Any, mapping: dict) -> None:
    where = location(src.key_at.get(path + (key,)), "")
    target = key[: -len(APPEND)]
    if target in mapping:
        raise NetcliError(
            Problem(
                f"'{target}' and '{key}' are both written here",
                render(path + (key,)),
                where,
                f"keep one: '{target}:' replaces the base's list, '{key}:' appends to it",
            )
        )
    if not isinstance(value, list):
        raise NetcliError(
            Problem(
                f"'{key}' appends a list to the base's '{target}', not a {type(value).__name__}",
                render(path + (key,)),
                where,
                f"write a list, e.g. {key}: [...], or '{target}:' to replace the value",
            )
        )
