"""Qualified module names (`layer1.0.conv1`), as `named_modules()` writes them: one helper for every walker."""

from __future__ import annotations


def join(prefix: str, name: str) -> str:
    """A child's qualified name under `prefix`; the root's children have no prefix (`0`, not `.0`)."""
    return f"{prefix}.{name}" if prefix else name
