"""Interventions (knockout, VCD): validated before a model loads, scoped, equal to the peers' arithmetic on their
golden files, with known answers on real models, re-measured by the same diagnostics and decomposed by compare."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import QUICK

from mmdiag import api
from mmdiag.adapters import attention_edits, load_adapter
from mmdiag.adapters.attention_rows import AttentionRows
from mmdiag.blind_inputs import vcd_alpha_bar
from mmdiag.cli import main
from mmdiag.errors import ConfigError
from mmdiag.interventions import InterventionRegistry, create_all
from mmdiag.interventions.knockout import Knockout
from mmdiag.interventions.pai import amplify, pai_logits
from mmdiag.interventions.vcd import vcd_logits
from mmdiag.run.compare import compare_runs
from mmdiag.run.mitigation import decompose_split
from mmdiag.run.suites import load_suite
from mmdiag.zoo.build import SHIPPED_DIR

GOLDEN = json.loads((Path(__file__).parent / "golden" / "interventions" / "goldens.json").read_text())
REFERENCE = SHIPPED_DIR / "ref-llava-mlp"


def test_specs_are_validated_and_spelled_out_before_any_model_loads(tmp_path, capsys):
    assert [iv.spec() for iv in create_all(["vcd", "knockout:layers=1-2,from=last"])] == [
        "vcd:alpha=1,beta=0.1,t=500",
        "knockout:layers=1-2,from=last",
    ]
    with pytest.raises(ConfigError, match="did you mean vcd"):
        InterventionRegistry().create("vdc")
    with pytest.raises(ConfigError, match="beta=5 is not valid: must lie in"):
        create_all(["vcd:beta=5"])
    with pytest.raises(ConfigError, match="has no parameter gamma"):
        create_all(["vcd:gamma=1"])
    with pytest.raises(ConfigError, match="twice"):
        create_all(["vcd", "vcd:alpha=2"])
    assert main(["audit", "--intervene", "knockout:layers=3-1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmdiag: error: intervention 'knockout': layers=3-1 is not valid") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before the run folder is touched


def test_vcd_equals_the_peers_code_on_its_golden_file():
    golden = GOLDEN["vcd"]
    logits, logits_cd = torch.tensor(golden["logits"]), torch.tensor(golden["logits_cd"])
    for case in golden["cases"]:
        ours = vcd_logits(logits, logits_cd, case["alpha"], case["beta"])
        theirs = torch.tensor(case["cd_logits"])
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
        finite = torch.isfinite(theirs)
        assert torch.allclose(ours[finite], theirs[finite], atol=1e-5)
        assert torch.allclose(torch.softmax(ours, -1), torch.tensor(case["probs"]), atol=1e-6)
    noise = GOLDEN["noise"]
    pixels, eps = torch.tensor(noise["pixels"]), torch.tensor(noise["noise"])
    for t, noised in noise["noised"].items():
        alpha_bar = vcd_alpha_bar(int(t))
        ours = alpha_bar**0.5 * pixels + (1 - alpha_bar) ** 0.5 * eps
        assert torch.allclose(ours, torch.tensor(noised), atol=1e-5), t


def test_knockout_equals_the_peers_mask_on_its_golden_file():
    golden = GOLDEN["knockout"]
    scores = torch.tensor(golden["scores"])  # [1, heads, 10, 10], one layer, before the causal mask
    causal = torch.ones(10, 10, dtype=torch.bool).tril()
    masked = scores.masked_fill(~causal, torch.finfo(torch.float32).min)
    start, end = golden["image"]
    image = torch.zeros(1, 10, dtype=torch.bool)
    image[0, start:end] = True
    rows = attention_edits.Rows(image, torch.tensor([9]))
    edit = Knockout(layers="0")._edit({0})
    ours = torch.softmax(edit(0, masked, torch.arange(10)[None], rows), dim=-1)
    assert torch.allclose(ours, torch.tensor(golden["probs"]), atol=1e-6)


def test_pai_equals_the_peers_code_on_its_golden_file():
    golden = GOLDEN["pai"]
    scores = torch.tensor(golden["scores"])  # [1, heads, 12, 12], one layer's scaled scores before the mask
    causal = torch.ones(12, 12, dtype=torch.bool).tril()
    masked = scores.masked_fill(~causal, torch.finfo(torch.float32).min)  # eager's additive mask, as LLaMA's
    start, end = golden["image"]
    image = torch.zeros(1, 12, dtype=torch.bool)
    image[0, start:end] = True
    rows = attention_edits.Rows(image, torch.tensor([11]))  # the last row is the last prompt position
    for alpha, probs in golden["probs"].items():
        ours = torch.softmax(amplify(masked, torch.arange(12)[None], rows, float(alpha)), dim=-1)
        assert torch.allclose(ours, torch.tensor(probs), atol=1e-6), alpha
        assert torch.equal(ours[:, :, :-1], torch.softmax(masked, dim=-1)[:, :, :-1])  # only the last row changes
    logits, logits_u = torch.tensor(golden["logits"]), torch.tensor(golden["logits_u"])
    for gamma, theirs in golden["cfg"].items():
        ours, theirs = pai_logits(logits, logits_u, float(gamma)), torch.tensor(theirs)
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), gamma
        assert torch.allclose(ours[torch.isfinite(ours)], theirs[torch.isfinite(theirs)], atol=1e-5), gamma


def test_two_decision_contrasts_are_refused_and_pai_says_where_it_cannot_apply(adapters):
    with pytest.raises(ConfigError, match="vcd and pai both decide from contrasted logits"):
        create_all(["vcd", "pai"])
    assert [iv.spec() for iv in create_all(["vcd", "pai:gamma=1"])][1] == "pai:alpha=0.2,gamma=1,start=2,end=last"
    (pai,) = create_all(["pai"])
    assert "not supported yet" in pai.unsupported_reason(adapters["blip2_t5"])
    (early,) = create_all(["pai:start=0"])  # the tiny checkpoints have 2 LLM layers: PAI's layer 2 is past them
    assert early.unsupported_reason(adapters["blip2"]) is None  # its language model reads the prompt alone
    assert "layers 2-last do not fit the model's 2 LLM layers" in pai.unsupported_reason(adapters["llava"])


@pytest.fixture(scope="module")
def reference():
    if not (REFERENCE / "config.json").is_file():
        pytest.skip("the shipped reference model is not installed")
    return load_adapter(str(REFERENCE))


@pytest.mark.parametrize("spec", ["knockout:layers=1-2,from=last", "fastv:k=2", "pai:start=1"])
def test_the_edited_attention_is_the_models_own_and_streamed_rows_follow_every_edit(reference, spec):
    """With an edit that changes nothing the edited implementation gives SDPA's logits; under every attention edit
    the attention probe's streamed rows equal the attention the edited forward computed (eager, output_attentions)."""
    from mmdiag.scenes.generate import generate_scenes
    from mmdiag.scenes.render import render

    images = [render(s, 64) for s in generate_scenes(2, seed=3)]
    batch = reference.prepare(images, ["Is there a red circle in the image?"] * 2, padding_side="right")
    plain = reference.forward(batch).logits
    with attention_edits.score_edits(lambda layer, scores, queries, rows: scores):
        same = reference.forward(batch).logits
    assert torch.allclose(plain, same, atol=1e-4)
    (intervention,) = create_all([spec])
    positions = batch.last_positions()[:, None]
    streamed: dict[int, torch.Tensor] = {}
    recorder = AttentionRows(
        reference.lm_attention_modules(), positions, batch.attention_mask, lambda i, p: streamed.__setitem__(i, p)
    )
    with intervention.applied(reference), recorder.active():
        out = reference.forward(batch, output_attentions=True)
    rows = torch.arange(2)
    span = batch.image_spans[0][0]
    with reference.eager_attention():
        plain_attention = reference.forward(batch, output_attentions=True).attentions
    for layer, attention in enumerate(out.attentions):
        eager = attention[rows, :, batch.last_positions()].float()  # [batch, heads, keys]
        assert torch.allclose(streamed[layer][:, :, 0], eager, atol=1e-5), layer
        image_mass = eager[:, :, span[0] : span[1]].sum(-1)
        if spec.startswith("knockout"):
            assert (image_mass.abs().max() < 1e-6) == (layer in (1, 2)), layer  # blocked exactly where asked
        elif spec.startswith("fastv") and layer >= 2:  # half the image keys masked from layer k on
            kept = (eager[:, :, span[0] : span[1]] > 0).any(dim=1).sum(-1)
            assert kept.tolist() == [round(0.5 * (span[1] - span[0]))] * 2, layer
        elif spec.startswith("pai"):  # amplified from layer 1 on, untouched before
            before = plain_attention[layer][rows, :, batch.last_positions()].float()[:, :, span[0] : span[1]].sum(-1)
            assert (not torch.allclose(image_mass, before, atol=1e-6)) == (layer >= 1), layer


