"""NLTK 3.2.5's ``word_tokenize`` word step: ``TreebankWordTokenizer`` with the three "improved" regexes that
``nltk/tokenize/__init__.py`` inserted in 3.2.5 — the version the original CHAIR pins (``requirements.txt``).

Later NLTK releases changed ``word_tokenize`` (``NLTKWordTokenizer``, other quote and punctuation rules), so the
3.2.5 tables are copied here unchanged. The patterns of the original class are compiled with ``re.ASCII``: they
ran under Python 2 without ``re.UNICODE``, where ``\\s`` and ``\\d`` are ASCII only; the improved ones carried
``re.U`` and keep it. Sentence splitting (Punkt) is not here: see :mod:`mmdiag.metrics.chair_text`.
Tested against NLTK 3.2.5's own output in ``tests/golden/chair/goldens.json``.

NLTK is licensed under the Apache License 2.0; copyright (C) 2001-2017 NLTK Project (Edward Loper, Michael
Heilman, Robert MacIntyre's tokenizer sed script, Liling Tan).
"""
# fmt: off

import re

_A = re.ASCII

# nltk/tokenize/treebank.py (3.2.5): MacIntyreContractions.CONTRACTIONS2 / CONTRACTIONS3
_CONTRACTIONS2 = [re.compile(p, _A) for p in (
    r"(?i)\b(can)(?#X)(not)\b", r"(?i)\b(d)(?#X)('ye)\b", r"(?i)\b(gim)(?#X)(me)\b", r"(?i)\b(gon)(?#X)(na)\b",
    r"(?i)\b(got)(?#X)(ta)\b", r"(?i)\b(lem)(?#X)(me)\b", r"(?i)\b(mor)(?#X)('n)\b", r"(?i)\b(wan)(?#X)(na)\s")]
_CONTRACTIONS3 = [re.compile(p, _A) for p in (r"(?i) ('t)(?#X)(is)\b", r"(?i) ('t)(?#X)(was)\b")]

# nltk/tokenize/__init__.py (3.2.5): the regexes inserted first into the lists below
_IMPROVED_OPEN_QUOTE = (re.compile("([«“‘])", re.U), r" \1 ")
_IMPROVED_CLOSE_QUOTE = (re.compile("([»”’])", re.U), r" \1 ")
_IMPROVED_PUNCT = (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$", re.U), r"\1 \2 \3 ")

STARTING_QUOTES = [
    _IMPROVED_OPEN_QUOTE,
    (re.compile(r'^\"', _A), r'``'),
    (re.compile(r'(``)', _A), r' \1 '),
    (re.compile(r'([ (\[{<])"', _A), r'\1 `` '),
]

PUNCTUATION = [
    _IMPROVED_PUNCT,
    (re.compile(r'([:,])([^\d])', _A), r' \1 \2'),
    (re.compile(r'([:,])$', _A), r' \1 '),
    (re.compile(r'\.\.\.', _A), r' ... '),
    (re.compile(r'[;@#$%&]', _A), r' \g<0> '),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$', _A), r'\1 \2\3 '),  # Handles the final period.
    (re.compile(r'[?!]', _A), r' \g<0> '),
    (re.compile(r"([^'])' ", _A), r"\1 ' "),
]

PARENS_BRACKETS = (re.compile(r'[\]\[\(\)\{\}\<\>]', _A), r' \g<0> ')

DOUBLE_DASHES = (re.compile(r'--', _A), r' -- ')

ENDING_QUOTES = [
    _IMPROVED_CLOSE_QUOTE,
    (re.compile(r'"', _A), " '' "),
    (re.compile(r'(\S)(\'\')', _A), r'\1 \2 '),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') ", _A), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", _A), r"\1 \2 "),
]


def treebank_tokenize(text: str) -> list[str]:
    """``TreebankWordTokenizer().tokenize(text)`` of NLTK 3.2.5 as ``word_tokenize`` configured it."""
    for regexp, substitution in STARTING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp, substitution in PUNCTUATION:
        text = regexp.sub(substitution, text)
    regexp, substitution = PARENS_BRACKETS
    text = regexp.sub(substitution, text)
    regexp, substitution = DOUBLE_DASHES
    text = regexp.sub(substitution, text)
    text = " " + text + " "
    for regexp, substitution in ENDING_QUOTES:
        text = regexp.sub(substitution, text)
    for regexp in _CONTRACTIONS2:
        text = regexp.sub(r' \1 \2 ', text)
    for regexp in _CONTRACTIONS3:
        text = regexp.sub(r' \1 \2 ', text)
    return text.split()
