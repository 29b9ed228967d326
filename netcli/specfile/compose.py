"""Specs that extend specs: `extends:`, resolved when a file is read, before --set and ${vars}.

    # configs/mlp_wide.yaml
    extends: mlp.yaml          # a path relative to this file, or a list of them
    vars: {width: 1024}
    model: [...]               # a list replaces the base's list whole
    init+=: ["zeros:*.bias"]   # `KEY+=:` appends to the base's list instead
    seed: ~                    # `~` (null) deletes a key a base wrote

The bases are read (each may extend others) and merged in the order named,
then the file itself on top: mappings merge key by key, recursively, the later
file winning on every value; lists and scalars replace whole, and so does a
node of another type (`{GELU: ...}` over `{ReLU: ...}`). `name:` is not
inherited: a spec's name is its own `name:` or its file's stem. The result is
one plain document, with no `extends` left in it: what `--set` and `${vars}`
then apply to, and what a checkpoint embeds.

Every value keeps the file, line and column where it was written, so an error
in the merged spec points into the base or the extension, whichever wrote it.
The limits of one file hold across all of them: together the files are at most
`MAX_BYTES`, the merged document at most `MAX_NODES` values, and at most
`MAX_FILES` files are read for one spec; a cycle or a missing base is an error
at the `extends:` entry that names it.

A base is only ever a regular `.yaml`/`.yml` file: a device, a FIFO, a folder,
or anything under /proc, /sys or /dev is refused before it is opened, and a base
that does not parse as a spec is reported by its name alone, never with a
quoted line (`extends: /etc/passwd` must not print the file). A spec embedded in
a checkpoint was merged when it was saved, so `extends:` there is refused: it
would read the local disk of whoever opens the file.
"""

from __future__ import annotations

import os
import stat

from netcli.core.errors import Location, NetcliError, Problem
from netcli.specfile.merge import KEY, Budget, Layer, layer_of, merge, render
from netcli.specfile.yamldoc import MAX_BYTES, Document, Path, parse_yaml

MAX_FILES = 32  # files read to resolve one spec (a chain, or each path of a diamond)
SUFFIXES = (".yaml", ".yml")
_SYSTEM = ("/proc", "/sys", "/dev")  # files whose reading has effects or shows secrets, whatever they are named


def compose(doc: Document, *, embedded: bool = False) -> Document:
    """Resolve `extends:` in `doc` (its source is the file's path); return the merged document.

    A document without `extends` is returned as it is. `embedded`: the text came
    out of a checkpoint, where `extends:` is refused (see the module's docstring).
    """
    if not isinstance(doc.data, dict) or KEY not in doc.data:
        return doc
    if embedded:
        raise NetcliError(
            Problem(
                "a spec saved in a checkpoint cannot extend files: it was merged when it was saved",
                KEY,
                doc.locate((KEY,), key=True),
                "this file was not written by netcli; give the spec yourself: netcli load FILE SPEC",
            )
        )
    budget = Budget(files=1, bytes=len(doc.text.encode("utf-8", "surrogatepass")))
    layer = _resolve(doc, budget, (_real(doc.source),))
    out = Document(layer.data, doc.source, text=doc.text, texts=budget.texts)
    for path, (source, line, column) in layer.at.items():
        out.positions[path] = (line, column)
        if source != doc.source:
            out.sources[path] = source
    for path, (source, line, column) in layer.key_at.items():
        out.key_positions[path] = (line, column)
        if source != doc.source:
            out.key_sources[path] = source
    return out


def _real(source: str) -> str:
    return os.path.realpath(source)


def _bases(doc: Document) -> list[tuple[str, Path]]:
    """The base paths `doc` names, each with its document path (for errors)."""
    value = doc.data[KEY]
    entries = (
        [(value, (KEY,))]
        if isinstance(value, str)
        else ([(v, (KEY, i)) for i, v in enumerate(value)] if isinstance(value, list) else None)
    )
    if not entries or any(not isinstance(v, str) or not v.strip() for v, _ in entries):
        raise NetcliError(
            Problem(
                "extends names a base spec file, or a list of them",
                KEY,
                doc.locate((KEY,)),
                "e.g. extends: base.yaml (a path relative to this file)",
            )
        )
    return entries