def test_edits_by_position_reuse_the_image_prefix_and_score_as_the_full_prompt(reference, monkeypatch):
    """Knockout and PAI edit by absolute position only: the questions of an image continue from one cached prefix
    computed under the edit, and score as each full prompt does; FastV ranks from the last prompt position, so its
    questions run in full."""
    from mmdiag.adapters.generative import ScoreRequest
    from mmdiag.scenes.generate import generate_scenes
    from mmdiag.scenes.render import render

    questions = ["Is there a red circle in the image?", "Is the red circle left of the blue square?"]
    requests = [ScoreRequest(render(s, 64), questions) for s in generate_scenes(3, seed=8)]
    calls = []
    original = reference._prefix_cache
    monkeypatch.setattr(reference, "_prefix_cache", lambda inputs: (calls.append(1), original(inputs))[1])
    for spec, reused in (("knockout", True), ("knockout:layers=1-2,from=last", True), ("pai:start=1", True),
                         ("fastv", False)):  # fmt: skip
        (intervention,) = create_all([spec])
        calls.clear()
        with intervention.applied(reference):
            batched = reference.scores_batch(requests)
            alone = [reference.answer_scores([r.image] * 2, r.questions) for r in requests]
        assert bool(calls) == reused, spec
        for a, b in zip(batched, alone):
            np.testing.assert_allclose(a.p_yes, b.p_yes, atol=1e-5, err_msg=spec)
            np.testing.assert_allclose(a.p_no, b.p_no, atol=1e-5, err_msg=spec)


