"""One audit plan: everything an audit will do, validated and built once, before any model loads or any folder is
touched.

>>> plan = AuditPlan.from_config("path/to/llava", "runs/llava", AuditConfig(n_examples=48))  # doctest: +SKIP
>>> print("\\n".join(plan.preview()))  # what would run (``mmdiag audit --dry-run``)  # doctest: +SKIP
>>> outcome = mmdiag.api.audit(plan)  # doctest: +SKIP

:meth:`AuditPlan.from_config` checks the configuration (bounds, probe names and parameters, gates, the planted
defect), builds the data source once, sizes the run (``n_examples``, ``limit``), leaves out the probes that cannot use
the data (``fit_probes_to_data``) and reads and checks every input the probes will need (annotations, masks, images).
The plan is immutable: the audit reads it and never changes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmdiag.adapters.hf_loading import LoadOptions
from mmdiag.errors import ConfigError
from mmdiag.interventions.registry import canonical_interventions
from mmdiag.probes.base import Probe
from mmdiag.probes.registry import ProbeRegistry
from mmdiag.run.config import AuditConfig
from mmdiag.run.gates import parse_gate
from mmdiag.run.harness_flags import limited_scenes
from mmdiag.run.progress import audit_phases
from mmdiag.sources import DataSource, SourceRegistry
from mmdiag.validation import check_audit_config

ALL = "all"  # n_examples: every example the data source holds


@dataclass(frozen=True)
class AuditPlan:
    """What an audit runs, fully resolved: the model (a folder, hub id, ``open_clip:ARCH``, a loaded module or
    adapter, or None for the embedded default), the run folder, the configuration (with the example count and
    probes settled), the data source and the probes (built), the loading options, how the folder is claimed
    (``overwrite``, ``resume``), a planted defect, whether the batch size is found by trial (``auto_batch``), the
    source's full size when ``limit`` cut it (``limited_from``) and the notes the results will carry."""

    model: Any
    out_dir: Path
    config: AuditConfig
    source: DataSource
    probes: tuple[Probe, ...]
    options: LoadOptions = field(default_factory=LoadOptions)
    processor: Any = None
    overwrite: bool = False
    resume: bool = False
    progress: bool = True
    plant: str | None = None
    auto_batch: bool = False
    limited_from: int | None = None
    notes: tuple[str, ...] = ()
    sources: SourceRegistry | None = None

    @classmethod
    def from_config(
        cls,
        model: Any,
        out_dir: str | Path,
        config: AuditConfig | None = None,
        *,
        processor: Any = None,
        options: LoadOptions | None = None,
        overwrite: bool = False,
        resume: bool = False,
        progress: bool = True,
        registry: ProbeRegistry | None = None,
        sources: SourceRegistry | None = None,
        plant: str | None = None,
        batch_size: int | str | None = None,
        n_examples: int | str | None = None,
        limit: str | float | None = None,
        fit_probes_to_data: bool = False,
    ) -> AuditPlan:
        """Validate everything and build the plan (one-line :class:`~mmdiag.errors.ConfigError` on bad input).

        ``config=None``: the default suite (probes/release.yaml). ``batch_size``: examples per forward (overrides
        the config's), or ``"auto"``: the largest that fits in accelerator memory. ``n_examples``: examples per
        probe (overrides the config's), or ``"all"``: every example of the data source. ``limit``: only this many
        (a count) or this share (a fraction below 1) of them, for trying things out (noted in the results).
        ``fit_probes_to_data``: leave out the probes that cannot use the data source (each with a note) and add
        the relations probe for a source of relation statements, as the CLI does when ``--probes`` is not given.
        """
        if config is None:
            from mmdiag.run.suites import default_suite

            config = default_suite().config
        if batch_size is not None and batch_size != "auto":
            config = replace(config, batch_size=batch_size)
        check_audit_config(config)
        if config.interventions:  # validated and spelled out in full before anything loads: the run's identity
            config = replace(config, interventions=canonical_interventions(config.interventions))
        for text in (*config.gates, *(g for group in config.kind_gates.values() for g in group)):
            parse_gate(text)  # a malformed gate is refused before anything is touched
        if plant:
            from mmdiag.zoo.defects import check_defect_name

            check_defect_name(plant)
        registry = registry or ProbeRegistry()
        sources = sources or SourceRegistry()
        source = _data_source(config, sources)
        config, limited_from = _sized(config, source, n_examples, limit)
        notes: list[str] = []
        probes = [
            registry.create(name, resolution=config.resolution, seed=config.seed, **config.probe_params.get(name, {}))
            for name in config.probes
        ]
        if fit_probes_to_data and config.data != "scenes":
            probes, notes = _fit_to_data(probes, source, config, registry)
            kept = tuple(p.name for p in probes)
            config = replace(
                config,
                probes=kept,
                gates=tuple(g for g in config.gates if g.split(".")[0].strip() in kept),
                probe_params={k: v for k, v in config.probe_params.items() if k in kept},
            )
        if not getattr(model, "has_weights", True):  # an audit from answers (mmdiag audit --answers)
            probes, config, answer_notes = _fit_to_answers(probes, config, model)
            notes += answer_notes
        # every input the probes will read (annotations, masks, captions, images) is read and checked now, before
        # the run folder is touched: a bad one costs no finished work
        source.check(
            config.n_examples, config.seed, [(p.data_request(), p.name) for p in probes if not p.unusable_data(source)]
        )
        if limited_from is not None:
            whole = (
                f"the suite's {limited_from} scenes"
                if config.data == "scenes"
                else f"the {source.name} source's {limited_from} examples"
            )
            notes.append(
                f"--limit: {config.n_examples} of {whole} - for trying things out, not for reporting (the CIs "
                "are those of the smaller sample)"
            )
        return cls(
            model=model,
            out_dir=Path(out_dir),
            config=config,
            source=source,
            probes=tuple(probes),
            options=options or LoadOptions(),
            processor=processor,
            overwrite=overwrite,
            resume=resume,
            progress=progress,
            plant=plant,
            auto_batch=batch_size == "auto",
            limited_from=limited_from,
            notes=tuple(notes),
            sources=sources,
        )

    def preflight(self) -> None:
        """The refusals that need no model loaded and leave the folder untouched: the run folder (a file in the way,
        an existing run without --resume/--overwrite, a live writer) and the model path."""
        from mmdiag.adapters.loading import preflight_model
        from mmdiag.run.store import preflight_run_dir

        preflight_run_dir(self.out_dir, self.overwrite, self.resume)
        if isinstance(self.model, (str, Path)):
            preflight_model(str(self.model), self.options)

    def preview(self) -> list[str]:
        """What the audit would do, one line each (``mmdiag audit --dry-run``): model and family, data source,
        examples per probe, gates, and a rough time estimate."""
        config = self.config
        lines = [
            f"model: {_model_line(self.model)}",
            f"run folder: {self.out_dir}"
            + (" (replaced: --overwrite)" if self.overwrite else " (resumed)" if self.resume else ""),
            f"data: {_source_line(self.source, config)}; seed {config.seed}, resolution {config.resolution} px, "
            f"batch {'auto' if self.auto_batch else config.batch_size}",
        ]
        for probe in self.probes:
            why = probe.unusable_data(self.source)
            if why:
                lines.append(f"probe {probe.name}: skipped: {why}")
                continue
            offered = len(
                self.source.examples(config.n_examples, config.seed, probe.data_request(), id_prefix=probe.name)
            )
            lines.append(f"probe {probe.name}: up to {offered} examples ({_params_line(probe)})")
        for kind in ("generative", "dual_encoder"):
            gates = config.gates_for(kind)
            lines.append(f"gates for a {kind.replace('_', ' ')} model ({len(gates)}): " + ("; ".join(gates) or "none"))
        lines += [f"note: {note}" for note in self.notes]
        if self.plant:
            lines.append(f"planted defect: {self.plant}")
        seconds = sum(weight for _, weight in audit_phases([p.name for p in self.probes], config.n_examples))
        lines.append(f"time: about {seconds:.0f} s for the reference model on 2 CPU cores (larger models take longer)")
        return lines


