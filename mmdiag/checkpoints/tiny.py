"""Tiny random checkpoints of every supported family, with processor and tokenizer, built offline.

Tests and the CLI (``mmdiag tiny FAMILY --out DIR``) save them with ``save_pretrained`` so they are
loaded by path exactly like a downloaded model. Random weights: the numbers they give are
meaningless, only shapes and plumbing are tested with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mmdiag.checkpoints import TINY_FAMILIES
from mmdiag.checkpoints.tiny_parts import IMAGE_MEAN, IMAGE_STD, TinySpec, llama_config
from mmdiag.checkpoints.tiny_parts import vision_kwargs as _vision_kwargs
from mmdiag.checkpoints.tokenizer import build_word_tokenizer
from mmdiag.families import tiny_builds

FAMILIES = TINY_FAMILIES


def build_tiny(family: str, out_dir: str | Path, spec: TinySpec | None = None) -> Path:
    """Build the random tiny checkpoint ``family`` (a :class:`~mmdiag.families.TinyBuild` name) with its processor and
    save both to ``out_dir``."""
    from mmdiag.lazy_registry import import_object

    builds = tiny_builds()
    if family not in builds:
        raise ValueError(f"unknown family '{family}': choose one of {', '.join(FAMILIES)}")
    tiny = builds[family]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed((spec or TinySpec()).seed)
    import_object(tiny.builder)(out, spec or TinySpec(), **dict(tiny.options))
    return out


def _clip_image_processor(spec: TinySpec):  # noqa: ANN202 - transformers type
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
    )


def build_llava(out: Path, spec: TinySpec) -> None:
    from transformers import (
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = build_word_tokenizer(image_token=True)
    n_tokens = (spec.image_size // spec.patch_size) ** 2
    text = llama_config(tokenizer, spec)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**_vision_kwargs(spec)),
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=n_tokens,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    LlavaForConditionalGeneration(config).eval().save_pretrained(out)
    LlavaProcessor(
        image_processor=_clip_image_processor(spec),
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLIP tower's CLS, which "default" drops
    ).save_pretrained(out)


def t5_config(vocab: int, tokenizer, spec: TinySpec):  # noqa: ANN001, ANN201 - transformers types
    """A tiny Flan-T5-style encoder-decoder (gated GELU, untied head), decoding from the pad token as T5 does."""
    from transformers import T5Config

    return T5Config(
        vocab_size=vocab,
        d_model=spec.hidden,
        d_kv=spec.hidden // spec.heads,
        d_ff=spec.hidden * 2,
        num_layers=spec.layers,
        num_decoder_layers=spec.layers,
        num_heads=spec.heads,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_query_transformer(out: Path, spec: TinySpec, instruct: bool = False, t5: bool = False) -> None:
    """BLIP-2, or with ``instruct`` InstructBLIP (whose Q-Former also reads the instruction, with its own
    tokenizer): vision tower, Q-Former with learned queries, OPT language model (or with ``t5`` a T5
    encoder-decoder, as the Flan-T5 checkpoints have)."""
    import transformers
    from transformers import BlipImageProcessor, OPTConfig

    prefix = "InstructBlip" if instruct else "Blip2"
    config_cls, model_cls, processor_cls, qformer_cls, vision_cls = (
        getattr(transformers, prefix + name)
        for name in ("Config", "ForConditionalGeneration", "Processor", "QFormerConfig", "VisionConfig")
    )
    tokenizer = build_word_tokenizer(image_token=False, add_bos=not t5, add_eos=t5)  # T5 ends inputs with EOS
    processor = processor_cls(
        image_processor=BlipImageProcessor(
            size={"height": spec.image_size, "width": spec.image_size}, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
        ),
        tokenizer=tokenizer,
        **({"qformer_tokenizer": build_word_tokenizer()} if instruct else {}),
        num_query_tokens=spec.num_query_tokens,
    )  # adds its own <image> token to the tokenizer
    vocab = len(processor.tokenizer)
    text = (
        t5_config(vocab, tokenizer, spec)
        if t5
        else OPTConfig(
            vocab_size=vocab,
            hidden_size=spec.hidden,
            ffn_dim=spec.hidden * 2,
            num_hidden_layers=spec.layers,
            num_attention_heads=spec.heads,
            max_position_embeddings=512,
            word_embed_proj_dim=spec.hidden,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    qformer_vocab = (
        {"vocab_size": len(processor.qformer_tokenizer), "pad_token_id": processor.qformer_tokenizer.pad_token_id}
        if instruct
        else {"vocab_size": vocab}
    )
    qformer = qformer_cls(
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=2,
        intermediate_size=spec.hidden * 2,
        encoder_hidden_size=spec.hidden,
        **qformer_vocab,
    )
    config = config_cls(
        vision_config=vision_cls(
            **_vision_kwargs(spec), initializer_range=0.02
        ).to_dict(),  # default 1e-10: image-blind
        qformer_config=qformer.to_dict(),
        text_config=text.to_dict(),
        num_query_tokens=spec.num_query_tokens,
        image_token_index=processor.tokenizer.convert_tokens_to_ids("<image>"),
    )
    model_cls(config).eval().save_pretrained(out)
    processor.save_pretrained(out)


def build_clip(out: Path, spec: TinySpec) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tokenizer = build_word_tokenizer(add_eos=True)  # CLIP pools the text at the EOS token
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden,
            intermediate_size=spec.hidden * 2,
            num_hidden_layers=spec.layers,
            num_attention_heads=2,
            max_position_embeddings=64,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=_vision_kwargs(spec),
        projection_dim=16,
    )
    CLIPModel(config).eval().save_pretrained(out)
    CLIPProcessor(image_processor=_clip_image_processor(spec), tokenizer=tokenizer).save_pretrained(out)


def build_siglip(out: Path, spec: TinySpec) -> None:
    from transformers import (
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
    )

    tokenizer = build_word_tokenizer()  # SigLIP pools the text at the last position of a max-length padding
    config = SiglipConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden,
            intermediate_size=spec.hidden * 2,
            num_hidden_layers=spec.layers,
            num_attention_heads=2,
            max_position_embeddings=16,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            projection_size=spec.hidden,
        ),
        vision_config=_vision_kwargs(spec),
    )
    SiglipModel(config).eval().save_pretrained(out)
    image_processor = SiglipImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)


def build_siglip2(out: Path, spec: TinySpec) -> None:
    import string

    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model, Siglip2Processor, Siglip2Tokenizer

    # SigLIP 2's own tokenizer class (Gemma BPE, lowercased, spaces as "▁"), reloaded by AutoProcessor whatever the
    # saved file says: a character-level vocabulary (no merges) keeps it honest at tiny size
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    characters = ["▁"] + list(string.ascii_lowercase + string.digits + string.punctuation)
    tokenizer = Siglip2Tokenizer(vocab={token: i for i, token in enumerate(specials + characters)}, merges=[])
    n_patches = (spec.image_size // spec.patch_size) ** 2
    vision = {k: v for k, v in _vision_kwargs(spec).items() if k != "image_size"}
    config = Siglip2Config(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=spec.hidden,
            intermediate_size=spec.hidden * 2,
            num_hidden_layers=spec.layers,
            num_attention_heads=2,
            max_position_embeddings=64,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            projection_size=spec.hidden,
        ),
        vision_config=dict(vision, num_patches=n_patches),
    )
    Siglip2Model(config).eval().save_pretrained(out)
    image_processor = Siglip2ImageProcessor(
        patch_size=spec.patch_size, max_num_patches=n_patches, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5]
    )
    Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)


def build_open_clip(out: Path, spec: TinySpec) -> None:
    import open_clip
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": spec.image_size,
            "layers": spec.layers,
            "width": spec.hidden,
            "head_width": 16,
            "patch_size": spec.patch_size,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": spec.hidden,
            "heads": 2,
            "layers": spec.layers,
        },
    }
    preprocess_cfg = {"mean": IMAGE_MEAN, "std": IMAGE_STD, "size": spec.image_size}
    (out / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, indent=2)
    )
    model = open_clip.create_model(f"local-dir:{out}", load_weights=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "open_clip_model.safetensors"))
