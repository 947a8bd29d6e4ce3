"""Server-rendered pages (issue 6): the public provenance check and the reviewer console.

Plain Python without the web framework: console sessions (``sessions``), the review images
kept while a ticket is open (``ReviewImageStore``), the public verdict (``verify_view``) and
the Jinja environment the templates render in (autoescaping always on: every string from a
manifest, a prompt or a note is untrusted). ``registry.http.web`` serves them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from registry.web import sessions
from registry.web.admin import DayCounts, decisions_by_day
from registry.web.console import (
    QueueView,
    ScoreBar,
    SourceLine,
    TicketView,
    queue_view,
    score_bars,
    source_lines,
    ticket_view,
)
from registry.web.errors import CsrfRejected, LoginRequired
from registry.web.review_images import MEDIA_TYPES, ReviewImage, ReviewImageStore, expire_forever
from registry.web.verdict import CONSENT_WORDS, ConsentLine, VerifyView, verify_view

__all__ = [
    "CONSENT_WORDS",
    "MEDIA_TYPES",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "ConsentLine",
    "CsrfRejected",
    "DayCounts",
    "LoginRequired",
    "QueueView",
    "ReviewImage",
    "ReviewImageStore",
    "ScoreBar",
    "SourceLine",
    "TicketView",
    "VerifyView",
    "decisions_by_day",
    "environment",
    "expire_forever",
    "queue_view",
    "score_bars",
    "sessions",
    "source_lines",
    "ticket_view",
    "verify_view",
]

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"


def environment() -> jinja2.Environment:
    """The templates' environment: HTML autoescaping on, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.tests["web_url"] = _web_url
    env.filters["utc"] = _utc
    env.filters["pct"] = _pct
    return env


def _utc(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _web_url(value: object) -> bool:
    """Whether a manifest's URL may become a link (escaping does not stop ``javascript:``)."""
    return isinstance(value, str) and urlsplit(value).scheme in {"http", "https"}
