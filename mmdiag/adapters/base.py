"""The adapter contract: canonical names over one architecture family's HF module tree.

Probes speak only these names. A family adapter maps them onto its model:

* ``vision_encoder``: features before the projector (patch tokens, on a ``vision_grid``);
* feature *stages* after it (``projector`` for LLaVA; ``qformer`` then ``projector`` for BLIP-2;
  ``image_embedding`` for dual encoders), captured with scoped hooks in one forward;
* ``lm_layers`` / ``lm_attention_modules``: the decoder layers of the language model;
* image-token spans in the LLM input, located from the processor's ``input_ids``;
* ``answer_scores``: P(yes), P(no) of the first answer token; ``generate``: free text;
* ``similarity``: image-text cosine similarity (dual encoders).

The contract is :class:`Adapter`; the data it returns are in :mod:`mmdiag.adapters.types`; the machinery shared
by image-to-text families (prompting, yes/no scoring, generation) is
:class:`mmdiag.adapters.generative.GenerativeAdapter`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from PIL import Image

from mmdiag.adapters.types import (  # noqa: F401 - the contract's data types, importable from here
    DUAL_ENCODER,
    GENERATIVE,
    AdapterInfo,
    PreparedBatch,
    StageFeatures,
    YesNoScores,
)
from mmdiag.errors import CapabilityError


class Adapter(abc.ABC):
    """Common base: one instance wraps one loaded model and its processor."""

    family: ClassVar[str]
    kind: ClassVar[str]

    def __init__(self, model: torch.nn.Module, processor: Any, *, source: str = "<in-memory>") -> None:
        self.model = model.eval()
        self.processor = processor
        self.source = source

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def wrap(cls, model: torch.nn.Module, processor: Any, **kwargs: Any) -> Adapter:
        """The adapter for an already-built ``model`` (a family may pick a variant by its config)."""
        return cls(model, processor, **kwargs)

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, path: str, **load_kwargs: Any) -> Adapter:
        """Load model and processor from a local folder or hub id (``load_kwargs`` see loading.py)."""

    def validate(self) -> None:  # noqa: B027 - an optional check, not abstract
        """Raise :class:`~mmdiag.errors.ProcessorMismatchError` if processor and model disagree."""

    # -- description ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where inputs go: the first accelerator of a sharded model's device map (accelerate's hooks move
        activations between shards and load offloaded weights), else the device of the parameters."""
        device_map = getattr(self.model, "hf_device_map", None)
        if device_map:
            placed = [d for d in device_map.values() if d not in ("cpu", "disk", "meta")]
            return (
                torch.device(placed[0] if not isinstance(placed[0], int) else f"cuda:{placed[0]}")
                if placed
                else torch.device("cpu")
            )
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of floating-point inputs (pixel values)."""
        return getattr(self.model, "dtype", None) or next(self.model.parameters()).dtype

    @property
    def architecture(self) -> str:
        archs = getattr(getattr(self.model, "config", None), "architectures", None) or [type(self.model).__name__]
        return archs[0]

    def info(self) -> AdapterInfo:
        return AdapterInfo(
            family=self.family,
            kind=self.kind,
            architecture=self.architecture,
            source=self.source,
            n_parameters=sum(p.numel() for p in self.model.parameters()),
        )

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Preprocessed pixels on the input device, in the model's dtype."""
        pixels = self.processor.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        return pixels.to(self.device, self.dtype)

    def untrained_copy(self, seed: int = 0) -> Adapter:
        """The same architecture and processor with freshly initialised weights (a baseline for every probe).

        Built on the model's first device without touching the global RNG. For a large sharded model this
        doubles memory: probes let users turn the baseline off.
        """
        import copy

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = type(self.model)(copy.deepcopy(self.model.config))
        model = model.to(device=self.device)
        for tensor in [*model.parameters(), *model.buffers()]:  # not complex buffers (Llama 4's rotary table)
            if tensor.is_floating_point() and tensor.dtype != self.dtype:
                tensor.data = tensor.data.to(self.dtype)
        clone = copy.copy(self)
        clone.model = model.eval()
        clone.source = f"{self.source} (untrained copy, seed {seed})"
        return clone

    # -- canonical modules (for planting defects and for hooks) --------------------------------
    def vision_encoder_module(self) -> torch.nn.Module:
        """The module that turns pixels into patch features (``vision_encoder``)."""
        raise CapabilityError(f"{self.family} models expose no vision-encoder module")

    def projector_module(self) -> torch.nn.Module:
        """The module whose output is the image tokens the language side receives (``projector``)."""
        raise CapabilityError(f"{self.family} models expose no projector module")

    def connector_modules(self) -> list[tuple[torch.nn.Module, int]]:
        """Every module whose output carries the image into the language model, each with the first LLM layer whose
        input holds it: ``[(projector_module(), 0)]`` unless a family has more paths (Qwen3-VL's DeepStack mergers,
        added to the image positions after LLM layer ``k``, so read from layer ``k + 1``). Cutting the image off or
        patching it must hook them all; the ``projector`` stage stays the first one's output."""
        return [(self.projector_module(), 0)]

    def language_model_module(self) -> torch.nn.Module:
        """The language model that reads the image tokens (its forward takes ``attention_mask``)."""
        raise CapabilityError(f"{self.family} models have no language model")

    # -- features ------------------------------------------------------------------------------
    @abc.abstractmethod
    def vision_grid(self) -> tuple[int, int]:
        """(rows, cols) of the vision encoder's patch grid for the processor's image size."""

    @abc.abstractmethod
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Image features at every stage, in order, the first being ``vision_encoder`` (pre-projector)."""

    def vision_features(self, images: Sequence[Image.Image]) -> StageFeatures:
        """Patch features before the projector."""
        return self.feature_stages(images)[0]

    def projected_tokens(self, images: Sequence[Image.Image]) -> StageFeatures:
        """Image tokens as the language side receives them (the last stage)."""
        return self.feature_stages(images)[-1]

    # -- capabilities of one kind only ---------------------------------------------------------
    def prepare(
        self, images: Sequence[Image.Image], questions: Sequence[str], padding_side: str = "right"
    ) -> PreparedBatch:
        raise CapabilityError(f"{self.family} models take no prompts with images (dual encoder)")

    def lm_layers(self) -> list[torch.nn.Module]:
        raise CapabilityError(f"{self.family} models have no language-model layers")

    def lm_attention_modules(self) -> list[torch.nn.Module]:
        raise CapabilityError(f"{self.family} models have no language-model attention")

    def answer_scores(self, images: Sequence[Image.Image], questions: Sequence[str]) -> YesNoScores:
        raise CapabilityError(f"{self.family} models do not answer questions; use similarity()")

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 20) -> list[str]:
        raise CapabilityError(f"{self.family} models do not generate text")

    def similarity(self, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        raise CapabilityError(f"{self.family} models have no joint image-text embedding; use answer_scores()")

    def embeddings(self, images: Sequence[Image.Image], texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        raise CapabilityError(f"{self.family} models have no joint image-text embedding")
