"""The library verbs (notebooks call these; the CLI only parses arguments and calls them).

```python
from mmdiag import api

outcome = api.audit("path/to/llava", "runs/llava", api.AuditConfig(n_examples=48))
outcome.results["probes"]["hallucination"]["metrics"]["f1"]["value"]
```
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from mmdiag import __version__
from mmdiag.adapters.base import Adapter
from mmdiag.adapters.hf_loading import LoadOptions
from mmdiag.adapters.loading import load_adapter, preflight_model
from mmdiag.data_paths import absolute_params
from mmdiag.errors import ConfigError, MmdiagError, write_error
from mmdiag.interventions.registry import create_all
from mmdiag.probes.guidance import annotate_results
from mmdiag.results import (
    SCHEMA_VERSION,
    RunMetadata,
    canonical_hash,
    now_iso,
    read_results,
    write_results,
)
from mmdiag.run.config import DEFAULT_PROBES, AuditConfig  # noqa: F401 - AuditConfig is public here
from mmdiag.run.distributed import (
    ProcessInfo,
    current_process,
    gpu_group,
    single_process_launch_note,
)
from mmdiag.run.gates import INTEGRITY_METRICS, Gate, evaluate_gates, parse_gate
from mmdiag.run.identity import check_or_write as check_or_write_identity
from mmdiag.run.identity import data_fingerprint, model_files_fingerprint, weights_fingerprint
from mmdiag.run.plan import AuditPlan
from mmdiag.run.progress import AuditProgress, audit_phases
from mmdiag.run.runtime import run_probe
from mmdiag.run.store import ReplacedRun, RunStore, claim_run_dir
from mmdiag.run.suites import release_gates_for
from mmdiag.sources import DataSource, SourceRegistry
from mmdiag.zoo.card import card_summary


@dataclass
class AuditOutcome:
    """The written run: its folder, the results document, and whether every gate and probe passed."""

    run_dir: Path
    results: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.results["verdict"] == "pass"


DEFAULT_MODEL = "ref-llava-mlp"


def default_model_dir() -> Path:
    """The embedded default model: the shipped reference LLaVA (MLP projector), else a built tiny LLaVA."""
    from mmdiag.zoo.build import locate

    shipped = locate(DEFAULT_MODEL)
    if shipped is not None:
        return shipped
    home = Path(os.environ.get("MMDIAG_HOME", Path.home() / ".cache" / "mmdiag"))
    return home / "tiny-llava"


def ensure_default_model() -> Path:
    """The default model's folder, building the tiny fallback once (seconds, offline) if needed."""
    from mmdiag.checkpoints.tiny import build_tiny

    path = default_model_dir()
    if not (path / "config.json").is_file():
        build_tiny("llava", path)
    return path


def default_model_note(path: Path) -> str:
    if path.name == DEFAULT_MODEL:
        return (
            f"default model: {DEFAULT_MODEL}, the reference LLaVA trained on the synthetic scenes (its model card is "
            "under Run metadata)"
        )
    return "default model: a random-weight tiny LLaVA built offline (its numbers exercise the pipeline only)"


def load(model: str | Path | torch.nn.Module | Adapter, processor: Any = None, **options: Any) -> Adapter:
    """Load a model into its family adapter (``options`` are :class:`LoadOptions` fields)."""
    return load_adapter(model, processor, options=LoadOptions(**options))


def plan_audit(
    model: str | Path | torch.nn.Module | Adapter | None,
    out_dir: str | Path,
    config: AuditConfig | None = None,
    **options: Any,
) -> AuditPlan:
    """:meth:`AuditPlan.from_config`: validate an audit and build its data source and probes, touching nothing
    (``plan.preview()`` says what would run)."""
    return AuditPlan.from_config(model, out_dir, config, **options)


