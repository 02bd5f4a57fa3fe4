"""Adapters: one per architecture family, behind the contract in :mod:`mmdiag.adapters.base`."""

from mmdiag.adapters.base import Adapter, PreparedBatch, StageFeatures, YesNoScores
from mmdiag.adapters.generative import GenerativeAdapter
from mmdiag.adapters.hf_loading import LoadOptions
from mmdiag.adapters.loading import load_adapter
from mmdiag.adapters.registry import AdapterRegistry, default_registry

__all__ = [
    "Adapter",
    "AdapterRegistry",
    "GenerativeAdapter",
    "LoadOptions",
    "PreparedBatch",
    "StageFeatures",
    "YesNoScores",
    "default_registry",
    "load_adapter",
]
