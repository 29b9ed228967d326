"""Build a spec's network and initialize it: the one entry point every command uses.

Two paths give the same structure: the default path builds as hand-written
code does (each constructor draws its default init on torch's RNG stream, then
the rules run in order), so seeded values equal that code's; `fast_init`
builds on meta and sets each tensor once from per-tensor seeds (see
`fastinit`). Both take their rules from one checked plan.
"""

from __future__ import annotations

from collections.abc import Sequence

from netcli.builder.builder import Built, build_network
from netcli.builder.preflight import prepare
from netcli.builder.rebuild import tag
from netcli.specfile.loading import LoadedSpec


def build_model(
    loaded: LoadedSpec,
    *,
    device: str | None = None,
    seed: int | None = None,
    input_shape: list[int] | None = None,
    rules: Sequence[str] = (),
    fast_init: bool = False,
) -> Built:
    """Build the spec's network on `device` (default: the spec's, else cpu), then run its init rules.

    With a seed (`seed` or the spec's `seed:`) the parameters equal
    hand-written code's under the same seed. Input sizes the spec leaves out
    are inferred from `input_shape` (default: the spec's `input:`). The spec's
    `init:` rules run, then the extra `--rule` texts in `rules`.
    `fast_init=True` builds on meta and initializes each tensor once from
    per-path seeds instead (other values than hand-written code).
    """
    dev, seed, inferred = prepare(loaded, device=device, seed=seed, input_shape=input_shape)
    if fast_init:  # imported here: a plain build (every `build --print`) need not pay for it
        from netcli.init import fastinit

        built = fastinit.build_fast(loaded, dev, seed, inferred, rules)
    else:
        built = build_network(loaded, dev, inferred)
        if loaded.spec.init or rules:
            # After every module exists, on the same RNG stream: as `net[0].apply(init_xavier)`
            # written after building.
            from netcli.init.apply import initialize

            built.init_report = initialize(built, rules)
    # the network remembers its spec: it pickles (custom blocks by spec), saves and initializes as itself
    tag(built.net, loaded, input_shape=input_shape, rules=rules)
    return built
