"""Turn a checked forward program into the block's real `forward`, compiled once.

The program becomes a torch.fx Graph whose nodes call the block's own children
(`net[0](x)` is the submodule `net.0`), the listed torch functions and tensor
methods; fx writes that graph out as straight-line Python, and that function
becomes `forward` of the block's class. A call then costs what a hand-written
forward costs (no interpretation per call), the module prints and saves like a
hand-written class with the same children, and torch.jit.trace, torch.export
and ONNX export see ordinary module code.
"""

from __future__ import annotations

import re
import types
import weakref

from torch import fx, nn

from netcli.builder.custom_block import CustomBlock, block_class  # noqa: F401  (block_class: forward.py's API)
from netcli.builder.forward_emit import Emitter
from netcli.builder.forward_ir import ForwardProgram
from netcli.core.errors import Location

# generated forward's code object -> (its source lines, node name -> where in the text);
# weak, so a network that is dropped takes its entries with it
_ORIGINS: weakref.WeakKeyDictionary[types.CodeType, tuple[list[str], dict[str, Location]]] = weakref.WeakKeyDictionary()


def compile_forward(program: ForwardProgram, root: nn.Module) -> nn.Module:
    """Give `root` (its children already registered, in order) the forward `program` describes.

    The forward is generated once and set on root's class, so every instance of a
    definition shares it; an instance whose children resolve differently (say
    `net[-1]` over Sequentials of different lengths) gets a subclass of the same
    name. Returns root. Raises NetcliError, located in the forward text, when a
    child the program calls is not there (`net[5]` of a 3-child Sequential).
    """
    graph, origins = Emitter(program, root).build()
    python = graph.python_code(root_module="self")
    source = python.src
    cls = type(root)
    if cls.__dict__.get("_netcli_source") == source:
        return root
    if issubclass(cls, CustomBlock) and cls is not CustomBlock and "_netcli_source" not in cls.__dict__:
        target = cls
    else:
        variants = cls.__dict__.get("_netcli_variants")
        if variants is None:
            variants = {}
            setattr(cls, "_netcli_variants", variants)  # noqa: B010  (a class attribute torch does not declare)
        if source not in variants:
            variants[source] = type(
                cls.__name__, (cls,), {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
            )
        root.__class__ = target = variants[source]
        if "_netcli_source" in target.__dict__:
            return root
    # fx wrote the code, from a graph whose every node is a checked child call, an allow-listed function or
    # method, or a literal (forward_parse refuses the rest; child names that could break out of fx's
    # string literals are refused, `_UNSAFE_IN_CODE`): no text of the spec is compiled. It is compiled once, as fx
    # compiles a GraphModule's, and set on the class.
    target.forward = _forward_of(python)
    # what the class was compiled from, read by call_bound.py and the eject; not attributes torch declares
    setattr(target, "_netcli_source", source)  # noqa: B010
    setattr(target, "_netcli_program", program)  # noqa: B010
    setattr(target, "_netcli_calls", tuple(n.target for n in graph.nodes if n.op == "call_module"))  # noqa: B010
    _ORIGINS[target.forward.__code__] = (source.splitlines(), origins)
    return root


def _forward_of(python):
    """The forward fx's generated code defines (fx's own loader: its source shows in tracebacks)."""
    try:
        from torch.fx.graph_module import _forward_from_src
    except ImportError:  # another torch: compile it here (tracebacks then show no source line)
        namespace: dict = dict(python.globals)
        exec(compile(python.src, "<netcli forward>", "exec", dont_inherit=True), namespace)
        return namespace["forward"]
    return _forward_from_src(python.src, python.globals)


def compiled_program(module: nn.Module) -> ForwardProgram | None:
    """The program a module's forward was compiled from (for `netcli code`), or None."""
    return getattr(type(module), "_netcli_program", None)


def dataflow(module: nn.Module) -> fx.Graph | None:
    """The fx graph of a custom block's compiled forward, or None for any other module.

    `netcli plot` draws it: its placeholders, child calls, functions, methods and
    output, and the edges between them (a skip connection is an edge past the
    children). The graph is made again from the stored program, against this
    instance's children, exactly as `compile_forward` made it.
    """
    program = compiled_program(module)
    return None if program is None else Emitter(program, module).build()[0]


def failure_location(exc: BaseException) -> Location | None:
    """Where in the forward text the statement was that raised `exc`, or None if no forward did.

    For the builder's trial run: a shape mismatch in `conv2(out)` can then be
    reported at that call's FILE:LINE:COL instead of as a traceback.
    """
    found = None
    tb = exc.__traceback__
    while tb is not None:
        origin = _ORIGINS.get(tb.tb_frame.f_code)
        if origin is not None:
            lines, where = origin
            text = lines[tb.tb_lineno - 1] if 0 < tb.tb_lineno <= len(lines) else ""
            match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", text)
            if match and match.group(1) in where:
                found = where[match.group(1)]  # the innermost forward wins
        tb = tb.tb_next
    return found
