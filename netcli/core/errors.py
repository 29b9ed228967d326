"""One error type for everything a user wrote wrong, located and with a hint.

`main()` in commands.py prints these as `FILE:LINE:COL: where: what (hint)` and
exits 2; anything else is a bug and keeps its traceback behind `--debug`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file with line/column, or a command-line option."""

    source: str = ""
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column}"


@dataclass
class Problem:
    """One thing wrong with the input: where, what, and how to fix it."""

    message: str
    where: str = ""  # dotted place inside the spec, e.g. "model[1].Linear"
    location: Location = field(default_factory=Location)
    hint: str | None = None

    def __str__(self) -> str:
        parts = [str(p) for p in (self.location, self.where) if str(p)]
        text = ": ".join(parts + [self.message])
        text = f"{text} ({self.hint})" if self.hint else text
        # A key or value from the file may hold a newline, an ANSI escape or a bidi
        # override: show it escaped, so a problem stays one honest line on a terminal.
        return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), text)

    def as_json(self) -> dict:
        """`{file, line, column, path, message, hint}` for --json.

        `option` is added when a command-line option is the place.

        `file` is the spec or checkpoint (None for a problem of no file), `line`
        and `column` count from 1, `path` is the place inside the spec
        (`model[1].Linear`); a --set, --rule or other option is named in `option`.
        """
        source, where = self.location.source, self.where
        option = source if source.startswith("--") else None
        if where.startswith("--"):  # said of an option (`relocated(..., "--device")`), not of a place in a spec
            option, where = option or where, ""
        return {
            "file": source if source and not source.startswith("--") else None,
            "line": self.location.line,
            "column": self.location.column,
            "path": where or None,
            "message": self.message,
            "hint": self.hint,
            **({"option": option} if option else {}),
        }


class NetcliError(Exception):
    """Raise for bad user input; carries every problem found, not just the first."""

    def __init__(self, problems: Problem | str | Sequence[Problem], *, hint: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(problems, hint=hint)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SpecError(ValueError):
    """What netcli's Python API raises for a bad spec, argument or file (`netcli.SpecError`).

    `problems` are the objects the commands print with `--json`: `{file, line,
    column, path, message, hint}`; `str()` is the lines they print on stderr.
    """

    def __init__(self, problems: Sequence[Problem] | str):
        found = [Problem(problems)] if isinstance(problems, str) else list(problems)
        self.problems: list[dict[str, Any]] = [p.as_json() for p in found]
        super().__init__("\n".join(str(p) for p in found))


def did_you_mean(word: str, choices: Iterable[str], *, listing: int = 0) -> str | None:
    """Return a hint naming the closest choice to `word`, or listing up to `listing` choices."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        if str(word).lower() in lowered:
            close = [lowered[str(word).lower()]]
    if close:
        return f"did you mean '{close[0]}'?"
    if listing and choices:
        shown = ", ".join(choices[:listing]) + (", ..." if len(choices) > listing else "")
        return f"choose one of {shown}"
    return None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch's run on for pages), or its type's name."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def relocated(problems: Iterable[Problem], where: str, location: Location | None = None) -> list[Problem]:
    """The same problems said of another place (an option, a spec path), each keeping its message and hint.

    A lower layer finds what is wrong (an unknown device, a type that is not
    registered); the caller knows where the user wrote it.
    """
    return [Problem(p.message, where, location or Location(), p.hint) for p in problems]
