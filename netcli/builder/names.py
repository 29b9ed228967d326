"""What may name a child or a network, checked before anything is built (torch's add_module rules, file names)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from netcli.core.errors import Problem
from netcli.specfile.loading import LoadedSpec

MAX_NAME = 256  # a child's name; also bounds what a `names:` format may produce
MAX_STEM_BYTES = 200  # the network's name: `.netcli-tmp-NAME.safetensors.XXXXXXXX` fits a 255-byte file name


def names_format_fault(fmt: str) -> str | None:
    """Say what is wrong with a `names:` format before formatting it, or None.

    Only `{i}` with a short format spec is allowed: `{i:>400000000}` would
    build a 400 MB string per name, `{i:>{i}}` nests a width, `{i.__class__}`
    reaches attributes.
    """
    import string

    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        return str(exc)
    for _, field, spec, _ in fields:
        if field is None:
            continue
        if field != "i":
            return f"only {{i}} may be used, not {{{field}}}"
        if spec and ("{" in spec or any(int(d) > 64 for d in re.findall(r"\d+", spec))):
            return f"the format '{spec}' is too wide (64 characters at most, no nested fields)"
    return None


def child_name_fault(name: str) -> str | None:
    """Say why `name` cannot name a child module, or None: torch's add_module rules, checked before building."""
    if name == "":
        return "it is empty"
    if "." in name:
        return "it contains '.'"
    if len(name) > MAX_NAME:
        return f"it is longer than {MAX_NAME} characters"
    if re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", name):
        return "it contains a control character"
    if name in _module_attributes():
        return "it is an attribute of nn.Module"
    return nfkc_fault(name)


def nfkc_fault(name: str) -> str | None:
    """Say why `name` is not in Unicode NFKC form, or None.

    Python reads identifiers in NFKC: `ﬁ` and `fi` are one name there, so a
    forward or an ejected file would silently take one for the other.
    """
    normal = unicodedata.normalize("NFKC", name)
    if normal == name:
        return None
    return f"it is not in Unicode NFKC form (Python reads it as '{normal}'; two such names would be one)"


def check_nfkc_keys(loaded: LoadedSpec) -> list[Problem]:
    """Every key the spec writes (definitions, children, params, vars) must be in NFKC form (see nfkc_fault)."""
    problems: list[Problem] = []

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and (why := nfkc_fault(key)) is not None:
                    problems.append(
                        loaded.problem(
                            path + (key,), f"'{key}' cannot be a name: {why}", "write it in NFKC form", key=True
                        )
                    )
                walk(item, path + (key,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, path + (i,))

    walk(loaded.doc.data, ())
    return problems


_MODULE_ATTRIBUTES: set[str] = set()


def _module_attributes() -> set[str]:
    """The names an nn.Sequential already has: add_module refuses them (KeyError)."""
    if not _MODULE_ATTRIBUTES:
        import torch.nn as nn

        _MODULE_ATTRIBUTES.update(n for n in dir(nn.Sequential()) if not n.isdigit())
    return _MODULE_ATTRIBUTES


def check_spec_name(loaded: LoadedSpec) -> list[Problem]:
    """The spec's `name:` is the default output file's stem: a plain name, no folder in it."""
    name = loaded.spec.name
    if name is None:
        return []
    why = None
    if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
        why = "it must be a plain name, not a path"
    elif name.startswith(("-", ".")):
        why = "it cannot start with '-' or '.'"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_STEM_BYTES:  # NAME.safetensors and its temp file
        why = f"it is longer than {MAX_STEM_BYTES} bytes (save's file name NAME.safetensors must fit in 255)"
    elif re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", name):
        why = "it contains a control character"
    if why is None:
        return []
    return [
        loaded.problem(
            ("name",),
            f"'{name}' cannot be the network's name: {why}",
            "write a plain name such as my_net (save writes NAME.safetensors)",
        )
    ]
