"""The data-source contract: examples with exact ground truth, as every probe reads them.

A data source (the synthetic scenes, a COCO folder, a POPE file...) hands the probes a :class:`Dataset` of
:class:`Example` objects. An example is an image with its ground truth — objects (class name, box, centre,
attributes where the source knows them, pixel masks), pairwise relations — and, where the source can make
them, counterfactual twins (object removed, recoloured, mirrored, inserted). A source declares which
counterfactuals it can make in :attr:`DataSource.edits`; asking an example for another raises
:class:`EditUnavailable`, and the probe records the gap instead of guessing. Probes import this module only,
never a source's own modules.

Coordinates are normalised to the image (0..1, y downwards), so ground truth holds at any resolution.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from PIL import Image

EDIT_KINDS = ("remove", "recolour", "mirror", "insert")
MASK_SUBSAMPLE = 8  # mask pixels per patch side in :func:`object_patch_mask`


class EditUnavailable(ValueError):
    """The source cannot make this counterfactual of this example (a gap to record, not a failure)."""


@runtime_checkable
class ExampleObject(Protocol):
    """One annotated object."""

    @property
    def name(self) -> str: ...  # the class name questions and captions use ("red circle", "dog")

    @property
    def cx(self) -> float: ...  # centre, normalised

    @property
    def cy(self) -> float: ...

    @property
    def attributes(self) -> Mapping[str, str]: ...  # e.g. colour, shape; empty where the source has none

    def bbox(self) -> tuple[float, float, float, float]: ...  # (x0, y0, x1, y1), normalised

    def grid_cell(self, rows: int = 3, cols: int = 3) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Relation:
    """``subject relation object`` between two objects of one example, e.g. "dog" "left of" "cat"."""

    subject: str
    relation: str  # "left of" | "right of" | "above" | "below"
    object: str


@runtime_checkable
class Example(Protocol):
    """An image with exact ground truth, and its counterfactual twins where the source can make them."""

    @property
    def example_id(self) -> str: ...  # stable across runs (resume and paired comparison key on it)

    @property
    def objects(self) -> Sequence[ExampleObject]: ...

    @property
    def object_names(self) -> list[str]: ...

    @property
    def edit(self) -> str | None: ...  # the counterfactual edit that made this example, if any

    def has(self, name: str) -> bool: ...

    def relations(self) -> list[Relation]: ...

    def relations_between(self, subject: ExampleObject, other: ExampleObject) -> list[str]: ...

    def image(self, resolution: int) -> Image.Image: ...

    def object_mask(self, side: int) -> np.ndarray: ...  # bool [side, side]: any object's pixels

    def without(self, name: str) -> Example: ...  # "remove"

    def recoloured(self, name: str, colour: str) -> Example: ...  # "recolour"

    def mirrored(self, axis: str = "horizontal") -> Example: ...  # "mirror": relations flip with it

    def with_object(self, name: str, at: tuple[float, float]) -> Example: ...  # "insert"

    def to_dict(self) -> dict[str, Any]: ...  # JSON; the source re-creates the example from it


@dataclass(frozen=True)
class FixedQuestion:
    """A presence question a source brings with its example (a POPE file's line): asked verbatim instead of
    the questions the probe would build from the objects. An example carries them as ``pope_questions``."""

    question_id: str
    text: str
    object: str
    label: str  # "yes" | "no"
    split: str  # "random" | "popular" | "adversarial", or the file's own name when it says none


@dataclass(frozen=True)
class DataRequest:
    """What a probe needs of the examples (``None``: the audit's shared examples will do)."""

    min_objects: int | None = None
    max_objects: int | None = None
    # a co-occurrence prior to exercise (anchor, partner, p, anchor_rate): a source that draws its examples (the
    # scenes) draws them with it; a source of fixed examples (photos) has its own co-occurrence and ignores it
    cooccurrence: tuple[tuple[str, Any], ...] | None = None


class Dataset(Sequence):
    """The examples one probe runs on, with the source they came from (its vocabulary, attributes, edits)."""

    def __init__(self, source: DataSource, examples: Sequence[Example]) -> None:
        self.source = source
        self._examples = list(examples)

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - Sequence protocol
        return self._examples[index]

    def __iter__(self) -> Iterator[Example]:
        return iter(self._examples)


class DataSource(abc.ABC):
    """A source of examples with ground truth. ``__init__`` only stores parameters.

    Capabilities a probe checks before it asks (it says what it cannot measure instead of guessing):
    ``edits`` (counterfactuals), ``positions`` (objects carry boxes and masks; a POPE question file only says
    which objects are present), ``complete_objects`` (every object of the vocabulary that is in the image is
    annotated, so an unlisted mention in a caption is a hallucination: CHAIR needs it), ``names_objects`` (its
    examples name at least one object: the attention probe asks about one).
    """

    name: ClassVar[str]
    edits: ClassVar[frozenset[str]] = frozenset()  # the counterfactuals of :data:`EDIT_KINDS` it can make
    positions: ClassVar[bool] = True
    complete_objects: ClassVar[bool] = True
    presence: ClassVar[bool] = True  # which objects are absent is known (POPE's "no" questions need it)
    names_objects: bool = True  # its examples name the objects in them (a probe that asks about one needs it)
    caption_rules: ClassVar[str] = "vocabulary"  # CHAIR's word rules: "vocabulary" or "coco-2018" (the original's)

    @abc.abstractmethod
    def examples(self, n: int, seed: int, request: DataRequest | None = None, id_prefix: str = "") -> Dataset:
        """``n`` examples (fewer if the source holds fewer), deterministic in ``seed``; ``id_prefix`` names the
        requesting probe, for sources that make a different set when ``request`` asks for one."""

    @abc.abstractmethod
    def vocabulary(self) -> list[str]:
        """Every object name an example may hold or a question may ask about (absent-object candidates)."""

    def attribute_values(self, attribute: str) -> list[str]:
        """The values an object attribute takes (e.g. the colours a recolouring can use); none by default."""
        return []

    def size(self) -> int | None:
        """How many examples the source holds (``None``: as many as asked, like the seeded scenes)."""
        return None

    def caption_truth(self, example: Example) -> list[str]:
        """The objects a caption of ``example`` may name without hallucinating (CHAIR's ground truth)."""
        return list(example.object_names)

    @abc.abstractmethod
    def example_from_dict(self, data: Mapping[str, Any]) -> Example:
        """The example ``to_dict`` described (reports re-render stored examples)."""

    def check(self, n: int, seed: int, requests: Sequence[tuple[DataRequest | None, str]]) -> None:
        """Read and validate every input that the examples of ``requests`` (a data request and the probe's id
        prefix each) need: files, annotations, images. An audit calls this before it touches its run folder, so a
        bad input is a one-line ConfigError that costs no finished work. Default: build those examples."""
        for request, prefix in requests:
            self.examples(n, seed, request, id_prefix=prefix)

    def input_files(self) -> list[Path]:
        """The data files whose content decides the examples (annotations, question files): a run's identity
        holds their hashes, so a resume after any of them changed is refused. None by default."""
        return []

    def image_files(self) -> list[Path]:
        """The image files the examples may show (their names, sizes and a hash of their ends go into the run's
        identity). None by default (rendered images)."""
        return []

    def params(self) -> dict[str, Any]:
        """The stored constructor parameters (recorded in the run's configuration)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def object_patch_mask(example: Example, grid: tuple[int, int]) -> np.ndarray:
    """Boolean [rows, cols]: the patches (of a square image) that any object's pixels touch."""
    rows, cols = grid
    side = max(rows, cols) * MASK_SUBSAMPLE
    mask = example.object_mask(side)
    ys = np.linspace(0, side, rows + 1).astype(int)
    xs = np.linspace(0, side, cols + 1).astype(int)
    return np.array([[mask[ys[r] : ys[r + 1], xs[c] : xs[c + 1]].any() for c in range(cols)] for r in range(rows)])


REGION_MASK_SIDE = 128


def object_region_mask(example: Example, regions: np.ndarray) -> np.ndarray:
    """Int [n]: 1 where the token's region (a (y0, x0, y1, x1) box in fractions of the image) touches an object's
    pixels, 0 where it does not, -1 for tokens with no region (NaN boxes: row ends, separators)."""
    side = REGION_MASK_SIDE
    mask = example.object_mask(side)
    out = np.full(len(regions), -1, dtype=int)
    for i, (y0, x0, y1, x1) in enumerate(regions):
        if np.isnan(y0):
            continue
        top, left = min(int(y0 * side), side - 1), min(int(x0 * side), side - 1)
        bottom, right = max(int(np.ceil(y1 * side)), top + 1), max(int(np.ceil(x1 * side)), left + 1)
        out[i] = int(mask[top:bottom, left:right].any())
    return out
