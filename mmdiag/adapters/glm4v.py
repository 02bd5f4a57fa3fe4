"""GLM-4.1V (``Glm4vForConditionalGeneration``) and GLM-4.5V (``Glm4vMoeForConditionalGeneration``): Qwen2-VL's
processor layout (native-resolution patches in 2x2 merge windows, ``image_grid_thw``, M-RoPE from
``mm_token_type_ids``) with GLM's own connector and LM.

Module tree (transformers 5): ``model.model.visual`` = patch embed -> RMSNorm -> learned (resampled) position
embeddings -> ``blocks`` -> ``post_layernorm`` -> ``downsample`` (Conv2d, kernel = stride = 2: one 2x2 merge window
-> one token) -> ``merger`` (gated MLP, ``Glm4vVisionPatchMerger``); ``model.model.language_model.layers[i]``
(``self_attn`` with biased ``q_proj``/``k_proj``, sandwich norms). The connector is ``downsample`` + ``merger``:

* ``vision_encoder`` stage: ``post_layernorm``'s output (patches, merge-window order -> row-major);
* ``projector`` stage and :meth:`projector_module`: the ``merger`` (its output is what the LLM's image positions
  receive; hooking it alone cuts the image off: there is no second path such as Qwen3-VL's DeepStack);
* :meth:`merge_blocks` applies the whole connector to 2x2 blocks of patches.

Prompt: ``[gMASK]<sop><|user|>\\n<|begin_of_image|><|image|>...<|end_of_image|>question<|assistant|>\\n``; the
checkpoints' chat templates add ``<think>`` handling (GLM-4.1V-Thinking answers after ``</think>``, so a
yes/no read at the first answer token does not apply to it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from mmdiag.adapters.base import StageFeatures
from mmdiag.adapters.capture import capture_io
from mmdiag.adapters.qwen2_vl import Qwen2VLAdapter, _window_to_row_major


class Glm4vAdapter(Qwen2VLAdapter):
    """Adapter for ``Glm4vForConditionalGeneration`` and ``Glm4vMoeForConditionalGeneration``."""

    family = "glm4v"
    prompt_template = "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>{question}<|assistant|>\n"
    reuses_image_prefix = False  # M-RoPE positions come from the whole input (rope index over mm_token_type_ids)
    packs_questions = False  # packed rows would need 3-D (t, h, w) position ids per token; pack_questions writes 1-D

    def merge_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """The connector (``downsample`` then ``merger``) on [n * merge^2, dim] patches, 2x2 windows row-major."""
        visual = self._core.visual
        windows = blocks.view(-1, self.merge, self.merge, blocks.shape[-1]).permute(0, 3, 1, 2)
        return visual.merger(visual.downsample(windows).view(-1, visual.config.out_hidden_size))

    @torch.no_grad()
    def feature_stages(self, images: Sequence[Image.Image]) -> list[StageFeatures]:
        """Patches after the tower's last norm (row-major) and the merger's tokens. The tower runs no attention
        windows, so the merger's rows are in the processor's merge-window order, row-major over the merged grid.
        As for Qwen2-VL, a batch shares one grid: other sizes are resized to the first image's."""
        size = images[0].size
        inputs = self.image_inputs([i if i.size == size else i.resize(size, Image.BICUBIC) for i in images])
        visual = self._core.visual
        with capture_io({"vision": visual.post_layernorm, "projector": visual.merger}) as captured:
            self._core.get_image_features(**inputs)
        pre, post = captured.output_tensor("vision"), captured.output_tensor("projector")
        t, h, w = (int(v) for v in inputs["image_grid_thw"][0].cpu())
        n_images, m = len(images), self.merge
        row_major = torch.as_tensor(_window_to_row_major(h, w, m), device=pre.device)
        vision = pre.reshape(n_images, t * h * w, -1)[:, : h * w][:, row_major]
        tokens = post.reshape(n_images, -1, post.shape[-1])
        grid = (h // m, w // m)
        return [
            StageFeatures("vision_encoder", vision, (h, w)),
            StageFeatures("projector", tokens, grid if tokens.shape[1] == grid[0] * grid[1] else None),
        ]
