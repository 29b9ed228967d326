"""Resolve device names (cpu, cuda:N, auto, auto:N, meta, mps) and describe this machine's devices.

One resolver for every place a device is named: the spec's `device:`, a node's
`device:` and `--device`. `auto` is D2L's `try_gpu()`: the first GPU if there
is one, else the CPU; `auto:N` is `try_gpu(N)`. `list_devices()` is what
`netcli devices` shows, and `ensure_fits` refuses a build that the target
device's free memory cannot hold, before anything is allocated.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from netcli.core.errors import NetcliError, Problem, relocated

DEVICE_FORMS = "cpu, cuda, cuda:N, auto, auto:N, mps, meta"
_FORM = re.compile(r"^(cpu|cuda|auto|meta|mps)(?::(\d+))?$")


def parse_device(text: str) -> tuple[str, int | None]:
    """Split a device name into (kind, index); raise NetcliError if it is not one."""
    m = _FORM.match(str(text).strip())
    if not m or (m.group(1) in ("cpu", "meta", "mps") and m.group(2) is not None and m.group(2) != "0"):
        raise NetcliError(f"'{text}' is not a device", hint=f"use one of {DEVICE_FORMS}")
    return m.group(1), int(m.group(2)) if m.group(2) is not None else None


def gpu_count() -> int:
    """Return how many CUDA GPUs torch can see (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def mps_available() -> bool:
    """Return True where Apple's Metal (MPS) backend can run tensors."""
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(text: str | None, *, where: str = ""):
    """Return the torch.device that `text` names on this machine (default: cpu).

    `where` names the place the text came from (e.g. `--device`) in errors.

    >>> resolve_device("auto:1")  # on a machine with one GPU or none
    device(type='cpu')
    """
    import torch

    if text is None:
        return torch.device("cpu")
    try:
        return _resolve(str(text).strip())
    except NetcliError as exc:
        if not where:
            raise
        raise NetcliError(relocated(exc.problems, where)) from None


def _resolve(text: str):
    import torch

    kind, index = parse_device(text)
    if kind in ("cpu", "meta"):
        return torch.device(kind)
    if kind == "mps":
        if not mps_available():
            raise NetcliError("device 'mps' is not available on this machine", hint="use auto to fall back to the CPU")
        return torch.device("mps")
    count = gpu_count()
    want = index or 0
    if kind == "auto":
        return torch.device(f"cuda:{want}") if want < count else torch.device("cpu")
    if want >= count:
        seen = (
            "no GPU is visible"
            if count == 0
            else f"{count} GPU{'s' if count > 1 else ''} visible (cuda:0..cuda:{count - 1})"
        )
        raise NetcliError(f"device '{text}' is not available: {seen}", hint=f"use auto:{want} to fall back to the CPU")
    return torch.device(f"cuda:{want}")


def all_gpus() -> list:
    """Return every GPU as a torch.device, or [cpu] where there is none (D2L's `try_all_gpus()`)."""
    import torch

    count = gpu_count()
    return [torch.device(f"cuda:{i}") for i in range(count)] or [torch.device("cpu")]


# --- free memory -------------------------------------------------------------


def cpu_memory() -> tuple[int | None, int | None]:
    """Return (total, available) RAM in bytes, None where the system does not say."""
    total = available = None
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:2]}
        total, available = info.get("MemTotal"), info.get("MemAvailable", info.get("MemFree"))
    except (OSError, ValueError, IndexError):
        pass
    if total is None or available is None:
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = total or os.sysconf("SC_PHYS_PAGES") * page
            available = available or os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            pass
    return total, available


def free_memory(device) -> int | None:
    """Return the bytes that `device` can still allocate, or None if unknown (meta: unlimited)."""
    import torch

    if device.type == "cpu":
        return cpu_memory()[1]
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device.index or 0)[0]
    if device.type == "mps":
        try:
            return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        except (AttributeError, RuntimeError):
            return None
    return None


def human_bytes(n: float) -> str:
    """Format a byte count as 37.3 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@contextlib.contextmanager
def cpu_allocation_cap() -> Iterator[None]:
    """Inside, a CPU allocation beyond the memory available now fails instead of succeeding.

    On Linux a large allocation usually succeeds (overcommit) and the process
    is killed later, when the pages are touched: a forward whose activations do
    not fit then dies with no message. Capping the data segment (RLIMIT_DATA)
    at what is in use plus what is available makes such an allocation fail at
    once, as torch's "can't allocate memory" error, which callers report.
    Where the limit or the numbers are not available, nothing changes.
    """
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
        available = cpu_memory()[1]
    except (ImportError, OSError, ValueError, StopIteration, AttributeError):
        available = None
    if available is None:
        yield
        return
    cap = used + available
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def ensure_room(device, nbytes: int, what: str, hint: str) -> None:
    """Raise NetcliError if `what` (`nbytes` on `device`) does not fit in the device's free memory now.

    Checked before allocating: on Linux a too-large allocation often succeeds
    and the process is killed later, when the pages are touched.
    """
    if getattr(device, "type", "meta") == "meta" or nbytes <= 0:
        return
    free = free_memory(device)
    if free is not None and nbytes > free:
        raise NetcliError(
            Problem(
                f"{what} needs {human_bytes(nbytes)} on {device} but only {human_bytes(free)} is free there", hint=hint
            )
        )


def ensure_fits(needed: dict) -> None:
    """Raise NetcliError if any device's needed bytes exceed its free memory.

    `needed` maps torch.device -> bytes of parameters and buffers to place there.
    """
    problems = []
    for device, nbytes in needed.items():
        if device.type == "meta" or nbytes == 0:
            continue
        free = free_memory(device)
        if free is not None and nbytes > free:
            problems.append(
                Problem(
                    f"the parameters need {human_bytes(nbytes)} on {device} but only {human_bytes(free)} is free there",
                    hint="use --device meta (or device: meta) to build the structure without memory for values",
                )
            )
    if problems:
        raise NetcliError(problems)


# --- what `netcli devices` shows -----------------------------------------------


@dataclass
class GpuInfo:
    """One CUDA GPU as torch sees it."""

    index: int
    name: str
    memory_total: int
    memory_free: int | None
    capability: str  # "8.0" for sm_80


@dataclass
class DeviceReport:
    """This machine's CPU and GPUs, and what the auto names resolve to."""

    cpu: dict
    gpus: list[GpuInfo] = field(default_factory=list)
    mps: bool = False
    auto: dict[str, str] = field(default_factory=dict)  # "auto", "auto:N" -> resolved device
    all_gpus: list[str] = field(default_factory=list)  # try_all_gpus()
    torch: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return asdict(self)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def list_devices() -> DeviceReport:
    """Describe the CPU, each GPU (index, name, memory total/free, capability), MPS, and auto's choices."""
    import torch

    total, available = cpu_memory()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = {
        "name": _cpu_name(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "memory_total": total,
        "memory_available": available,
    }
    gpus = []
    for i in range(gpu_count()):
        props = torch.cuda.get_device_properties(i)
        try:
            free = torch.cuda.mem_get_info(i)[0]
        except RuntimeError:
            free = None
        gpus.append(GpuInfo(i, props.name, props.total_memory, free, f"{props.major}.{props.minor}"))
    names = ["auto"] + [f"auto:{i}" for i in range(max(2, len(gpus) + 1))]
    return DeviceReport(
        cpu=cpu,
        gpus=gpus,
        mps=mps_available(),
        auto={n: str(resolve_device(n)) for n in names},
        all_gpus=[str(d) for d in all_gpus()],
        torch={
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        },
    )
