"""open_clip models: a named architecture (+ optional checkpoint file) or a local open_clip folder.

Model specs: ``open_clip:ViT-B-32`` (with ``LoadOptions.checkpoint`` for a weights file) or a folder
holding ``open_clip_config.json`` and its weights (open_clip's ``local-dir:`` layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.dual_encoder import DualEncoderAdapter
from mmdiag.adapters.hf_loading import LoadOptions, safetensors_error
from mmdiag.errors import ModelLoadError

SPEC_PREFIX = "open_clip:"
CONFIG_FILE = "open_clip_config.json"


class OpenClipProcessor:
    """The (preprocess transform, tokenizer) pair open_clip returns, under one name."""

    def __init__(self, preprocess: Any, tokenizer: Any) -> None:
        self.preprocess = preprocess
        self.tokenizer = tokenizer


class OpenClipAdapter(DualEncoderAdapter):
    """Adapter for open_clip ``CLIP``/``CustomTextCLIP`` models with a ViT image tower."""

    family = "open_clip"

    @classmethod
    def from_pretrained(cls, path: str, options: LoadOptions | None = None, **kwargs: Any) -> OpenClipAdapter:
        import open_clip

        options = options or LoadOptions()
        if path.startswith(SPEC_PREFIX):
            name, pretrained = path[len(SPEC_PREFIX) :], options.checkpoint
            if name not in open_clip.list_models():
                raise ModelLoadError(
                    f"unknown open_clip architecture '{name}': pick one of open_clip.list_models() "
                    "(e.g. open_clip:ViT-B-32) or pass a local open_clip folder"
                )
            if pretrained is not None:
                _check_weights_file(Path(pretrained), options.allow_pickle)
        else:
            folder = Path(path)
            if not (folder / CONFIG_FILE).is_file():
                raise ModelLoadError(f"{path} has no {CONFIG_FILE}: not an open_clip model folder")
            files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")) + sorted(folder.glob("*.pt*"))
            if not files:
                raise ModelLoadError(
                    f"no weights file next to {CONFIG_FILE} in {path}: save the model's state_dict there"
                )
            _check_weights_file(files[0], options.allow_pickle)
            name, pretrained = f"local-dir:{folder}", None
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, weights_only=not options.allow_pickle
            )
            tokenizer = open_clip.get_tokenizer(name)
        except (OSError, RuntimeError, ValueError, KeyError, safetensors_error()) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
            raise ModelLoadError(
                f"open_clip could not build {path} ({err.__class__.__name__}: {first}): the weights "
                "may be truncated or corrupt, or not match the config"
            ) from err
        if options.dtype is not None:
            from mmdiag.adapters.hf_loading import resolve_dtype

            model = model.to(resolve_dtype(options.dtype))
        adapter = cls(model, OpenClipProcessor(preprocess, tokenizer), source=path)
        adapter.model_name = name
        return adapter

    model_name: str | None = None

    def untrained_copy(self, seed: int = 0) -> OpenClipAdapter:
        """A freshly initialised model of the same open_clip architecture."""
        import copy

        import open_clip

        if self.model_name is None:
            raise ModelLoadError("an open_clip model built outside mmdiag has no recorded architecture name")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.create_model(self.model_name, pretrained=None, load_weights=False)
        clone = copy.copy(self)
        clone.model = model.to(self.device).eval()
        clone.source = f"{self.source} (untrained copy, seed {seed})"
        return clone

    @property
    def architecture(self) -> str:
        return f"open_clip:{type(self.model).__name__}"

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        batch = torch.stack([self.processor.preprocess(im.convert("RGB")) for im in images])
        return batch.to(self.device, self.dtype)

    def vision_grid(self) -> tuple[int, int]:
        grid = getattr(self.model.visual, "grid_size", None)
        if grid is None:
            raise ModelLoadError("this open_clip image tower has no patch grid (not a ViT)")
        return int(grid[0]), int(grid[1])

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        pixels = self.pixel_values(images)
        out = self.model.visual.forward_intermediates(pixels, indices=1, intermediates_only=True, output_fmt="NLC")
        patches = out["image_intermediates"][-1]
        embedding = self.model.encode_image(pixels)
        return [
            StageFeatures("vision_encoder", patches, self.vision_grid()),
            StageFeatures("image_embedding", embedding[:, None, :], None),
        ]

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return self.model.encode_image(self.pixel_values(images))

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.processor.tokenizer(list(texts)).to(self.device))


def _check_weights_file(path: Path, allow_pickle: bool) -> None:
    if not path.is_file():
        raise ModelLoadError(f"checkpoint file {path} does not exist: check the path")
    if path.suffix != ".safetensors" and not allow_pickle:
        raise ModelLoadError(
            f"{path.name} is a pickle checkpoint, which can run code when loaded: convert it to .safetensors "
            "or pass --allow-pickle if you trust it"
        )
