"""``mmdiag`` command line: parses arguments and calls :mod:`mmdiag.api`. Exit codes: 0 ok, 1 a gate
(or a whole probe) failed, 2 bad usage or input (one line on stderr, no traceback), 3 an internal error (one line
naming the file that holds its trace)."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmdiag import __version__
from mmdiag.checkpoints import TINY_FAMILIES
from mmdiag.errors import ConfigError, MmdiagError


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loading")
    group.add_argument(
        "--device-map", default=None, help="accelerate device map: auto, balanced, sequential, cpu, or JSON"
    )
    group.add_argument("--dtype", default=None, help="float32, float16, bfloat16 or auto")
    group.add_argument("--max-memory", default=None, help='JSON per device, e.g. \'{"0": "20GiB", "cpu": "60GiB"}\'')
    group.add_argument("--offload-dir", default=None, help="folder for weights offloaded to disk")
    group.add_argument("--checkpoint", default=None, help="weights file for an open_clip:ARCH model")
    group.add_argument(
        "--gpus-per-process",
        type=int,
        default=0,
        help="with several processes: shard the model over this many GPUs per process",
    )
    group.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (pickle can run code)")
    group.add_argument(
        "--trust-remote-code", action="store_true", help="let transformers run code shipped with the model"
    )
    group.add_argument(
        "--device",
        default=None,
        help="put the whole model on one device: cpu, cuda, cuda:N, mps "
        "(lm-eval's --device; --device-map shards instead)",
    )
    group.add_argument(
        "--model-args",
        default=None,
        metavar="K=V,...",
        help="lm-eval style loading arguments: pretrained=PATH, dtype=bfloat16, device_map=auto, "
        "revision=..., attn_implementation=sdpa, trust_remote_code=true (or a JSON object)",
    )


def _load_options(args: argparse.Namespace):  # noqa: ANN202 - LoadOptions, imported lazily
    from mmdiag.adapters.hf_loading import LoadOptions
    from mmdiag.run.harness_flags import device_map_for, parse_key_values, split_model_args

    _, model_args, extras = split_model_args(parse_key_values(getattr(args, "model_args", None), "--model-args"))
    device_map = args.device_map
    if device_map and device_map.startswith("{"):
        device_map = _json_arg(device_map, "--device-map")
    max_memory = _json_arg(args.max_memory, "--max-memory") if args.max_memory else None
    values = {
        "device_map": device_map,
        "dtype": args.dtype,
        "allow_pickle": args.allow_pickle,
        "trust_remote_code": args.trust_remote_code,
        "max_memory": max_memory,
        "offload_folder": args.offload_dir,
    }
    for key, value in model_args.items():
        if values.get(key) not in (None, False) and values[key] != value:
            raise ConfigError(f"--model-args sets {key}={value!r} but a flag sets {values[key]!r}: give it once")
        values[key] = value
    if getattr(args, "device", None):
        if values["device_map"] is not None:
            raise ConfigError("give --device (the whole model on one device) or --device-map (sharded), not both")
        values["device_map"] = device_map_for(args.device)
    if isinstance(values["max_memory"], dict):
        values["max_memory"] = {int(k) if str(k).isdigit() else k: v for k, v in values["max_memory"].items()}
    return LoadOptions(
        **values,
        checkpoint=args.checkpoint,
        gpus_per_process=args.gpus_per_process,
        extra=tuple(sorted(extras.items())),
    )


def _model_from_args(args: argparse.Namespace) -> str | None:
    """--model, or lm-eval's --model-args pretrained=PATH (not both)."""
    from mmdiag.run.harness_flags import parse_key_values, split_model_args

    pretrained, _, _ = split_model_args(parse_key_values(getattr(args, "model_args", None), "--model-args"))
    if pretrained and args.model and pretrained != args.model:
        raise ConfigError(f"--model {args.model} and --model-args pretrained={pretrained} name two models: give one")
    return args.model or pretrained