def audit(
    plan: AuditPlan | str | Path | torch.nn.Module | Adapter | None,
    out_dir: str | Path | None = None,
    config: AuditConfig | None = None,
    **options: Any,
) -> AuditOutcome:
    """Run an :class:`AuditPlan` and write results.json, examples.jsonl and the reports into its folder.

    ``audit(model, out_dir, config, **options)`` plans and runs in one call (the options are those of
    :meth:`AuditPlan.from_config`: ``processor``, ``options`` (:class:`LoadOptions`), ``overwrite``, ``resume``,
    ``progress``, ``registry``, ``sources``, ``plant``, ``batch_size``, ``n_examples``, ``limit``,
    ``fit_probes_to_data``). ``model=None`` audits the embedded default model; ``config=None`` runs the default suite
    (probes/release.yaml). ``resume=True`` keeps the finished examples of an interrupted run in ``out_dir`` and
    measures only the rest. ``plant`` names a known defect (:data:`mmdiag.zoo.defects.DEFECTS`) planted into the
    loaded model, to prove that the gates catch it.
    Under a data-parallel launcher (``WORLD_SIZE`` > 1) every process calls this; each measures its share,
    the main process writes.
    """
    if not isinstance(plan, AuditPlan):
        if out_dir is None:
            raise ConfigError("audit(model, out_dir, ...) needs the run folder, or pass an AuditPlan")
        plan = AuditPlan.from_config(plan, out_dir, config, **options)
    elif out_dir is not None or config is not None or options:
        raise ConfigError("audit(plan) takes the plan alone: its folder, configuration and options are in it")
    return _run(plan)