def _light_release(n: int):
    config = load_suite(Path(__file__).resolve().parent.parent / "probes" / "release.yaml").config
    params = {
        "attention": {"generate_tokens": 0, "untrained_baseline": False},
        "hallucination": {"free_text": False, "captions": False},
    }
    keep = ("attention", "hallucination")
    return replace(
        config,
        probes=keep,
        n_examples=n,
        probe_params=params,
        gates=tuple(g for g in config.gates if g.split(".")[0] in keep),
        kind_gates={k: tuple(g for g in v if g.split(".")[0] in keep) for k, v in config.kind_gates.items()},
    )


@pytest.fixture(scope="module")
def runs(reference, tmp_path_factory):
    """The reference model on 16 scenes of the release suite: plainly, with a knockout of no layer, of every layer,
    and under VCD."""
    root = tmp_path_factory.mktemp("interventions")
    out = {}
    for name, interventions in {
        "base": (),
        "none": ("knockout:layers=none",),
        "all": ("knockout:layers=all",),
        "vcd": ("vcd",),
    }.items():
        config = replace(_light_release(16), interventions=interventions)
        api.audit(str(REFERENCE), root / name, config, progress=False)
        out[name] = root / name
    return out


@pytest.fixture(scope="module")
def starved_runs(reference, tmp_path_factory):
    """The reference model clean and with planted attention starvation (image keys' scores lowered by 3 in every
    LLM layer), each plainly and under PAI with its defaults, on 32 scenes of the release suite."""
    root = tmp_path_factory.mktemp("starved")
    for name, plant, interventions in (
        ("clean", None, ()),
        ("clean-pai", None, ("pai",)),
        ("starved", "attention-starved", ()),
        ("starved-pai", "attention-starved", ("pai",)),
    ):
        config = replace(_light_release(32), interventions=interventions)
        api.audit(str(REFERENCE), root / name, config, progress=False, plant=plant)
    return root


