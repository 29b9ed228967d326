"""`netcli plot`: draw a spec or a checkpoint as SVG, PNG or PDF (through Graphviz), DOT or Mermaid.

The network is built on the meta device, as the shape check builds it: a
picture needs the structure, the shapes of the example input and the
parameter counts, never the values, so no memory is spent and nothing is
initialized. A checkpoint is drawn as the spec embedded in it. DOT and Mermaid
are text netcli writes itself; SVG, PNG and PDF are DOT rendered by Graphviz's
`dot` program through the `graphviz` Python package (`pip install
'netcli[plot]'` and the system's graphviz package), which only those formats
need.
"""

from __future__ import annotations

from pathlib import Path

from netcli.app.options import Reading
from netcli.core.errors import Location, NetcliError, Problem, did_you_mean

TEXT_FORMATS = ("dot", "mermaid")
PICTURE_FORMATS = ("svg", "png", "pdf")
FORMATS = TEXT_FORMATS + PICTURE_FORMATS
_SUFFIXES = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid"}
_INSTALL_DOT = (
    "install Graphviz: apt-get install graphviz (Debian, Ubuntu), dnf install graphviz, brew install graphviz; "
    "--format dot or mermaid needs nothing more"
)


def output_format(output: str | None, fmt: str | None) -> str:
    """The format asked for: --format, else -o's suffix, else DOT (text on stdout)."""
    if fmt is not None:
        name = fmt.strip().lower()
        if name not in FORMATS:
            raise NetcliError(
                Problem(
                    f"unknown format '{fmt}'",
                    location=Location("--format"),
                    hint=did_you_mean(name, FORMATS) or f"choose from {', '.join(FORMATS)}",
                )
            )
        found = name
    elif output is None:
        found = "dot"
    else:
        suffix = Path(output).suffix.lower()
        if suffix not in _SUFFIXES:
            raise NetcliError(
                Problem(
                    f"cannot tell the format of '{output}' from its suffix",
                    location=Location("-o"),
                    hint=f"name it {', '.join(_SUFFIXES)}, or give --format {'|'.join(FORMATS)}",
                )
            )
        found = _SUFFIXES[suffix]
    if found in ("png", "pdf") and output is None:
        raise NetcliError(
            Problem(
                f"a {found.upper()} is not text", location=Location("--format"), hint=f"write it with -o net.{found}"
            )
        )
    return found


def picture(
    source: str | None,
    reading: Reading,
    *,
    depth: int | None = None,
    block: str | None = None,
):
    """The Picture of the spec (or the checkpoint's embedded spec) `source`, or of its `block`, folded to `depth`."""
    from netcli.app.network import open_spec
    from netcli.app.plot_draw import draw, shape_text
    from netcli.app.summary import summarize
    from netcli.app.summary_table import human_count
    from netcli.builder.shape_check import check_shapes

    loaded = open_spec(source, reading)
    trace, built, _ = check_shapes(loaded)  # on meta; a located error where the shapes stop fitting
    summary = summarize(built.net, dict(trace.shapes) if trace is not None else {})
    top = _block(built.net, block) if block else ""
    row = next(r for r in summary.rows if r.name == top)
    title = f"{loaded.name}{': ' + top if top else ''}: {row.type}, {human_count(row.params)} parameters"
    if top:  # a block's first input, as the trace saw it
        shape = trace.inputs.get(top) if trace is not None else None
        inputs = [shape_text(shape)] if shape is not None else []
    else:
        inputs = [_entry_text(e) for e in loaded.spec.inputs or []]
    return draw(built.net, summary.rows, title=title, inputs=inputs, depth=depth, placed_as=built.placed_as, top=top)


def _entry_text(entry) -> str:
    from netcli.app.plot_draw import shape_text

    return shape_text(entry.shape) + (f" {entry.dtype}" if entry.dtype not in (None, "float32") else "")


def _block(net, name: str) -> str:
    """`name` if the network has that block; a located error naming the nearest ones otherwise."""
    names = [n for n, _ in net.named_modules() if n]
    if name not in names:
        raise NetcliError(
            Problem(
                f"the network has no block '{name}'",
                location=Location("--block"),
                hint=did_you_mean(name, names, listing=8) or "netcli build SPEC lists the blocks",
            )
        )
    return name


def plot_to(source: str | None, output: str | None, fmt: str | None, **options) -> tuple[str | bytes, str]:
    """`netcli plot`: (the drawing, its format), also written atomically to `output` when given.

    The format (`fmt`, else `output`'s suffix, else DOT) is checked before anything is built.
    """
    from netcli.core.atomic import atomic_write, refuse_overwriting_inputs

    found = output_format(output, fmt)
    refuse_overwriting_inputs(output, source)
    drawn = plot(source, found, **options)
    if output is not None:
        if isinstance(drawn, str):
            atomic_write(output, lambda p: p.write_text(drawn))
        else:
            atomic_write(output, lambda p: p.write_bytes(drawn))
    return drawn, found


def plot(source: str | None, fmt: str, **options) -> str | bytes:
    """The drawing of `source` in `fmt` (dot, mermaid: text; svg, png, pdf: bytes from Graphviz)."""
    from netcli.app.plot_dot import to_dot

    drawn = picture(source, **options)
    if fmt == "mermaid":
        from netcli.app.plot_mermaid import to_mermaid

        return to_mermaid(drawn)
    text = to_dot(drawn)
    return text if fmt == "dot" else render(text, fmt)


def render(dot_text: str, fmt: str) -> bytes:
    """DOT text rendered by Graphviz's `dot`; exit 2 naming what to install when it is not there."""
    try:
        import graphviz
    except ImportError:
        raise NetcliError(
            f"drawing {fmt.upper()} needs the graphviz Python package",
            hint="pip install 'netcli[plot]' (or pip install graphviz) and the system's graphviz package; "
            "--format dot or mermaid needs nothing more",
        ) from None
    try:
        return graphviz.Source(dot_text, engine="dot").pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise NetcliError(
            f"drawing {fmt.upper()} needs Graphviz's `dot` program, which is not on PATH", hint=_INSTALL_DOT
        ) from None
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
        raise NetcliError(
            f"Graphviz's dot could not draw the network: {stderr.strip().splitlines()[-1] if stderr.strip() else exc}",
            hint="--format dot writes the text it was given",
        ) from None