def _run(plan: AuditPlan) -> AuditOutcome:
    config, source, probes, run_dir = plan.config, plan.source, list(plan.probes), plan.out_dir
    model, progress, plant, resume = plan.model, plan.progress, plan.plant, plan.resume
    process = current_process()
    with contextlib.ExitStack() as stack:
        if isinstance(model, (str, Path)):
            process.on_main(lambda: preflight_model(str(model), plan.options))  # a bad path never creates --out
        # the lock is taken before anything in the folder is touched
        process.on_main(lambda: stack.enter_context(claim_run_dir(run_dir, plan.overwrite, resume)))
        notes: list[str] = list(plan.notes)
        launch_note = single_process_launch_note()
        if launch_note:
            notes.append(launch_note)
            if progress and process.is_main:
                print(f"mmdiag: warning: {launch_note}", file=sys.stderr)
        if model is None:
            model = ensure_default_model() if process.is_main else default_model_dir()
            notes.append(default_model_note(Path(model)))
        process.barrier()
        options = _options_for_process(plan.options, process)
        tracker = AuditProgress(
            audit_phases(list(config.probes), config.n_examples), enabled=progress and process.is_main
        )
        with tracker.phase("loading the model"):
            adapter = load_adapter(model, plan.processor, options=options)
        if plant:
            from mmdiag.zoo.defects import plant_defect

            plant_defect(adapter, plant)
            notes.append(f"planted defect: {plant} (a known-broken variant of the model, for proving the gates)")
        if config.prompting:
            _configure_prompting(adapter, config.prompting)
            notes.append(
                "prompting overridden: "
                + ", ".join(f"{k}={v!r}" for k, v in sorted(config.prompting.items()) if k != "chat_template")
                + (" (a custom chat template)" if config.prompting.get("chat_template") else "")
            )
        for intervention in create_all(config.interventions):
            reason = intervention.unsupported_reason(adapter)
            if reason:
                raise ConfigError(
                    f"--intervene {intervention.name} cannot apply to this {adapter.family} model: {reason}"
                )
            stack.enter_context(intervention.applied(adapter))  # removed when the run ends, whatever happens
            notes.append(intervention.note())
        if plan.auto_batch:
            config, note = _auto_batch_size(config, probes, adapter, source, process)
            notes.append(note)
            if progress and process.is_main:
                print(f"mmdiag: {note}", file=sys.stderr)
        gates = [parse_gate(g) for g in config.gates_for(adapter.kind)]
        _check_gates(gates, probes, adapter)
        config_hash = canonical_hash(config.identity())
        model_hash = _model_config_hash(adapter)
        identity = {
            "mmdiag": __version__,
            "model_config_hash": model_hash,
            "weights": weights_fingerprint(adapter.model),
            "dtype": _weights_dtype(adapter.model),
            "planted_defect": plant,
            "config_hash": config_hash,
            "inputs": data_fingerprint(source),
            "model_files": model_files_fingerprint(model),
            DATA_LOCATION: absolute_params(source.params()) if config.data != "scenes" else None,
        }
        # an --overwrite sets the old run aside only now, with the lock held, the inputs checked and the model
        # loaded; it comes back if the new run fails before its first record, and goes once that is written
        replaced = ReplacedRun(run_dir)
        stack.push(replaced.exit_handler)
        process.on_main(
            lambda: (plan.overwrite and replaced.set_aside(), check_or_write_identity(run_dir, identity, resume))
        )
        metadata = RunMetadata(
            model={
                **asdict(adapter.info()),
                "config_hash": model_hash,
                "weights_fingerprint": identity["weights"],
                **({"planted_defect": plant} if plant else {}),
                **({"card": card} if (card := card_summary(adapter.info().source)) else {}),
            },
            config=config.to_dict(),
            seed=config.seed,
            config_hash=config_hash,
            devices=sorted(
                {str(adapter.device)} | {str(d) for d in (getattr(adapter.model, "hf_device_map", None) or {}).values()}
            ),
            processes=process.world,
        )
        store = RunStore(
            run_dir, process.rank, process.world, on_first_write=replaced.discard if process.is_main else None
        )
        probe_results: dict[str, dict[str, Any]] = {}
        failures: dict[str, int] = {}
        skipped: dict[str, str] = {}
        for probe in probes:
            unsupported = probe.unsupported_reason(adapter)
            if unsupported:
                tracker.skip(f"{probe.name}: measuring")
                tracker.skip(f"{probe.name}: aggregating")
                skipped[probe.name] = unsupported
                notes.append(f"{probe.name}: {unsupported}, skipped")
                continue
            unusable = probe.unusable_data(source)
            data = (
                source.examples(config.n_examples, config.seed, probe.data_request(), id_prefix=probe.name)
                if not unusable
                else None
            )
            work = probe.examples(data, adapter) if data is not None else []
            if not work and not unusable:
                unusable = f"no example of the {source.name} data fits it (of {len(data)} offered)"
            if unusable:
                tracker.skip(f"{probe.name}: measuring")
                tracker.skip(f"{probe.name}: aggregating")
                skipped[probe.name] = unusable
                notes.append(f"{probe.name}: skipped: {unusable} (--probes names the probes to run)")
                continue
            began = time.perf_counter()
            result, failed = run_probe(
                probe,
                adapter,
                work,
                store,
                process,
                batch_size=config.batch_size,
                resume=resume,
                progress=progress,
                tracker=tracker,
            )
            metadata.seconds_per_example[probe.name] = round((time.perf_counter() - began) / max(1, len(work)), 5)
            if not process.is_main:
                continue
            failures[probe.name] = len(failed)
            if result is None:
                first = failed[0]["error"] if failed else "no examples"
                probe_results[probe.name] = {
                    "probe": probe.name,
                    "error": f"every example failed; first: {first}",
                    "n_examples": 0,
                    "n_failed": len(failed),
                    "metrics": {},
                }
            elif getattr(adapter, "has_scores", True):
                probe_results[probe.name] = result.to_dict()
            else:  # an audit from answers: decisions without probabilities
                probe_results[probe.name] = type(probe).answers_only_result(result.to_dict())
        document = (
            _results_document(
                metadata, probe_results, gates, failures, notes, skipped, {p.name: type(p) for p in probes}
            )
            if process.is_main
            else {}
        )
        if process.is_main:
            with tracker.phase("writing the reports"):
                write_results(run_dir, document)
                replaced.discard()
                render_report(run_dir, plan.sources)
    return AuditOutcome(run_dir, read_results(run_dir))


