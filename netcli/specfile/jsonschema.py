"""Generate the JSON Schema (draft 2020-12) of spec files for editors, with every type's arguments.

The top level comes from the pydantic models in schema.py; the node part is
written out per registered type, each argument's JSON type derived from the
constructor's signature and type hints, so the YAML language server can
complete `Linear:` and its `in_features`, and flag `out_feature`.

Generating needs torch (the registry), so a generated copy ships as
`schema/netcli.schema.json` with the netcli and torch versions it was made
with; `schema_text()` returns that file while it is current and regenerates
only when asked, when the versions differ, or when plugins add types.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from netcli.specfile.jsonschema_nodes import NODE_REF, VAR_REF, node_forms, node_object, node_union

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema" / "netcli.schema.json"
_PRIMITIVES = {"integer", "number", "boolean", "null"}


def versions() -> dict[str, str]:
    """Return the netcli and torch versions, read from package metadata (no torch import)."""
    from netcli.core.version import VERSION

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "none"
    return {"netcli": VERSION, "torch": torch_version}


def builtin_origin(origin: str) -> bool:
    """Tell whether a registry entry comes with netcli (torch.nn or netcli's own modules)."""
    return origin.startswith(("torch.", "netcli."))


def generate(*, plugins: Iterable[str] = (), builtin_only: bool = False) -> dict[str, Any]:
    """Return the full schema: the spec models plus every registered type and initializer.

    `builtin_only` leaves out types that plugins registered: the shipped file
    holds only what every netcli install has.
    """
    from netcli import registry
    from netcli.specfile.schema import json_schema

    registry.ensure_loaded()
    for module in plugins:
        registry.load_plugin(module)
    entries = [registry.types.entry(n) for n in registry.types]
    inits = [registry.initializers.entry(n) for n in registry.initializers]
    if builtin_only:
        entries = [e for e in entries if builtin_origin(e.origin)]
        inits = [e for e in inits if builtin_origin(e.origin)]
    type_names = [e.name for e in entries]
    init_names = [e.name for e in inits]

    schema = json_schema()
    defs = schema.setdefault("$defs", {})
    _top_level(schema, defs, init_names)
    options = _options(defs)
    defs.update(node_forms(type_names, options))
    layer_refs = []
    for entry in entries:
        if entry.name == "Sequential":
            continue
        defs.update(arguments_schema(entry.obj, entry.name, entry.inferable))
        defs[f"layer.{entry.name}"] = node_object(
            entry.name, {"$ref": f"#/$defs/args.{entry.name}"}, options, _describe(entry)
        )
        layer_refs.append({"$ref": f"#/$defs/layer.{entry.name}"})
    defs["Node"] = node_union(layer_refs)
    schema = allow_vars(schema)
    schema["$schema"] = DRAFT
    schema["x-netcli"] = {
        **versions(),
        "types": len(type_names),
        "initializers": init_names,
        "plugins": sorted({e.origin.rsplit(".", 1)[0] for e in entries if not builtin_origin(e.origin)}),
    }
    return {"$schema": schema.pop("$schema"), **schema}


def _top_level(schema: dict, defs: dict, init_names: list[str]) -> None:
    """The top-level keys whose values the pydantic models leave open: model, blocks, init, `KEY+=`."""
    props = schema["properties"]
    props["model"] = {**NODE_REF, "description": "the network"}
    props["blocks"]["additionalProperties"] = NODE_REF
    # In a spec that extends another, KEY+=: [...] appends to the base's list (spec/compose.py).
    schema["patternProperties"] = {
        r"^[A-Za-z_]+\+=$": {
            "type": "array",
            "description": "with extends: appended to the base's list under the same key",
        }
    }
    items = props["init"]["items"]
    items[next(k for k in ("oneOf", "anyOf") if k in items)][0] = {
        "type": "string",
        "description": "INIT:TARGET, e.g. xavier:0, normal(std=0.01):Linear, const42:*",
        "examples": [f"{n}:*" for n in init_names],
    }
    defs["InitRuleSpec"]["properties"]["init"]["examples"] = init_names


def _options(defs: dict) -> dict:
    """A node's options (name, repeat, device, ...), each defined once and referenced by every node form."""
    from netcli.specfile.schema import OPTIONS, NodeOptions

    option_props = NodeOptions.model_json_schema()["properties"]
    for name in OPTIONS:
        defs[f"option.{name}"] = option_props[name]
    return {name: {"$ref": f"#/$defs/option.{name}"} for name in OPTIONS}


def _describe(entry) -> str:
    from netcli import registry

    sig = registry.signature(entry.obj)
    sig = sig.replace(return_annotation=inspect.Signature.empty) if sig is not None else None
    doc = inspect.getdoc(entry.obj) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return stable(f"{entry.name}{sig if sig is not None else '(...)'}" + (f": {first}" if first else ""))


def arguments_schema(cls: type, name: str, inferable: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Return the `$defs` entries for the value under type key `name`.

    The value is a list (positional), a mapping (keywords), one scalar (the
    first argument) or nothing; each argument's schema is one `param.NAME.ARG`
    entry that all four forms refer to.
    """
    from netcli import registry

    sig = registry.signature(cls)
    if sig is None:
        return {f"args.{name}": {"description": "arguments (not checked: the signature is unknown)"}}
    hints = registry.type_hints(cls)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [p for p in named if p.kind is not p.KEYWORD_ONLY]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
    inferable = [n for n in inferable if n in {p.name for p in named}]
    defs = {f"param.{name}.{p.name}": parameter_schema(p, hints.get(p.name)) for p in named}
    ref = {p.name: {"$ref": f"#/$defs/param.{name}.{p.name}"} for p in named}

    def as_list(ps: list[inspect.Parameter]) -> dict:
        out: dict[str, Any] = {"type": "array"}
        if ps:
            out["prefixItems"] = [ref[p.name] for p in ps]
        if not var_positional:
            out["items"] = False
        return out

    keywords = {"type": "object", "properties": ref, "additionalProperties": var_keyword}
    defs[f"kwargs.{name}"] = keywords

    def with_keywords(ps: list[inspect.Parameter]) -> list[dict]:
        """`[100, 64, 4, {bias: false}]`: some positional arguments, then a mapping of keywords (SPEC 1.8).

        Kept small (one form, not one per count of positional arguments): the
        schema checks the mapping's keys and the count; netcli's own check binds
        each positional argument and says the mapping must be the last item.
        """
        if var_positional:
            return []
        last = {"$ref": f"#/$defs/kwargs.{name}"}
        return [{"type": "array", "contains": last, "maxContains": 1, "maxItems": len(ps) + 1}]

    forms: list[dict] = [as_list(positional)]
    left = [p for p in positional if p.name not in inferable]
    if inferable and left != positional:  # shape inference fills the input size in
        forms.append(as_list(left))
    forms += with_keywords(positional)
    forms.append({**keywords, "required": [p.name for p in named if p.default is p.empty and p.name not in inferable]})
    for p in dict.fromkeys(positional[:1] + left[:1]):  # {Dropout: 0.5}; {Linear: 10} infers in_features
        forms.append(ref[p.name])
    if not any(p.default is p.empty and p.name not in inferable for p in named):
        forms.append({"type": "null"})
    shown = sig.replace(return_annotation=inspect.Signature.empty)
    defs[f"args.{name}"] = {"anyOf": forms, "description": stable(f"arguments of {cls.__name__}{shown}")}
    return defs


def parameter_schema(param: inspect.Parameter, hint: Any) -> dict[str, Any]:
    """Return the JSON schema of one constructor argument, from its type hint."""
    schema: dict[str, Any] = {}
    if param.name == "dtype":
        schema = {
            "anyOf": [{"type": "string", "examples": ["float32", "float64", "float16", "bfloat16"]}, {"type": "null"}]
        }
    elif param.name == "device":
        schema = {"anyOf": [{"type": "string", "examples": ["cpu", "cuda", "meta"]}, {"type": "null"}]}
    elif hint is not None:
        schema = _hint_schema(hint)
    text = f"{param.name}: {_hint_text(hint)}" if hint is not None else param.name
    if param.default is not param.empty:
        text += f" = {param.default!r}"
        try:
            json.dumps(param.default, allow_nan=False)
            schema["default"] = param.default
        except (TypeError, ValueError):
            pass
    schema["description"] = stable(text)
    return schema


def stable(text: str) -> str:
    """Drop memory addresses (`<function relu at 0x7f...>`) so that generating twice gives one file."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _hint_schema(hint: Any) -> dict[str, Any]:
    from netcli import registry

    adapter = registry.type_adapter(hint)
    if adapter is None:
        return {}
    try:
        out = adapter.json_schema()
    except Exception:  # a tensor, a module, a callable: anything goes, binding checks the rest
        return {}
    if "$defs" in out or "$ref" in json.dumps(out):
        return {}
    out.pop("title", None)
    return out


def _hint_text(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("torch.", "")


def allow_vars(schema: Any) -> Any:
    """Return `schema` where every non-text leaf (number, boolean, null) also accepts `${name}`."""
    if isinstance(schema, list):
        return [allow_vars(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: (v if k in ("default", "examples", "enum", "const", "x-netcli") else allow_vars(v))
        for k, v in schema.items()
    }
    kind = out.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if (kinds & _PRIMITIVES or "enum" in out or "const" in out) and "string" not in kinds:
        keep = {k: out.pop(k) for k in ("description", "default", "title") if k in out}
        return {"anyOf": [out, VAR_REF], **keep}
    return out


def shipped() -> dict[str, Any] | None:
    """Return the shipped schema file's content, or None where it is missing or unreadable."""
    try:
        return json.loads(SCHEMA_FILE.read_text())
    except (OSError, ValueError):
        return None


def is_current(schema: dict[str, Any] | None) -> bool:
    """Tell whether a generated schema was made with this netcli and torch, without plugins."""
    if not schema:
        return False
    recorded = schema.get("x-netcli", {})
    now = versions()
    return (
        recorded.get("netcli") == now["netcli"]
        and recorded.get("torch") == now["torch"]
        and not recorded.get("plugins")
    )


def installed_plugins() -> list[str]:
    """Return the entry points in group `netcli.plugins` (their types are not in the shipped file)."""
    return sorted(ep.value for ep in metadata.entry_points(group="netcli.plugins"))


def render(schema: dict[str, Any]) -> str:
    """Return the schema as the text netcli writes: indented JSON and a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_text(*, regenerate: bool = False, plugins: Iterable[str] = ()) -> tuple[str, str]:
    """Return (schema text, where it came from): the shipped file if current, else a fresh one."""
    plugins = list(plugins)
    if not regenerate and not plugins and not installed_plugins():
        data = shipped()
        if data is not None and is_current(data):
            return render(data), f"shipped {SCHEMA_FILE.name}"
    return render(generate(plugins=plugins)), "generated"


def write_shipped() -> Path:
    """Regenerate the shipped file from the built-in types only (run `python -m netcli.specfile.jsonschema`)."""
    from netcli.core.atomic import atomic_write

    text = render(generate(builtin_only=True))
    atomic_write(SCHEMA_FILE, lambda p: p.write_text(text))
    return SCHEMA_FILE


if __name__ == "__main__":
    print(f"wrote {write_shipped()}")
