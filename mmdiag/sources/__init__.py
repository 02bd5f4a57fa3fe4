"""Data sources: examples with exact ground truth for the probes (contract, registry, the synthetic scenes)."""

from mmdiag.sources.contract import (
    EDIT_KINDS,
    DataRequest,
    Dataset,
    DataSource,
    EditUnavailable,
    Example,
    ExampleObject,
    FixedQuestion,
    Relation,
    object_patch_mask,
)
from mmdiag.sources.registry import SourceRegistry

__all__ = [
    "EDIT_KINDS",
    "DataRequest",
    "DataSource",
    "Dataset",
    "EditUnavailable",
    "Example",
    "ExampleObject",
    "FixedQuestion",
    "Relation",
    "SourceRegistry",
    "object_patch_mask",
]
