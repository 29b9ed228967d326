"""Hand a built network to other software: ONNX, TorchScript or a torch.export program (.pt2).

Each format runs the network on the example input: `torch.onnx.export`
(the dynamo exporter), `torch.jit.script` (falling back to `torch.jit.trace`
where scripting fails and tracing is exact), `torch.export.export`. When a
network cannot be exported, the block that stops it is found by exporting
its children one by one on the inputs they saw, and named in the error with
its place in the spec.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netcli.core.errors import Location, NetcliError, Problem

FORMATS = ("onnx", "torchscript", "exported")
TARGETS = {"onnx": "ONNX", "torchscript": "TorchScript", "exported": "a torch.export program"}
SUFFIXES = {".onnx": "onnx", ".pt2": "exported", ".pt": "torchscript", ".ts": "torchscript"}
# protobuf cannot hold an ONNX file over 2 GiB: bigger weights go to FILE.data beside it.
ONNX_INLINE_LIMIT = 1_800_000_000


@dataclass
class Exported:
    """What an export wrote and how well the written program matches torch."""

    path: str
    format: str
    input_shape: list[int]
    output_shape: list[int] | None
    nbytes: int
    seconds: float
    max_difference: float | None  # max |program(x) - net(x)|, None where it was not checked
    method: str = ""  # e.g. torch.jit.script
    dynamic_batch: bool = False  # the program takes any batch size (dimension 0 of each input)

    def as_json(self) -> dict:
        return dict(self.__dict__)


def format_for(fmt: str | None, output: str) -> str:
    """Return the export format: `fmt` if given, else the one `output`'s extension names."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise NetcliError(f"unknown export format '{fmt}'", hint=f"use one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(output).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise NetcliError(
        Problem(
            f"cannot tell the export format from '{suffix or '(no extension)'}'",
            location=Location(output),
            hint="pass --format onnx|torchscript|exported, or name the file .onnx, .pt or .pt2",
        )
    )


def export_model(built, x, fmt: str, output: str, *, static: bool = False) -> Exported:
    """Export `built.net` run on `x` to `output` in format `fmt`; return what was written.

    The batch dimension (dimension 0 of each input) stays dynamic: a program
    made on a batch of 2 runs a batch of 5. `static` fixes every size to the
    example's. `x` may be a tuple: the inputs of a forward that takes several.
    """
    import torch

    from netcli.core.atomic import atomic_write

    net = built.net
    args = x if isinstance(x, tuple) else (x,)
    if any(a.device.type == "meta" for a in args) or any(p.device.type == "meta" for p in net.parameters()):
        raise NetcliError(
            "a network on the meta device has no values to export", hint="export on a real device: --device cpu"
        )
    net.eval()  # dropout off, batch norm on running statistics: what other software runs
    start = time.perf_counter()
    with torch.no_grad():
        expected = net(*args)
    dynamic = None if static or fmt == "torchscript" else _batch_dims(args)
    if fmt == "onnx":
        program, method = _export_onnx(built, args, dynamic), "torch.onnx.export(dynamo=True)"
        big = sum(p.numel() * p.element_size() for p in net.state_dict().values()) > ONNX_INLINE_LIMIT
        if big:
            program.save(output, external_data=True)
        else:
            atomic_write(output, lambda p: program.save(str(p), external_data=False))
        got = _run_onnx(output, args)
    elif fmt == "torchscript":
        program, method = _script(built, args)
        with warnings.catch_warnings():  # torch 2.10+ marks torch.jit deprecated; it is what reads .pt programs
            warnings.simplefilter("ignore", DeprecationWarning)
            buffer = io.BytesIO()  # torch's C++ writer aborts the process on a full disk: Python writes the file
            torch.jit.save(program, buffer)
            atomic_write(output, lambda p: p.write_bytes(buffer.getvalue()))
            del buffer
            with torch.no_grad():
                got = torch.jit.load(output)(*args)
    elif fmt == "exported":
        program, method = _export(built, args, dynamic), "torch.export.export"
        atomic_write(output, lambda p: _save_program(program, p))
        with open(output, "rb") as fh, quiet():  # a buffer: torch.export wants a .pt2 name otherwise
            got = torch.export.load(fh).module()(*args)
    else:
        raise NetcliError(f"unknown export format '{fmt}'", hint=f"use one of {', '.join(FORMATS)}")
    seconds = time.perf_counter() - start
    difference = None
    while isinstance(expected, (tuple, list)) and expected:  # several outputs: the first is compared
        expected = expected[0]
    while isinstance(got, (tuple, list)) and got:
        got = got[0]
    if got is not None and isinstance(expected, torch.Tensor):
        got = torch.as_tensor(got).detach()
        difference = float((got.to(expected.device).float() - expected.float()).abs().max()) if got.numel() else 0.0
    out_shape = list(expected.shape) if isinstance(expected, torch.Tensor) else None
    return Exported(
        str(output),
        fmt,
        list(args[0].shape),
        out_shape,
        Path(output).stat().st_size,
        seconds,
        difference,
        method,
        dynamic_batch=dynamic is not None or fmt == "torchscript",
    )


def _batch_dims(args) -> tuple:
    """torch.export's dynamic_shapes: dimension 0 of every input (that has one) is the batch."""
    from torch.export import Dim

    return tuple({0: Dim.DYNAMIC} if a.dim() > 0 else None for a in args)


def _traced_on(args, dynamic) -> tuple:
    """The inputs to trace on: a batch of 1 becomes 2 (torch would treat a size of 1 as fixed)."""
    import torch

    if dynamic is None:
        return args
    return tuple(torch.cat([a, a]) if a.dim() > 0 and a.shape[0] == 1 else a for a in args)


