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
