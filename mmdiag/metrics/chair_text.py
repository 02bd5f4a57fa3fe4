"""Caption text as the original CHAIR reads it: ``nltk.word_tokenize(caption.lower())`` then pattern's
``singularize`` on every token (Rohrbach et al. 2018, ``utils/chair.py``; nltk 3.2.5, pattern 3.6).

``word_tokenize`` first splits sentences with Punkt and then words with NLTK 3.2.5's Treebank rules (copied in
:mod:`mmdiag.metrics.vendored.nltk325_treebank`). Punkt is NLTK's own (a dependency). Its trained English model is
data that NLTK downloads (``punkt_tab``); where it is installed mmdiag uses it, as the original did, and where it is
not, the untrained ``PunktSentenceTokenizer()``. The two differ only around abbreviations ("st.", "mr.") inside a
caption. Which one ran is recorded with every CHAIR result (:func:`splitter_name`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from mmdiag.errors import ConfigError
from mmdiag.metrics.vendored.nltk325_treebank import treebank_tokenize
from mmdiag.metrics.vendored.pattern_singularize import singularize

SPLITTERS = ("auto", "trained", "untrained")


@cache
def _trained_punkt() -> Callable[[str], list[str]] | None:
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return None
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english").tokenize


@cache
def _untrained_punkt() -> Callable[[str], list[str]]:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer().tokenize


def sentence_splitter(kind: str = "auto") -> tuple[Callable[[str], list[str]], str]:
    """The Punkt splitter for ``kind`` (auto: trained when its data is installed) and its recorded name."""
    if kind not in SPLITTERS:
        raise ConfigError(f"unknown sentence splitter {kind!r}; use one of {', '.join(SPLITTERS)}")
    trained = _trained_punkt() if kind in ("auto", "trained") else None
    if trained is not None:
        return trained, "nltk Punkt, trained English model (punkt_tab), as the original"
    if kind == "trained":
        raise ConfigError(
            "the trained Punkt model is not installed; run python -m nltk.downloader punkt_tab "
            "or use --sentence-splitter untrained"
        )
    return _untrained_punkt(), "nltk PunktSentenceTokenizer(), untrained (punkt_tab data not installed)"


def caption_tokens(caption: str, split: Callable[[str], list[str]]) -> list[str]:
    """Lower-cased, word-tokenised and singularised tokens of ``caption``, as the original's first two lines."""
    words = [token for sentence in split(caption.lower()) for token in treebank_tokenize(sentence)]
    return [singularize(w) for w in words]
