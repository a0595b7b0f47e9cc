"""The project's documents: the API reference matches the OpenAPI document, and every link
points at something inside the project that exists (a file, and a heading for `#anchors`).

`DOVECOTE_UPDATE_DOCS=1 pytest tests/test_docs.py` rewrites the generated part of docs/API.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from fastapi import FastAPI

from dovecote.core.openapi import reference_markdown

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "API.md"
START = "<!-- generated from /openapi.json by tests/test_docs.py; do not edit by hand -->"
END = "<!-- end generated -->"
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def test_the_api_reference_is_generated_from_the_openapi_document(app: FastAPI) -> None:
    text = API_DOC.read_text()
    head, rest = text.split(START + "\n")
    _, tail = rest.split(END)
    expected = f"{head}{START}\n{reference_markdown(app.openapi())}{END}{tail}"
    if os.environ.get("DOVECOTE_UPDATE_DOCS") == "1":
        API_DOC.write_text(expected)
        text = expected
    assert text == expected, "stale: DOVECOTE_UPDATE_DOCS=1 pytest tests/test_docs.py"


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_of(document: Path) -> set[str]:
    text = FENCE.sub("", document.read_text())
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links_of(document: Path) -> list[str]:
    text = FENCE.sub("", document.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_inside_the_project_at_something_that_exists(document: Path) -> None:
    assert [link for link in links_of(document) if is_broken(document, link)] == []


def is_broken(document: Path, link: str) -> bool:
    if re.match(r"[a-z]+:", link):  # https:, mailto: are outside on purpose
        return False
    path, _, fragment = link.partition("#")
    target = (document.parent / path).resolve() if path else document
    if not target.is_relative_to(ROOT) or not target.exists():
        return True
    return bool(fragment) and target.suffix == ".md" and fragment not in anchors_of(target)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_document_sends_readers_outside_the_project(document: Path) -> None:
    assert "../shared" not in document.read_text()
