"""The templates hold nothing the Content-Security-Policy refuses: inline scripts, style
elements or attributes, event-handler attributes, javascript: URLs. A browser reports an
inline handler only when it runs, so the templates are read for them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
REFUSED = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
    "style element": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "htmx inline handler": re.compile(r"\shx-on[:-]", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda path: str(path.relative_to(TEMPLATES))
)
def test_template__read__nothing_the_policy_refuses(template: Path) -> None:
    text = template.read_text()

    found = [
        f"{kind}: {match.group(0)!r}" for kind, pattern in REFUSED.items() for match in pattern.finditer(text)
    ]

    assert found == []
