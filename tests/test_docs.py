"""The README and docs/ stay true to the code: the cv options table lists every option, every
relative link and every `docs/...md#anchor` pointer in the code leads somewhere."""

import re
from pathlib import Path

from kaggle_digits.options.config import CV_OPTIONS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FAULT_TESTS = ("test_faults.py", "test_full_disk.py")  # the README's fault promises live in these


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to -."""
    found = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def link_target_missing(source: Path, target: str) -> str | None:
    path, _, anchor = target.partition("#")
    page = (source.parent / path).resolve() if path else source
    if not page.exists():
        return f"{source.name}: {target}: no such file"
    if anchor and page.suffix == ".md" and anchor not in anchors(page):
        return f"{source.name}: {target}: no such heading"
    return None


def test_readme_is_one_screen_a_question():
    assert len(README.read_text().splitlines()) <= 250


def test_readme_cv_options_table_lists_every_cv_option():
    table = README.read_text().split("## `cv` options")[1].split("\n## ")[0]
    listed = set(re.findall(r"^\| `(--[a-z-]+)", table, flags=re.MULTILINE))
    assert {option.name for option in CV_OPTIONS} <= listed


def test_every_relative_link_in_the_docs_leads_somewhere():
    missing = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if not re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                missing.append(link_target_missing(page, target))
    assert [line for line in missing if line] == []


def test_every_docs_pointer_in_the_code_leads_somewhere():
    missing = []
    for source in sorted((ROOT / "src").rglob("*.py")):
        for target in re.findall(r"docs/([\w-]+\.md(?:#[\w-]+)?)", source.read_text()):
            problem = link_target_missing(ROOT / "docs" / "index", target)
            if problem:
                missing.append(f"{source.name}: {problem}")
    assert missing == []


def test_each_promise_of_what_survives_a_fault_names_a_test_that_checks_it():
    section = README.read_text().split("## What survives a fault")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    faults = "".join((ROOT / "tests" / name).read_text() for name in FAULT_TESTS)
    tests = re.findall(r"^def (test_\w+)", faults, flags=re.MULTILINE)
    for row in rows[1:]:  # past the header
        named = re.findall(r"`(test_\w+)…?`", row) or ["the same test"] * ("the same" in row)
        assert named, row
        for prefix in named:
            assert prefix == "the same test" or any(t.startswith(prefix) for t in tests), prefix
