"""Visual hallucination under counterfactual images (POPE, counterfactual pairs, blind baselines, CHAIR).

Per scene (see :mod:`mmdiag.probes.hallucination.plan` for what is asked):
- **POPE** per split (random / popular / adversarial), yes = positive class; decisions from first-token
  logits (yes iff P(yes) > P(no)) and, with ``free_text``, from short greedy answers parsed under every
  named rule (official ``pope``, ``vcd``, ``lmms-eval``, ``vlmevalkit``); calibration of P(yes) (ECE, bins).
- **Adversarial gap**: false-yes rate on co-occurring absent objects minus on random absent objects.
- **Counterfactual pairs** (remove / swap colour / mirror): *evidence sensitivity* = share of answers that
  change when the correct answer changes; *prior persistence* = share of yes that survive the edit;
  McNemar's exact test on correctness before vs after; bootstrap CIs clustered by scene.
- **Blind baselines**: the same POPE questions on a blank, mean-colour, Gaussian-noise and VCD-noised image;
  *multimodal gain* = accuracy with the image - accuracy blind.
- **CHAIR** on greedy captions ("Describe the image.") against the scene's object list.
Yes/no questions about one image share one encoded image + prompt prefix (KV cache reuse); a batch of scenes
is scored, answered and captioned in batched calls.
Dual encoders (CLIP) are scored pairwise by image-text similarity on the same counterfactuals.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

import numpy as np

from mmdiag.adapters.base import DUAL_ENCODER, GENERATIVE, Adapter
from mmdiag.adapters.generative import ScoreRequest
from mmdiag.blind_inputs import blank, gaussian_noise, mean_colour, vcd_noise
from mmdiag.metrics.pope_sampling import CAPTION_PROMPT, POPE_SPLITS, ObjectStatistics
from mmdiag.probes.base import ExampleOutput, Probe, ProbeExample, ProbeResult
from mmdiag.probes.hallucination.metrics import dual_encoder_result, generative_result
from mmdiag.probes.hallucination.plan import (
    BLINDS,
    counterfactual_items,
    pope_items,
    relation_items,
)
from mmdiag.probes.hallucination.result import CAPTION, HallucinationResult  # noqa: F401 - public here
from mmdiag.probes.hallucination.specs import METRIC_SPECS
from mmdiag.probes.sections import Finding, ReportSection
from mmdiag.sources.contract import DataRequest, Dataset


def image_seed(seed: int, example_id: str, kind: str) -> int:
    """A seed of its own for each image and noise kind (stable across runs, processes and batchings)."""
    digest = hashlib.sha256(f"{seed}:{example_id}:{kind}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class HallucinationProbe(Probe):
    """Does the model answer from the image, or from its language prior?"""

    name = "hallucination"
    kinds = (GENERATIVE, DUAL_ENCODER)
    metric_specs = METRIC_SPECS  # every headline metric, defined once
    needs_weights = False  # yes/no answers, free text and captions: an audit from answers runs it

    @classmethod
    def answers_only_result(cls, result: dict[str, Any]) -> dict[str, Any]:
        """Also: no reliability diagram (decisions have no confidence), and no VCD-noise blind row (that noise edits
        the model's pixel tensor, which cannot be exported)."""
        result = super().answers_only_result(result)
        blind = {k: v for k, v in result.get("blind_pope", {}).items() if k != "vcd_noise"}
        note = "no VCD-noise blind baseline: that noise edits the model's pixel tensor, which cannot be exported"
        return {**result, "reliability": [], "blind_pope": blind, "notes": [*result.get("notes", []), note]}

    def __init__(
        self,
        resolution: int = 64,
        seed: int = 0,
        max_questions: int = 3,
        free_text: bool = True,
        captions: bool = True,
        caption_tokens: int = 24,
        vcd_t: int = 500,
        cooccurrence: dict | None = None,
    ) -> None:
        self.resolution = resolution
        self.seed = seed
        self.max_questions = max_questions
        self.free_text = free_text
        self.captions = captions
        self.caption_tokens = caption_tokens
        self.vcd_t = vcd_t
        # scenes drawn with a co-occurrence prior (anchor, partner, p, anchor_rate) so that a learned prior is
        # exercised: removing the partner, asking about the absent partner (the suite's own scenes; photos have theirs)
        # (checked by the data source before the run starts: SceneSource.check)
        self.cooccurrence = dict(cooccurrence) if cooccurrence else None

    def data_request(self) -> DataRequest | None:
        """The suite's scenes, or scenes of the hallucination probe's own drawn with ``cooccurrence``."""
        if self.cooccurrence is None:
            return None
        return DataRequest(cooccurrence=tuple(sorted(self.cooccurrence.items())))

    def unusable_data(self, source: Any) -> str | None:
        if not getattr(source, "presence", True):
            return (
                f"the {source.name} data source does not say which objects are absent, and POPE, the counterfactual "
                "pairs and CHAIR all need it (use coco:DIR, pope:FILE or the synthetic scenes)"
            )
        return None

    def examples(self, data: Dataset, adapter: Adapter) -> list[ProbeExample]:
        stats = ObjectStatistics.of(data)
        source = data.source
        self._vocabulary = source.vocabulary()
        colours = source.attribute_values("colour")
        out = []
        # CHAIR needs every object in the image annotated (a POPE file only lists the ones it asks about)
        chair_rules = source.caption_rules if source.complete_objects else None
        for index, scene in enumerate(data):
            if not scene.object_names and not getattr(scene, "pope_questions", None):
                continue
            out.append(
                ProbeExample(
                    f"{scene.example_id}/pope",
                    scene,
                    {
                        "pope": pope_items(scene, index, stats, self.seed, self.max_questions, self._vocabulary),
                        "counterfactuals": counterfactual_items(scene, index, self.seed, stats, colours, source.edits),
                        "relations": relation_items(scene, index, self.seed) if adapter.kind == GENERATIVE else [],
                        "caption_truth": source.caption_truth(scene) if chair_rules else None,
                        "caption_rules": chair_rules,
                        "source": source.name,
                    },
                )
            )
        return out

    def run_example(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        return self.run_batch(adapter, [example])[0]

    def run_batch(self, adapter: Adapter, examples: list[ProbeExample]) -> list[ExampleOutput]:
        if adapter.kind == DUAL_ENCODER:
            return [self._similarities(adapter, ex) for ex in examples]
        return self._generative(adapter, examples)

    # -- generative models ---------------------------------------------------------------------
    def _generative(self, adapter: Any, examples: list[ProbeExample]) -> list[ExampleOutput]:
        """Every yes/no question of the batch (real, edited and blind images) in one batched scoring call, every
        free-text answer in one batched generation and every caption in another."""
        requests: list[ScoreRequest] = []
        plans = []
        for example in examples:
            image = example.example.image(self.resolution)
            pope, cfs = example.inputs["pope"], example.inputs["counterfactuals"]
            questions = [item.text for item in pope]
            noise_seeds = {kind: image_seed(self.seed, example.example_id, kind) for kind in ("noise", "vcd_noise")}
            first = len(requests)
            requests.append(ScoreRequest(image, questions + [cf.question for cf in cfs]))
            requests += [ScoreRequest(cf.scene_after.image(self.resolution), [cf.question]) for cf in cfs]
            blind_images = {
                "blank": blank(image.size),
                "mean_colour": mean_colour(image),
                "noise": gaussian_noise(image.size, seed=noise_seeds["noise"]),
            }
            requests += [ScoreRequest(img, questions) for img in blind_images.values()]
            requests.append(
                ScoreRequest(image, questions, partial(vcd_noise, t=self.vcd_t, seed=noise_seeds["vcd_noise"]))
            )
            relations = example.inputs.get("relations", [])
            if relations:
                requests.append(ScoreRequest(image, [item.question for item in relations]))
            plans.append((image, pope, cfs, questions, noise_seeds, first, list(blind_images)))
        scores = adapter.answer_scores_batch(requests)
        outputs = []
        for example, (_image, pope, cfs, questions, noise_seeds, first, blind_kinds) in zip(examples, plans):
            real, after = scores[first], scores[first + 1 : first + 1 + len(cfs)]
            blind = dict(
                zip([*blind_kinds, "vcd_noise"], scores[first + 1 + len(cfs) : first + 2 + len(cfs) + len(blind_kinds)])
            )
            k = len(questions)
            relations = example.inputs.get("relations", [])
            rel_scores = scores[first + 2 + len(cfs) + len(blind_kinds)] if relations else None
            outputs.append(
                {
                    "questions": questions,
                    "prompts": [adapter.format_prompt(q) for q in questions],
                    "noise_seeds": noise_seeds,
                    "objects": [i.object for i in pope],
                    "labels": [i.label for i in pope],
                    "splits": [list(i.splits) for i in pope],
                    "p_yes": real.p_yes[:k].tolist(),
                    "p_no": real.p_no[:k].tolist(),
                    "blind": {
                        kind: {"p_yes": blind[kind].p_yes.tolist(), "p_no": blind[kind].p_no.tolist()}
                        for kind in BLINDS
                    },
                    "counterfactuals": [
                        {
                            "edit": cf.edit,
                            "question": cf.question,
                            "prompt": adapter.format_prompt(cf.question),
                            "before": cf.before,
                            "after": cf.after,
                            "scene_after": cf.scene_after.to_dict(),
                            "p_yes_before": float(real.p_yes[k + j]),
                            "p_no_before": float(real.p_no[k + j]),
                            "p_yes_after": float(cf_scores.p_yes[0]),
                            "p_no_after": float(cf_scores.p_no[0]),
                        }
                        for j, (cf, cf_scores) in enumerate(zip(cfs, after))
                    ],
                    **(
                        {
                            "relations": {
                                "questions": [i.question for i in relations],
                                "labels": [i.label for i in relations],
                                "axes": [i.axis for i in relations],
                                "p_yes": rel_scores.p_yes.tolist(),
                                "p_no": rel_scores.p_no.tolist(),
                            }
                        }
                        if relations
                        else {}
                    ),
                }
            )
        if self.free_text:
            answers = iter(
                adapter.generate(
                    [plan[0] for plan in plans for _ in plan[3]],
                    [q for plan in plans for q in plan[3]],
                    max_new_tokens=4,
                )
            )
            for values, plan in zip(outputs, plans):
                values["answers"] = [next(answers) for _ in plan[3]]
        captioned = [i for i, example in enumerate(examples) if example.inputs.get("caption_rules", "vocabulary")]
        if self.captions and captioned:
            captions = adapter.generate(
                [plans[i][0] for i in captioned], [CAPTION_PROMPT] * len(captioned), max_new_tokens=self.caption_tokens
            )
            for i, caption in zip(captioned, captions):
                inputs = examples[i].inputs
                truth = inputs.get("caption_truth")
                outputs[i].update(
                    caption=caption,
                    caption_prompt=adapter.format_prompt(CAPTION_PROMPT),
                    caption_truth=truth if truth is not None else examples[i].example.object_names,
                    caption_rules=inputs.get("caption_rules", "vocabulary"),
                )
        for values, example in zip(outputs, examples):
            if "caption" not in values:
                values["caption_skipped"] = (
                    "captions off (captions: false)"
                    if not self.captions
                    else f"the {example.inputs.get('source', 'data')} source lists only the objects its "
                    "questions ask about, so a caption's other objects cannot be checked"
                )
        return [ExampleOutput(values) for values in outputs]

    # -- dual encoders ---------------------------------------------------------------------------
    def _similarities(self, adapter: Adapter, example: ProbeExample) -> ExampleOutput:
        """Present vs absent captions on the image and a blind one; the swapped object's old vs new name."""
        image = example.example.image(self.resolution)
        pope = example.inputs["pope"]
        present = [i.object for i in pope if i.label == "yes"]
        absent = [i.object for i in pope if i.label == "no" and "random" in i.splits][: len(present)]
        present = present[: len(absent)]
        texts = [CAPTION.format(name=n) for n in present + absent]
        sims = adapter.similarity([image, mean_colour(image)], texts).float().cpu().numpy()
        k = len(present)
        values: dict[str, Any] = {
            "captions": texts,
            "sim_present": sims[0, :k].tolist(),
            "sim_absent": sims[0, k:].tolist(),
            "blind_sim_present": sims[1, :k].tolist(),
            "blind_sim_absent": sims[1, k:].tolist(),
        }
        swap = next((cf for cf in example.inputs["counterfactuals"] if cf.edit == "swap"), None)
        if swap is not None:
            old = swap.subject
            new = next(o.name for o in swap.scene_after.objects if o.name not in example.example.object_names)
            pair = (
                adapter.similarity(
                    [image, swap.scene_after.image(self.resolution)],
                    [CAPTION.format(name=old), CAPTION.format(name=new)],
                )
                .float()
                .cpu()
                .numpy()
            )
            values["swap"] = {
                "old": old,
                "new": new,
                "scene_after": swap.scene_after.to_dict(),
                "before": pair[0].tolist(),
                "after": pair[1].tolist(),
            }
        return ExampleOutput(values)

    @classmethod
    def report_section(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> ReportSection | None:
        from mmdiag.probes.hallucination.report import section

        return section(result, records)

    @classmethod
    def finding(cls, result: dict[str, Any], records: list[dict[str, Any]]) -> Finding | None:
        from mmdiag.probes.hallucination.finding import finding

        return finding(result, records)

    @classmethod
    def paired_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Per scene, each headline metric in the form that adds up to it: ``(numerator, denominator)`` for a share
        over questions or pairs (the headline is their ratio of sums, so the paired difference over the same
        scenes equals the difference of the headlines), a float for a per-scene mean (adversarial gap)."""
        if "labels" not in values:
            real = np.array(values["sim_present"]) > np.array(values["sim_absent"])
            blind = np.array(values["blind_sim_present"]) > np.array(values["blind_sim_absent"])
            out: dict[str, Any] = {
                "pair_accuracy": (float(real.sum()), float(len(real))),
                "multimodal_gain": (float(real.sum() - blind.sum()), float(len(real))),
            }
            if "swap" in values:
                s = values["swap"]
                out["evidence_sensitivity"] = (
                    float((s["before"][0] > s["before"][1]) != (s["after"][0] > s["after"][1])),
                    1.0,
                )
            return out
        labels, splits = values["labels"], values["splits"]
        says = np.array(values["p_yes"]) > np.array(values["p_no"])
        truth = np.array([lab == "yes" for lab in labels])
        blind = np.array(values["blind"]["mean_colour"]["p_yes"]) > np.array(values["blind"]["mean_colour"]["p_no"])

        def share(mask: np.ndarray, hits: np.ndarray) -> tuple[float, float]:
            return float(hits[mask].sum()), float(mask.sum())

        random_q = np.array(["random" in sp for sp in splits], dtype=bool)
        right = (says == truth).astype(float)
        out = {
            "accuracy": share(random_q, right),
            "yes_ratio": share(random_q, says.astype(float)),
            "multimodal_gain": share(random_q, right - (blind == truth).astype(float)),
            "false_yes_rate": share(~truth, says.astype(float)),
        }
        for split in ("popular", "adversarial"):
            out[f"accuracy_{split}"] = share(np.array([split in sp for sp in splits], dtype=bool), right)
        false_yes = {
            split: [sy for sy, lab, sp in zip(says, labels, splits) if lab == "no" and split in sp]
            for split in ("adversarial", "random")
        }
        # undefined (NaN) where the scene has no such question; compare skips those
        out["adversarial_gap"] = (
            float(np.mean(false_yes["adversarial"]) - np.mean(false_yes["random"]))
            if false_yes["adversarial"] and false_yes["random"]
            else float("nan")
        )
        cfs = values.get("counterfactuals", [])
        for edit, metric in (("remove", "evidence_sensitivity"), ("mirror", "mirror_sensitivity")):
            changed = [
                float((cf["p_yes_before"] > cf["p_no_before"]) != (cf["p_yes_after"] > cf["p_no_after"]))
                for cf in cfs
                if cf["edit"] == edit
            ]
            out[metric] = (float(sum(changed)), float(len(changed)))
        mirror_right = [
            float((cf[f"p_yes_{when}"] > cf[f"p_no_{when}"]) == (cf[when] == "yes"))
            for cf in cfs
            if cf["edit"] == "mirror"
            for when in ("before", "after")
        ]
        out["mirror_accuracy"] = (float(sum(mirror_right)), float(len(mirror_right)))
        survived = [
            float(cf["p_yes_after"] > cf["p_no_after"])
            for cf in cfs
            if cf["edit"] == "remove_cooccurring" and cf["p_yes_before"] > cf["p_no_before"]
        ]
        out["prior_persistence_cooccurring"] = (float(sum(survived)), float(len(survived)))
        rel = values.get("relations") or {"labels": [], "axes": [], "p_yes": [], "p_no": []}
        for axis in ("horizontal", "vertical"):
            hits = [
                float((py > pn) == (lab == "yes"))
                for lab, ax, py, pn in zip(rel["labels"], rel["axes"], rel["p_yes"], rel["p_no"])
                if ax == axis
            ]
            out[f"relation_accuracy_{axis}"] = (float(sum(hits)), float(len(hits)))
        return out

    def aggregate(
        self, adapter: Adapter, records: list[dict[str, Any]], arrays: list[dict[str, np.ndarray]]
    ) -> ProbeResult:
        if adapter.kind == DUAL_ENCODER:
            return dual_encoder_result(self.name, records, self.seed)
        return generative_result(self.name, records, self.seed, POPE_SPLITS, getattr(self, "_vocabulary", None))
