"""The README's command examples still parse: every `escmon ...` line names real
commands and options (a renamed option fails here, not in a reader's terminal)."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import typer.main

from pipeline.cli import app, main
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        in_block = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_block = not in_block
                continue
            command = line.split("#", 1)[0].strip()
            match = re.search(r"(?:^|\s|/)escmon\s+(.*)$", command)
            if in_block and match and "<" not in command:
                found.append((path.name, match.group(1)))
    return found


EXAMPLES = _examples()


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) > 15


@pytest.mark.parametrize(("doc", "example"), EXAMPLES, ids=[e for _, e in EXAMPLES])
def test_readme_example_names_real_commands_and_options(doc: str, example: str, capsys) -> None:
    tokens = shlex.split(example.split("&&")[0])
    command: Any = typer.main.get_command(app)  # typer vendors its own click
    path: list[str] = []
    while hasattr(command, "list_commands") and tokens and not tokens[0].startswith("-"):
        sub = command.get_command(None, tokens[0])
        assert sub is not None, f"{doc}: `escmon {example}`: no command {tokens[0]!r}"
        path.append(tokens.pop(0))
        command = sub
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for token in tokens:
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            assert name in known, f"{doc}: `escmon {example}`: {name} is not an option"
    assert main([*path, "--help"]) == 0
    assert "Example" in capsys.readouterr().out


def _configuration_table() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `ESCMON_"))


def test_every_setting_is_in_the_readme_table() -> None:
    """A setting the code reads is a row of README's configuration table (a row may name
    several, e.g. `ESCMON_SMTP_HOST`, `_PORT`)."""
    from pipeline.config import Settings

    table = _configuration_table()
    names = set(re.findall(r"`(ESCMON_[A-Z_]+)`", table))
    for prefix, rest in re.findall(r"`(ESCMON_[A-Z]+)_[A-Z_]+`((?:, `_[A-Z_]+`)+)", table):
        names |= {prefix + suffix for suffix in re.findall(r"`(_[A-Z_]+)`", rest)}
    missing = [f"ESCMON_{field.upper()}" for field in Settings.model_fields]
    missing = [name for name in missing if name not in names]
    assert not missing, f"README's configuration table lacks {missing}"
