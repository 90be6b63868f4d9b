"""Every document the project cites is in the repository.

Scans the tracked text files for references to Markdown documents (``docs/x.md``, ``x.md``,
Markdown links) and for the design document by its old name, and checks that each resolves to a
file of the repository. A reference to a file outside the repository is a dangling reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "build", "__pycache__", ".hypothesis", ".pytest_cache"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".sh", ".toml", ".ys", ".tcl", ".txt"}
#: A document cited anywhere: ``docs/x.md`` or an upper-case name (``README.md``, ``DESIGN.md``).
DOC_REF = re.compile(r"(?<![\w./-])(docs/[\w.-]+\.md|[A-Z][A-Z_]*\.md)\b")
#: Inside docs/: a sibling document by its bare name (``mx8.md``).
SIBLING_REF = re.compile(r"(?<![\w./-])([a-z][\w-]*\.md)\b")
#: A Markdown link target, relative (``[x](docs/mx8.md#anchor)``).
MD_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
#: Markdown files the project writes as outputs (under build/), not documents it cites.
GENERATED = {"area.md", "summary.md", "ablation.md", "pim_ablation.md", "pareto.md"}


def _text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if path == Path(__file__).resolve():
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name == "Makefile"):
            files.append(path)
    return sorted(files)


def _resolves(name: str, src: Path) -> bool:
    """A referenced file exists relative to the citing file, the repository root or docs/."""
    if name.startswith("build/") or Path(name).name in GENERATED:
        return True
    candidates = [src.parent / name, ROOT / name, ROOT / "docs" / name]
    return any(c.is_file() for c in candidates)


def _references(path: Path) -> list[tuple[int, str]]:
    refs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        for m in DOC_REF.finditer(line):
            refs.append((lineno, m.group(1)))
        if path.parent == ROOT / "docs" and path.suffix == ".md":
            refs += [(lineno, m.group(1)) for m in SIBLING_REF.finditer(line)]
        if path.suffix == ".md":
            for m in MD_LINK.finditer(line):
                target = m.group(1)
                if "://" not in target and not target.startswith("mailto:"):
                    refs.append((lineno, target))
    return refs


def test_scanner_finds_a_dangling_reference(tmp_path):
    """The scanner reports a reference to a file that does not exist (it can fail)."""
    doc = tmp_path / "note.md"
    doc.write_text("See DESIGN.md §3, docs/gone.md and [the spec](missing/spec.md#top).\n",
                   encoding="utf-8")
    names = [name for _, name in _references(doc)]
    assert names == ["DESIGN.md", "docs/gone.md", "missing/spec.md"]
    assert not any(_resolves(n, doc) for n in names)
    assert _resolves("docs/mx8.md", doc) and _resolves("build/synth/area.md", doc)


@pytest.mark.parametrize("path", _text_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_reference_resolves(path):
    dangling = [f"{path.relative_to(ROOT)}:{lineno}: {name}"
                for lineno, name in _references(path) if not _resolves(name, path)]
    assert not dangling, "dangling references:\n" + "\n".join(dangling)
