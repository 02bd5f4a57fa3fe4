"""The README's two commands stay true (CI runs exactly the README's test command), and every command, suite and
zoo model the README and the docs pages name exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pages() -> str:
    """The README and every page of the documentation site."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in pages)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")]
    assert len(command) == 1
    assert command[0].strip() in readme


def test_readme_main_command_audits_the_default_model():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && HF_HUB_OFFLINE=1 mmdiag audit --out runs/demo" in readme


def _readme_commands() -> list[str]:
    """Every ``mmdiag ...`` command of the README's and the docs' bash blocks, continuation lines joined, comments
    cut."""
    import re

    readme = _pages()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("pip install -e . && "):
                line = line.split("&& ", 1)[1].replace("HF_HUB_OFFLINE=1 ", "")
            if line.startswith("mmdiag "):
                commands.append(line)
    return commands


def test_every_readme_command_parses():
    """Each mmdiag command the README and docs show is accepted by the parser (options written [like this] as
    optional)."""
    import re
    import shlex

    from mmdiag.cli import build_parser

    commands = _readme_commands()
    assert len(commands) >= 15
    parser = build_parser()
    for command in commands:
        text = re.sub(r"\[([^\[\]]*)\]", lambda m: m.group(1).split(" | ")[0], command)  # [--a x | --b] -> --a x
        words = [
            {"N": "2", "K": "1"}.get(w, w.split("|")[0] if "|" in w and not w.startswith("-") else w)
            for w in shlex.split(text)
        ]
        try:
            parser.parse_args(words[1:])
        except SystemExit as stop:
            raise AssertionError(f"README command does not parse: {command}") from stop


def test_readme_names_the_shipped_suites_and_zoo_models_that_exist():
    import re

    from mmdiag.run.suites import shipped_suites
    from mmdiag.zoo import build as zoo

    readme = _pages()
    suites = {s.name for s in shipped_suites()}
    for name in re.findall(r"--suite ([a-z_]+)(?![\w/.])", readme):
        assert name in suites, f"README uses --suite {name}, not a shipped suite ({sorted(suites)})"
    for name in re.findall(r"`([a-z]+)\.yaml`", readme):
        assert name in suites, f"README names {name}.yaml, not in probes/"
    cards = {card["name"] for card in zoo.cards()}
    for name in set(re.findall(r"\bref-[a-z0-9-]+[a-z0-9]\b", readme)):
        assert name in cards, f"README names zoo model {name}, which the zoo does not have ({sorted(cards)})"


def test_readme_file_list_is_what_an_audit_writes(tmp_path, tiny_paths):
    """The walkthrough's `ls runs/...` line (docs/tutorials/audit.md) lists what a run folder holds."""
    import re

    from mmdiag.cli import main

    readme = (ROOT / "docs" / "tutorials" / "audit.md").read_text()
    listed = re.search(r"^ls runs/\S+\s+# (.*)$", readme, re.M).group(1).split()
    assert (
        main(
            [
                "audit",
                "--model",
                str(tiny_paths["llava"]),
                "--suite",
                "quick",
                "--out",
                str(tmp_path / "r"),
                "--n-examples",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    written = sorted(
        p.name + ("/" if p.is_dir() else "") for p in (tmp_path / "r").iterdir() if not p.name.startswith(".")
    )
    assert sorted(listed) == written


def test_readme_support_table_is_the_generated_one():
    """The README's support table is the one generated from the adapter registry, and the families page explains
    every built-in architecture; what it says is refused is refused."""
    from mmdiag.adapters.registry import BUILTIN_ADAPTERS
    from mmdiag.docs_tables import support_table

    readme = (ROOT / "README.md").read_text()
    assert support_table().strip() in readme, "README support table is stale: python -m mmdiag.docs_tables support"
    notes = (ROOT / "docs" / "families.md").read_text()
    for architecture in BUILTIN_ADAPTERS:
        if architecture != "open_clip":
            assert f"`{architecture}`" in notes, architecture
    refused = notes[notes.index("Refused with") :]
    refused_example = "Florence2ForConditionalGeneration"
    assert refused_example in refused and refused_example not in BUILTIN_ADAPTERS


def test_the_readme_is_short_and_points_at_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_the_documented_refusal_is_the_real_one(tmp_path, monkeypatch, capsys):
    """The audit tutorial's example error is what mmdiag prints for a text-only model, architectures and all."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmdiag.cli import main

    config = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64
    )
    LlamaForCausalLM(config).save_pretrained(tmp_path / "my-llm")
    capsys.readouterr()  # the save's own progress bar
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "--model", "./my-llm", "--out", "run"]) == 2
    printed = capsys.readouterr().err.strip()
    page = (ROOT / "docs" / "tutorials" / "audit.md").read_text()
    documented = page[page.index("$ mmdiag audit --model ./my-llm") :].splitlines()[1]
    assert printed == documented