def _json_arg(text: str, flag: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise MmdiagError(f'{flag} is not valid JSON ({err.msg}): e.g. \'{{"0": "20GiB"}}\'') from err


class OneLineParser(argparse.ArgumentParser):
    """argparse with mmdiag's error format: one line naming the problem and where help is, exit 2.

    Every ``--multi-word`` flag also answers to lm-eval's ``--multi_word`` spelling; an unknown flag is reported by
    the command it was given to, with the closest known flag ("did you mean").
    """

    def accept_underscore_spellings(self) -> None:
        """Let every ``--multi-word`` flag (of this parser and its commands) answer to ``--multi_word`` too."""
        for action in list(self._actions):
            if isinstance(action, argparse._SubParsersAction):
                for command in action.choices.values():
                    command.accept_underscore_spellings()
            for name in list(action.option_strings):
                alias = "--" + name[2:].replace("-", "_")
                if name.startswith("--") and alias != name:
                    self._option_string_actions.setdefault(alias, action)

    def _get_option_tuples(self, option_string: str) -> list[Any]:  # type: ignore[override]
        """A prefix that matches only spellings of one flag (``--output`` of ``--output-path``/``--output_path``) is
        that flag, not an ambiguity."""
        tuples, seen = [], set()
        for option in super()._get_option_tuples(option_string):
            if id(option[0]) not in seen:
                seen.add(id(option[0]))
                tuples.append(option)
        return tuples

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"mmdiag: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(getattr(parsed, "command", None))
            unknown = next((e for e in extras if e.startswith("-")), extras[0])
            known = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
            close = difflib.get_close_matches(unknown.split("=")[0].replace("_", "-"), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            command.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return parsed

    def _command_parser(self, command: str | None) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                return action.choices[command]
        return self


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="mmdiag", description="Audit vision-language models for multimodal misalignment.")
    parser.add_argument("--version", action="version", version=f"mmdiag {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    audit = sub.add_parser("audit", help="run the diagnostics on a model and write a report")
    audit.add_argument(
        "--model",
        default=None,
        help="model folder, hub id, open_clip:ARCH, or a zoo model (ref-llava-biased or zoo:ref-llava-biased; "
        "default: the embedded model)",
    )
    audit.add_argument("--out", "--output-path", default="runs/audit", help="run folder to write (default: runs/audit)")
    audit.add_argument(
        "--suite",
        default=None,
        help="audit suite: a YAML file or a name (quick, release, projector, prior; default: release)",
    )
    audit.add_argument("--probes", default=None, help="comma-separated probe names (overrides the suite)")
    audit.add_argument(
        "--tasks",
        default=None,
        help="lm-eval's spelling: a suite name (quick, release, ...) or comma-separated probe names",
    )
    audit.add_argument(
        "--log-samples",
        action="store_true",
        help="lm-eval's spelling, accepted: every example's record is always written to examples.jsonl",
    )
    audit.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="what to audit on: scenes (default), coco:DIR (COCO-format folder), pope:FILE[,FILE...] "
        "(official POPE question files; needs --images), or an installed source's name",
    )
    audit.add_argument(
        "--images", default=None, metavar="DIR", help="the image folder of --data coco:, pope: or relations:"
    )
    audit.add_argument(
        "--n-examples",
        "--n-scenes",
        dest="n_examples",
        type=int,
        default=None,
        help="examples per probe (suite default: its scenes.n; with --data: every example of the source); "
        "--n-scenes is the old spelling",
    )
    audit.add_argument(
        "--seed", type=int, default=None, help="seed of the scenes, questions and bootstraps (default 0)"
    )
    audit.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="scene resolution in pixels (with --data coco: the side photos are squashed to, default 336)",
    )
    audit.add_argument(
        "--gate", action="append", default=[], help="extra release gate, e.g. hallucination.f1>=0.8 (repeatable)"
    )
    audit.add_argument(
        "--answer-tokens",
        type=int,
        default=None,
        help="attention: also measure at this many greedily generated answer tokens",
    )
    audit.add_argument(
        "--no-untrained-baseline",
        action="store_true",
        help="skip the untrained copy of the model (it doubles memory for large models)",
    )
    audit.add_argument(
        "--batch-size",
        default=None,
        help="examples per forward (suite default 8), or auto: the largest that fits in accelerator memory",
    )
    audit.add_argument(
        "--limit",
        default=None,
        help="only this many scenes (a count, or a fraction of the suite's "
        "below 1: 0.25); for trying things out, noted in the results",
    )
    audit.add_argument(
        "--gen-kwargs",
        default=None,
        metavar="K=V,...",
        help="generation arguments for free-text answers and captions, e.g. max_new_tokens=32,"
        "num_beams=3 (yes/no decisions read logits and ignore them)",
    )
    audit.add_argument(
        "--system-prompt",
        default=None,
        help="a system prompt before every question (a system turn where the model has a chat template)",
    )
    audit.add_argument(
        "--chat-template",
        default=None,
        metavar="FILE|none",
        help="a Jinja chat template file to prompt with instead of the model's own; none: the plain prompt template",
    )
    audit.add_argument(
        "--verbosity",
        default="ERROR",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of mmdiag's libraries (transformers, accelerate); default ERROR",
    )
    audit.add_argument(
        "--resume", action="store_true", help="finish an interrupted run in --out, keeping its finished examples"
    )
    audit.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    audit.add_argument(
        "--num-processes",
        type=int,
        default=1,
        help="data-parallel processes on this machine (relaunches under torchrun; or use accelerate launch)",
    )
    audit.add_argument("--no-progress", action="store_true", help="hide progress bars")
    audit.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and print what would run (model, family, data, examples per probe, "
        "gates, time estimate), then stop: nothing is loaded or written",
    )
    audit.add_argument(
        "--intervene",
        action="append",
        default=[],
        metavar="NAME[:k=v,...]",
        help="apply an intervention to every forward of the audit and re-measure: knockout (layers=all|START-END, "
        "from=question|last), fastv (k, ratio), pai (alpha, gamma, start, end), vcd (alpha, beta, t); each "
        "parameter defaults to its paper's (repeatable)",
    )
    audit.add_argument(
        "--plant",
        default=None,
        metavar="DEFECT",
        help="plant a known defect into the loaded model to prove the gates catch it: image-blind, "
        "shuffled-image-tokens, untrained-vision-encoder, text-only-lm, attention-starved",
    )
    audit.add_argument(
        "--answers",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE",
        help="audit a model mmdiag cannot load from its answers to an export (repeatable): JSON lines "
        "(question_id = the export's index), an lmms-eval sample log of the mmdiag_audit task, a VLMEvalKit "
        "prediction file; needs --export",
    )
    audit.add_argument("--export", default=None, metavar="DIR", help="with --answers: the folder mmdiag export wrote")
    audit.add_argument(
        "--answers-format",
        default="auto",
        choices=("auto", "jsonl", "lmms-eval", "vlmevalkit"),
        help="layout of the --answers files (default: detected)",
    )
    audit.add_argument(
        "--rule",
        default="vlmevalkit",
        help="with --answers: how yes/no answers are read (pope, vcd, lmms-eval, vlmevalkit; default vlmevalkit: "
        "a yes or a no word, else unreadable)",
    )
    _add_load_options(audit)

    export = sub.add_parser(
        "export",
        help="write the suite's questions and images for another harness (lmms-eval task, VLMEvalKit TSV); "
        "read the answers back with mmdiag audit --answers",
    )
    export.add_argument("--out", required=True, help="new folder for the export")
    export.add_argument("--suite", default=None, help="audit suite: a YAML file or a name (default: release)")
    export.add_argument("--probes", default=None, help="comma-separated probe names (overrides the suite)")
    export.add_argument("--data", default=None, metavar="SOURCE", help="as mmdiag audit --data (default: scenes)")
    export.add_argument("--images", default=None, metavar="DIR", help="the image folder of --data")
    export.add_argument("--n-examples", dest="n_examples", type=int, default=None, help="examples per probe")
    export.add_argument("--seed", type=int, default=None, help="seed of the scenes and questions (default 0)")
    export.add_argument("--resolution", type=int, default=None, help="scene resolution in pixels")
    export.add_argument("--limit", default=None, help="only this many examples (a count or a fraction)")
    export.set_defaults(
        gate=[],
        answer_tokens=None,
        no_untrained_baseline=False,
        gen_kwargs=None,
        system_prompt=None,
        chat_template=None,
    )

    report = sub.add_parser("report", help="rebuild report.html and report.md from a run folder")
    report.add_argument("run_dir")
    report.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="where the run's data is now (coco:DIR, pope:FILE, relations:FILE), when it moved: its "
        "example pictures are re-made from it (default: where the run found it)",
    )
    report.add_argument("--images", default=None, metavar="DIR", help="the image folder of --data")

    tiny = sub.add_parser("tiny", help="build a random tiny checkpoint of a family (for tests and trials)")
    tiny.add_argument("family", choices=list(TINY_FAMILIES))
    tiny.add_argument("--out", required=True, help="folder for the checkpoint (model, processor, config)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")

    scenes = sub.add_parser("scenes", help="write a synthetic scene set: PNGs, manifest, POPE files, contact sheet")
    scenes.add_argument("--n", type=int, default=64, help="number of scenes")
    scenes.add_argument("--seed", type=int, default=0, help="seed of the scenes (default 0)")
    scenes.add_argument("--out", required=True, help="folder for the scene set")
    scenes.add_argument("--resolution", type=int, default=64, help="image side in pixels (default 64)")
    scenes.add_argument("--min-objects", type=int, default=1, help="fewest objects in a scene (default 1)")
    scenes.add_argument("--max-objects", type=int, default=3, help="most objects in a scene (default 3)")
    scenes.add_argument(
        "--background", choices=["plain", "textured", "mixed"], default="plain", help="scene background (default plain)"
    )
    scenes.add_argument(
        "--cooccur",
        default=None,
        metavar="ANCHOR,PARTNER,P",
        help='plant a prior, e.g. "red circle,green triangle,0.9"',
    )

    compare = sub.add_parser("compare", help="compare audited runs side by side, pair by pair where examples match")
    compare.add_argument("runs", nargs="+", help="run folders; the first is the baseline")
    compare.add_argument(
        "--out",
        default=None,
        help="folder for compare.html, compare.md, compare.json (default: compare-BASE-vs-LAST beside the last run)",
    )
    compare.add_argument(
        "--fail-on-regression",
        nargs="?",
        type=float,
        const=0.0,
        default=None,
        metavar="TOL",
        help="exit 1 when a run is worse than the baseline by more than TOL (default 0) on a gated "
        "metric, with a paired 95%% CI that excludes zero (same suite and seed)",
    )

    pope = sub.add_parser("pope", help="score POPE answers of any system (no model loaded), or run --model first")
    pope.add_argument(
        "--questions",
        action="append",
        default=[],
        help="POPE question file, JSON lines or a JSON array (repeat: one per split); not needed for answers "
        "that carry their labels (lmms-eval sample logs, VLMEvalKit predictions)",
    )
    pope.add_argument(
        "--answers",
        action="append",
        default=[],
        help="answers of any system (repeat): mmdiag/LLaVA/VCD JSON lines (question_id + answer/text), POPE's "
        "question + answer file (matched by order), an lmms-eval --log_samples file of a pope task, a VLMEvalKit "
        "<model>_POPE.xlsx/.tsv/.json; one for all --questions or one per --questions file. With --model, a "
        "folder for the model's answers, one <question stem>.answers.jsonl per question file (default: next to "
        "each question file)",
    )
    pope.add_argument(
        "--format",
        default="auto",
        choices=("auto", "jsonl", "pope-answers", "lmms-eval", "vlmevalkit"),
        help="layout of the --answers files (default: detected from each file)",
    )
    pope.add_argument(
        "--model", default=None, help="answer the questions with this model first (logit decisions, resumable)"
    )
    pope.add_argument(
        "--batch-size",
        default="8",
        help="with --model: images scored together (default 8), or auto: on a CUDA device the largest that fits in "
        "memory, elsewhere 8 (memory does not limit a CPU batch)",
    )
    pope.add_argument(
        "--image-dir",
        default=None,
        help="with --model: folder of the question files' images (default: each question file's folder)",
    )
    pope.add_argument(
        "--rule",
        default=None,
        help="parsing rule: pope (official), vcd, lmms-eval, vlmevalkit (default: the answers' own tool's rule: "
        "lmms-eval for its logs, vlmevalkit for its predictions, else pope)",
    )
    pope.add_argument("--out", default=None, help="also write the JSON here")

    chair = sub.add_parser("chair", help="CHAIR of generated captions on COCO, as the original 2018 code computes it")
    chair.add_argument(
        "--captions",
        required=True,
        help='captions JSON: [{"image_id": ..., "caption": ...}] (or the original\'s imgToEval file)',
    )
    chair.add_argument(
        "--coco-annotations", required=True, help="COCO annotations folder holding instances_*.json and captions_*.json"
    )
    chair.add_argument(
        "--sentence-splitter",
        default="auto",
        choices=("auto", "trained", "untrained"),
        help="nltk Punkt: trained English model (as the original) or untrained; auto = trained "
        "when nltk's punkt_tab data is installed",
    )
    chair.add_argument("--out", default=None, help="also write the JSON here")

    zoo = sub.add_parser("zoo", help="reference models trained on the synthetic scenes")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    zoo_sub.add_parser("ls", help="list the zoo with measured accuracies")
    zoo_build = zoo_sub.add_parser("build", help="train a reference model (and what it depends on), cached")
    zoo_build.add_argument("name", help="e.g. ref-llava-mlp")
    zoo_build.add_argument("--out", default=None, help="folder to write (default: the cache, $MMDIAG_HOME/zoo/NAME)")
    zoo_build.add_argument("--rebuild", action="store_true", help="train again even if a built copy exists")

    sub.add_parser("ls", help="list supported architectures, probes, data sources, suites and zoo models")

    metrics = sub.add_parser(
        "metrics",
        help="every headline metric: meaning, direction, reference, CI, how compare "
        "pairs it, what a failed gate means (from the probes' metric specs)",
    )
    metrics.add_argument("--probe", default=None, help="only this probe's metrics")
    metrics.add_argument("--markdown", action="store_true", help="a Markdown table (docs/metrics.md is this)")
    parser.accept_underscore_spellings()  # lm-eval's --model_args, --batch_size, --output_path, --log_samples, ...
    return parser


