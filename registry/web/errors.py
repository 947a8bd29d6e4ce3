"""Errors of the web pages; the page controllers render them as HTML, never as JSON."""

from __future__ import annotations

from registry.core.errors import Forbidden, Unauthenticated

__all__ = ["CsrfRejected", "LoginRequired"]


class LoginRequired(Unauthenticated):
    """No live console session: the browser is sent to the sign-in form."""

    code = "login_required"


class CsrfRejected(Forbidden):
    """A form came without this session's CSRF token (or with another one)."""

    code = "csrf_token_invalid"
