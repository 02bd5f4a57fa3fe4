"""What an audit runs (:class:`AuditConfig`): the one object suites build and :func:`mmdiag.api.audit` takes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mmdiag.scenes.generate import SceneRecipe

DEFAULT_PROBES = ("attention", "spatial", "hallucination")


@dataclass
class AuditConfig:
    """What an audit runs: which probes, on how many examples of which data source (seeded synthetic scenes by
    default), with which gates."""

    probes: tuple[str, ...] = DEFAULT_PROBES
    n_examples: int = 48  # per probe (results.json keeps the 1.x name: metadata.config.n_scenes)
    seed: int = 0
    resolution: int = 64
    gates: tuple[str, ...] = ()  # for every model
    batch_size: int = 8
    recipe: SceneRecipe = field(default_factory=SceneRecipe)
    probe_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # probe name -> extra constructor params
    kind_gates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # model kind -> gates for that kind only
    data: str = "scenes"  # the data source (:mod:`mmdiag.sources.registry`); ``recipe`` configures the scenes
    data_params: dict[str, Any] = field(default_factory=dict)  # the source's constructor parameters
    prompting: dict[str, Any] = field(default_factory=dict)  # system_prompt, chat_template, gen_kwargs (generative)
    interventions: tuple[str, ...] = ()  # NAME:k=v,... specs (mmdiag.interventions), every parameter spelled out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["n_scenes"] = data.pop(
            "n_examples"
        )  # the results schema's name: run identities and hashes stay as they were
        data["recipe"] = self.recipe.to_dict()
        if self.data == "scenes" and not self.data_params:  # runs on the default source keep the hashes they had
            del data["data"], data["data_params"]
        if not self.prompting:  # likewise runs with the model's own prompts
            del data["prompting"]
        if not self.interventions:  # and runs without interventions
            del data["interventions"]
        else:
            data["interventions"] = list(self.interventions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditConfig:
        """The configuration :meth:`to_dict` wrote (results.json's metadata.config, an export's export.json)."""
        data = dict(data)
        data["n_examples"] = data.pop("n_scenes", data.get("n_examples", 48))
        data["recipe"] = SceneRecipe.from_dict(data["recipe"]) if "recipe" in data else SceneRecipe()
        for key in ("probes", "gates", "interventions"):
            if key in data:
                data[key] = tuple(data[key])
        data["kind_gates"] = {k: tuple(v) for k, v in data.get("kind_gates", {}).items()}
        return cls(**data)

    def identity(self) -> dict[str, Any]:
        """What decides the measurements (probes, scenes, seed, parameters): gates are left out, so runs that
        differ only in their gates are still the same run for resume and for paired comparison. Probes measure
        independently, so their order is left out too."""
        data = {k: v for k, v in self.to_dict().items() if k not in ("gates", "kind_gates")}
        data["probes"] = sorted(data["probes"])
        return data

    def gates_for(self, kind: str) -> tuple[str, ...]:
        """The gates that apply to a model of ``kind``: the common ones, then that kind's (those of probes this
        configuration runs: a suite's per-kind gates follow its probes)."""
        own = tuple(g for g in self.kind_gates.get(kind, ()) if g.split(".", 1)[0].strip() in self.probes)
        return (*self.gates, *own)
