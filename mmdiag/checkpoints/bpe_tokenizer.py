"""A byte-level BPE over the scene vocabulary, built offline, for families whose ``AutoTokenizer`` forces its own
BPE class on whatever is saved (Qwen3.5: ``Qwen3_5Tokenizer``, rebuilt from ``tokenizer.json``'s vocab and merges
with Qwen's pre-tokenizer). A word-level vocabulary would be re-read as a BPE without merges and silently drop
every word; here the merges are trained so every scene word (with or without its leading space) is one token."""

from __future__ import annotations

from collections.abc import Sequence


def train_byte_bpe(words: Sequence[str] | None = None) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a byte-level BPE in which every word of ``words`` (default: the scene vocabulary), with and
    without a leading space, is a single token; every byte is in the vocabulary, so nothing is ever dropped."""
    import tokenizers
    from tokenizers import pre_tokenizers

    from mmdiag.scenes.vocabulary import all_words

    words = list(words if words is not None else all_words()) + ["user", "assistant", "system"]
    backend = tokenizers.Tokenizer(tokenizers.models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=100_000,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [w for w in words] + [" " + w for w in words] + ["?", " ?", ".", ",", "\n", "\n\n"]
    backend.train_from_iterator(corpus, trainer=trainer)
    data = __import__("json").loads(backend.to_str())
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    return data["model"]["vocab"], merges
