"""CHAIR on COCO exactly as the original code computes it (Rohrbach et al., EMNLP 2018, ``utils/chair.py`` at
LisaAnne/Hallucination@6e4d33c), from COCO annotation files.

The original's rules, kept as they are (quirks included, so numbers compare with published ones):

* words: ``word_tokenize(caption.lower())``, each ``singularize``-d (:mod:`mmdiag.metrics.chair_text`);
* two-word objects joined left to right ("hot dog", "teddy bear"...), "baby X"/"adult X" -> X for animal words,
  "passenger jet/train" -> jet/train, "bow tie" -> tie, "toilet seat" -> toilet, "wine glas" -> "wine glass";
* "seat" dropped when the caption also says "toilet";
* the 2018 synonym file (``data/chair_synonyms_2018.txt``, the original's ``data/synonyms.txt`` byte for byte)
  split on ``", "`` — so " motor bike" keeps its leading space there and never matches, as in the original;
* every mention counts for CHAIR_i (a word said twice is two mentions);
* ground-truth objects of an image = its instance categories + the objects named by its COCO captions.

CHAIR_s = captions with a hallucinated object / captions; CHAIR_i = hallucinated mentions / mentions.
``recall`` is not in the 2018 code: distinct ground-truth objects named / ground-truth objects, summed over images.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

from mmdiag.errors import MmdiagError
from mmdiag.metrics.chair_text import caption_tokens, sentence_splitter

SYNONYMS_2018 = "chair_synonyms_2018.txt"
REFERENCE = "Rohrbach et al. 2018, LisaAnne/Hallucination@6e4d33c utils/chair.py"

COCO_DOUBLE_WORDS = (
    "motor bike",
    "motor cycle",
    "air plane",
    "traffic light",
    "street light",
    "traffic signal",
    "stop light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "suit case",
    "sports ball",
    "baseball bat",
    "baseball glove",
    "tennis racket",
    "wine glass",
    "hot dog",
    "cell phone",
    "mobile phone",
    "teddy bear",
    "hair drier",
    "potted plant",
    "bow tie",
    "laptop computer",
    "stove top oven",
    "hot dog",
    "teddy bear",
    "home plate",
    "train track",
)
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLE_WORDS = ("jet", "train")


@dataclass
class CaptionWords:
    """What the original's ``caption_to_words`` returns for one caption."""

    words: list[str]  # surface forms of the object mentions, in order (every mention)
    node_words: list[str]  # their COCO classes
    idxs: list[int]  # positions of the mentions in ``raw_words``' numbering (the original's indices)
    raw_words: list[str]  # all tokens after singularisation and double-word joining


class ChairRules2018:
    """The original CHAIR's vocabulary and caption parsing."""

    def __init__(self, synonyms_text: str | None = None, splitter: str = "auto") -> None:
        if synonyms_text is None:
            synonyms_text = files("mmdiag.metrics").joinpath("data", SYNONYMS_2018).read_text(encoding="utf-8")
        synonyms = [line.strip().split(", ") for line in synonyms_text.splitlines(keepends=True)]
        self.objects: set[str] = set()
        self.inverse_synonyms: dict[str, str] = {}
        for synonym in synonyms:
            self.objects.update(synonym)
            for s in synonym:
                self.inverse_synonyms[s] = synonym[0]
        self.double_words = {w: w for w in COCO_DOUBLE_WORDS}
        for animal in ANIMAL_WORDS:
            self.double_words[f"baby {animal}"] = animal
            self.double_words[f"adult {animal}"] = animal
        for vehicle in VEHICLE_WORDS:
            self.double_words[f"passenger {vehicle}"] = vehicle
        self.double_words["bow tie"] = "tie"
        self.double_words["toilet seat"] = "toilet"
        self.double_words["wine glas"] = "wine glass"
        self._split, self.splitter = sentence_splitter(splitter)

    def caption_to_words(self, caption: str) -> CaptionWords:
        """The COCO objects a caption mentions, by the original's rules (see the module docstring)."""
        words = caption_tokens(caption, self._split)
        i = 0
        joined: list[str] = []
        idxs: list[int] = []
        while i < len(words):
            idxs.append(i)
            pair = " ".join(words[i : i + 2])
            if pair in self.double_words:
                joined.append(self.double_words[pair])
                i += 2
            else:
                joined.append(words[i])
                i += 1
        words = joined
        if "toilet" in words and "seat" in words:
            words = [w for w in words if w != "seat"]
        idxs = [idxs[k] for k, w in enumerate(words) if w in self.objects]
        words = [w for w in words if w in self.objects]
        return CaptionWords(words, [self.inverse_synonyms[w] for w in words], idxs, joined)

    def class_of(self, category_name: str) -> str:
        """The CHAIR class of a COCO category name (``KeyError`` for a name outside the 80 classes)."""
        return self.inverse_synonyms[category_name]