def _results_document(
    metadata: RunMetadata,
    probe_results: dict[str, dict[str, Any]],
    gates: list[Gate],
    failures: dict[str, int],
    notes: list[str],
    skipped: dict[str, str],
    probe_classes: dict[str, type],
) -> dict[str, Any]:
    outcomes = evaluate_gates(gates, probe_results, skipped, probe_classes)
    annotate_results(
        probe_results, [o.to_dict() for o in outcomes], probe_classes, release_gates_for(metadata.model["kind"])
    )
    broken = [name for name, r in probe_results.items() if "error" in r]
    metadata.finished_at = now_iso()
    return {
        "schema_version": SCHEMA_VERSION,
        "metadata": metadata.to_dict(),
        "probes": probe_results,
        "gates": [o.to_dict() for o in outcomes],
        "failed_examples": failures,
        "notes": notes,
        "verdict": "pass" if all(o.passed for o in outcomes) and not broken else "fail",
    }


def _configure_prompting(adapter: Adapter, prompting: dict[str, Any]) -> None:
    """--system-prompt, --chat-template and --gen-kwargs, for image-to-text models only."""
    configure = getattr(adapter, "configure_prompting", None)
    if configure is None:
        raise ConfigError(
            f"--system-prompt, --chat-template and --gen-kwargs apply to image-to-text models; "
            f"{adapter.family} is a {adapter.kind.replace('_', ' ')} model: drop them"
        )
    configure(**prompting)


def _auto_batch_size(
    config: AuditConfig, probes: list[Any], adapter: Adapter, source: DataSource, process: Any
) -> tuple[AuditConfig, str]:
    """``--batch-size auto``: on an accelerator the largest batch (64, 32, ... 1, at most the scene count) that runs
    every probe's first batch without running out of memory; elsewhere memory is not what limits a batch, so the
    suite's size stays."""
    from mmdiag.run.harness_flags import AUTO_BATCH_START, find_batch_size

    if process.world > 1:
        raise ConfigError(
            "--batch-size auto with several processes: give a number, so every process cuts the same batches"
        )
    if adapter.device.type != "cuda":
        return config, (
            f"--batch-size auto: on {adapter.device.type} memory does not limit the batch; the suite's "
            f"{config.batch_size} is kept"
        )

    def trial(size: int) -> None:
        for probe in probes:
            if probe.supports(adapter):
                data = source.examples(size, config.seed, probe.data_request(), id_prefix=probe.name)
                probe.setup(adapter)
                probe.run_batch(adapter, probe.examples(data, adapter)[:size])

    size = find_batch_size(trial, AUTO_BATCH_START, largest=config.n_examples)
    return replace(config, batch_size=size), (
        f"--batch-size auto: {size} examples per forward (the largest of "
        f"{AUTO_BATCH_START}, {AUTO_BATCH_START // 2}, ... that fit in memory)"
    )


def _options_for_process(options: LoadOptions, process: ProcessInfo) -> LoadOptions:
    """Data-parallel on GPUs: each process takes its own GPU, or its own group with --gpus-per-process."""
    if process.world == 1 or not torch.cuda.is_available():
        return options
    if options.gpus_per_process:
        return replace(
            options,
            device_map=options.device_map or "auto",
            max_memory=gpu_group(process.local_rank, options.gpus_per_process),
        )
    if options.device_map is None:
        return replace(options, device_map={"": process.device().index})
    return options


