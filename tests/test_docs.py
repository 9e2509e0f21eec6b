"""The README is a short front page whose links lead somewhere, and the README and docs/ name only
files that exist. (Links and anchors between docs/ pages are checked by `mkdocs build --strict`:
`nox -s docs`, CI.)"""

import re
from pathlib import Path

import pytest
from conftest import REPO

README = REPO / "README.md"
FRONT = [README, *sorted((REPO / "docs").glob("*.md"))]
DOC_PAGES = {"index", "formats", "streams", "evaluation", "tracking", "sweeps", "predict", "datasets",
             "full_scale", "architecture", "development"}
LINK = re.compile(r"\]\(([^)\s]+)\)")
# a repository path named as code: `experiments/paper/`, `tests/test_predict.py`, `conf/paper/`
REPO_PATH = re.compile(r"`((?:experiments|tests|twostream|conf|docs)/[^`\s]*)`")


def slug(heading: str) -> str:
    """A heading's anchor, as GitHub and MkDocs make it: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # a '#' comment in a code block is no heading
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move reference material to docs/"
    assert lines[2] == "## Quickstart" or "## Quickstart" in lines[:12]  # the first section: the two commands


def test_the_docs_have_their_pages_and_the_readme_links_each():
    assert {p.stem for p in (REPO / "docs").glob("*.md")} == DOC_PAGES
    linked = {m.split("#")[0] for m in LINK.findall(README.read_text())}
    assert {f"docs/{page}.md" for page in DOC_PAGES - {"index"}} <= linked


@pytest.mark.parametrize("target", sorted(set(LINK.findall(README.read_text()))))
def test_a_readme_link_leads_to_a_file_and_heading_that_exist(target):
    if target.startswith(("http://", "https://")):
        return
    path, _, anchor = target.partition("#")
    assert (REPO / path).exists(), f"README.md links to {path}, which does not exist"
    if anchor:
        assert anchor in anchors(REPO / path), f"README.md links to {target}: {path} has no heading #{anchor}"


@pytest.mark.parametrize("page", FRONT, ids=[p.name for p in FRONT])
def test_the_files_a_page_names_exist(page):
    named = {p for p in REPO_PATH.findall(page.read_text()) if not re.search(r"[<*{]", p)}
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"{page.relative_to(REPO)} names files that do not exist: {missing}"
