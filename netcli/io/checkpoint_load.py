"""Load a checkpoint into a built network: everything checked before anything is copied."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from netcli.core.errors import Location, NetcliError, Problem
from netcli.core.progress import Progress
from netcli.io.checkpoint import Checkpoint, read_checkpoint, tied_names


@dataclass
class LoadReport:
    """What a load did: which names it filled, which it skipped and why."""

    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line per key that did not fit (--no-strict)
    tied: list[list[str]] = field(default_factory=list)
    nbytes: int = 0
    seconds: float = 0.0
    spec_note: str | None = None  # when the given spec differs from the one inside the file

    def as_json(self) -> dict:
        return {
            "file": self.path,
            "format": self.format,
            "loaded": self.loaded,
            "skipped": self.skipped,
            "tied": self.tied,
            "bytes": self.nbytes,
            "seconds": round(self.seconds, 4),
            "spec_note": self.spec_note,
        }


def load_into(built, path, *, strict: bool = True, assign: bool = False) -> LoadReport:
    """Load a checkpoint's tensors into an already built network.

    Everything is checked before anything is copied: a file that does not fit
    (missing, unexpected or mis-shaped keys) changes nothing and raises
    NetcliError listing each mismatch. With `strict=False` the keys that fit
    are loaded and the others listed in the report's `skipped`. Tied
    parameters stay one tensor: the values are copied into the existing tensors.
    With `assign=True` (a network built for this load, its tensors never
    initialized) a tensor read on the same device and dtype becomes the
    parameter itself, as `load_state_dict(assign=True)`: no second copy in memory.
    """
    start = time.perf_counter()
    ckpt = path if isinstance(path, Checkpoint) else read_checkpoint(path)
    label = ckpt.path
    if ckpt.kind in ("tensor", "list", "tuple"):
        raise NetcliError(
            Problem(
                f"holds a {ckpt.kind}, not a state_dict: there is nothing to load into a network",
                location=Location(label),
                hint=f"see what it holds: netcli show {label}",
            )
        )
    target = built.net.state_dict(keep_vars=True)
    if any(t.device.type == "meta" for t in target.values()):
        raise NetcliError(
            Problem(
                "cannot load values into a network on meta",
                location=Location(label),
                hint="load it on a real device: --device cpu",
            )
        )
    groups = tied_names(target)
    plan, problems = _match(target, groups, ckpt)
    if problems and (strict or not plan):
        raise NetcliError(_refusal(problems, plan, strict, target, groups, ckpt))
    report = LoadReport(
        label, ckpt.format, skipped=[p.message for p in problems], tied=[names for names in groups if len(names) > 1]
    )
    # Read (and verify) every tensor before copying any, so a damaged file changes nothing.
    report.nbytes = sum(ckpt.infos[stored].nbytes for _, stored in plan)
    values = _read_all(ckpt, plan, report.nbytes)
    _check_tied_copies(ckpt, plan, values, strict, report)
    _fill(built.net, target, plan, values, assign, report)
    report.seconds = time.perf_counter() - start
    return report


Plan = list[tuple[list[str], str]]  # (the network's names of one tensor, the stored name to read it from)


def _match(target: dict, groups: list[list[str]], ckpt: Checkpoint) -> tuple[Plan, list[Problem]]:
    """Pair each of the network's tensors with the file's; list every key that does not fit."""
    found, label = ckpt.names, ckpt.path
    plan: Plan = []
    problems: list[Problem] = []
    for names in groups:
        want = tuple(target[names[0]].shape)
        present = [n for n in names if n in found]
        shown = names[0] + (f" (tied: {', '.join(names[1:])})" if len(names) > 1 else "")
        if not present:
            problems.append(Problem(f"missing key '{shown}', expected shape {_shape(want)}", location=Location(label)))
            continue
        stored = found[present[0]]
        got = ckpt.infos[stored].shape
        if got != want:
            problems.append(
                Problem(
                    f"key '{present[0]}' has shape {_shape(got)}, expected {_shape(want)}", location=Location(label)
                )
            )
            continue
        plan.append((names, stored))
    targets = {n for names in groups for n in names}
    for name in found:
        if name not in targets:
            problems.append(
                Problem(
                    f"unexpected key '{name}', shape {_shape(ckpt.infos[found[name]].shape)}", location=Location(label)
                )
            )
    if ckpt.others and ckpt.kind != "state_dict":
        problems.extend(
            Problem(f"unexpected non-tensor value '{n}' = {v}", location=Location(label))
            for n, v in ckpt.others.items()
        )
    return plan, problems


def _refusal(
    problems: list[Problem], plan: Plan, strict: bool, target: dict, groups: list[list[str]], ckpt: Checkpoint
) -> list[Problem]:
    """The problems of a load that changes nothing, with what to do about them."""
    label = ckpt.path
    renamed = _renamed_hint(target, groups, ckpt, ckpt.names)
    if renamed:
        problems.append(Problem(renamed, location=Location(label)))
    what = "nothing in it fits" if not plan else f"{len(problems)} key(s) do not fit"
    problems.append(
        Problem(
            f"{what}; nothing was loaded",
            location=Location(label),
            hint="give the spec it was saved from"
            + ("" if not plan or not strict else ", or --no-strict to load the keys that fit"),
        )
    )
    return problems


def _read_all(ckpt: Checkpoint, plan: Plan, total: int) -> dict:
    """Read and verify every tensor the plan needs, once each."""
    values = {}
    with Progress(f"loading {ckpt.path}", total) as bar:
        for _, stored in plan:
            if stored not in values:
                values[stored] = ckpt.tensor(stored)
                bar.advance(ckpt.infos[stored].nbytes)
    return values


def _check_tied_copies(ckpt: Checkpoint, plan: Plan, values: dict, strict: bool, report: LoadReport) -> None:
    """A tied group the file holds as separate tensors (saved by other code) must agree."""
    import torch

    found = ckpt.names
    for names, stored in plan:
        copies = {found[n] for n in names if n in found} - {stored}
        for other in sorted(copies):
            if ckpt.infos[other].shape != ckpt.infos[stored].shape or not torch.equal(
                ckpt.tensor(other), values[stored]
            ):
                message = f"keys '{stored}' and '{other}' are one tied tensor in the network but differ in the file"
                if strict:
                    raise NetcliError(
                        Problem(
                            message + "; nothing was loaded",
                            location=Location(ckpt.path),
                            hint="give the spec it was saved from",
                        )
                    )
                report.skipped.append(message + f"; loaded '{stored}'")


def _fill(net, target: dict, plan: Plan, values: dict, assign: bool, report: LoadReport) -> None:
    """Copy the values into the network's tensors, or (assign) make them the tensors."""
    import torch

    assigned = {}
    with torch.no_grad():
        for names, stored in plan:
            t, v = target[names[0]], values[stored]
            # a memory-mapped tensor off torch's 64-byte alignment would take other kernels' paths
            # (bit-different outputs): such a tensor is copied instead
            if (
                assign
                and t.device == v.device
                and t.dtype == v.dtype
                and t.shape == v.shape
                and t.stride() == v.stride()
                and v.data_ptr() % 64 == 0
            ):
                assigned.update({n: v for n in names})  # every tied name gets the one tensor
            else:
                t.copy_(v)  # tied names share this tensor: one copy fills all
            report.loaded.extend(names)
    if assigned:
        net.load_state_dict(assigned, strict=False, assign=True)  # keeps each requires_grad
        _retie(net, [names for names, _ in plan if len(names) > 1 and names[0] in assigned])


def _retie(net, groups: list[list[str]]) -> None:
    """Make each tied group one Parameter again: assign gave every module holding it a Parameter of its own
    (a parameter tie such as `wte.weight = lm_head.weight`; a `ref` is one module and stays one)."""
    for names in groups:
        owner, _, attr = names[0].rpartition(".")
        first = net.get_submodule(owner)._parameters.get(attr)
        if first is None:
            continue
        for name in names[1:]:
            owner, _, attr = name.rpartition(".")
            module = net.get_submodule(owner)
            if attr in module._parameters:
                module._parameters[attr] = first


def _renamed_hint(target: dict, groups: list[list[str]], ckpt: Checkpoint, found: dict) -> str | None:
    """Say so when the file holds the same shapes in the same order under other names."""
    want = [tuple(target[names[0]].shape) for names in groups]
    stored = [n for n in found if found[n] == n]
    got = [ckpt.infos[n].shape for n in stored]
    if want and want == got and [names[0] for names in groups] != stored:
        return (
            f"the file holds the same shapes in the same order under other names "
            f"({stored[0]} where the spec has {groups[0][0]}): the spec names its children differently"
        )
    return None


def _shape(shape) -> str:
    return str(list(shape))
