"""Accessibility that can be checked without a screen reader: contrast of the site's
colours (WCAG AA), a label for every control, the page language, nothing inline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings

from audit.actors import Actor
from sharing import services
from tests.helpers import make_file

CSS = Path(settings.BASE_DIR, "static", "css", "site.css").read_text()

# (foreground, background) pairs the stylesheet puts text in.
TEXT_PAIRS = [
    ("fg", "bg"),
    ("muted", "bg"),
    ("accent", "bg"),
    ("danger", "bg"),
    ("ok", "bg"),
    ("fg", "surface"),
    ("muted", "surface"),
    ("on-accent", "accent"),
    ("on-danger", "danger"),
]


def _palette(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", block))


def palettes() -> dict[str, dict[str, str]]:
    light = _palette(CSS.split("@media (prefers-color-scheme: dark)")[0])
    dark = _palette(CSS.split("@media (prefers-color-scheme: dark)")[1].split("}\n}")[0])
    return {"light": light, "dark": {**light, **dark}}


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("fg", "bg"), TEXT_PAIRS)
def test_it_meets_wcag_aa_contrast(scheme, fg, bg):
    colours = palettes()[scheme]
    ratio = contrast(colours[fg], colours[bg])
    assert ratio >= 4.5, f"{scheme}: --{fg} on --{bg} is {ratio:.2f}:1"


class PageAudit(HTMLParser):
    """Collects controls, labels, inline code and the html lang attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.inline: list[str] = []
        self.lang = None
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if "style" in attributes:
            self.inline.append(f"style attribute on <{tag}>")
        if any(name.startswith("on") for name in attributes):
            self.inline.append(f"event handler on <{tag}>")
        if tag == "style" or (tag == "script" and "src" not in attributes):
            self.inline.append(f"inline <{tag}>")
        if tag == "label":
            self._label_depth += 1
            if attributes.get("for"):
                self.label_for.add(attributes["for"])
        hidden = attributes.get("type") in ("hidden", "submit", "button")
        if tag in ("input", "select", "textarea") and not hidden:
            self.controls.append({**attributes, "_wrapped": self._label_depth > 0})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1

    def unlabelled(self) -> list[dict]:
        return [
            c
            for c in self.controls
            if not c["_wrapped"]
            and c.get("id") not in self.label_for
            and not c.get("aria-label")
            and not c.get("aria-labelledby")
        ]


@pytest.fixture
def pages(alice, bob, alice_client, client, db) -> dict[str, bytes]:
    stored = make_file(alice, b"report", name="report.pdf", content_type="application/pdf")
    services.share_grant(file=stored, query="bob", actor=Actor(label="alice"))
    _, token = services.link_create(
        file=stored,
        actor=Actor(label="alice"),
        created_by=alice,
        expires_in_hours=1,
        max_downloads=2,
        password="link password",
    )
    created = alice_client.post(f"/files/{stored.id}/links/", {"expires_in_hours": "1"})
    return {
        "login": client.get("/accounts/login/").content,
        "home": alice_client.get("/").content,
        "file page": alice_client.get(f"/files/{stored.id}/").content,
        "file page with new link": created.content,
        "link landing": client.get(f"/s/{token}/").content,
        "not found": client.get("/s/" + "x" * 43 + "/").content,
        "password change": alice_client.get("/accounts/password_change/").content,
        "password reset": client.get("/accounts/password_reset/").content,
        "two-factor": alice_client.get("/accounts/2fa/").content,
    }


def test_every_control_has_a_label_and_nothing_is_inline(pages):
    for name, html in pages.items():
        audit = PageAudit()
        audit.feed(html.decode())
        assert audit.lang == "en", name
        assert audit.unlabelled() == [], name
        assert audit.inline == [], name
