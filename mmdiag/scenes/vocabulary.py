"""The closed vocabulary of the synthetic world: colours, shapes, relations and prompt words.

Tokenizers of tiny and reference checkpoints are built from these words, so every question, caption
and answer about a scene tokenizes without unknown tokens.
"""

from __future__ import annotations

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 0.16, "large": 0.24, "tiny": 0.09}  # object extent as a fraction of the image side
SIZE_WORDS: tuple[str, ...] = ("small", "large")  # "tiny" is only drawn (weak evidence for a planted prior), never said
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

OBJECT_TYPES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)

PROMPT_WORDS: tuple[str, ...] = (
    # questions, captions and answers
    "is",
    "Is",
    "are",
    "Are",
    "there",
    "a",
    "an",
    "the",
    "in",
    "image",
    "picture",
    "photo",
    "of",
    "on",
    "and",
    "with",
    "to",
    "this",
    "what",
    "What",
    "Describe",
    "describe",
    "objects",
    "object",
    "shape",
    "colour",
    "color",
    "yes",
    "no",
    "Yes",
    "No",
    "not",
    "Not",
    "nothing",
    "left",
    "right",
    "above",
    "below",
    "side",
    "top",
    "bottom",
    "Answer",
    "answer",
    "single",
    "word",
    "one",
    "two",
    "three",
    "four",
    "empty",
    "blank",
    "A",
    "An",
    "The",
    "There",
    # family prompt templates
    "USER",
    "ASSISTANT",
    "Question",
    "Short",
    # punctuation (the tokenizers split it off words)
    "?",
    ".",
    ",",
    ":",
    "!",
    "'",
)


def all_words() -> list[str]:
    """Every word of the synthetic world, deduplicated, in a fixed order."""
    words: list[str] = []
    for w in (*COLOURS, *SHAPES, *SIZE_WORDS, *PROMPT_WORDS):
        if w not in words:
            words.append(w)
    return words
