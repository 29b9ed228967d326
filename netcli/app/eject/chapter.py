"""The registered chapter blocks (registry/chapter_blocks.py) as the classes `netcli code` writes out.

The text is the blocks' own source, read with `inspect.getsource`, less the
registration decorator: the file netcli builds from and the file it writes
cannot drift apart. chapter_blocks.py is kept as ruff format lays it out, so
the classes pass the same checks as the rest of a generated file.
"""

from __future__ import annotations

import inspect

from netcli.registry import chapter_blocks

CHAPTER_MODULE = chapter_blocks.__name__
CHAPTER_CLASSES: dict[str, str] = {
    name: "\n"
    + "\n".join(line for line in inspect.getsource(cls).splitlines() if not line.startswith("@register_block"))
    + "\n"
    for name, cls in vars(chapter_blocks).items()
    if isinstance(cls, type) and cls.__module__ == chapter_blocks.__name__
}
