"""Building checkpoints offline: word-level tokenizers and tiny random models of each family."""

from mmdiag.families import tiny_builds

TINY_FAMILIES = tuple(tiny_builds())
"""Tiny checkpoints ``mmdiag tiny`` builds, from the family declarations (free of heavy imports, for the CLI)."""
