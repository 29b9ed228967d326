"""Make text from files and specs safe to print on a terminal.

Names, metadata and spec text come from files anyone may have written. An
escape sequence in them (`\\x1b[8m` hides what follows, OSC sequences set the
window title or clear the screen, a bidi override reorders a line) would reach
the terminal and could hide or fake what `show` is meant to reveal. Every
command's output goes through `escape` (plain prints) or `console` (rich), so
such characters are shown as `\\x1b`, `\\u202e`, ... wherever they came from.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but tab and newline, DEL, C1 controls, line/paragraph separators, bidi controls.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def escape(text: Any) -> str:
    """Return `text` with every terminal control character written as a Python escape."""
    text = str(text)
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def console(file, **kwargs):
    """Return a rich Console that escapes control characters in everything it is given to print.

    rich's own styling (colors, when writing to a terminal) is added after the
    escaping, so tables stay colored while a name from a file cannot drive the terminal.
    """
    from rich.console import Console
    from rich.segment import Segment

    class SafeConsole(Console):
        def _render_buffer(self, buffer):  # the last step before text becomes terminal output
            return super()._render_buffer(
                segment if segment.control else Segment(escape(segment.text), segment.style, segment.control)
                for segment in buffer
            )

    return SafeConsole(file=file, **kwargs)


class EscapingStream:
    """A text stream that escapes terminal controls in what is written to it (plain `print`s).

    It also survives a stdout that cannot take the text: a character the
    stream's encoding lacks is written as `\\uXXXX` rather than raising
    UnicodeEncodeError, and a closed stdout (`>&-`, sys.stdout None) swallows the text.
    """

    def __init__(self, stream):
        self.unescaped = stream

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # as a text stream does: click probes for a binary stream this way
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.unescaped is None:
            return len(text)
        safe = escape(text)
        try:
            self.unescaped.write(safe)
        except UnicodeEncodeError:
            encoding = getattr(self.unescaped, "encoding", None) or "ascii"
            self.unescaped.write(safe.encode(encoding, "backslashreplace").decode(encoding))
        return len(text)

    def flush(self) -> None:
        if self.unescaped is not None:
            self.unescaped.flush()

    def isatty(self) -> bool:
        return self.unescaped is not None and self.unescaped.isatty()

    def __getattr__(self, name: str):
        return getattr(self.unescaped, name)


def unescaped(stream):
    """The stream under an EscapingStream (for rich, which escapes in `console`), else the stream itself."""
    return getattr(stream, "unescaped", stream) if isinstance(stream, EscapingStream) else stream