def _fixes_batch(error: BaseException) -> NetcliError | None:
    """The error for a network whose forward fixes its batch size, or None when `error` is another."""
    text = str(error)
    if "specializ" not in text and "Constraints violated" not in text:
        return None
    first = next(
        (line.strip(" -") for line in text.splitlines() if "specializ" in line or "Constraints" in line), text[:200]
    )
    return NetcliError(
        f"the network fixes its batch size, so it cannot be exported with a dynamic batch: {first[:300]}",
        hint="--static exports it for the example's batch size only",
    )


def _save_program(program, path: Path) -> None:
    """Write a torch.export program; serialized in memory first, since torch's zip writer
    aborts the process (a C++ exception, exit 134) when the disk fills up under it."""
    import torch

    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress prints, graph dumps and warnings (the error says what matters)."""
    names = ("torch", "torch.onnx", "torch.export", "torch._export", "torch.fx", "torch._dynamo", "onnxscript")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


def _export_onnx(built, args, dynamic=None):
    import torch

    def attempt(module, inputs):
        return torch.onnx.export(
            module, inputs, None, dynamo=True, verbose=False, optimize=True, dynamic_shapes=dynamic
        )

    try:
        with quiet():
            return attempt(built.net, _traced_on(args, dynamic))
    except ImportError as exc:
        raise NetcliError(
            f"ONNX export needs the onnx and onnxscript packages: {exc}", hint="pip install onnx onnxscript"
        ) from exc
    except Exception as exc:
        raise (_fixes_batch(exc) if dynamic is not None else None) or unexportable(
            built, args, "onnx", exc, _probe_export
        ) from exc


def _export(built, args, dynamic=None):
    import torch

    try:
        with quiet():
            return torch.export.export(built.net, _traced_on(args, dynamic), dynamic_shapes=dynamic, strict=False)
    except Exception as exc:
        raise (_fixes_batch(exc) if dynamic is not None else None) or unexportable(
            built, args, "exported", exc, _probe_export
        ) from exc


def _probe_export(module, args):
    import torch

    return torch.export.export(module, args, strict=False)


def _script(built, args):
    """Return (TorchScript module, method): script it, else trace it where tracing is exact."""
    import torch

    try:
        with quiet():
            return torch.jit.script(built.net), "torch.jit.script"
    except Exception as script_error:
        try:
            with quiet():
                return _exact_trace(built.net, args), "torch.jit.trace"
        except Exception:
            raise unexportable(built, args, "torchscript", script_error, _probe_script) from script_error


def _exact_trace(module, args):
    """Trace `module`; refuse a trace that baked in a tensor-dependent branch (a TracerWarning)."""
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(module, args, check_trace=False)
    bad = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if bad:
        raise RuntimeError(f"tracing is not exact: {bad[0].message}")
    return traced


def _probe_script(module, args):
    import torch

    try:
        return torch.jit.script(module)
    except Exception:
        return _exact_trace(module, args)


def _run_onnx(path: str, args):
    """Run the ONNX file in onnxruntime when it is installed; return its first output, or None."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {i.name: a.detach().cpu().numpy() for i, a in zip(session.get_inputs(), args, strict=False)}
    return session.run(None, feed)[0]


def unexportable(built, x, fmt: str, error: BaseException, probe: Callable) -> NetcliError:
    """Return an error naming the innermost block that `probe` cannot export, and why."""
    inputs = _inputs_seen(built.net, x if isinstance(x, tuple) else (x,))
    name, cause = "", error
    module = built.net
    while True:  # walk down to the child that fails while its own children all pass
        for child_name, child in module.named_children():
            qualname = f"{name}.{child_name}" if name else child_name
            if qualname not in inputs:
                continue
            try:
                with quiet():
                    probe(child, inputs[qualname])
            except Exception as exc:
                name, module, cause = qualname, child, exc
                break
        else:
            break
    reason = _reason(cause)
    what = type(module).__name__
    hint = _hint(fmt, module, inputs.get(name))
    label = f"block '{name}' ({what})" if name else f"the network ({what})"
    message = f"{label} cannot be exported to {TARGETS[fmt]}: {reason}"
    path = built.origins.get(name)
    if path is not None:
        return NetcliError(built.loaded.problem(path, message, hint))
    return NetcliError(Problem(message, hint=hint))


def _inputs_seen(net, args: tuple) -> dict[str, tuple]:
    """Run `net` once and return the positional inputs each submodule got first."""
    import torch

    seen: dict[str, tuple] = {}
    handles = []
    for qualname, module in net.named_modules(remove_duplicate=False):
        if not qualname:
            continue

        def hook(_module, args, qualname=qualname):
            seen.setdefault(qualname, tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args))

        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            net(*args)
    finally:
        for h in handles:
            h.remove()
    return seen


def _reason(error: BaseException) -> str:
    text = str(error)
    if (
        any(
            mark in text
            for mark in ("data-dependent", "GuardOnDataDependent", "Converting a tensor to a Python boolean")
        )
        or type(error).__name__ == "GuardOnDataDependentSymNode"
    ):
        return (
            "its forward has Python control flow on tensor values (an `if` or `while` on a tensor), "
            "which a traced graph cannot hold"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return f"{type(error).__name__}: {first[:300]}"


def _hint(fmt: str, module, args) -> str:
    if fmt != "torchscript" and args is not None:
        try:
            with quiet():
                _probe_script(module, args)
            return "--format torchscript keeps its Python control flow, through torch.jit.script"
        except Exception:
            pass
    return "rewrite that control flow with torch.cond or torch.where, or leave the block out of the exported network"
