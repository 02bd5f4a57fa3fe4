"""``ref-blip2``: a real ``Blip2ForConditionalGeneration`` (Q-Former) on the zoo's vision tower and language model.

As BLIP-2 starts from a frozen CLIP-style image encoder and a pretrained LLM, ref-blip2 starts from ref-clip's
vision tower and the shared language model (``ref-llava-lm``); only the Q-Former, its queries and the language
projection are new. Two conversions make that possible, both exact bookkeeping:

- ``Blip2VisionModel`` has no pre-LayerNorm (CLIP has one after the embeddings), so its weights cannot simply be
  copied: the CLIP weights are mapped over (q/k/v fused into ``qkv``) and the tower is then distilled for a few
  hundred steps to reproduce the CLIP tower's last hidden states (the features LLaVA's projector reads).
- BLIP-2's processor appends its own ``<image>`` token to the tokenizer (LLaVA's tokenizer has it at id 4), so the
  language model's embedding and output rows are permuted to the BLIP-2 token ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmdiag.checkpoints.tiny import IMAGE_MEAN, IMAGE_STD
from mmdiag.checkpoints.tokenizer import build_word_tokenizer
from mmdiag.scenes.generate import SceneRecipe
from mmdiag.zoo.data import images, scene_batch
from mmdiag.zoo.models import Geometry, vision_config
from mmdiag.zoo.train import OptimSpec, TrainLog, run_steps

NUM_QUERIES = 16


def new_blip2(g: Geometry, seed: int, language_state: dict[str, torch.Tensor] | None = None) -> tuple[Any, Any]:
    """A fresh BLIP-2 (Llama language model, 2-layer Q-Former with ``NUM_QUERIES`` queries) and its processor.

    ``language_state`` (LLaVA key layout, see :func:`mmdiag.zoo.models.language_state_of`) starts the LLM
    from a trained one, rows permuted to this tokenizer's ids.
    """
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        Blip2QFormerConfig,
        Blip2VisionConfig,
        BlipImageProcessor,
        LlamaConfig,
    )

    tokenizer = build_word_tokenizer(image_token=False)
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(
            size={"height": g.resolution, "width": g.resolution}, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
        ),
        tokenizer=tokenizer,
        num_query_tokens=NUM_QUERIES,
    )  # appends its own <image> token
    vocab = len(processor.tokenizer)
    text = LlamaConfig(
        vocab_size=vocab,
        hidden_size=g.text_hidden,
        intermediate_size=g.text_ffn,
        num_hidden_layers=g.text_layers,
        num_attention_heads=g.heads,
        num_key_value_heads=g.heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    qformer = Blip2QFormerConfig(
        hidden_size=g.text_hidden,
        num_hidden_layers=2,
        num_attention_heads=g.heads,
        intermediate_size=2 * g.text_hidden,
        encoder_hidden_size=g.vision_hidden,
        cross_attention_frequency=1,
        vocab_size=vocab,
        max_position_embeddings=64,
    )
    vision = Blip2VisionConfig(
        **{
            k: v
            for k, v in vision_config(g).to_dict().items()
            if k
            in (
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "image_size",
                "patch_size",
            )
        }
    )
    config = Blip2Config(
        vision_config=vision.to_dict(),
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=NUM_QUERIES,
        image_token_index=processor.tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    if language_state is not None:
        model.language_model.load_state_dict(_language_rows(language_state, processor.tokenizer))
    return model.eval(), processor


def _language_rows(state: dict[str, torch.Tensor], tokenizer: Any) -> dict[str, torch.Tensor]:
    """LLaVA-layout LLM weights as a ``LlamaForCausalLM`` state, vocabulary rows moved to ``tokenizer``'s ids."""
    llava_ids = build_word_tokenizer(image_token=True).get_vocab()
    order = torch.tensor([llava_ids[token] for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])])
    out = {}
    for key, value in state.items():
        name = key.replace("language_model.", "model.", 1) if key.startswith("language_model.") else key
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            value = value[order]
        out[name] = value
    return out


def vision_state_from_clip(clip_vision: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CLIP vision-tower weights in ``Blip2VisionModel``'s layout (the pre-LayerNorm has no counterpart: dropped)."""
    out: dict[str, torch.Tensor] = {
        "embeddings.class_embedding": clip_vision["embeddings.class_embedding"].view(1, 1, -1),
        "embeddings.position_embedding": clip_vision["embeddings.position_embedding.weight"].unsqueeze(0),
        "embeddings.patch_embedding.weight": clip_vision["embeddings.patch_embedding.weight"],
        "post_layernorm.weight": clip_vision["post_layernorm.weight"],
        "post_layernorm.bias": clip_vision["post_layernorm.bias"],
    }
    hidden = clip_vision["embeddings.class_embedding"].shape[0]
    out["embeddings.patch_embedding.bias"] = torch.zeros(hidden)  # CLIP's patch embedding has no bias
    layers = sorted({int(k.split(".")[2]) for k in clip_vision if k.startswith("encoder.layers.")})
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"encoder.layers.{i}."
        attn = src + "self_attn."
        out[dst + "self_attn.qkv.weight"] = torch.cat([clip_vision[attn + f"{p}_proj.weight"] for p in "qkv"])
        out[dst + "self_attn.qkv.bias"] = torch.cat([clip_vision[attn + f"{p}_proj.bias"] for p in "qkv"])
        out[dst + "self_attn.projection.weight"] = clip_vision[attn + "out_proj.weight"]
        out[dst + "self_attn.projection.bias"] = clip_vision[attn + "out_proj.bias"]
        for part in ("layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2"):
            for p in ("weight", "bias"):
                out[dst + f"{part}.{p}"] = clip_vision[src + f"{part}.{p}"]
    return out


def distill_vision(
    model: Any, processor: Any, clip_vision: Any, spec: OptimSpec, seed: int, resolution: int, progress: bool = True
) -> TrainLog:
    """Train BLIP-2's vision tower to reproduce the (frozen) CLIP tower's last hidden states, all tokens (MSE)."""
    torch.manual_seed(seed)
    recipe = SceneRecipe()
    tower = model.vision_model
    clip_vision.eval()

    def loss_at(step: int) -> torch.Tensor:
        scenes = scene_batch(recipe, seed + 7, step, spec.batch)
        pixels = processor.image_processor(images=images(scenes, resolution), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            target = clip_vision(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        ours = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        return torch.nn.functional.mse_loss(ours, target) / target.var().clamp_min(1e-6)

    tower.train()
    log = run_steps(list(tower.parameters()), spec, loss_at, "ref-blip2 vision", progress)
    tower.eval()
    return log


def feature_agreement(model: Any, processor: Any, clip_vision: Any, resolution: int, n: int = 32) -> float:
    """R² of BLIP-2's vision states against the CLIP tower's on held-out scenes (1 = the same features)."""
    from mmdiag.zoo.models import evaluation_scenes

    pixels = processor.image_processor(images=images(evaluation_scenes(n), resolution), return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        target = clip_vision(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
        ours = model.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
    residual = float(((ours - target) ** 2).sum())
    total = float(((target - target.mean(dim=(0, 1))) ** 2).sum())
    return float(np.clip(1 - residual / total, -1, 1))
