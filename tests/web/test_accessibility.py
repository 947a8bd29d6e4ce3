"""Accessibility floors that plain HTTP can check: labels on every control, and contrast."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from tests.web.support import csrf_of

CSS = Path(__file__).resolve().parents[2] / "registry" / "web" / "static" / "site.css"


class _Controls(HTMLParser):
    """Form controls that a person fills in, and the labels of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self._label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "label":
            self._label_depth += 1
            if attributes.get("for"):
                self.label_for.add(str(attributes["for"]))
        if tag in {"input", "textarea", "select"} and attributes.get("type") != "hidden":
            self.controls.append({**attributes, "wrapped": "yes" if self._label_depth else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_depth -= 1


def unlabelled(page: str) -> list[dict[str, str | None]]:
    parser = _Controls()
    parser.feed(page)
    assert parser.controls, "the page has no controls to check"
    return [
        control
        for control in parser.controls
        if not control["wrapped"] and control.get("id") not in parser.label_for
    ]


async def test_every_control_has_a_label(client, ticket, reviewer):
    _, ticket_id, _ = await ticket(1)
    _, http = await reviewer()
    csrf = csrf_of((await http.get("/console")).text)
    await http.post("/console/claim", data={"csrf_token": csrf})
    pages = {
        "verify": (await client.get("/verify")).text,
        "login": (await client.get("/console/login")).text,
        "ticket": (await http.get(f"/console/tickets/{ticket_id}")).text,
    }

    for name, page in pages.items():
        assert unlabelled(page) == [], name
    assert 'id="reveal"' in pages["ticket"]  # the image switches were among those checked
    assert 'id="note"' in pages["ticket"]


def _lum(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(one: str, two: str) -> float:
    high, low = sorted((_lum(one), _lum(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_text_colours_keep_at_least_4_5_to_1_contrast():
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6});", CSS.read_text()))
    pairs = [
        ("ink", "paper"),
        ("muted", "paper"),
        ("muted", "wash"),
        ("brand", "paper"),
        ("brand-ink", "brand"),
        ("good-ink", "good-bg"),
        ("warn-ink", "warn-bg"),
        ("bad-ink", "bad-bg"),
        ("neutral-ink", "neutral-bg"),
        ("paper", "good-ink"),
        ("paper", "bad-ink"),
    ]

    ratios = {f"{a}/{b}": _contrast(colours[a], colours[b]) for a, b in pairs}

    assert min(ratios.values()) >= 4.5, ratios
