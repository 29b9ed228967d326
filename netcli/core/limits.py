"""Ranges torch accepts, checked where the user writes them (a spec's `seed:`, `--seed`)."""

SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.manual_seed accepts