def test_pai_remedies_a_planted_attention_starved_model_and_barely_moves_the_clean_one(starved_runs):
    starved = compare_runs([starved_runs / "starved", starved_runs / "starved-pai"]).mitigations[0]
    clean = compare_runs([starved_runs / "clean", starved_runs / "clean-pai"]).mitigations[0]
    assert starved.interventions == ["pai:alpha=0.2,gamma=1.1,start=2,end=last"]
    for split in starved.splits:  # accuracy regained, with a CI that excludes zero, on every split
        assert split.accuracy.ci_low > 0, split
    for split in clean.splits:  # the clean model: no detectable change in accuracy
        assert split.accuracy.ci_low <= 0 <= split.accuracy.ci_high and abs(split.accuracy.value) <= 0.03, split
    # the starved model reads less of the image: lower accuracy than the clean one, and PAI's attention shift is seen
    results = {k: json.loads((starved_runs / k / "results.json").read_text()) for k in ("clean", "starved")}
    accuracy = {k: r["probes"]["hallucination"]["metrics"]["accuracy"]["value"] for k, r in results.items()}
    assert accuracy["starved"] < accuracy["clean"] - 0.05
    mass = {k: r["probes"]["attention"]["metrics"]["mean_image_mass"]["value"] for k, r in results.items()}
    assert mass["starved"] < mass["clean"]


def _values(run: Path) -> list:
    return [
        (r["probe"], r["example_id"], r["values"])
        for r in map(json.loads, (run / "examples.jsonl").read_text().splitlines())
    ]


def test_knockout_of_no_layer_is_bit_identical_to_no_intervention(runs):
    assert _values(runs["none"]) == _values(runs["base"])
    base, none = (json.loads((runs[k] / "results.json").read_text()) for k in ("base", "none"))
    assert none["probes"] == base["probes"]
    assert none["metadata"]["config"]["interventions"] == ["knockout:layers=none,from=question"]
    assert none["metadata"]["config_hash"] != base["metadata"]["config_hash"]  # a different run for resume


def test_knockout_of_every_layer_makes_the_model_image_blind(runs):
    results = json.loads((runs["all"] / "results.json").read_text())
    gain = results["probes"]["hallucination"]["metrics"]["multimodal_gain"]
    assert gain["ci_low"] <= 0 <= gain["ci_high"]
    assert results["probes"]["attention"]["metrics"]["mean_image_mass"]["value"] == 0.0
    assert results["verdict"] == "fail"  # the release gates catch the blinded model
    assert any(note.startswith("intervention knockout:layers=all") for note in results["notes"])
    base = json.loads((runs["base"] / "results.json").read_text())
    assert base["probes"]["hallucination"]["metrics"]["multimodal_gain"]["ci_low"] > 0.3


def test_compare_pairs_a_mitigated_run_with_its_baseline_and_decomposes_the_change(runs):
    comparison = compare_runs([runs["base"], runs["all"], runs["vcd"]])
    assert not [w for w in comparison.warnings if "not run with the same" in w]  # interventions do not block pairing
    assert {d.run for d in comparison.paired} == {"all", "vcd"}
    blind = next(m for m in comparison.mitigations if m.run == "all")
    random = next(s for s in blind.splits if s.split == "random")
    assert random.verdict == "worse discrimination" and random.auroc.ci_high < 0
    assert blind.cost_ratio is not None and blind.cost_ratio > 0
    vcd = next(m for m in comparison.mitigations if m.run == "vcd")
    assert vcd.interventions == ["vcd:alpha=1,beta=0.1,t=500"] and {s.split for s in vcd.splits} == {
        "random",
        "popular",
        "adversarial",
    }
    assert any(
        line.startswith("vcd vs base (vcd:alpha=1,beta=0.1,t=500), POPE random:") for line in comparison.summary()
    )


def _examples(p_yes_by_example: list[list[float]], labels: list[list[str]]) -> dict:
    return {
        f"e{i}": {
            "p_yes": ys,
            "p_no": [1 - y for y in ys],
            "labels": ls,
            "splits": [["random"] for _ in ys],
        }
        for i, (ys, ls) in enumerate(zip(p_yes_by_example, labels))
    }


def test_a_gain_that_only_moves_the_yes_ratio_is_labelled_so():
    rng = np.random.default_rng(0)
    labels = [["yes", "no", "yes", "no"] for _ in range(40)]
    base_scores = [
        [float(rng.uniform(0.3, 0.9) if lab == "yes" else rng.uniform(0.1, 0.7)) for lab in ls] for ls in labels
    ]
    shifted = [[min(0.999, y + 0.2) for y in ys] for ys in base_scores]  # monotone: the same ranking, more yes
    split = decompose_split(_examples(base_scores, labels), _examples(shifted, labels), "random")
    assert split.verdict.startswith("yes-ratio shift only") and split.yes_ratio.ci_low > 0
    assert abs(split.auroc.value) < 1e-12
    sharper = [[0.95 if lab == "yes" else 0.05 for lab in ls] for ls in labels]
    better = decompose_split(_examples(base_scores, labels), _examples(sharper, labels), "random")
    assert better.verdict == "better discrimination" and better.auroc.ci_low > 0


