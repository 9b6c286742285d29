"""The docs say what the code does: the CLI reference is the CLI's --help, the README is
short and names every command and question, and no relative link points nowhere.

Each check is a small function over text, and each is also run on a planted defect, so a
check that could never fail would show here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hpsearch.cli import main
from hpsearch.cli_docs import render_cli_reference
from hpsearch.space import QUESTIONS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 199

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CELL_NAME = re.compile(r"`(?:hpsearch\s+)?([a-z][a-z0-9_-]*)`")


def table_names(text: str, header: str) -> set[str]:
    """The `names` in the first column of the first Markdown table whose first header cell
    is ``header`` (outside code blocks)."""
    lines = FENCE.sub("", text).splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells[0].lower() == header:
            names: set[str] = set()
            for row in lines[i + 2:]:
                if not row.lstrip().startswith("|"):
                    break
                first = row.strip().strip("|").split("|")[0]
                names |= set(CELL_NAME.findall(first))
            return names
    return set()


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation
    dropped, spaces as hyphens; a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """Relative links in a Markdown file to a file that does not exist, or to a heading
    that a Markdown file (this one, for ``#anchor``) does not have."""
    bad = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
            continue  # a URL (https:, mailto:)
        file, _, anchor = target.partition("#")
        dest = path.parent / file.split("?", 1)[0] if file else path
        ok = dest.exists() and not (anchor and dest.suffix == ".md"
                                    and anchor not in anchors(dest.read_text()))
        if not ok:
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            bad.append(f"{shown}: {target}")
    return bad


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# ---- the checks on the real docs --------------------------------------------------------

def test_cli_reference_is_the_cli_help() -> None:
    on_disk = (DOCS / "cli.md").read_text()
    assert on_disk == render_cli_reference(), (
        "docs/cli.md differs from the CLI's --help: run python scripts/cli_reference.py")


def test_readme_is_short() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/"


def test_readme_commands_table_names_every_command() -> None:
    in_table = table_names(README.read_text(), "command")
    commands = set(main.commands)
    assert commands - in_table == set(), f"commands missing from README's table: " \
                                         f"{sorted(commands - in_table)}"
    assert in_table - commands == set(), f"README's table names no such command: " \
                                         f"{sorted(in_table - commands)}"


def test_readme_questions_table_names_every_question() -> None:
    in_table = table_names(README.read_text(), "question")
    missing = {q.id for q in QUESTIONS} - in_table
    assert not missing, f"questions missing from README's table: {sorted(missing)}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_ci_runs_the_readme_test_command() -> None:
    """The README's install-and-test command is the line .ci/run runs, verbatim."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in README.read_text().splitlines()
                if line.startswith("python3 -m venv") and "pytest" in line]
    assert len(commands) == 1, "the README should show one install-and-test command"
    assert commands[0] in ci, ".ci/run does not run the README's test command verbatim"


def test_cli_reference_covers_every_command() -> None:
    text = render_cli_reference()
    for name in main.commands:
        assert f"## hpsearch {name}\n" in text
        assert f"Usage: hpsearch {name} " in text


# ---- the checks catch what they are for (planted defects) -------------------------------

def test_table_names_reads_the_right_table() -> None:
    text = ("| question | x |\n|---|---|\n| `dropout` | y |\n\n"
            "```\n| command | z |\n|---|---|\n| `fake` | in a code block |\n```\n"
            "| command | does |\n|---|---|\n| `optimize` | a |\n| `hpsearch report` | b |\n"
            "| `verify`, `best` | c |\n\nafter the table: `datasets`\n")
    assert table_names(text, "command") == {"optimize", "report", "verify", "best"}
    assert table_names(text, "question") == {"dropout"}
    assert table_names("no table here", "command") == set()


def test_broken_links_finds_a_missing_file_or_heading(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# There\n\n## verify: the `causal` answer\n\nx\n")
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[ok](there.md) [ok](there.md#verify-the-causal-answer) "
                    "[web](https://example.org/x.md) [ok](#top) [bad](missing.md) "
                    "[bad too](sub/gone.md#a) [no such heading](there.md#part) "
                    "[nor here](#bottom)\n"
                    "```\n[in code](not-checked.md)\n# not a heading\n```\n")
    assert [b.split(": ", 1)[1] for b in broken_links(page)] == [
        "missing.md", "sub/gone.md#a", "there.md#part", "#bottom"]


def test_anchors_follow_github() -> None:
    text = "# A title\n## Fused training: many models at once\n## A title\n### `cli.md` (x)\n"
    assert anchors(text) == {"a-title", "fused-training-many-models-at-once", "a-title-1",
                             "climd-x"}


def test_reference_check_sees_drift() -> None:
    """A change to any command's help changes the rendering (so the file check can fail)."""
    command = main.commands["datasets"]
    saved = command.help
    try:
        command.help = (saved or "") + " Planted."
        assert render_cli_reference() != (DOCS / "cli.md").read_text()
    finally:
        command.help = saved
