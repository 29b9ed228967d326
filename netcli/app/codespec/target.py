"""Find and call the Python callable the user names on the command line: `pkg.module:fn` or `path/model.py:fn`.

This is the one place netcli imports a module chosen at run time other than a
plugin: only because a person typed its name. A spec or a file never names
one here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import yaml

from netcli.core.errors import Location, NetcliError, Problem


def parse_target(target: str) -> tuple[str, str]:
    """Split `MODULE:CALLABLE` (or `FILE.py:CALLABLE`) into its two parts, refusing anything else."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise NetcliError(
            Problem(
                "name the callable that returns the network as MODULE:CALLABLE",
                location=Location(target),
                hint="e.g. mypkg.models:resnet50 or path/to/model.py:build",
            )
        )
    if not all(part.isidentifier() for part in name.split(".")):
        raise NetcliError(
            Problem(f"'{name}' is not a Python name", location=Location(target), hint="e.g. mypkg.models:resnet50")
        )
    return where, name


def import_target(where: str) -> Any:
    """Import the module `where` names: a dotted module name (also from the current folder) or a .py file."""
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise NetcliError(Problem("no such Python file", location=Location(where)))
        module_name = f"netcli_spec_source_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise NetcliError(Problem("cannot be imported as a Python file", location=Location(where)))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look their module up by name
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)  # its own sibling imports, as `python model.py` would find them
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise NetcliError(
                Problem(f"importing it failed: {type(exc).__name__}: {exc}", location=Location(where))
            ) from exc
        finally:
            sys.path.remove(folder)
        return module
    if not all(part.isidentifier() for part in where.split(".")):
        raise NetcliError(
            Problem(
                f"'{where}' is neither a module name nor a .py file",
                location=Location(where),
                hint="write e.g. mypkg.models or path/to/model.py",
            )
        )
    sys.path.insert(0, str(Path.cwd()))  # the user named it: their project's folder is where it lives
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise NetcliError(
            Problem(
                f"importing it failed: {type(exc).__name__}: {exc}",
                location=Location(where),
                hint="install the package, or run netcli from the folder that holds it",
            )
        ) from exc
    finally:
        sys.path.remove(str(Path.cwd()))


def parse_args(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--arg num_classes=10` as keyword arguments; each value read as a YAML scalar or flow value."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise NetcliError(
                Problem("write --arg NAME=VALUE", location=Location(f"--arg {pair}"), hint="e.g. --arg num_classes=10")
            )
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise NetcliError(Problem(f"not a YAML value: {exc}", location=Location(f"--arg {pair}"))) from exc
    return out


def call_target(target: str, args: dict[str, Any]):
    """Import and call the target; return the nn.Module it gives."""
    import torch.nn as nn

    where, name = parse_target(target)
    obj: Any = import_target(where)
    for part in name.split("."):
        if not hasattr(obj, part):
            found = [n for n in dir(obj) if not n.startswith("_")][:8]
            raise NetcliError(
                Problem(
                    f"'{where}' has no '{name}'",
                    location=Location(target),
                    hint=f"it defines {', '.join(found)}" if found else None,
                )
            )
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        net = obj
    elif not callable(obj):
        raise NetcliError(
            Problem(
                f"'{name}' is a {type(obj).__name__}, not a callable or an nn.Module",
                location=Location(target),
                hint="name a function or class that returns the network",
            )
        )
    else:
        try:
            net = obj(**args)
        except Exception as exc:
            raise NetcliError(
                Problem(f"calling {name}() failed: {type(exc).__name__}: {exc}", location=Location(target))
            ) from exc
    if not isinstance(net, nn.Module):
        raise NetcliError(
            Problem(
                f"{name}() returned a {type(net).__name__}, not an nn.Module",
                location=Location(target),
                hint="name a function or class that returns the network",
            )
        )
    return net