def test_more_correct_decisions_from_saturated_scores_are_labelled_as_a_worse_ranking():
    """A plausibility cutoff (VCD's, PAI's) sets P(yes) to exactly 0 or 1: decisions can improve while the ranking
    the AUROC reads gets ties; the verdict names that case and the saturated shares."""
    rng = np.random.default_rng(1)
    labels = [["yes", "no", "yes", "no"] for _ in range(50)]
    # graded and well ranked, but too eager to say yes: high AUROC, many false yes
    graded = [
        [float(rng.uniform(0.6, 1.0) if lab == "yes" else rng.uniform(0.45, 0.75)) for lab in ls] for ls in labels
    ]
    # saturated: right for most questions, with ties everywhere
    saturated = [[float((lab == "yes") != (rng.uniform() < 0.12)) for lab in ls] for ls in labels]
    split = decompose_split(_examples(graded, labels), _examples(saturated, labels), "random")
    assert split.accuracy.ci_low > 0 and split.auroc.ci_high < 0
    assert split.verdict.startswith("more correct, worse ranking") and "100%" in split.verdict
    assert split.saturated == (0.0, 1.0)


def test_the_cli_records_interventions_in_the_run_and_its_reports(tmp_path, tiny_paths):
    run = tmp_path / "run"
    code = main(
        [
            "audit",
            "--model",
            str(tiny_paths["llava"]),
            "--suite",
            QUICK,
            "--n-examples",
            "2",
            "--out",
            str(run),
            "--no-progress",
            "--intervene",
            "knockout:layers=0",
            "--intervene",
            "vcd:beta=0.2",
        ]
    )
    assert code == 0
    results = json.loads((run / "results.json").read_text())
    assert results["metadata"]["config"]["interventions"] == [
        "knockout:layers=0-0,from=question",
        "vcd:alpha=1,beta=0.2,t=500",
    ]
    assert (
        "measured under" in (run / "report.md").read_text()
        and 'id="interventions"' in (run / "report.html").read_text()
    )
    assert set(results["metadata"]["seconds_per_example"]) == {"attention", "spatial", "hallucination"}


def test_fastv_keeps_the_tokens_the_reference_code_keeps():
    from mmdiag.interventions.fastv import kept_image_keys

    golden = GOLDEN["fastv"]
    attention = torch.tensor(golden["attention"])  # [1, heads, 48, 48]: layer K-1's attention
    sys_length, n_image = golden["sys"], golden["image"]
    image = torch.zeros(1, 48, dtype=torch.bool)
    image[0, sys_length : sys_length + n_image] = True
    rows = attention_edits.Rows(image, torch.tensor([47]))
    for rank, keep in golden["keep"].items():
        ratio = 1 - int(rank) / n_image
        kept = kept_image_keys(attention, torch.arange(48)[None], rows, ratio)[0]
        ours = sorted(set(range(48)) - set((image[0] & ~kept).nonzero().flatten().tolist()))
        assert ours == keep, rank


def test_fastv_masks_the_pruned_image_tokens_from_layer_k_on(reference):
    from mmdiag.interventions.fastv import FastV
    from mmdiag.scenes.generate import generate_scenes
    from mmdiag.scenes.render import render

    images = [render(s, 64) for s in generate_scenes(1, seed=5)]
    batch = reference.prepare(images, ["Is there a red circle in the image?"], padding_side="right")
    start, end = batch.image_spans[0][0]
    with FastV(k=2, ratio=0.75).applied(reference):
        out = reference.forward(batch, output_attentions=True)
    last = int(batch.last_positions()[0])
    for layer, attention in enumerate(out.attentions):
        received = attention[0, :, :, start:end].float().amax(dim=(0, 1))  # [image tokens]: the most any query gave
        live = int((received > 1e-6).sum())
        assert live == (end - start if layer < 2 else round(0.25 * (end - start))), layer
        assert attention[0, :, last].sum(-1).allclose(torch.ones(1)), layer
    with FastV(ratio=0).applied(reference):
        assert not attention_edits.editing()  # nothing pruned: the model computes as without the intervention
    with FastV().applied(reference):
        assert attention_edits.editing()
    assert not attention_edits.editing()  # removed on exit