@dataclass
class CocoChairResult:
    """``mmdiag chair`` output: overall metrics, counts, settings and one entry per caption."""

    CHAIRs: float | None
    CHAIRi: float | None
    recall: float | None
    n_captions: int
    mentions: int
    hallucinated_mentions: int
    reference: str = REFERENCE
    sentence_splitter: str = ""
    undefined: dict[str, str] = field(default_factory=dict)
    ci: dict[str, list[float]] = field(default_factory=dict)
    sentences: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise MmdiagError(f"{path} does not exist; check the path") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MmdiagError(f"{path} is not valid JSON ({err}); re-download or fix the file") from err


def load_captions(path: str | Path) -> list[dict]:
    """Captions to score: ``[{"image_id", "caption"}, ...]`` or the original's ``{"imgToEval": {...}}`` file."""
    path = Path(path)
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("imgToEval"), dict):
        data = list(data["imgToEval"].values())
    if not isinstance(data, list):
        raise MmdiagError(
            f'{path} must hold a list of {{"image_id", "caption"}} objects (or the original\'s '
            '{"imgToEval": ...} file)'
        )
    rows = []
    for k, row in enumerate(data):
        if not (isinstance(row, dict) and isinstance(row.get("caption"), str) and "image_id" in row):
            raise MmdiagError(f'{path} entry {k} needs an "image_id" and a string "caption"; fix that entry')
        rows.append({"image_id": row["image_id"], "caption": row["caption"]})
    return rows


def _annotation_files(folder: Path, kind: str) -> list[Path]:
    found = sorted(folder.glob(f"{kind}_*.json"))
    if not found:
        raise MmdiagError(f"no {kind}_*.json in {folder}; point --coco-annotations at COCO's annotations folder")
    return found


