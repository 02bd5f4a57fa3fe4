"""Word-level tokenizers built offline with ``tokenizers`` (no hub download).

Tiny test checkpoints and the reference zoo share this builder, so their tokenizers are ordinary
``PreTrainedTokenizerFast`` objects that ``AutoProcessor.from_pretrained`` reloads from disk.
"""

from __future__ import annotations

from collections.abc import Sequence

import tokenizers
from transformers import PreTrainedTokenizerFast

from mmdiag.scenes.vocabulary import all_words

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"


def build_word_tokenizer(
    words: Sequence[str] | None = None,
    *,
    image_token: bool = False,
    add_eos: bool = False,
    add_bos: bool = True,
) -> PreTrainedTokenizerFast:
    """A whitespace/punctuation word-level tokenizer over ``words`` (default: the scene vocabulary).

    Ids 0..3 are ``<pad> <s> <unk> </s>`` (EOS is not id 2: CLIP treats eos_token_id == 2 as a legacy
    config and pools at the highest token id instead); with ``image_token`` id 4 is ``<image>`` and the tokenizer
    carries ``image_token`` as LLaVA's processor expects (BLIP-2's processor adds its own instead).
    ``<s>`` is prepended to every sequence unless ``add_bos`` is false (PaliGemma's processor writes it after the
    image), and ``</s>`` appended when ``add_eos`` (CLIP pools there).
    """
    specials = [PAD, BOS, UNK, EOS] + ([IMAGE] if image_token else [])
    vocab = {tok: i for i, tok in enumerate(specials)}
    for w in words if words is not None else all_words():
        vocab.setdefault(w, len(vocab))
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token=UNK))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    backend.add_special_tokens(specials)
    single = (f"{BOS} " if add_bos else "") + "$A" + (f" {EOS}" if add_eos else "")
    special_ids = ([(BOS, vocab[BOS])] if add_bos else []) + ([(EOS, vocab[EOS])] if add_eos else [])
    backend.post_processor = tokenizers.processors.TemplateProcessing(single=single, special_tokens=special_ids)
    backend.decoder = tokenizers.decoders.WordPiece(prefix="##", cleanup=True)
    extra = {"image_token": IMAGE} if image_token else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens=extra,
    )


def build_special_tokenizer(
    tokens: Sequence[str], named: dict[str, str] | None = None, words: Sequence[str] | None = None, add_bos: bool = True
) -> PreTrainedTokenizerFast:
    """The word tokenizer (see :func:`build_word_tokenizer`) plus a family's ``tokens`` as special tokens; ``named``
    become the tokenizer's named special tokens (``{"image_token": "<image_soft_token>"}``: what processors read as
    ``tokenizer.image_token``)."""
    base = build_word_tokenizer(words, add_bos=add_bos)
    base.add_tokens([*dict.fromkeys([*tokens, *(named or {}).values()])], special_tokens=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        extra_special_tokens=dict(named or {}),
    )