TINY_SPEC = {"fastv": "fastv:k=1", "pai": "pai:start=1"}  # the tiny checkpoints have 2 LLM layers


@pytest.mark.parametrize("name", InterventionRegistry().names())
def test_every_intervention_runs_on_every_generative_family_or_says_why_not(name, adapters):
    """On each family's tiny checkpoint: a one-line reason, or yes/no scores and a short answer under the
    intervention (finite, in [0, 1])."""
    from PIL import Image

    from mmdiag.adapters.generative import ScoreRequest

    intervention = InterventionRegistry().create(TINY_SPEC.get(name, name))
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    ran = []
    for family, adapter in adapters.items():
        if adapter.kind != "generative":
            continue
        reason = intervention.unsupported_reason(adapter)
        if reason is not None:
            assert "\n" not in reason and adapter.is_encoder_decoder, (family, reason)  # only T5 LLMs refuse
            continue
        with intervention.applied(adapter):
            (scores,) = adapter.answer_scores_batch([ScoreRequest(image, ["Is there a cat?", "Is it red?"])])
            (answer,) = adapter.generate([image], ["Is there a cat?"], max_new_tokens=2)
        total = scores.p_yes + scores.p_no
        assert np.all(np.isfinite(total)) and np.all((total >= 0) & (total <= 1 + 1e-6)), family
        assert isinstance(answer, str)
        ran.append(family)
    assert len(ran) >= 19, ran  # every decoder-only family


@pytest.mark.parametrize("name", InterventionRegistry().names())
def test_every_registered_intervention_keeps_the_contract(name, adapters):
    """Defaults valid, the spec round-trips, a dual encoder gets a reason (never a traceback), and the edits are
    gone after the scope, even when it ends in an error."""
    registry = InterventionRegistry()
    assert registry.create(name).spec().startswith(name)  # every default is valid
    intervention = registry.create(TINY_SPEC.get(name, name))
    assert registry.create(intervention.spec()).spec() == intervention.spec()
    assert intervention.description and intervention.reference
    assert isinstance(intervention.unsupported_reason(adapters["clip"]), str)
    llava = adapters["llava"]
    assert intervention.unsupported_reason(llava) is None
    with pytest.raises(RuntimeError, match="inside"), intervention.applied(llava):
        assert attention_edits.editing() or attention_edits.contrasts()
        raise RuntimeError("inside")
    assert not attention_edits.editing() and not attention_edits.contrasts()


def test_a_third_party_intervention_is_found_by_name():
    from mmdiag.interventions.base import Intervention, Param, number

    class Scale(Intervention):
        name = "scale-scores"
        description = "attention scores multiplied by a factor"
        reference = "a test"
        params = {"factor": Param(1.0, number(0.0, 10.0), "the factor")}

        def applied(self, adapter):
            return attention_edits.score_edits(lambda layer, scores, queries, rows: scores * self.values["factor"])

    registry = InterventionRegistry()
    registry.register("scale-scores", Scale)
    assert registry.create("scale-scores:factor=2").spec() == "scale-scores:factor=2"
    with pytest.raises(Exception, match="'vcd' is provided twice"):
        registry.register("vcd", Scale)  # a built-in's name is refused unless overridden


def test_an_intervention_a_loaded_model_cannot_take_is_one_line_and_leaves_no_folder(tmp_path, tiny_paths, capsys):
    run = tmp_path / "run"
    args = ["audit", "--model", str(tiny_paths["clip"]), "--suite", QUICK, "--out", str(run), "--no-progress"]
    assert main([*args, "--intervene", "knockout"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mmdiag: error: --intervene knockout cannot apply to this clip model: needs a language model that attends "
        "to image tokens (a generative model)"
    )
    assert not run.exists()  # refused after the model loaded: the folder it had made is gone again


def test_the_auroc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from mmdiag.metrics.discrimination import auroc

    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(2, 80))
        scores, truth = np.round(rng.random(n), 1), rng.random(n) < 0.4  # rounded: many ties
        if truth.all() or not truth.any():
            assert auroc(scores, truth) is None
            continue
        assert auroc(scores, truth) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
