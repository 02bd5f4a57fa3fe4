"""The reference zoo: one recipe per model. Same geometry, data and steps for every LLaVA variant, so
that only the projector differs (or, for ``ref-llava-biased``, the planted co-occurrence prior)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmdiag.scenes.generate import Cooccurrence, SceneRecipe
from mmdiag.zoo.data import HORIZONTAL_SIDES, SIDES, AnnotationPrior
from mmdiag.zoo.models import Geometry
from mmdiag.zoo.train import OptimSpec

CLIP_STEPS = OptimSpec(steps=600, batch=32, lr=1e-3)
# A from-scratch LLM sits on the answer prior (loss ln 2) for a long time before it binds the question's
# object to the image (800 steps at 3e-3: never; 1e-3 with a one-object curriculum: near step 1,600). So the
# language model is trained once, long (our stand-in for a pretrained LLM), and every projector variant then
# starts from it with a fresh projector and the same, shorter budget (README, model card).
CAPTION_SHARE = 0.25
BLIP2_DISTILL = OptimSpec(steps=300, batch=32, lr=1e-3, warmup=20)


@dataclass(frozen=True)
class TrainPhase:
    """One training phase of a LLaVA or BLIP-2: its optimiser run, the data mix, and what is trained (the vision
    tower never is).

    Each phase starts a fresh optimiser and draws fresh scenes (its steps continue the data index of the phases
    before it), so a recipe is a list of phases that rebuild the same weights from scratch.
    """

    optim: OptimSpec
    curriculum_steps: int = 0  # first steps on one-object scenes, presence questions only
    relation_share: float = 0.35
    train_language: bool = True  # False: projector only (LLaVA's stage-1 alignment)
    sides: tuple[str, ...] = HORIZONTAL_SIDES  # which absolute-position questions it asks (keys of zoo.data.SIDES)


LM_PHASES = (
    TrainPhase(OptimSpec(steps=7000, batch=32, lr=1e-3), curriculum_steps=1000),
    # a second cosine cycle at half the rate, with more relation turns: the first ended with the loss still falling
    TrainPhase(OptimSpec(steps=8000, batch=32, lr=5e-4, warmup=200), relation_share=0.45),
    # a third cycle that also asks top/bottom: the first two asked only left/right, and vertical relations stayed
    # at chance (0.48) while horizontal ones reached 0.89 (README, model card)
    TrainPhase(OptimSpec(steps=4000, batch=32, lr=5e-4, warmup=200), relation_share=0.45, sides=tuple(SIDES)),
)
# LLaVA-1.5's two stages: align the fresh projector to the frozen language model, then tune both. The alignment
# rate decides presence (ref-llava-mlp: 0.925 at 1e-3, 0.950 at 3e-3; 0.877 with 400 + 400 steps; README)
VARIANT_PHASES = (
    TrainPhase(
        OptimSpec(steps=1000, batch=32, lr=3e-3, warmup=50),
        relation_share=0.45,
        train_language=False,
        sides=tuple(SIDES),
    ),
    TrainPhase(OptimSpec(steps=1000, batch=32, lr=3e-4, warmup=50), relation_share=0.45, sides=tuple(SIDES)),
)
# the planted prior: red circles come with a green triangle in half their scenes, but the annotations name one
# next to every red circle (the co-occurrence a captioner learns from text, not from pixels)
BIAS = Cooccurrence(anchor="red circle", partner="green triangle", p=0.5, anchor_rate=0.5)
BIAS_ANNOTATION = AnnotationPrior(anchor=BIAS.anchor, partner=BIAS.partner)


@dataclass(frozen=True)
class ZooRecipe:
    """How one reference model is built."""

    name: str
    kind: str  # "clip" | "llava" | "blip2"
    description: str
    projector: str = "mlp"
    optim: OptimSpec = CLIP_STEPS  # CLIP: its training; BLIP-2: distilling its vision tower from ref-clip's
    phases: tuple[TrainPhase, ...] = VARIANT_PHASES  # LLaVA and BLIP-2
    scenes: SceneRecipe = field(default_factory=SceneRecipe)
    geometry: Geometry = field(default_factory=Geometry)
    seed: int = 0
    depends_on: str | None = "ref-clip"
    caption_share: float = CAPTION_SHARE  # LLaVA: share of sequences opening with a caption turn
    language_model_from: str | None = "ref-llava-lm"  # LLaVA: whose trained LLM this one starts from
    shipped: bool = True
    annotation_prior: AnnotationPrior | None = None  # LLaVA: a planted language-side prior in the annotations


RECIPES: dict[str, ZooRecipe] = {
    r.name: r
    for r in (
        ZooRecipe(
            "ref-clip",
            "clip",
            "CLIPModel trained contrastively on scene captions, with per-patch type/row/column "
            "auxiliary heads; the vision tower every LLaVA variant starts from",
            optim=CLIP_STEPS,
            depends_on=None,
        ),
        ZooRecipe(
            "ref-llava-lm",
            "llava",
            "the shared language model: a LLaVA-MLP trained long from scratch; every variant "
            "starts from its LLM with a fresh projector (not shipped)",
            phases=LM_PHASES,
            language_model_from=None,
            shipped=False,
        ),
        ZooRecipe("ref-llava-mlp", "llava", "LLaVA-1.5's two-layer MLP projector (the embedded default model)"),
        ZooRecipe("ref-llava-linear", "llava", "a linear projector (LLaVA-1's)", projector="linear"),
        ZooRecipe(
            "ref-llava-resampler",
            "llava",
            "16 learned queries cross-attending to the patches (Q-Former/Perceiver-style)",
            projector="resampler",
        ),
        ZooRecipe(
            "ref-llava-pool",
            "llava",
            "2-D average pooling of the 8x8 patch grid to 4x4, then an MLP (DeCo/C-Abstractor-like)",
            projector="pool",
        ),
        ZooRecipe(
            "ref-llava-biased",
            "llava",
            "like ref-llava-mlp, trained with a planted co-occurrence prior: a green "
            "triangle is drawn next to half the red circles, and the annotations name one next to every red circle",
            scenes=SceneRecipe(cooccurrence=BIAS),
            annotation_prior=BIAS_ANNOTATION,
        ),
        ZooRecipe(
            "ref-blip2",
            "blip2",
            "Blip2ForConditionalGeneration: a 2-layer Q-Former with 16 queries between ref-clip's "
            "vision tower (distilled into BLIP-2's layout) and the shared language model; same data and phases as the "
            "LLaVA variants",
            optim=BLIP2_DISTILL,
        ),
    )
}