def _quiet_libraries(level: str = "ERROR") -> None:
    """Libraries log at ``level`` (--verbosity); their own progress bars stay off below INFO."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(getattr(logging, level))
    logging.getLogger("accelerate").setLevel(getattr(logging, level))
    if level in ("ERROR", "WARNING"):
        hf_logging.disable_progress_bar()


def _cmd_audit(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import os

    from mmdiag import api

    if args.num_processes < 1:
        raise ConfigError(f"--num-processes must be at least 1, got {args.num_processes}")
    if args.device and args.num_processes > 1:
        raise ConfigError(
            "--device puts the whole model on one device, but with --num-processes each process takes "
            "its own GPU: drop --device (or use --gpus-per-process to shard)"
        )
    if args.gpus_per_process < 0:
        raise ConfigError(f"--gpus-per-process must be 0 (no sharding) or more, got {args.gpus_per_process}")
    if args.limit is not None and args.n_examples is not None:
        raise ConfigError("give --limit or --n-examples, not both")
    from mmdiag.run.harness_flags import parse_batch_size

    _apply_tasks(args)
    if args.answers or args.export:
        plan = _answers_plan(args)
    else:
        model = _model_from_args(args)
        if model is not None:
            from mmdiag.zoo.build import resolve_model_name

            model = resolve_model_name(model)  # zoo:NAME or a zoo model's bare name -> its folder
        config = _audit_config(args)
        plan = api.plan_audit(
            model,
            args.out,
            config,
            options=_load_options(args),
            overwrite=args.overwrite,
            resume=args.resume,
            progress=not args.no_progress,
            plant=args.plant,
            batch_size=parse_batch_size(args.batch_size),
            n_examples=args.n_examples if args.n_examples is not None else ("all" if config.data != "scenes" else None),
            limit=args.limit,
            fit_probes_to_data=args.probes is None,
        )
    if args.dry_run:
        plan.preflight()
        print("\n".join(plan.preview()))
        print("dry run: nothing was loaded or written; drop --dry-run to run it")
        return 0
    for note in plan.notes:
        if ": left out for the " in note:
            print(f"mmdiag: {note}", file=sys.stderr)
    if args.num_processes > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from mmdiag.run.distributed import relaunch

        plan.preflight()  # every refusal that needs no model, once, before processes start
        return relaunch(args.num_processes, _without_option(argv, "--num-processes"))
    outcome = api.audit(plan)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0 if outcome.passed else 1  # the main process prints
    from mmdiag.verdicts import describe_outcome, is_release_verdict, verdict_lines

    print("\n".join(verdict_lines(outcome.results)))  # the verdict and every failed gate first
    for gate in outcome.results["gates"]:
        if gate["passed"]:
            print(f"gate {describe_outcome(gate)}")
    for name, probe in outcome.results["probes"].items():
        if "error" in probe:
            print(f"probe {name} failed: {probe['error']}", file=sys.stderr)
    said = (
        outcome.results["verdict"]
        if is_release_verdict(outcome.results) or not outcome.passed
        else "no release verdict"
    )
    print(f"{said}: wrote {outcome.run_dir}/results.json, examples.jsonl, report.html, report.md")
    print(
        f"next: open {outcome.run_dir}/report.html; to compare with another run of the same suite and seed: "
        f"mmdiag compare BASE_RUN {outcome.run_dir}"
    )
    return 0 if outcome.passed else 1


def _apply_tasks(args: argparse.Namespace) -> None:
    """lm-eval's ``--tasks``: a suite name sets ``--suite``, probe names set ``--probes`` (args left otherwise
    untouched: only the two fields it stands for)."""
    if args.tasks is None:
        return
    from mmdiag.probes.registry import ProbeRegistry
    from mmdiag.run.suites import SUITES_DIR

    if args.suite is not None or args.probes is not None:
        raise ConfigError("--tasks names a suite or probes: give it instead of --suite / --probes, not with them")
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    probes = set(ProbeRegistry().names())
    suites = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
    if len(names) == 1 and names[0] in suites:
        args.suite = names[0]
    elif names and all(n in probes for n in names):
        args.probes = ",".join(names)
    else:
        raise ConfigError(
            f"--tasks {args.tasks}: name one suite ({', '.join(suites)}) or probes ({', '.join(sorted(probes))})"
        )


def _answers_plan(args: argparse.Namespace):  # noqa: ANN202 - AuditPlan, imported lazily
    """The plan of an audit from answers: the export's configuration, a replay adapter as the model."""
    from dataclasses import replace

    from mmdiag import api
    from mmdiag.metrics.pope import RULES
    from mmdiag.offline.adapters import EXPORT_FILE, ReplayAdapter
    from mmdiag.run.config import AuditConfig

    if not args.answers or not args.export:
        raise ConfigError(
            "an audit from answers needs both --answers FILE and --export DIR (the folder mmdiag export wrote)"
        )
    given = [flag for flag, value in (("--model", args.model), ("--plant", args.plant), ("--suite", args.suite),
             ("--data", args.data), ("--probes", args.probes), ("--n-examples", args.n_examples),
             ("--limit", args.limit), ("--seed", args.seed)) if value is not None]  # fmt: skip
    if given:
        raise ConfigError(f"{', '.join(given)} cannot go with --answers: the export fixed the model's questions")
    if args.rule not in RULES:
        raise ConfigError(f"unknown parsing rule '{args.rule}': choose one of {', '.join(RULES)}")
    manifest_path = Path(args.export) / EXPORT_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        config = AuditConfig.from_dict(manifest["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{manifest_path} cannot be read as an export ({type(err).__name__}): pass the folder mmdiag export wrote"
        ) from err
    config = replace(config, gates=(*config.gates, *args.gate))
    adapter, notes = ReplayAdapter.from_export(args.export, args.answers, args.rule, args.answers_format)
    plan = api.plan_audit(
        adapter, args.out, config, overwrite=args.overwrite, resume=args.resume, progress=not args.no_progress
    )
    for note in notes:
        print(f"mmdiag: warning: {note}", file=sys.stderr)
    exported = [n for n in manifest.get("notes", []) if isinstance(n, str)]  # what the export left out, and why
    return replace(plan, notes=(*exported, *plan.notes, *notes))


def _cmd_export(args: argparse.Namespace) -> int:
    from mmdiag import api
    from mmdiag.offline.adapters import RecordingAdapter
    from mmdiag.offline.export import export_audit, export_lines

    if args.limit is not None and args.n_examples is not None:
        raise ConfigError("give --limit or --n-examples, not both")
    config = _audit_config(args)
    recorder = RecordingAdapter()
    plan = api.plan_audit(
        recorder,
        args.out,
        config,
        progress=False,
        n_examples=args.n_examples if args.n_examples is not None else ("all" if config.data != "scenes" else None),
        limit=args.limit,
        fit_probes_to_data=args.probes is None,
    )
    print("\n".join(export_lines(export_audit(plan, recorder, args.out))))
    return 0


def _audit_config(args: argparse.Namespace):  # noqa: ANN202 - AuditConfig, imported lazily
    """The suite's configuration with every flag the user gave laid over it (the example count, ``--limit`` and
    the probes that fit the data are settled by the plan, which builds the data source)."""
    from dataclasses import replace

    from mmdiag.run.data_spec import PHOTO_RESOLUTION, parse_data_spec
    from mmdiag.run.harness_flags import check_gen_kwargs, parse_key_values
    from mmdiag.run.suites import default_suite, load_suite

    config = (load_suite(args.suite) if args.suite else default_suite()).config
    data, data_params = parse_data_spec(args.data, args.images)
    resolution = args.resolution
    if resolution is None and data == "coco":
        resolution = PHOTO_RESOLUTION
    overrides: dict[str, Any] = {
        key: value for key, value in (("seed", args.seed), ("resolution", resolution)) if value is not None
    }
    prompting = {
        "system_prompt": args.system_prompt,
        "chat_template": _chat_template(args.chat_template, args.system_prompt),
        "gen_kwargs": check_gen_kwargs(parse_key_values(args.gen_kwargs, "--gen-kwargs")),
    }
    prompting = {k: v for k, v in prompting.items() if v}
    if prompting:
        overrides["prompting"] = prompting
    if data != "scenes":
        overrides.update(data=data, data_params=data_params)
    if args.probes is not None:
        overrides["probes"] = tuple(p.strip() for p in args.probes.split(",") if p.strip())
    if getattr(args, "intervene", None):
        from mmdiag.interventions.registry import canonical_interventions

        overrides["interventions"] = canonical_interventions([*config.interventions, *args.intervene])
    params = {name: dict(values) for name, values in config.probe_params.items()}
    attention = params.setdefault("attention", {})
    if args.answer_tokens is not None:
        attention["generate_tokens"] = args.answer_tokens
    if args.no_untrained_baseline:
        attention["untrained_baseline"] = False
    probes = overrides.get("probes", config.probes)
    kept = tuple(g for g in config.gates if g.split(".")[0].strip() in probes)  # gates of probes left out are dropped
    return replace(
        config,
        **overrides,
        gates=kept + tuple(args.gate),
        probe_params={k: v for k, v in params.items() if k in probes},
    )


def _chat_template(value: str | None, system_prompt: str | None = None) -> str | None:
    """--chat-template: the text of a Jinja file (compiled and rendered once on a sample prompt now, before any
    model loads), or "none" (use the plain prompt template)."""
    from mmdiag.run.harness_flags import check_chat_template

    if value is None or value.lower() == "none":
        return None if value is None else "none"
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"--chat-template {value}: no such file; pass a Jinja template file or 'none'")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"--chat-template {value} cannot be read ({err.__class__.__name__}): pass a UTF-8 text file"
        ) from err
    return check_chat_template(text, f"--chat-template {value}", system_prompt)


