"""Two adapters without weights: one records what the probes ask (``mmdiag export``), one answers from a file
(``mmdiag audit --answers``). Probes that need weights or logits say so and are left out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters.base import Adapter
from mmdiag.adapters.generative import ScoreRequest
from mmdiag.adapters.types import GENERATIVE, YesNoScores
from mmdiag.errors import ConfigError
from mmdiag.metrics.answer_formats import read_answer_file
from mmdiag.metrics.pope import YES, parse_answer
from mmdiag.metrics.pope_io import json_records
from mmdiag.offline.items import GENERATE, YESNO, ExportItem, image_hash, item_key

ITEMS_FILE = "items.jsonl"
EXPORT_FILE = "export.json"
NOT_EXPORTED = (
    "edits the model's preprocessed pixel tensor (VCD's diffusion noise), which another harness cannot be given"
)


class _Config:
    """What the run identity hashes in place of a model config: the answers behind the audit."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class _NoWeights(torch.nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = _Config(config)


class AnswersOnlyAdapter(Adapter):
    """A generative model known only by its answers: no weights, no logits, no attention."""

    family = "answers"
    kind = GENERATIVE
    has_weights = False  # probes that read weights, attention or hidden states cannot run
    has_scores = False  # yes/no answers are decisions, not probabilities

    def __init__(self, config: dict[str, Any], source: str) -> None:
        super().__init__(_NoWeights(config), None, source=source)

    @classmethod
    def from_pretrained(cls, path: str, **load_kwargs: Any) -> Adapter:
        raise ConfigError("an answers-only model is built from answers files, not loaded: use mmdiag audit --answers")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def architecture(self) -> str:
        return "answers"

    def format_prompt(self, question: str) -> str:
        """The question as another harness receives it (its own chat template wraps it there)."""
        return question

    def vision_grid(self) -> tuple[int, int]:
        raise ConfigError("an audit from answers has no vision encoder: the spatial probe needs the model's weights")

    def feature_stages(self, images: Sequence[Image.Image]) -> list:
        raise ConfigError("an audit from answers has no features: the spatial probe needs the model's weights")