def _data_source(config: AuditConfig, sources: SourceRegistry) -> DataSource:
    """The configured data source: the scenes of ``config.recipe``, or ``config.data`` with its parameters."""
    if config.data == "scenes" and not config.data_params:
        return sources.create("scenes", recipe=config.recipe)
    return sources.create(config.data, **config.data_params)


def _sized(
    config: AuditConfig, source: DataSource, n_examples: int | str | None, limit: str | float | None
) -> tuple[AuditConfig, int | None]:
    """The configuration with its example count settled, and the full count when ``limit`` cut it."""
    full = config.n_examples
    if n_examples == ALL:
        size = source.size()  # reads a file source's annotations: its errors come now
        if size == 0:
            raise ConfigError(
                f"the {source.name} data holds no usable example (no image with an annotated object): check it"
            )
        full = size if size is not None else config.n_examples
    elif n_examples is not None:
        full = n_examples
    n = limited_scenes(str(limit), full) if limit is not None else full
    config = replace(config, n_examples=n)
    check_audit_config(config)
    return config, (full if limit is not None else None)


def _partition(
    probes: list[Probe], reason: Callable[[Probe], str | None]
) -> tuple[list[Probe], list[tuple[Probe, str]]]:
    """The probes ``reason`` has nothing against, and the others with its reason."""
    kept, left_out = [], []
    for probe in probes:
        why = reason(probe)
        if why:
            left_out.append((probe, why))
        else:
            kept.append(probe)
    return kept, left_out