def _resolve(doc: Document, budget: Budget, stack: tuple[str, ...]) -> Layer:
    """Merge `doc`'s bases in order, then `doc` on top; `stack` holds the files being resolved (cycles)."""
    merged: Layer | None = None
    for value, path in _bases(doc):
        base = _read_base(doc, value, path, budget, stack)
        merged = base if merged is None else merge(merged, base, budget)
    own = layer_of(doc)
    own.data = {k: v for k, v in doc.data.items() if k != KEY}
    return merge(merged, own, budget)


def _read_base(doc: Document, value: str, path: Path, budget: Budget, stack: tuple[str, ...]) -> Layer:
    here = doc.locate(path)
    if "\0" in value:
        raise NetcliError(Problem("a file name cannot hold a NUL byte", render(path), here))
    directory = os.path.dirname(doc.source) if os.path.isfile(doc.source) else ""
    source = os.path.normpath(os.path.join(directory, os.path.expanduser(value)))
    real = _real(source)
    if real in stack:
        chain = " -> ".join(os.path.relpath(s) for s in stack[stack.index(real) :] + (real,))
        raise NetcliError(
            Problem(
                f"extends forms a cycle: {chain}",
                render(path),
                here,
                "a spec cannot extend itself, directly or through its bases",
            )
        )
    budget.files += 1
    if budget.files > MAX_FILES:
        raise NetcliError(
            Problem(
                f"extends reads more than {MAX_FILES} files for one spec",
                render(path),
                here,
                "bases that extend bases multiply; flatten the chain",
            )
        )
    data = _read_file(source, real, MAX_BYTES - budget.bytes + 1, render(path), here)
    budget.bytes += len(data)
    if budget.bytes > MAX_BYTES:
        raise NetcliError(
            Problem(
                f"this spec and its bases are larger than {MAX_BYTES // 1024} KiB together",
                render(path),
                here,
                "a spec should be a short file",
            )
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NetcliError(
            Problem(f"not UTF-8 text (byte {exc.start})", location=Location(source), hint="a spec is a YAML text file")
        ) from exc
    try:
        base = parse_yaml(text, source)
    except NetcliError as exc:  # not a spec: say where, but quote nothing of it
        raise NetcliError([_unquoted(p) for p in exc.problems]) from None
    if base.data is None:
        return Layer({})
    if not isinstance(base.data, dict):
        raise NetcliError(Problem("a base spec is a mapping of keys (model:, blocks:, ...)", location=Location(source)))
    budget.texts[source] = text
    layer = _resolve(base, budget, stack + (real,)) if KEY in base.data else layer_of(base)
    layer.data = {k: v for k, v in layer.data.items() if k != "name"}  # a name is not inherited
    return layer


def _unquoted(problem: Problem) -> Problem:
    """`problem` located by file name alone, its line and column in words: no excerpt of the file is shown."""
    loc = problem.location
    if loc.line is None:
        return problem
    at = f"line {loc.line}, column {loc.column}"
    return Problem(f"{problem.message} (at {at})", problem.where, Location(loc.source), problem.hint)


def _read_file(source: str, real: str, limit: int, where: str, here: Location) -> bytes:
    """Read at most `limit` bytes of the base `source` (its real path `real`), if it may be a spec at all.

    Checked before anything is read: the name (a .yaml/.yml file), the place
    (not /proc, /sys, /dev), and the kind (a regular file; checked again on the
    open file, so a swap between the check and the open changes nothing).
    """

    def refuse(message: str, hint: str | None = "a base is a .yaml spec file") -> NetcliError:
        return NetcliError(Problem(message, where, here, hint))

    if not os.path.exists(source):
        raise refuse(f"no such file: {source}", "a base is named by a path relative to the file that extends it")
    if os.path.isdir(source):
        raise refuse(f"{source} is a folder, not a spec file")
    if not source.lower().endswith(SUFFIXES):
        raise refuse(f"{source} is not a .yaml or .yml file")
    if any(real == top or real.startswith(top + os.sep) for top in _SYSTEM):
        raise refuse(f"{source} is a system file ({real}), not a spec file")
    try:
        fd = os.open(source, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting
    except OSError as exc:
        raise refuse(f"cannot read {source}: {exc.strerror}", None) from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise refuse(f"{source} is not a regular file (a device, a FIFO or a socket)")
        try:
            return f.read(limit)
        except OSError as exc:
            raise refuse(f"cannot read {source}: {exc.strerror}", None) from exc
