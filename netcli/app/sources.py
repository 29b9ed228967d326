"""The text of the spec a problem points at, for the excerpt under an error (the built-in default included)."""

from __future__ import annotations

from pathlib import Path


def source_text(source: str) -> str | None:
    """Return the text of the spec a location names, or None where it is not a readable file."""
    from netcli.specfile.loading import DEFAULT_NAME, DEFAULT_SPEC
    from netcli.specfile.yamldoc import MAX_BYTES  # the spec size limit: a bigger file is not a spec, so no excerpt

    if source == DEFAULT_NAME:
        return DEFAULT_SPEC
    path = Path(source)
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None
