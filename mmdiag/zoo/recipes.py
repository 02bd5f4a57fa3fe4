"""The reference zoo: one recipe per model. Same geometry, data and steps for every LLaVA variant, so
that only the projector differs (or, for ``ref-llava-biased``, the planted co-occurrence prior)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmdiag.scenes.generate import Cooccurrence, SceneRecipe
from mmdiag.zoo.models import Geometry
from mmdiag.zoo.train import OptimSpec

CLIP_STEPS = OptimSpec(steps=600, batch=32, lr=1e-3)
# A from-scratch LLM sits on the answer prior (loss ln 2) for a long time before it binds the question's
# object to the image (800 steps at 3e-3: never; 1e-3 with a one-object curriculum: near step 1,600). So the
# language model is trained once, long (our stand-in for a pretrained LLM), and every projector variant then
# starts from it with a fresh projector and the same, shorter budget (README, model card).
LM_STEPS = OptimSpec(steps=7000, batch=32, lr=1e-3)
LLAVA_STEPS = OptimSpec(steps=800, batch=32, lr=1e-3, warmup=50)
CURRICULUM_STEPS = 1000
CAPTION_SHARE = 0.25
BIAS = Cooccurrence(anchor="red circle", partner="green triangle", p=1.0, anchor_rate=0.5, partner_size="tiny")


@dataclass(frozen=True)
class ZooRecipe:
    """How one reference model is built."""

    name: str
    kind: str  # "clip" | "llava"
    description: str
    projector: str = "mlp"
    optim: OptimSpec = LLAVA_STEPS
    scenes: SceneRecipe = field(default_factory=SceneRecipe)
    geometry: Geometry = field(default_factory=Geometry)
    seed: int = 0
    depends_on: str | None = "ref-clip"
    curriculum_steps: int = 0  # LLaVA: first steps on one-object scenes, presence questions only
    caption_share: float = CAPTION_SHARE  # LLaVA: share of sequences opening with a caption turn
    language_model_from: str | None = "ref-llava-lm"  # LLaVA: whose trained LLM this one starts from
    shipped: bool = True


RECIPES: dict[str, ZooRecipe] = {
    r.name: r
    for r in (
        ZooRecipe("ref-clip", "clip", "CLIPModel trained contrastively on scene captions, with per-patch type/row/column "
                  "auxiliary heads; the vision tower every LLaVA variant starts from", optim=CLIP_STEPS, depends_on=None),
        ZooRecipe("ref-llava-lm", "llava", "the shared language model: a LLaVA-MLP trained long from scratch; every variant "
                  "starts from its LLM with a fresh projector (not shipped)", optim=LM_STEPS, curriculum_steps=CURRICULUM_STEPS,
                  language_model_from=None, shipped=False),
        ZooRecipe("ref-llava-mlp", "llava", "LLaVA-1.5's two-layer MLP projector (the embedded default model)"),
        ZooRecipe("ref-llava-linear", "llava", "a linear projector (LLaVA-1's)", projector="linear"),
        ZooRecipe("ref-llava-resampler", "llava", "16 learned queries cross-attending to the patches (Q-Former/Perceiver-style)",
                  projector="resampler"),
        ZooRecipe("ref-llava-pool", "llava", "2-D average pooling of the 8x8 patch grid to 4x4, then an MLP (DeCo/C-Abstractor-like)",
                  projector="pool"),
        ZooRecipe("ref-llava-biased", "llava", "like ref-llava-mlp, trained with a planted prior: a green triangle accompanies "
                  "every red circle, drawn tiny (weak visual evidence, so the prior can show)", scenes=SceneRecipe(min_objects=1, max_objects=3, cooccurrence=BIAS)),
    )
}