def _fit_to_data(
    probes: list[Probe], source: DataSource, config: AuditConfig, registry: ProbeRegistry
) -> tuple[list[Probe], list[str]]:
    """The probes that can run on ``source`` (plus the relations probe for a source of relation statements), and a
    note per probe left out saying why."""
    kept, left_out = _partition(probes, lambda probe: probe.unusable_data(source))
    notes = [f"{probe.name}: left out for the {source.name} data: {why}" for probe, why in left_out]
    if getattr(source, "relation_statements", False) and "relations" not in {p.name for p in kept}:
        kept.append(
            registry.create(
                "relations", resolution=config.resolution, seed=config.seed, **config.probe_params.get("relations", {})
            )
        )
    if not kept:
        raise ConfigError(f"no probe of the suite can run on the {source.name} data: name one with --probes")
    return kept, notes


def _fit_to_answers(
    probes: list[Probe], config: AuditConfig, adapter: Any
) -> tuple[list[Probe], AuditConfig, list[str]]:
    """Only the probes that need answers alone, and only the gates on metrics that decisions can give; a note for
    everything left out."""
    kept, left_out = _partition(probes, lambda probe: probe.unsupported_reason(adapter))
    notes = [f"{probe.name}: left out of this audit from answers: it {why}" for probe, why in left_out]
    if not kept:
        raise ConfigError("no probe of the suite runs from answers alone (hallucination and relations do): name them")
    specs = {p.name: type(p).metric_specs for p in kept}

    def applies(text: str) -> bool:
        probe, _, metric = parse_gate(text).name.partition(".")
        spec = specs.get(probe, {}).get(metric)
        return probe in specs and not (spec is not None and spec.needs_scores)

    every = (*config.gates, *config.kind_gates.get(adapter.kind, ()))
    dropped = [g for g in every if not applies(g)]
    if dropped:
        notes.append(f"gates left out (they need the model's weights or probabilities): {'; '.join(dropped)}")
    names = tuple(p.name for p in kept)
    config = replace(
        config,
        probes=names,
        gates=tuple(g for g in config.gates if applies(g)),
        kind_gates={kind: tuple(g for g in group if applies(g)) for kind, group in config.kind_gates.items()},
        probe_params={k: v for k, v in config.probe_params.items() if k in names},
    )
    return kept, config, notes


def _model_line(model: Any) -> str:
    if model is None:
        return "the embedded default model"
    if not isinstance(model, (str, Path)):
        return f"a loaded {type(model).__name__}"
    config = Path(model) / "config.json"
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return str(model)
    from mmdiag.adapters.registry import default_registry

    registry = default_registry()
    served = [a for a in architectures if a in registry]
    family = f"served by {registry.provider(served[0])}" if served else "no adapter serves it"
    return f"{model} ({', '.join(architectures) or 'no architectures in config.json'}; {family})"


def _source_line(source: DataSource, config: AuditConfig) -> str:
    if config.data == "scenes":
        return f"{config.n_examples} synthetic scenes"
    params = ", ".join(f"{k}={v}" for k, v in source.params().items() if v)
    return f"{config.n_examples} examples of {source.name} ({params})"


def _params_line(probe: Probe) -> str:
    return ", ".join(f"{k}={v}" for k, v in probe.params().items() if k not in ("resolution", "seed")) or "defaults"