def coco_ground_truth(folder: str | Path, image_ids: Iterable[object], rules: ChairRules2018) -> dict[object, set[str]]:
    """Ground-truth CHAIR classes per image: every ``instances_*.json`` category and every ``captions_*.json``
    caption's objects in ``folder`` (the original reads the 2014 train and val files; any split works here)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MmdiagError(f"{folder} is not a folder; point --coco-annotations at COCO's annotations folder")
    truth: dict[object, set[str]] = {imid: set() for imid in image_ids}
    known: set[object] = set()
    for path in _annotation_files(folder, "instances"):
        data = _read_json(path)
        try:
            names = {c["id"]: c["name"] for c in data["categories"]}
            known.update(im["id"] for im in data.get("images", []))
            for k, ann in enumerate(data["annotations"]):
                if ann["image_id"] in truth:
                    try:
                        truth[ann["image_id"]].add(rules.class_of(names[ann["category_id"]]))
                    except KeyError as err:
                        raise MmdiagError(
                            f"{path} annotation {k}: category {ann['category_id']} is not one of the "
                            "80 COCO classes CHAIR knows; use COCO's own instances files"
                        ) from err
        except (KeyError, TypeError) as err:
            if isinstance(err, MmdiagError):
                raise
            raise MmdiagError(
                f"{path} is not a COCO instances file (missing {err}); use COCO's instances_*.json"
            ) from err
    for path in _annotation_files(folder, "captions"):
        data = _read_json(path)
        try:
            known.update(im["id"] for im in data.get("images", []))
            for ann in data["annotations"]:
                if ann["image_id"] in truth:
                    truth[ann["image_id"]].update(rules.caption_to_words(ann["caption"]).node_words)
        except (KeyError, TypeError) as err:
            raise MmdiagError(
                f"{path} is not a COCO captions file (missing {err}); use COCO's captions_*.json"
            ) from err
    missing = [imid for imid in truth if imid not in known]
    if missing:
        raise MmdiagError(
            f"image_id {missing[0]!r} (and {len(missing) - 1} more) is in no annotation file of {folder}; "
            "score captions against the split they were generated on"
        )
    return truth


def compute_chair(
    captions: Sequence[Mapping], truth: Mapping[object, set[str]], rules: ChairRules2018
) -> CocoChairResult:
    """The original's ``compute_chair`` on ``[{"image_id", "caption"}]``, plus recall and counts."""
    mentions = hallucinated = bad = hits = total_truth = 0
    sentences = []
    for row in captions:
        parsed = rules.caption_to_words(row["caption"])
        gt = truth[row["image_id"]]
        wrong = [(w, n) for w, n in zip(parsed.words, parsed.node_words) if n not in gt]
        wrong_idx = [i for w, n, i in zip(parsed.words, parsed.node_words, parsed.idxs) if n not in gt]
        mentions += len(parsed.node_words)
        hallucinated += len(wrong)
        bad += bool(wrong)
        hits += len(gt & set(parsed.node_words))
        total_truth += len(gt)
        sentences.append(
            {
                "image_id": row["image_id"],
                "caption": row["caption"],
                "mscoco_hallucinated_words": [list(p) for p in wrong],
                "mscoco_gt_words": sorted(gt),
                "mscoco_generated_words": parsed.node_words,
                "hallucination_idxs": wrong_idx,
                "words": parsed.raw_words,
                "metrics": {
                    "CHAIRs": int(bool(wrong)),
                    "CHAIRi": len(wrong) / len(parsed.words) if parsed.words else 0.0,
                },
            }
        )
    undefined = {}
    ci = _bootstrap_cis(sentences, truth) if captions else {}
    if not captions:
        undefined["CHAIRs"] = "no captions"
    if not mentions:
        undefined["CHAIRi"] = "no caption mentions a COCO object"
    if not total_truth:
        undefined["recall"] = "no ground-truth objects"
    return CocoChairResult(
        CHAIRs=bad / len(captions) if captions else None,
        CHAIRi=hallucinated / mentions if mentions else None,
        recall=hits / total_truth if total_truth else None,
        n_captions=len(captions),
        mentions=mentions,
        hallucinated_mentions=hallucinated,
        sentence_splitter=rules.splitter,
        undefined=undefined,
        ci=ci,
        sentences=sentences,
    )


def _bootstrap_cis(sentences: list[dict], truth: Mapping[object, set[str]]) -> dict[str, list[float]]:
    """95 % percentile bootstrap CIs (1,000 resamples of images, seed 0) of CHAIR_s, CHAIR_i and recall."""
    import numpy as np

    from mmdiag.metrics.stats import bootstrap_ci

    rows = np.array(
        [
            [
                s["metrics"]["CHAIRs"],
                len(s["mscoco_hallucinated_words"]),
                len(s["mscoco_generated_words"]),
                len(set(s["mscoco_generated_words"]) & truth[s["image_id"]]),
                len(truth[s["image_id"]]),
            ]
            for s in sentences
        ],
        dtype=float,
    )
    clusters = [repr(s["image_id"]) for s in sentences]

    def ratio(top: int, bottom: int):  # noqa: ANN202
        return lambda r: r[:, top].sum() / r[:, bottom].sum() if r[:, bottom].sum() else float("nan")

    out = {"CHAIRs": bootstrap_ci(rows[:, 0], clusters=clusters)}
    if rows[:, 2].sum():
        out["CHAIRi"] = bootstrap_ci(rows, ratio(1, 2), clusters=clusters)
    if rows[:, 4].sum():
        out["recall"] = bootstrap_ci(rows, ratio(3, 4), clusters=clusters)
    return {k: [round(v[0], 6), round(v[1], 6)] for k, v in out.items()}


def chair_on_coco(captions_file: str | Path, annotations_dir: str | Path, splitter: str = "auto") -> CocoChairResult:
    """``mmdiag chair``: score a captions file against a COCO annotations folder."""
    rules = ChairRules2018(splitter=splitter)
    captions = load_captions(captions_file)
    truth = coco_ground_truth(annotations_dir, {row["image_id"] for row in captions}, rules)
    return compute_chair(captions, truth, rules)
