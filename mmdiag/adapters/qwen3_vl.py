"""Qwen3-VL and Qwen3-VL-MoE: Qwen2-VL's layout (native-resolution ViT, 2x2 patch merger, M-RoPE) plus DeepStack.

Module tree (transformers 5): ``model.model.visual`` (``.blocks``, ``.merger``, ``.deepstack_merger_list``),
``model.model.language_model`` (``.layers[i].self_attn`` with ``q_proj``/``k_proj`` and per-head ``q_norm``/
``k_norm``; MoE: ``.layers[i].mlp`` is a sparse-expert block, attention unchanged).

DeepStack: after vision block ``deepstack_visual_indexes[k]`` a second merger (``deepstack_merger_list[k]``,
post-shuffle LayerNorm) folds the same 2x2 windows into one vector per image token; the text model adds it to the
hidden states at the image positions *after* decoder layer ``k`` (``Qwen3VLTextModel._deepstack_process``). So the
image reaches the LLM through ``1 + len(deepstack_visual_indexes)`` connectors, all writing to the image positions
only:

* the ``projector`` stage is the main merger's output (what the image positions hold at layer 0);
* :meth:`connector_modules` lists every connector: an intervention that must cut the image off (a constant
  connector, the zoo's ``image_blind`` defect, projector patching in the flow probe) has to hook them all;
* :meth:`deepstack_stages` gives the DeepStack tokens as extra stages (merged grid, row-major, like ``projector``);
* ``output_hidden_states`` records each decoder layer's output *before* the DeepStack addition, so
  :meth:`image_token_states` reads each layer's input instead (what the next layer really receives).

The attention probe needs nothing special: DeepStack writes into the image positions, which it already measures.

Positions are M-RoPE (interleaved t/h/w frequencies) computed from the whole input with ``mm_token_type_ids``,
as for Qwen2-VL: no cached prefix is continued by text, and questions are not packed (packed position ids would
have to be 3-D).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.qwen2_vl import Qwen2VLAdapter


class Qwen3VLAdapter(Qwen2VLAdapter):
    """Adapter for ``Qwen3VLForConditionalGeneration`` and ``Qwen3VLMoeForConditionalGeneration``."""

    family = "qwen3_vl"
    reuses_image_prefix = False  # M-RoPE positions come from the whole input (rope index over mm_token_type_ids)
    packs_questions = False  # packed rows would need 3-D (t, h, w) position ids per token; pack_questions writes 1-D

    # -- module tree -------------------------------------------------------------------------
    def deepstack_modules(self) -> list[torch.nn.Module]:
        """The DeepStack mergers, in the order their outputs are added after LLM layers 0, 1, ..."""
        return list(self._core.visual.deepstack_merger_list)

    def connector_modules(self) -> list[tuple[torch.nn.Module, int]]:
        """Every module whose output carries the image into the LLM, with the first LLM layer whose input holds it:
        the merger (layer 0, the input embeddings), then DeepStack merger ``k`` (added after layer ``k``: read from
        layer ``k + 1``)."""
        return [(self.projector_module(), 0), *((m, k + 1) for k, m in enumerate(self.deepstack_modules()))]

    # -- features ----------------------------------------------------------------------------
    @torch.no_grad()
    def deepstack_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """``deepstack_<vision layer>`` stages: each DeepStack merger's tokens, [images, tokens, dim], in the LLM's
        (row-major merged-grid) order. Qwen3-VL's tower has no attention windows, so the mergers' rows are already
        in that order (as ``feature_stages`` checks for the main merger)."""
        size = images[0].size
        inputs = self.image_inputs([i if i.size == size else i.resize(size, Image.BICUBIC) for i in images])
        thw = inputs["image_grid_thw"].cpu()
        out = self._core.get_image_features(**inputs)
        _, h, w = (int(v) for v in thw[0])
        grid = (h // self.merge, w // self.merge)
        layers = list(self._core.visual.deepstack_visual_indexes)
        stages = []
        for layer, per_image in zip(layers, out.deepstack_features):
            tokens = torch.stack(list(per_image))
            stages.append(
                StageFeatures(f"deepstack_{layer}", tokens, grid if tokens.shape[1] == grid[0] * grid[1] else None)
            )
        return stages

    @torch.no_grad()
    def image_token_states(
        self, images: Sequence[Image.Image], layers: Sequence[int], prompt: str = "Describe the image."
    ) -> list[StageFeatures]:
        """As the base, but after layer ``L`` (0 < L < n_layers) the state is layer ``L``'s input: the recorded
        output of layer ``L - 1`` misses the DeepStack features added to it."""
        with self._layer_inputs_kept():
            return super().image_token_states(images, layers, prompt)

    def llm_hidden_states(self, output: Any) -> Sequence[torch.Tensor]:
        hidden = list(super().llm_hidden_states(output))
        for index, state in getattr(self, "_layer_inputs", {}).items():
            hidden[index] = state
        return hidden

    @contextlib.contextmanager
    def _layer_inputs_kept(self) -> Iterator[None]:
        kept: dict[int, torch.Tensor] = {}

        def keep(index: int):  # noqa: ANN202
            def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
                kept[index] = (args[0] if args else kwargs["hidden_states"]).detach()

            return hook

        handles = [
            layer.register_forward_pre_hook(keep(i), with_kwargs=True)
            for i, layer in enumerate(self.lm_layers())
            if i > 0
        ]
        self._layer_inputs = kept
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._layer_inputs = {}
