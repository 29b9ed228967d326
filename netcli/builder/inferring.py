"""The builder's half that fills in left-out input sizes (SPEC 1.1 shape inference), as a mixin.

On the inference pass (`flow` set, on meta) a layer with a left-out size gets
it from the shape flowing in, or, inside a custom block, from what the forward
calls it with (`_deferred`); on the real build it takes what that pass found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from netcli.builder import inference
from netcli.core.errors import NetcliError
from netcli.specfile.loading import LoadedSpec, type_path
from netcli.specfile.schema import LayerNode

Path = tuple


class Inferring:
    """Shape inference for Builder: needs its `loaded`, `flow`, `quiet`, `inferred` and `create`."""

    loaded: LoadedSpec
    flow: inference.Flow | None  # set on the inference pass only
    quiet: int
    inferred: dict[str, dict[str, Any]]
    create: Callable[..., nn.Module]

    def _deferred(self, node, path, device, qualname, cls, plan, x) -> nn.Module:
        """Create a layer of a custom block on the inference pass, for the input `x` the forward gives it."""
        assert self.flow is not None  # only the inference pass defers a layer
        where = type_path(node, path)
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else None
        if shape is None:
            self.flow.problems.append(
                self.loaded.problem(
                    where,
                    f"cannot infer {' and '.join(plan.missing)}: its input is a {type(x).__name__}, not a tensor",
                    inference.cannot_infer_hint(node.type, plan),
                )
            )
            raise inference.Reported()
        try:
            values = {arg: inference.infer_value(cls, arg, shape, node.type) for arg in plan.missing}
        except inference.InferenceError as exc:
            self.flow.problems.append(
                self.loaded.problem(
                    where,
                    f"cannot infer {' and '.join(plan.missing)}: {exc}",
                    inference.cannot_infer_hint(node.type, plan),
                )
            )
            raise inference.Reported() from None
        self.inferred[qualname] = values
        args, kwargs = plan.complete(values)
        self.quiet += 1
        try:
            return self.create(node, path, device, qualname, cls, args, kwargs)
        finally:
            self.quiet -= 1

    def _check_meaning(self, node, path, cls, plan, shape) -> None:
        """A positional reading that the incoming shape contradicts is a problem, never a silent guess."""
        message = inference.meaning_problem(node.type, plan, cls, shape)
        if message is not None:
            assert self.flow is not None  # only the inference pass sees shapes
            self.flow.problems.append(self.loaded.problem(type_path(node, path), message))

    def _infer(
        self, node: LayerNode, path: Path, qualname: str, cls: type, plan: inference.ArgumentPlan
    ) -> dict[str, Any] | None:
        """Return the left-out arguments' values: from the flowing shape, or the inference pass."""
        where = type_path(node, path)
        hint = inference.cannot_infer_hint(node.type, plan)
        if self.flow is None:  # the real build: the inference pass saw this layer, or no input reached it
            if qualname in self.inferred:
                return self.inferred[qualname]
            raise NetcliError(
                self.loaded.problem(
                    where, f"cannot infer {' and '.join(plan.missing)}: no input reaches this block", hint
                )
            )
        shape = self.flow.shape
        if shape is None:
            no_input = not self.flow.shape_given
            self.flow.problems.append(
                self.loaded.problem(
                    where,
                    f"cannot infer {' and '.join(plan.missing)}: {self.flow.stopped}",
                    inference.cannot_infer_hint(node.type, plan, no_input=no_input),
                )
            )
            return None
        try:
            values = {arg: inference.infer_value(cls, arg, shape, node.type) for arg in plan.missing}
        except inference.InferenceError as exc:
            self.flow.problems.append(
                self.loaded.problem(where, f"cannot infer {' and '.join(plan.missing)}: {exc}", hint)
            )
            self.flow.stop(f"the shape after '{qualname or '(root)'}' is unknown (its sizes could not be inferred)")
            return None
        self.inferred[qualname] = values
        return values