def render_report(
    run_dir: str | Path,
    sources: SourceRegistry | None = None,
    data: tuple[str, dict[str, Any]] | None = None,
    warn: Any = None,
) -> list[Path]:
    """(Re)build report.html and report.md from results.json + examples.jsonl alone (``sources``: where the
    run's data source is found, to re-make example images; default: the built-ins and entry points).

    A run on files (``--data coco:/pope:/relations:``) re-makes its example pictures from its data, found where the
    run recorded it (the path as given, then the absolute path kept in run-identity.json), or where ``data`` (a
    source name and its parameters, ``mmdiag report --data``) points; when neither reads, the examples are listed
    without pictures and ``warn`` (a callable) is told how to point at the data."""
    from mmdiag.report.html import write_html_report
    from mmdiag.report.markdown import write_markdown_report

    run_dir = Path(run_dir)
    data_params = _locate_data(run_dir, sources or SourceRegistry(), data, warn)
    try:
        return [write_html_report(run_dir, sources, data_params), write_markdown_report(run_dir)]
    except OSError as err:
        raise write_error(run_dir, err, "run 'mmdiag report' on the folder (results.json is kept)") from err


DATA_LOCATION = "data_location"  # run-identity.json: the data source's parameters with absolute paths


def _locate_data(
    run_dir: Path, sources: SourceRegistry, data: tuple[str, dict[str, Any]] | None, warn: Any
) -> dict[str, Any] | None:
    """The parameters under which the run's data source reads here (see :func:`render_report`), else None."""
    from mmdiag.results import read_results
    from mmdiag.run.store import IDENTITY_FILE

    config = read_results(run_dir)["metadata"]["config"]
    name = config.get("data", "scenes")
    if data is not None and data[0] != name:
        raise ConfigError(f"--data {data[0]}: the run in {run_dir} was measured on {name} data; point at that")
    if name == "scenes" and data is None:
        return None
    try:
        recorded = json.loads((run_dir / IDENTITY_FILE).read_text()).get(DATA_LOCATION)
    except (OSError, ValueError, AttributeError):
        recorded = None
    candidates = [data[1]] if data is not None else [config.get("data_params", {}), recorded]
    problem = "no location was recorded"
    for params in candidates:
        if not isinstance(params, dict):
            continue
        try:
            source = sources.create(name, **params)
            source.size()
            return params
        except MmdiagError as err:
            problem = str(err)
    if data is not None:
        raise ConfigError(f"--data does not read: {problem}")
    if warn is not None:
        warn(
            f"the run's {name} data was not found ({problem}); its examples are listed without pictures: point at "
            f"the data with 'mmdiag report {run_dir} --data {name}:PATH [--images DIR]'"
        )
    return None


def _check_gates(gates: list[Gate], probes: list[Any], adapter: Adapter) -> None:
    available = {
        f"{p.name}.{m}"
        for p in probes
        if p.supports(adapter)
        for m in (*p.metric_names.get(adapter.kind, ()), *INTEGRITY_METRICS)
    }
    unsupported = {p.name: p.unsupported_reason(adapter) for p in probes if not p.supports(adapter)}
    for gate in gates:
        probe = gate.name.split(".")[0]
        if gate.name not in available and unsupported.get(probe):
            raise ConfigError(
                f"gate '{gate}': the {probe} probe cannot measure this model ({unsupported[probe]}); "
                "choose another suite or model"
            )
        if gate.name not in available:
            raise ConfigError(
                f"gate '{gate}' names an unknown metric for this {adapter.kind} model; available: "
                + ", ".join(sorted(available))
            )


PATH_KEYS = frozenset({"_name_or_path", "name_or_path"})  # where the folder lay, not what the model is


def _model_config_hash(adapter: Adapter) -> str:
    """Hash of the model's config, nested configs included, without the folder it was loaded from
    (a moved or copied checkpoint is the same model)."""
    config = getattr(adapter.model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return canonical_hash(_without_paths(config.to_dict()))
    return canonical_hash(repr(adapter.model))


def _without_paths(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_paths(v) for k, v in value.items() if k not in PATH_KEYS}
    return value


def _weights_dtype(model: torch.nn.Module) -> str | None:
    first = next(iter(model.parameters()), None)
    return str(first.dtype) if first is not None else None
