"""Where definitions and built modules come from: cycles between definitions, a module's place in the spec."""

from __future__ import annotations

from netcli.core.errors import Problem
from netcli.specfile.loading import LoadedSpec, walk_nodes
from netcli.specfile.tree import named_definition


def check_cycles(loaded: LoadedSpec) -> list[Problem]:
    """Find definitions that use or ref themselves, directly or through others."""
    blocks = loaded.spec.blocks
    uses: dict[str, list[tuple[str, tuple]]] = {}
    for at in walk_nodes(loaded, templates=True):
        target = named_definition(at.node)  # a use or ref
        if at.path[0] == "blocks" and target is not None:
            uses.setdefault(at.path[1], []).append((target, at.path))
    problems, reported = [], set()

    def visit(name: str, stack: list[str]) -> None:
        for target, path in uses.get(name, []):
            if target in stack:
                cycle = stack[stack.index(target) :] + [target]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    problems.append(
                        loaded.problem(
                            path,
                            "definitions refer to each other in a cycle: " + " -> ".join(cycle),
                            "a block cannot contain itself",
                        )
                    )
            elif target in blocks:
                visit(target, stack + [target])

    for name in blocks:
        visit(name, [name])
    return problems


def origin_of(origins: dict[str, tuple], name: str) -> tuple:
    """Return the document path of module `name`, or of its nearest ancestor in the spec."""
    parts = name.split(".") if name else []
    for n in range(len(parts), -1, -1):
        key = ".".join(parts[:n])
        if key in origins:
            return origins[key]
    return ("model",)
