"""Show the YAML line a problem points at, with a caret under its column."""

from __future__ import annotations

import re

from netcli.core.errors import Problem

_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # not tab


def excerpt(problem: Problem) -> tuple[str, str] | None:
    """Return (the offending line with its number, a caret line under the column), or None.

    >>> excerpt(Problem("unknown type", location=Location("bad.yaml", 3, 5)))
    ('  3 |   - Lnear', '    |     ^')
    """
    loc = problem.location
    if loc.line is None or not loc.source:
        return None
    from netcli.app.sources import source_text

    text = source_text(loc.source)
    if text is None:
        return None
    lines = text.splitlines()
    if not 1 <= loc.line <= len(lines):
        return None
    # A control character or bidi override in the file must not act on the terminal:
    # show one replacement character for it, so the caret stays under its column.
    line = _UNPRINTABLE.sub("\ufffd", lines[loc.line - 1])
    column = max(1, loc.column or 1)
    # Tabs would shift the caret: measure the prefix as the terminal shows it.
    offset = len(line[: column - 1].expandtabs(8))
    number = str(loc.line)
    return f"  {number} | {line.expandtabs(8)}", f"  {' ' * len(number)} | {' ' * offset}^"