def _without_option(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` without ``flag`` and its value (either ``--flag N`` or ``--flag=N``)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        elif not item.startswith(f"{flag}="):
            out.append(item)
    return out


def _cmd_report(args: argparse.Namespace) -> int:
    from mmdiag import api
    from mmdiag.run.data_spec import parse_data_spec

    data = parse_data_spec(args.data, args.images) if args.data else None
    warn = lambda line: print(f"mmdiag: warning: {line}", file=sys.stderr)  # noqa: E731
    for path in api.render_report(Path(args.run_dir), data=data, warn=warn):
        print(f"wrote {path}")
    print(f"next: open {Path(args.run_dir) / 'report.html'}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mmdiag.run.compare import check_compare_out, compare_runs, find_regressions, write_comparison

    if args.out is None:
        base, last = Path(args.runs[0]), Path(args.runs[-1])
        args = argparse.Namespace(**{**vars(args), "out": str(last.parent / f"compare-{base.name}-vs-{last.name}")})
    check_compare_out(args.out, args.runs)  # before any run is read
    comparison = compare_runs(args.runs)
    for warning in comparison.warnings:
        print(f"mmdiag: warning: {warning}", file=sys.stderr)
    tolerance = args.fail_on_regression
    if tolerance is not None:
        paired_runs = {d.run for d in comparison.paired}
        unpaired = [r.label for r in comparison.runs[1:] if r.label not in paired_runs]
        if unpaired:
            raise ConfigError(
                f"cannot check {', '.join(unpaired)} for regressions: no examples pair with the baseline "
                "(run both with the same suite and seed)"
            )
        find_regressions(comparison, tolerance)
    paths = write_comparison(comparison, args.out)
    if tolerance is not None:
        for d in comparison.regressions:
            print(
                f"REGRESSION {d.probe}.{d.metric}: {d.run} - {d.baseline} = {d.mean_difference:+.3f} "
                f"[{d.ci_low:+.3f}, {d.ci_high:+.3f}] over {d.n} examples (tolerance {tolerance:g})"
            )
        print(
            f"{'FAIL' if comparison.regressions else 'PASS'}: {len(comparison.regressions)} regression(s) "
            f"beyond {tolerance:g} with a paired CI excluding zero"
        )
    print("\n".join(comparison.summary()))
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"next: open {Path(args.out) / 'compare.html'} (each paired difference with its CI and what it means)")
    return 1 if tolerance is not None and comparison.regressions else 0


def _cmd_pope(args: argparse.Namespace) -> int:
    from mmdiag.metrics.pope_files import score_pope

    fmt = args.format
    if args.model:
        from mmdiag.adapters import load_adapter
        from mmdiag.run.pope_answers import answer_pope

        if not args.questions:
            raise ConfigError("with --model give the --questions file(s) the model should answer")
        if len(args.answers) > 1:
            raise ConfigError("with --model give at most one --answers folder: the model's answers are written there")
        from mmdiag.run.harness_flags import parse_batch_size

        batch_size = parse_batch_size(args.batch_size)
        if batch_size != "auto" and batch_size < 1:
            raise ConfigError(f"--batch-size {args.batch_size} must be a positive count or 'auto'")
        adapter = load_adapter(args.model)
        folder = (lambda q: Path(args.answers[0])) if args.answers else (lambda q: Path(q).parent)  # noqa: E731
        answers = [
            str(
                answer_pope(
                    adapter, q, folder(q) / f"{Path(q).stem}.answers.jsonl", args.image_dir, batch_size=batch_size
                )
            )
            for q in args.questions
        ]
        fmt = "jsonl"
    elif not args.answers:
        raise ConfigError("give --answers (answers of any system) or --model (to answer with a model first)")
    else:
        answers = args.answers
    results = score_pope(args.questions, answers, args.rule, fmt)
    text = json.dumps(results, indent=2)
    if args.out:
        _write_text(Path(args.out), text + "\n")
    print(text)
    for name, result in results.items():
        print(
            f"mmdiag: {name}: read {result['answers']} as {result['format']}, {result['n']} questions, "
            f"scored with the {result['rule']} rule",
            file=sys.stderr,
        )
    others = ", ".join(r for r in ("pope", "vcd", "lmms-eval", "vlmevalkit") if r != args.rule)
    print(f"mmdiag: next: the same answers under another tool's rule: --rule {{{others}}}", file=sys.stderr)
    return 0


def _cmd_chair(args: argparse.Namespace) -> int:
    from mmdiag.metrics.coco_chair import chair_on_coco

    result = chair_on_coco(args.captions, args.coco_annotations, args.sentence_splitter)
    text = json.dumps(result.to_dict(), indent=2)
    print(text)
    if args.out:
        _write_text(Path(args.out), text + "\n")
    return 0


def _write_text(path: Path, text: str) -> None:
    from mmdiag.errors import write_error

    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise write_error(path, err, "pass a writable --out path") from err


ZOO_CARD_NUMBERS = (
    "presence_accuracy",
    "relation_accuracy",
    "relation_accuracy_horizontal",
    "relation_accuracy_vertical",
    "caption_accuracy",
)


def _cmd_zoo(args: argparse.Namespace) -> int:
    from mmdiag.zoo import build as zoo

    if args.zoo_command == "ls":
        for card in zoo.cards():
            where = "shipped" if card["shipped"] else ("built" if card["built"] else "not built")
            numbers = ", ".join(f"{k.removesuffix('_accuracy')} {card[k]:.3f}" for k in ZOO_CARD_NUMBERS if k in card)
            print(f"{card['name']:22s} {where:9s} {numbers}  {card['description']}")
        return 0
    path = zoo.build(args.name, args.out, rebuild=args.rebuild)
    print(f"wrote {path}: " + (path / zoo.CARD).read_text())
    print(f"next: mmdiag audit --model {path} --out runs/{args.name}")
    return 0


def _cmd_tiny(args: argparse.Namespace) -> int:
    from mmdiag.checkpoints.tiny import TinySpec, build_tiny

    print(f"wrote {build_tiny(args.family, args.out, TinySpec(seed=args.seed))}")
    print(f"next: mmdiag audit --model {args.out} --suite quick --out runs/tiny-{args.family}")
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from mmdiag.adapters.registry import default_registry
    from mmdiag.probes.registry import ProbeRegistry
    from mmdiag.run.suites import shipped_suites
    from mmdiag.sources import SourceRegistry
    from mmdiag.zoo import build as zoo

    print("architectures: " + ", ".join(default_registry().supported()))
    print("probes: " + ", ".join(ProbeRegistry().names()))
    print("data sources: " + ", ".join(SourceRegistry().names()))
    print("suites (--suite NAME):")
    for suite in shipped_suites():
        print(f"  {suite.name:22s} {suite.config.n_examples:5d} scenes  {suite.description}")
    print("zoo models (--model NAME):")
    for card in zoo.cards():
        where = (
            "shipped"
            if card["shipped"]
            else ("built" if card["built"] else "not built: mmdiag zoo build " + card["name"])
        )
        print(f"  {card['name']:22s} {where}")
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    from mmdiag.probes.metric_spec import metric_table, specs_of
    from mmdiag.probes.registry import ProbeRegistry

    registry = ProbeRegistry()
    names = [args.probe] if args.probe else registry.names()
    classes = {name: registry.get(name) for name in names}
    if args.markdown:
        print(metric_table(classes), end="")
        return 0
    for probe, cls in classes.items():
        for name, spec in specs_of(cls).items():
            print(f"{probe}.{name} ({spec.better}): {spec.meaning}")
            print(f"    computed: {spec.computed}" + (f"; CI: {spec.ci}" if spec.ci else ""))
            print(
                f"    compare: {spec.pairing_text()}"
                + (f"; a failed gate means: {spec.failure}" if spec.failure else "")
            )
    return 0


def _cmd_scenes(args: argparse.Namespace) -> int:
    from mmdiag.errors import ConfigError
    from mmdiag.scenes.export import export_scene_set
    from mmdiag.scenes.generate import Cooccurrence, SceneRecipe

    try:
        prior = None
        if args.cooccur:
            parts = [part.strip() for part in args.cooccur.split(",")]
            if len(parts) != 3:
                raise ConfigError(
                    f"--cooccur {args.cooccur!r} must be ANCHOR,PARTNER,P, e.g. 'red circle,green triangle,0.9'"
                )
            prior = Cooccurrence(parts[0], parts[1], float(parts[2]))
        recipe = SceneRecipe(args.min_objects, args.max_objects, args.background, cooccurrence=prior)
    except ValueError as err:
        raise ConfigError(f"bad scene recipe: {err}") from err
    from mmdiag.validation import check_bound

    check_bound("n_examples", args.n, label="--n")
    check_bound("seed", args.seed)
    check_bound("resolution", args.resolution)
    written = export_scene_set(args.out, args.n, args.seed, recipe, args.resolution)
    print(f"wrote {args.n} scenes to {args.out}: " + ", ".join(p.name for p in written.values()))
    print(
        f"next: score any system on them: mmdiag pope --questions {Path(args.out) / 'pope_random.jsonl'} "
        f"--answers ANSWERS, or answer with a model: add --model PATH"
    )
    return 0


def _report_error(err: MmdiagError) -> int:
    """Print the one-line error once: in a data-parallel run only rank 0 speaks. Under ``--num-processes``
    rank 0 hands the line to the launching process (which prints it and exits 2) and every rank exits 0,
    so torchrun adds no tracebacks of its own."""
    import os

    from mmdiag.run.distributed import STATUS_FILE_ENV

    rank = int(os.environ.get("RANK", "0"))
    status = os.environ.get(STATUS_FILE_ENV) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    if status:
        if rank == 0:
            Path(status).write_text(str(err))
        return 0
    if rank == 0:
        print(f"mmdiag: error: {err}", file=sys.stderr)
    return err.exit_code


def _file_error(err: OSError) -> MmdiagError:
    """The one-line error for an OSError on a named file (missing, unreadable, unwritable, disk full)."""
    from mmdiag.errors import write_error

    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return MmdiagError(f"{err.filename}: {err.strerror}: check the path")
    return write_error(err.filename, err, "run the command again")


COMMANDS = {
    "report": _cmd_report,
    "compare": _cmd_compare,
    "zoo": _cmd_zoo,
    "pope": _cmd_pope,
    "chair": _cmd_chair,
    "tiny": _cmd_tiny,
    "scenes": _cmd_scenes,
    "ls": _cmd_ls,
    "metrics": _cmd_metrics,
    "export": _cmd_export,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmdiag`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error already printed as one line
        return stop.code if isinstance(stop.code, int) else 2
    try:
        _quiet_libraries(getattr(args, "verbosity", "ERROR"))
        if args.command == "audit":
            return _cmd_audit(args, argv)
        return COMMANDS[args.command](args)
    except MmdiagError as err:
        return _report_error(err)
    except OSError as err:  # a file the command had to read or write, not a bug: one line, no traceback
        if err.filename is None:
            return _report_internal_error(err, args, argv)
        return _report_error(_file_error(err))
    except KeyboardInterrupt:
        print("mmdiag: interrupted; finished examples are kept in examples.jsonl", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last resort: a bug, never a traceback on the user's screen
        return _report_internal_error(err, args, argv)


INTERNAL_ERROR_EXIT = 3  # 1 is a failed verdict, 2 bad input


def _report_internal_error(err: Exception, args: argparse.Namespace, argv: Sequence[str]) -> int:
    """An unexpected exception: one line with its type and message, the command's inputs, and where its full trace
    was saved (``mmdiag-error.log`` in the run folder when there is one, else in the temporary folder); exit 3."""
    import os
    import tempfile
    import time
    import traceback

    from mmdiag.run.store import ERROR_LOG

    out = getattr(args, "out", None) if args.command == "audit" else None
    folder = Path(out) if out and Path(out).is_dir() else Path(tempfile.gettempdir())
    log = folder / (
        ERROR_LOG if folder != Path(tempfile.gettempdir()) else f"mmdiag-error-{os.getpid()}-{int(time.time())}.log"
    )
    trace = "".join(traceback.format_exception(err))
    try:
        log.write_text(f"mmdiag {__version__}: {' '.join(argv)}\n\n{trace}", encoding="utf-8")
        where = f"the full trace is in {log}"
    except OSError:
        where = "the trace could not be saved"
    inputs = ", ".join(
        f"{flag} {getattr(args, name)}"
        for flag, name in (
            ("--model", "model"),
            ("--data", "data"),
            ("--questions", "questions"),
            ("--answers", "answers"),
            ("--captions", "captions"),
            ("run", "run_dir"),
        )
        if getattr(args, name, None)
    )
    message = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"mmdiag: internal error: {err.__class__.__name__}: {message}"
            + (f" (inputs: {inputs})" if inputs else "")
            + f"; {where}; please report it with that file",
            file=sys.stderr,
        )
    return INTERNAL_ERROR_EXIT


if __name__ == "__main__":
    raise SystemExit(main())
