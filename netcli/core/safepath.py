"""Keep the current folder off the import path of the netcli command.

`python -m netcli` puts the current folder first on `sys.path`, and an empty
entry in PYTHONPATH (`PYTHONPATH=:x`, a common shell slip) adds it too. Then a
`helpers.py` (or a `rich.py`) lying beside a downloaded checkpoint would be
imported in place of the real module. The `netcli` script does not do this;
`python -m netcli` should not either. A folder named deliberately in
PYTHONPATH (`.` or its full path) stays.
"""

from __future__ import annotations

import os
import sys


def drop_implicit_cwd(*, module_run: bool) -> list[str]:
    """Remove the current folder where Python put it implicitly; return the entries removed.

    `module_run`: called from `__main__`, where `sys.path[0]` is the folder
    `python -m` was started in (or '' for `-c` and the REPL).
    """
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        cwd = None
    raw = os.environ.get("PYTHONPATH", "")
    entries = raw.split(os.pathsep) if raw else []
    explicit = {os.path.realpath(e) for e in entries if e}
    implicit_from_env = sum(1 for e in entries if e == "")
    removed: list[str] = []
    keep: list[str] = []
    for index, entry in enumerate(sys.path):
        here = entry == "" or (cwd is not None and os.path.realpath(entry) == cwd)
        first = index == 0 and module_run
        if here and (entry == "" or first or (implicit_from_env and cwd not in explicit)):
            if entry != "" and not first:
                implicit_from_env -= 1
            removed.append(entry)
            continue
        keep.append(entry)
    sys.path[:] = keep
    return removed
