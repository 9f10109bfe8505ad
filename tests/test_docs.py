"""Every python block of the README files and docs/ runs as written.

Discovered: README.md, docs/*.md and packages/*/README.md (a new domain package's README is picked up without
touching this file). Each ```python block runs on its own — a fresh namespace in a fresh folder holding a copy of
tests/doc_files/ (``my.csv``: 300 rows, columns age, income, city and the binary target y) — so a reader can
copy any one block alone. The comment line right above a fence changes that:

    <!-- doctest: slow -->            the block runs in `make test-slow` only (a real fit of minutes)
    <!-- doctest: skip: <reason> -->  the block never runs (say why: a GPU, a cluster, a file the user brings)

Both are for the few blocks that cannot be made small; shrink the sizes of an example instead where you can.
Every block, whatever its marker, is also compiled and checked for names used but never defined (ruff F821).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = Path(__file__).with_name("doc_files")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
_MARKER = re.compile(r"^\s*<!--\s*doctest:\s*(?P<kind>slow|skip)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    marker: str | None  # None, "slow" or "skip"
    reason: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("packages/*/README.md"))]
    return [f for f in files if f.is_file()]


def python_blocks(path: Path) -> list[Block]:
    """The ```python / ```py blocks of one markdown file, with the doctest marker right above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start, indent = index, match["indent"]
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{start + 1}: code fence is never closed")
        if match["lang"] in ("python", "py"):
            previous = start - 1
            while previous >= 0 and not lines[previous].strip():
                previous -= 1
            marker = _MARKER.match(lines[previous]) if previous >= 0 else None
            body = [line[len(indent):] if line.startswith(indent) else line for line in lines[start + 1:end]]
            blocks.append(Block(path, start + 1, "\n".join(body) + "\n", marker and marker["kind"],
                                (marker and marker["reason"]) or ""))
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in markdown_files() for block in python_blocks(path)]


def _params():
    params = []
    for block in all_blocks():
        marks = []
        if block.marker == "slow":
            marks.append(pytest.mark.slow)
        elif block.marker == "skip":
            marks.append(pytest.mark.skip(reason=f"marked <!-- doctest: skip -->: {block.reason or 'no reason'}"))
        params.append(pytest.param(block, id=block.name, marks=marks))
    return params


@pytest.mark.parametrize("block", _params())
def test_block_runs_as_written(block, tmp_path, monkeypatch):
    if DOC_FILES.is_dir():
        shutil.copytree(DOC_FILES, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    # padded so that a traceback names the markdown file and its own line numbers
    code = compile("\n" * block.line + block.code, str(block.path), "exec")
    exec(code, namespace)  # noqa: S102 — running the snippet is the point of this test


def test_discovery_covers_every_package_readme_and_markers_are_spelled_right():
    found = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    for readme in ROOT.glob("packages/*/README.md"):
        assert readme.relative_to(ROOT).as_posix() in found
    assert {"README.md", "docs/training.md"} <= found
    for path in markdown_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("<!--") and "doctest" in line:
                where = f"{path.relative_to(ROOT)}:{number}"
                assert _MARKER.match(line), f"{where}: unknown doctest marker {line!r}"
                following = next((x for x in lines[number:] if x.strip()), "")
                fence = _FENCE.match(following)
                assert fence and fence["lang"] in ("python", "py"), (
                    f"{where}: a doctest marker must stand right above a ```python fence")

def test_block_parser_reads_fences_markers_and_indentation(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n```python\na = 1\n```\n\n<!-- doctest: slow -->\n\n```py\nb = 2\n```\n"
                   "```bash\nls\n```\n- item:\n  ```python\n  c = 3\n  ```\n"
                   "<!-- doctest: skip: needs a GPU -->\n```python\nd = 4\n```\n")
    blocks = python_blocks(doc)
    assert [(b.line, b.code, b.marker, b.reason) for b in blocks] == [
        (2, "a = 1\n", None, ""), (8, "b = 2\n", "slow", ""), (15, "c = 3\n", None, ""),
        (19, "d = 4\n", "skip", "needs a GPU")]


def test_every_block_defines_the_names_it_uses(tmp_path):
    """Also the slow and skipped blocks: a copied snippet must not die of a NameError (ruff's F821)."""
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev group: make install)")
    blocks = all_blocks()
    for index, block in enumerate(blocks):
        compile("\n" * block.line + block.code, str(block.path), "exec")  # a SyntaxError names file and line
        (tmp_path / f"block_{index:03d}.py").write_text(block.code)
    done = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--select", "F821",
                           "--output-format", "concise", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=120)
    problems = []
    for line in done.stdout.splitlines():
        match = re.match(r".*block_(\d{3})\.py:(\d+):\d+: (.*)", line)
        if match:
            block = blocks[int(match[1])]
            problems.append(f"{block.path.relative_to(ROOT)}:{block.line + int(match[2])}: {match[3]}")
    assert done.returncode in (0, 1), done.stderr
    assert not problems, "\n".join(problems)
