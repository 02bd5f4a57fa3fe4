"""Shared machinery of image-to-text adapters: image-token spans, yes/no token ids, prompting, first-token
yes/no scoring (one KV cache per image), free-text generation."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from mmdiag.adapters import attention_edits
from mmdiag.adapters.base import Adapter
from mmdiag.adapters.packed_questions import can_pack, common_prefix, pack_questions
from mmdiag.adapters.types import GENERATIVE, PreparedBatch, StageFeatures, YesNoScores
from mmdiag.errors import ConfigError


def image_token_spans(input_ids: torch.Tensor, image_token_id: int) -> list[list[tuple[int, int]]]:
    """Contiguous runs of ``image_token_id`` in each row of ``input_ids``, as half-open ranges."""
    spans: list[list[tuple[int, int]]] = []
    for row in (input_ids == image_token_id).cpu().numpy():
        runs: list[tuple[int, int]] = []
        start = None
        for i, is_image in enumerate(row):
            if is_image and start is None:
                start = i
            elif not is_image and start is not None:
                runs.append((start, i))
                start = None
        if start is not None:
            runs.append((start, len(row)))
        spans.append(runs)
    return spans


def yes_no_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids of every vocabulary entry that spells "yes" / "no" (any case, with or without a word marker)."""
    yes, no = [], []
    for token, idx in tokenizer.get_vocab().items():
        word = token.replace("\u2581", "").replace("\u0120", "").strip().lower()
        if word == "yes":
            yes.append(idx)
        elif word == "no":
            no.append(idx)
    if not yes or not no:
        from mmdiag.errors import ProcessorMismatchError

        raise ProcessorMismatchError(
            "the tokenizer has no 'yes'/'no' token, so yes/no answers cannot be scored from logits; "
            "use a tokenizer whose vocabulary spells them"
        )
    return sorted(yes), sorted(no)


class _UniqueImages:
    """An image processor that preprocesses each distinct image object once and repeats its rows (a batch asks
    several questions about one image); everything else is the wrapped processor's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __call__(self, images: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(images, (list, tuple)) or not all(isinstance(i, Image.Image) for i in images):
            return self._inner(images, *args, **kwargs)
        first: dict[int, int] = {}
        unique: list[Image.Image] = []
        for image in images:
            if id(image) not in first:
                first[id(image)] = len(unique)
                unique.append(image)
        index = [first[id(image)] for image in images]
        if len(unique) == len(images):
            return self._inner(images, *args, **kwargs)
        out = self._inner(unique, *args, **kwargs)
        for key in list(out.keys()):
            value = out[key]
            if isinstance(value, torch.Tensor) and value.shape[:1] == (len(unique),):
                out[key] = value[torch.as_tensor(index)]
            elif isinstance(value, (list, tuple)) and len(value) == len(unique):
                out[key] = [value[i] for i in index]
            else:  # a layout this wrapper does not know: preprocess every row as the processor would
                return self._inner(images, *args, **kwargs)
        return out


@contextlib.contextmanager
def _each_image_once(processor: Any, images: Sequence[Image.Image]) -> Iterator[None]:
    """Within the block, ``processor``'s image processor preprocesses a repeated image object once (scoped)."""
    inner = getattr(processor, "image_processor", None)
    if inner is None or len({id(i) for i in images}) == len(images):
        yield
        return
    processor.image_processor = _UniqueImages(inner)
    try:
        yield
    finally:
        processor.image_processor = inner


@dataclass
class ScoreRequest:
    """Yes/no questions about one image (``pixel_transform``: an edit of its preprocessed pixel tensor;
    ``without_image``: the same prompts with the image's tokens removed, what the language model answers without
    it, PAI's unconditional input)."""

    image: Image.Image
    questions: list[str]
    pixel_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    without_image: bool = False


