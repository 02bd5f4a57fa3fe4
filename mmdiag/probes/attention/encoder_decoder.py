"""Attention parts for an encoder-decoder LLM (BLIP-2 / InstructBLIP with Flan-T5).

The image tokens and the prompt are the encoder's input; the answer is decoded. What the answer reads is the
decoder's *cross-attention* over the encoder's tokens: its rows at the first decoding step (and at teacher-forced
answer tokens) are reduced to the parts of the input (image, instruction...), per layer and head, exactly as a
decoder-only model's rows at the prompt end are. Beside it, the encoder's *self-attention* from the text tokens
to the image tokens says how much the question's encoding mixes in the image. T5 computes attention with a
relative position bias and returns the probabilities it used; the input is short (query tokens + prompt), so
they are taken from ``output_attentions`` and reduced layer by layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmdiag.adapters.capture import hooks
from mmdiag.adapters.types import PreparedBatch
from mmdiag.probes.attention.parts import (
    BOS,
    IMAGE,
    INSTRUCTION,
    SinkTracker,
    part_labels,
    reduce_rows,
)


@torch.no_grad()
def measure_encoder_decoder(
    adapter: Any, batch: PreparedBatch, prompt_end: int, sink_from_layer: int, sink_threshold: float
) -> dict[str, Any]:
    """The same record as the decoder-only measurement: masses [layers, heads, decoder rows, parts], image rows,
    sinks (massive activations in the encoder's residual stream), the logits; plus ``encoder_masses``
    [layers, heads, parts] (mean over the text tokens' rows)."""
    labels = part_labels(batch, adapter.tokenizer.bos_token_id, prompt_end)
    label_t = torch.as_tensor(labels)
    image_index = torch.nonzero(label_t == IMAGE).flatten()
    text_index = torch.nonzero(label_t == INSTRUCTION).flatten()
    bos_position = int(np.nonzero(labels == BOS)[0][0]) if (labels == BOS).any() else None
    encoder_blocks = adapter.lm_layers()
    tracker = SinkTracker(image_index, min(sink_from_layer, max(0, len(encoder_blocks) - 1)))

    def layer_input(index: int):  # noqa: ANN202
        def hook(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            tracker.observe(index, hidden[0], bos_position)

        return hook

    with adapter.eager_attention(), hooks([(block, layer_input(i)) for i, block in enumerate(encoder_blocks)]):
        out = adapter.forward(batch, output_attentions=True)
    lm = out.language_model_outputs
    cross = [a[0].float().cpu() for a in lm.cross_attentions]  # [heads, decoder rows, encoder tokens]
    encoder = [a[0].float().cpu() for a in lm.encoder_attentions]  # [heads, tokens, tokens]
    masses = np.stack([reduce_rows(a, label_t).numpy() for a in cross])
    image_rows = np.stack([a[..., image_index].numpy() for a in cross])
    encoder_masses = np.stack([reduce_rows(a[:, text_index], label_t).mean(dim=1).numpy() for a in encoder])
    phi = tracker.phi
    return {
        "masses": masses,
        "image_rows": image_rows,
        "encoder_masses": encoder_masses,
        "sinks": tracker.sinks(sink_threshold),
        "phi_max": float(phi.max()) if phi is not None and len(phi) else 0.0,
        "bos_phi": tracker.bos_phi,
        "labels": labels,
        "logits": out.logits,
        "first_logits": out.logits[0, 0],
    }