class RecordingAdapter(AnswersOnlyAdapter):
    """Answers nothing (yes and no equally likely, empty text) and records every (image, question) asked."""

    def __init__(self) -> None:
        super().__init__({"recording": True}, "<export>")
        self.images: dict[str, Image.Image] = {}
        self.items: dict[str, tuple[str, str, str, int]] = {}  # key -> (image id, kind, text, max_new_tokens)
        self.not_exported = 0

    def _record(self, image: Image.Image, kind: str, text: str, max_new_tokens: int) -> None:
        image_id = image_hash(image)
        self.images.setdefault(image_id, image.copy())
        key = item_key(image_id, kind, text, None if kind == YESNO else max_new_tokens)
        self.items.setdefault(key, (image_id, kind, text, max_new_tokens))

    def answer_scores_batch(self, requests: Sequence[ScoreRequest]) -> list[YesNoScores]:
        out = []
        for request in requests:
            if request.pixel_transform is not None:
                self.not_exported += len(request.questions)
            else:
                for question in request.questions:
                    self._record(request.image, YESNO, question, 1)
            half = np.full(len(request.questions), 0.5)
            out.append(YesNoScores(p_yes=half, p_no=half.copy()))
        return out

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 20) -> list[str]:
        for image, prompt in zip(images, prompts, strict=True):
            self._record(image, GENERATE, prompt, max_new_tokens)
        return [""] * len(prompts)

    def export_items(self, image_folder: str = "images") -> list[ExportItem]:
        """The recorded items in the order they were first asked, numbered from 0."""
        return [
            ExportItem(index, f"{image_folder}/{image_id}.png", image_id, text, kind, max_new_tokens)
            for index, (image_id, kind, text, max_new_tokens) in enumerate(self.items.values())
        ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export_items(export_dir: Path) -> list[ExportItem]:
    """The items of an export folder; a missing or foreign folder is a one-line error."""
    path = export_dir / ITEMS_FILE
    if not path.is_file():
        raise ConfigError(f"{export_dir} holds no {ITEMS_FILE}: pass the folder mmdiag export wrote (--export DIR)")
    items = []
    for where, row in json_records(path, "export items"):
        try:
            items.append(ExportItem(**row))
        except TypeError as err:
            raise ConfigError(f"{where} is not an export item ({err}): export again with mmdiag export") from err
    return items


class ReplayAdapter(AnswersOnlyAdapter):
    """Answers the exported items from answers files: yes/no answers parsed by ``rule`` into decisions (P = 1 or 0;
    an unreadable or missing answer gives P(yes) = P(no) = 0, which reads as no), free text as written."""

    def __init__(self, answers: dict[str, str | None], rule: str, config: dict[str, Any], source: str) -> None:
        super().__init__(config, source)
        self.answers = answers
        self.rule = rule

    @classmethod
    def from_export(
        cls, export_dir: str | Path, answer_files: Sequence[str | Path], rule: str = "vlmevalkit", fmt: str = "auto"
    ) -> tuple[ReplayAdapter, list[str]]:
        """The adapter, and notes on what the answers cover (missing items, unreadable yes/no answers)."""
        export_dir = Path(export_dir)
        items = read_export_items(export_dir)
        by_index = {str(item.index): item for item in items}
        answers: dict[str, str | None] = {}
        where: dict[str, str] = {}
        for path in answer_files:
            for answer in read_answer_file(path, fmt).answers:
                item = by_index.get(answer.question_id)
                if item is None:
                    raise ConfigError(
                        f"{answer.where} answers index {answer.question_id}, which {export_dir} does not hold: "
                        "these answers belong to another export"
                    )
                if item.key in answers and answers[item.key] != answer.text:
                    raise ConfigError(
                        f"{where[item.key]} and {answer.where} answer index {answer.question_id} differently: "
                        "keep one answer per item"
                    )
                answers[item.key], where[item.key] = answer.text, answer.where
        notes = []
        missing = [item for item in items if answers.get(item.key) is None]
        if missing:
            notes.append(
                f"answers: {len(missing)} of {len(items)} exported items have no answer (first: index "
                f"{missing[0].index}); a yes/no item without one reads as no, a caption as empty"
            )
        unread = [
            item
            for item in items
            if item.kind == YESNO
            and answers.get(item.key) is not None
            and parse_answer(answers[item.key], rule) is None
        ]
        if unread:
            notes.append(
                f"answers: {len(unread)} yes/no answers are unreadable under the {rule} rule (first: index "
                f"{unread[0].index}, {answers[unread[0].key]!r}) and read as no"
            )
        export = json.loads((export_dir / EXPORT_FILE).read_text()) if (export_dir / EXPORT_FILE).is_file() else {}
        config = {
            "answers": {Path(p).name: file_sha256(Path(p)) for p in answer_files},
            "rule": rule,
            "export": export.get("config_hash"),
        }
        source = ", ".join(str(p) for p in answer_files)
        return cls(answers, rule, config, f"answers: {source}"), notes

    def _text(self, image: Image.Image, kind: str, text: str, max_new_tokens: int | None) -> str | None:
        return self.answers.get(item_key(image_hash(image), kind, text, max_new_tokens))

    def answer_scores_batch(self, requests: Sequence[ScoreRequest]) -> list[YesNoScores]:
        out = []
        for request in requests:
            p_yes, p_no = np.zeros(len(request.questions)), np.zeros(len(request.questions))
            if request.pixel_transform is None:
                for k, question in enumerate(request.questions):
                    text = self._text(request.image, YESNO, question, None)
                    decision = None if text is None else parse_answer(text, self.rule)
                    if decision is not None:
                        p_yes[k], p_no[k] = (1.0, 0.0) if decision == YES else (0.0, 1.0)
            out.append(YesNoScores(p_yes=p_yes, p_no=p_no))
        return out

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 20) -> list[str]:
        return [
            self._text(image, GENERATE, prompt, max_new_tokens) or ""
            for image, prompt in zip(images, prompts, strict=True)
        ]