def without_image_tokens(batch: PreparedBatch, pad_id: int) -> PreparedBatch:
    """``batch``'s prompts (right-padded) with their image-token spans cut out: text inputs only, no pixels."""
    ids, mask = batch.input_ids, batch.attention_mask.bool()
    rows = []
    for row, spans in enumerate(batch.image_spans):
        keep = mask[row].clone()
        for start, end in spans:
            keep[start:end] = False
        rows.append(ids[row][keep])
    length = max(len(r) for r in rows)
    new_ids = ids.new_full((len(rows), length), pad_id)
    new_mask = torch.zeros_like(new_ids)
    for row, tokens in enumerate(rows):
        new_ids[row, : len(tokens)], new_mask[row, : len(tokens)] = tokens, 1
    return PreparedBatch(
        inputs={"input_ids": new_ids, "attention_mask": new_mask},
        prompts=batch.prompts,
        image_spans=[[] for _ in rows],
        token_grid=None,
        padding_side="right",
    )


class GenerativeAdapter(Adapter):
    """Shared machinery of image-to-text families (LLaVA, BLIP-2): prompting, scoring, generating.

    ``score_rows`` bounds the questions scored in one batch (their KV caches are held together) and
    ``generate_rows`` the prompts generated in one batch; lower them for a large model on a small device.
    """

    kind = GENERATIVE
    prompt_template: ClassVar[str] = "{question}"
    uses_chat_template: ClassVar[bool] = False  # does format_prompt follow the processor's chat template?
    # do the image tokens depend on the prompt (InstructBLIP's Q-Former reads the question)? Then no image prefix
    # can be shared between questions and each question runs in full
    image_tokens_read_the_prompt: ClassVar[bool] = False
    # can a cached image prefix be continued by text alone? Not where positions depend on the whole input (M-RoPE)
    reuses_image_prefix: ClassVar[bool] = True
    # does the LLM take position ids and a custom 4D attention mask? Then the questions of an image are packed into
    # one sequence after one copy of its image prefix (mmdiag.adapters.packed_questions); else the prefix's KV
    # cache is copied per question
    packs_questions: ClassVar[bool] = False
    image_input_keys: ClassVar[tuple[str, ...]] = ("pixel_values",)  # the image inputs (see pixel_rows)
    packed_mask_bytes: int = 256 * 2**20  # the packed 4D masks held at once
    is_encoder_decoder: ClassVar[bool] = False  # T5-style LLM: see mmdiag.adapters.encoder_decoder
    score_rows: int = 64
    generate_rows: int = 32

    def __init__(
        self, model: torch.nn.Module, processor: Any, *, source: str = "<in-memory>", prompt_template: str | None = None
    ) -> None:
        super().__init__(model, processor, source=source)
        if prompt_template is not None:
            self.prompt_template = prompt_template
        self._yes_no_ids: tuple[list[int], list[int]] | None = None
        self._grid: list[tuple[int, int] | None] = []  # token_grid(), once per model (it runs the vision tower)
        self.system_prompt: str | None = None
        self.generation_kwargs: dict[str, Any] = {}
        # score edits the model carries for its lifetime (a planted defect), applied before any intervention's
        self.planted_edits: tuple[attention_edits.ScoreEdit, ...] = ()

    def configure_prompting(
        self,
        system_prompt: str | None = None,
        chat_template: str | None = None,
        gen_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Override how this adapter prompts: a system prompt (a system turn of the chat template, else text before
        the prompt), a chat template (Jinja text; ``"none"`` drops the model's own for ``prompt_template``), and
        generation arguments for free-text answers and captions (yes/no decisions read logits and ignore them)."""
        if chat_template is not None:
            if not self.uses_chat_template:
                raise ConfigError(
                    f"{self.family} models are prompted with plain text ({self.prompt_template!r}), not "
                    "a chat template: drop --chat-template (a --system-prompt still applies)"
                )
            self.processor.chat_template = None if chat_template == "none" else chat_template
        self.system_prompt = system_prompt or None
        self.generation_kwargs = dict(gen_kwargs or {})

    def plain_prompt(self, question: str) -> str:
        """``prompt_template`` with the question, after the system prompt if one is set."""
        text = self.prompt_template.format(question=question)
        return f"{self.system_prompt} {text}" if self.system_prompt else text

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    @abc.abstractmethod
    def image_token_id(self) -> int:
        """Id of the placeholder token the processor expands into image tokens."""

    @abc.abstractmethod
    def format_prompt(self, question: str) -> str:
        """The family's prompt template around one question (what the processor receives as text)."""

    @abc.abstractmethod
    def language_model_config(self) -> Any:
        """The LLM's config (where ``_attn_implementation`` lives)."""

    def prepare(
        self, images: Sequence[Image.Image], questions: Sequence[str], padding_side: str = "right"
    ) -> PreparedBatch:
        prompts = [self.format_prompt(q) for q in questions]
        with self._padding_side(padding_side), _each_image_once(self.processor, images):
            encoded = self.processor(
                images=self.processor_images(images),
                text=prompts,
                return_tensors="pt",
                padding=True,
                padding_side=padding_side,
            )  # some processors default to left padding
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in encoded.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return PreparedBatch(
            inputs=inputs,
            prompts=prompts,
            image_spans=image_token_spans(inputs["input_ids"], self.image_token_id),
            token_grid=self._token_grid_once(),
            padding_side=padding_side,
        )

    def processor_images(self, images: Sequence[Image.Image]) -> list[Any]:
        """``images`` as the processor takes them with one prompt each (a flat list; per-prompt lists for
        processors that read a flat list as one prompt's images)."""
        return list(images)

    def bidirectional_prefix(self, batch: PreparedBatch) -> torch.Tensor | None:
        """[batch, tokens] bool: the positions a prefix-LM attends to bidirectionally (``None``: causal throughout)."""
        return None

    def extend_inputs(self, batch: PreparedBatch, new_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """``batch``'s inputs followed by ``new_tokens`` ([batch, n], generated answer tokens, teacher-forced):
        ids appended, attention mask and any other per-token input (token types) continued as text tokens."""
        inputs = dict(batch.inputs)
        for key, value in batch.inputs.items():
            if key == "input_ids":
                inputs[key] = torch.cat([value, new_tokens.to(value.device)], dim=1)
            elif key == "attention_mask":
                inputs[key] = torch.cat([value, torch.ones_like(new_tokens, device=value.device)], dim=1)
            elif isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape == batch.input_ids.shape:
                inputs[key] = torch.cat(
                    [value, value.new_full((value.shape[0], new_tokens.shape[1]), self.generated_token_type(key))],
                    dim=1,
                )
        return inputs

    def generated_token_type(self, key: str) -> int:
        """The value a per-token input ``key`` (e.g. ``token_type_ids``) takes at generated text tokens."""
        return 0

    def token_grid(self) -> tuple[int, int] | None:
        """(rows, cols) of the LLM's image tokens when they are a patch grid; ``None`` otherwise."""
        return None

    def _token_grid_once(self) -> tuple[int, int] | None:
        """:meth:`token_grid`, computed on the first prompt batch and kept: it depends on the model's and the
        processor's configuration only, and families find it by running the vision tower on a probe image."""
        if not self._grid:
            self._grid.append(self.token_grid())
        return self._grid[0]

    @contextlib.contextmanager
    def _padding_side(self, side: str) -> Iterator[None]:
        previous = self.tokenizer.padding_side
        self.tokenizer.padding_side = side
        try:
            yield
        finally:
            self.tokenizer.padding_side = previous

    @torch.no_grad()
    def forward(self, batch: PreparedBatch, **kwargs: Any) -> Any:
        """One forward pass of the whole model on a prepared batch (under the active attention edits, if any)."""
        with self.edited(batch):
            return self.model(**batch.inputs, **kwargs)

    @contextlib.contextmanager
    def edited(self, batch: PreparedBatch) -> Iterator[None]:
        """Within the block, while an intervention edits attention (:mod:`mmdiag.adapters.attention_edits`), the LLM
        attends through the edited implementation and the edits know this batch's image positions and prompt
        ends; otherwise nothing changes."""
        with self._edited_rows(batch.image_spans, batch.last_positions(), batch.input_ids.shape[1]):
            yield

    def attention_edited(self) -> bool:
        """Whether this model's attention is edited now: by an intervention in scope, or by a planted defect
        (``planted_edits``, :mod:`mmdiag.zoo.defects`)."""
        return bool(self.planted_edits) or attention_edits.editing()

    def _edits_allow_prefix_reuse(self) -> bool:
        """Whether every active attention edit gives a cached image prefix the same keys and values as the full
        prompt would (it edits by absolute position only: :func:`attention_edits.prefix_safe`)."""
        return all(attention_edits.is_prefix_safe(e) for e in (*self.planted_edits, *attention_edits.active()))

    @contextlib.contextmanager
    def _edited_rows(
        self, spans: Sequence[Sequence[tuple[int, int]]], last: torch.Tensor, length: int
    ) -> Iterator[None]:
        """Within the block, under an attention edit, forwards attend through the edited implementation with these
        rows (a cached prefix and its continuation each give their own); otherwise nothing changes."""
        if not self.attention_edited():
            yield
            return
        with (
            attention_edits.score_edits(*self.planted_edits),
            attention_edits.rows_of(spans, last, length),
            attention_edits.edited_implementation(self.language_model_config()),
        ):
            yield

    @torch.no_grad()
    def generate_from(self, batch: PreparedBatch, **settings: Any) -> torch.Tensor:
        """``model.generate`` on a prepared batch, under the active attention edits."""
        with self.edited(batch):
            return self.model.generate(**batch.inputs, **settings)

    @torch.no_grad()
    def image_token_states(
        self, images: Sequence[Image.Image], layers: Sequence[int], prompt: str = "Describe the image."
    ) -> list[StageFeatures]:
        """LLM hidden states at the image-token positions after each of ``layers`` (0 = the embeddings).

        Image tokens precede the prompt, so under causal attention their states do not depend on it.
        """
        batch = self.prepare(images, [prompt] * len(images), padding_side="right")
        hidden = self.llm_hidden_states(self.forward(batch, output_hidden_states=True))
        out = []
        for layer in layers:
            states = hidden[layer]
            rows = [
                torch.cat([states[b, start:end] for start, end in spans]) for b, spans in enumerate(batch.image_spans)
            ]
            out.append(StageFeatures(f"llm_layer_{layer}", torch.stack(rows).float(), batch.token_grid))
        return out

    def llm_hidden_states(self, output: Any) -> Sequence[torch.Tensor]:
        """The per-layer hidden states of the stack that holds the image tokens, from a forward's output."""
        if getattr(output, "hidden_states", None) is not None:
            return output.hidden_states
        return output.language_model_outputs.hidden_states

    @torch.no_grad()
    def answer_scores(self, images: Sequence[Image.Image], questions: Sequence[str]) -> YesNoScores:
        batch = self.prepare(images, questions, padding_side="right")
        return self.scores_from_logits(self.forward(batch).logits, batch)

    @torch.no_grad()
    def answer_scores_per_image(
        self,
        images: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        pixel_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> list[YesNoScores]:
        """Yes/no scores for several questions per image (``pixel_transform`` applied to every image's pixels);
        see :meth:`answer_scores_batch`."""
        return self.answer_scores_batch(
            [ScoreRequest(image, list(qs), pixel_transform) for image, qs in zip(images, questions)]
        )

    @torch.no_grad()
    def answer_scores_batch(self, requests: Sequence[ScoreRequest]) -> list[YesNoScores]:
        """:meth:`scores_batch`, or, under a decision-level contrast (VCD), the decisions from the logits it combines
        with those of each request's counterpart."""
        contrasts = attention_edits.contrasts()
        if not contrasts:
            return self.scores_batch(requests)
        (contrast,) = contrasts[-1:]
        with self._captured_logits() as real:
            self.scores_batch(requests)
        with self._captured_logits() as other:
            self.scores_batch([contrast.counterpart(request) for request in requests])
        logits = contrast.combine(torch.cat(real), torch.cat(other))
        scores = self._yes_no_from_last(logits)
        out, start = [], 0
        for request in requests:
            rows = slice(start, start + len(request.questions))
            out.append(YesNoScores(p_yes=scores.p_yes[rows], p_no=scores.p_no[rows]))
            start = rows.stop
        return out

    @contextlib.contextmanager
    def _captured_logits(self) -> Iterator[list[torch.Tensor]]:
        """Within the block every first-answer-token logit row scored is also kept (float32, CPU), in order."""
        kept: list[torch.Tensor] = []
        previous, self._logit_sink = getattr(self, "_logit_sink", None), kept
        try:
            yield kept
        finally:
            self._logit_sink = previous

    @torch.no_grad()
    def scores_batch(self, requests: Sequence[ScoreRequest]) -> list[YesNoScores]:
        """Yes/no scores of many (image, questions) requests, each image and the shared prompt prefix encoded once.

        Requests are cut into chunks of at most ``score_rows`` questions. In a chunk every question is tokenised
        exactly as :meth:`answer_scores` would; the longest token prefix common to all of them (which holds
        every image token) runs once per image, in one batch, and its KV cache, gathered per question, serves
        every question's remaining tokens in one batch. Decisions and probabilities match :meth:`answer_scores`
        up to floating-point summation order. A request's ``pixel_transform`` edits its preprocessed pixel
        tensor (e.g. VCD's diffusion noise, defined on that tensor).
        """
        out: list[YesNoScores | None] = [None] * len(requests)
        chunk: list[int] = []
        rows = 0
        for index, request in enumerate(requests):
            if not request.questions:
                out[index] = YesNoScores(p_yes=np.zeros(0), p_no=np.zeros(0))
                continue
            if chunk and rows + len(request.questions) > self.score_rows:
                self._score_chunk(requests, chunk, out)
                chunk, rows = [], 0
            chunk.append(index)
            rows += len(request.questions)
        if chunk:
            self._score_chunk(requests, chunk, out)
        return out  # type: ignore[return-value]

    def _score_chunk(self, requests: Sequence[ScoreRequest], chunk: list[int], out: list[YesNoScores | None]) -> None:
        members = [requests[i] for i in chunk]
        if any(r.without_image for r in members):
            if not all(r.without_image for r in members):  # keep each kind in chunks of its own
                for part in (
                    [i for i in chunk if requests[i].without_image],
                    [i for i in chunk if not requests[i].without_image],
                ):
                    self._score_chunk(requests, part, out)
                return
            self._score_without_image(members, chunk, out)
            return
        counts = [len(r.questions) for r in members]
        batch = self.prepare(
            [r.image for r in members for _ in r.questions],
            [q for r in members for q in r.questions],
            padding_side="right",
        )
        first = [int(f) for f in np.concatenate([[0], np.cumsum(counts)[:-1]])]
        if "pixel_values" in batch.inputs:
            pixels, units = batch.inputs["pixel_values"], self.pixel_rows(batch)
            for request, start, count in zip(members, first, counts):
                if request.pixel_transform is not None:  # on the request's own pixels, as for one image alone
                    rows = slice(units[start].start, units[start + count - 1].stop)
                    pixels[rows] = request.pixel_transform(pixels[rows].float()).to(pixels.dtype)
        ids, mask = batch.input_ids, batch.attention_mask
        lengths = mask.sum(dim=1)
        image_end = [max((end for _, end in spans), default=0) for spans in batch.image_spans]
        groups = [(start, count, image_end[start]) for start, count in zip(first, counts)]
        shared = common_prefix(ids, lengths)
        edited = self.attention_edited()
        reusable = self._edits_allow_prefix_reuse() and max(image_end) <= shared and self._fits_windows(lengths)
        if self.image_tokens_read_the_prompt or not self.reuses_image_prefix:
            scores = self.scores_from_logits(self.forward(batch).logits, batch)
        elif edited and not reusable:
            # an edit that depends on the whole prompt (FastV ranks from the last prompt position), or a sliding cache
            # that may have dropped keys (the edits address absolute positions): in full
            scores = self.scores_from_logits(self.forward(batch).logits, batch)
        elif not edited and self.packs_questions and self._fits_windows(lengths) and can_pack(ids, lengths, groups):
            scores = self._score_packed(batch, groups)
        elif shared < max(image_end) or shared < 1:
            scores = self.scores_from_logits(self.forward(batch).logits, batch)
        else:
            prefix_inputs = self.image_inputs_of_rows(batch, first)
            prefix_inputs["input_ids"], prefix_inputs["attention_mask"] = ids[first, :shared], mask[first, :shared]
            last = batch.last_positions()
            with self._edited_rows([batch.image_spans[i] for i in first], last[first], ids.shape[1]):
                cache = self._prefix_cache(prefix_inputs)
            owner = torch.repeat_interleave(torch.arange(len(members)), torch.as_tensor(counts))
            if len(owner) > len(members):
                cache.batch_select_indices(owner.to(ids.device))
            with self._edited_rows(batch.image_spans, last, ids.shape[1]):
                logits = self._continue_from_cache(ids[:, shared:], mask, cache)
            positions = torch.arange(ids.shape[0], device=logits.device)
            scores = self._yes_no_from_last(logits[positions, (lengths - 1 - shared).to(logits.device)])
        for index, start, count in zip(chunk, first, counts):
            rows = slice(start, start + count)
            out[index] = YesNoScores(p_yes=scores.p_yes[rows], p_no=scores.p_no[rows])

    def lm_attention_layer_indices(self) -> list[int]:
        """The decoder-layer index (into :meth:`lm_layers`) of each module of :meth:`lm_attention_modules`: the
        identity, unless a hybrid family's softmax attention sits in some layers only (Qwen3.5's full-attention
        layers between Gated DeltaNet layers). Attention edits and streamed rows use these indices."""
        modules = self.lm_attention_modules()
        return [i if getattr(m, "layer_idx", None) is None else int(m.layer_idx) for i, m in enumerate(modules)]

    def _fits_windows(self, lengths: torch.Tensor) -> bool:
        """Whether every prompt fits inside the smallest sliding window of the LM: transformers applies a given 4D
        mask to every layer type as is, so the packed mask carries no window (Cohere2, Gemma 3, Mistral's config)."""
        from mmdiag.adapters.attention_rows import sliding_window

        windows = [w for w in (sliding_window(m) for m in self.lm_attention_modules()) if w]
        return not windows or int(lengths.max()) <= min(int(w) for w in windows)

    def text_only_reason(self) -> str | None:
        """Why this family cannot answer a prompt without its image (``None``: the language model reads the prompt
        with the image tokens removed)."""
        return None

    @torch.no_grad()
    def text_only_forward(self, batch: PreparedBatch) -> Any:
        """A forward of text inputs alone (no pixels), under the active attention edits; families whose model
        requires pixels run their language model directly."""
        return self.forward(batch)

    def _score_without_image(
        self, members: Sequence[ScoreRequest], chunk: list[int], out: list[YesNoScores | None]
    ) -> None:
        """Yes/no scores of the prompts with every image token removed (tokenised with the image, as the real
        prompts are, then the image spans cut out: PAI's unconditional input ``[bos, before, after]``)."""
        batch = self.prepare(
            [r.image for r in members for _ in r.questions], [q for r in members for q in r.questions], "right"
        )
        text = without_image_tokens(batch, self.tokenizer.pad_token_id or 0)
        scores = self.scores_from_logits(self.text_only_forward(text).logits, text)
        start = 0
        for index, request in zip(chunk, members):
            rows = slice(start, start + len(request.questions))
            out[index] = YesNoScores(p_yes=scores.p_yes[rows], p_no=scores.p_no[rows])
            start = rows.stop

    def pixel_rows(self, batch: PreparedBatch) -> list[slice]:
        """Each prompt row's slice of the image inputs (``image_input_keys``) along their first dimension: one
        entry per row here; families that cut an image into a variable number of tiles override it."""
        return [slice(i, i + 1) for i in range(batch.input_ids.shape[0])]

    def image_inputs_of_rows(self, batch: PreparedBatch, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        """The non-text inputs of ``batch`` restricted to prompt ``rows`` (pixels through :meth:`pixel_rows`)."""
        n_rows = batch.input_ids.shape[0]
        units = self.pixel_rows(batch)
        pixel_index = torch.cat([torch.arange(units[r].start, units[r].stop) for r in rows]).to(batch.input_ids.device)
        row_index = torch.as_tensor(list(rows), device=batch.input_ids.device)
        out = {}
        for key, value in batch.inputs.items():
            if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
                continue
            if key in self.image_input_keys:
                out[key] = value[pixel_index]
            elif value.shape[:1] == (n_rows,):
                out[key] = value[row_index]
            else:
                raise ValueError(
                    f"{self.family}: cannot tell which prompt rows input {key!r} {tuple(value.shape)} "
                    "belongs to; list it in image_input_keys or override pixel_rows"
                )
        return out

    def _score_packed(self, batch: PreparedBatch, groups: list[tuple[int, int, int]]) -> YesNoScores:
        """Yes/no scores with each image's questions packed into one sequence after its image + prompt prefix
        (see :mod:`mmdiag.adapters.packed_questions`); images in sub-batches whose 4D masks fit
        ``packed_mask_bytes``."""
        ids, lengths = batch.input_ids, batch.attention_mask.sum(dim=1)
        longest = max(int(lengths[f : f + c].sum()) for f, c, _ in groups)  # a bound on a packed row's length
        step = max(1, self.packed_mask_bytes // (longest * longest * torch.finfo(self.dtype).bits // 8))
        p_yes, p_no = [], []
        for start in range(0, len(groups), step):
            part = groups[start : start + step]
            packed = pack_questions(ids, lengths, part, self.tokenizer.pad_token_id or 0, self.dtype)
            keep = torch.unique(packed.read)
            logits = self.model(
                input_ids=packed.input_ids,
                attention_mask=packed.attention_mask,
                position_ids=packed.position_ids,
                logits_to_keep=keep,
                **self.image_inputs_of_rows(batch, [f for f, _, _ in part]),
            ).logits
            scores = self._yes_no_from_last(logits[packed.row, torch.searchsorted(keep, packed.read)])
            p_yes.append(scores.p_yes)
            p_no.append(scores.p_no)
        return YesNoScores(p_yes=np.concatenate(p_yes), p_no=np.concatenate(p_no))

    def _prefix_cache(self, inputs: dict[str, torch.Tensor]) -> Any:
        """The KV cache after running the shared prefix (with its image)."""
        return self.model(**inputs, use_cache=True).cache

    def _continue_from_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, cache: Any) -> torch.Tensor:
        """Logits of ``input_ids`` that follow the cached prefix (``attention_mask`` covers prefix + these)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True).logits

    def first_answer_logits(self, batch: PreparedBatch) -> torch.Tensor:
        """[batch, vocab]: the logits of each row's first answer token (at its last prompt token)."""
        logits = self.forward(batch).logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, batch.last_positions().to(logits.device)]

    def yes_no(self, first_logits: torch.Tensor) -> YesNoScores:
        """P(yes), P(no) from [batch, vocab] first-answer-token logits."""
        return self._yes_no_from_last(first_logits)

    def scores_from_logits(self, logits: torch.Tensor, batch: PreparedBatch) -> YesNoScores:
        """P(yes), P(no) from the logits at each row's last prompt token."""
        rows = torch.arange(logits.shape[0], device=logits.device)
        return self._yes_no_from_last(logits[rows, batch.last_positions().to(logits.device)])

    def _yes_no_from_last(self, last: torch.Tensor) -> YesNoScores:
        sink = getattr(self, "_logit_sink", None)
        if sink is not None:
            sink.append(last.detach().float().cpu())
        if self._yes_no_ids is None:
            self._yes_no_ids = yes_no_token_ids(self.tokenizer)
        yes_ids, no_ids = self._yes_no_ids
        probs = torch.softmax(last.float(), dim=-1)
        return YesNoScores(
            p_yes=probs[:, yes_ids].sum(-1).cpu().numpy().astype(np.float64),
            p_no=probs[:, no_ids].sum(-1).cpu().numpy().astype(np.float64),
        )

    @torch.no_grad()
    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int = 20) -> list[str]:
        """Free-text answers, ``generate_rows`` prompts at a time (left padding: every row's prompt ends where
        generation starts; a row that writes EOS stops there): greedy, unless ``generation_kwargs`` (--gen-kwargs)
        say otherwise; its ``max_new_tokens`` replaces the caller's."""
        answers: list[str] = []
        for start in range(0, len(prompts), self.generate_rows):
            rows = slice(start, start + self.generate_rows)
            batch = self.prepare(list(images[rows]), list(prompts[rows]), padding_side="left")
            settings = {"max_new_tokens": max_new_tokens, "do_sample": False, **self.generation_kwargs}
            out = self.generate_from(batch, pad_token_id=self.tokenizer.pad_token_id, **settings)
            new_tokens = out[:, batch.input_ids.shape[1] :]
            answers += [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]
        return answers

    @contextlib.contextmanager
    def eager_attention(self) -> Iterator[None]:
        """Within the block the LLM computes explicit attention probabilities (its modules return them)."""
        config = self.language_model_config()
        previous = config._attn_implementation
        if previous == attention_edits.IMPLEMENTATION:  # the edited implementation is eager and returns its weights
            yield
            return
        config._attn_implementation = "eager"
        try:
            yield
        finally:
            config._attn_implementation = previous
