"""Server-rendered pages: the public provenance check and the reviewer console.

Pages answer errors as HTML (never problem JSON), carry a strict Content-Security-Policy
(scripts, styles and images from this service only) and are kept out of the OpenAPI document.
Console sign-in trades an API key for a server-side session (``registry.web.sessions``):
the cookie is HttpOnly, SameSite=Strict, limited to ``/console`` and Secure when the request
came over https. Every console form carries the session's CSRF token; the sign-in form,
which has no session yet, carries a double-submit token bound to a short-lived cookie.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from registry import review, web
from registry.core import audit, auth, errors
from registry.core.auth import Role
from registry.core.db import DatabaseError, database_fault
from registry.http.deps import AppServices, app_services
from registry.http.provenance import read_parts
from registry.http.reviews import MAX_NOTE
from registry.http.security import public
from registry.provenance import Upload
from registry.services import Services  # noqa: TC001 - Litestar reads annotations at runtime
from registry.web import CsrfRejected, LoginRequired, sessions

if TYPE_CHECKING:
    from litestar.datastructures import FormMultiDict

    from registry.web.sessions import SessionSettings, WebSession

log = logging.getLogger(__name__)

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "ConsolePages",
    "PublicPages",
    "pages_router",
    "static_files",
    "template_config",
]

SESSION_COOKIE = "registry_console"
LOGIN_COOKIE = "registry_console_login"
CONSOLE = "/console"
LOGIN = "/console/login"
_LOGIN_COOKIE_SECONDS = 3600
# Handler parameter types, resolved by Litestar at runtime.
TicketId = FromPath[str]
Notice = FromQuery[str | None]
_QUEUE = 200
_CHART_DAYS = 14
_NOTICES = {
    "allowed": "Decided: allowed. The ticket is closed and its image deleted.",
    "blocked": "Decided: blocked. The ticket is closed and its image deleted.",
    "empty": "No ticket is waiting for you right now.",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(web.environment()))


def static_files() -> Router:
    return create_static_files_router(
        path="/static", directories=[web.STATIC_DIR], include_in_schema=False
    )


def _https(request: Request[Any, Any, Any], services: Services) -> bool:
    """Secure cookies when this request, or the service's public URL, is https."""
    public_url = services.settings.public_issuer
    return request.url.scheme == "https" or public_url.startswith("https://")


def _session_settings(services: Services) -> SessionSettings:
    return sessions.SessionSettings(
        ttl=timedelta(seconds=services.settings.console_session_ttl),
        idle_timeout=timedelta(seconds=services.settings.console_idle_timeout),
    )


def _page(
    template: str,
    *,
    session: WebSession | None = None,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    return Template(
        template, context={"session": session, **context}, status_code=status, cookies=cookies
    )


def _field(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _optional_session(
    request: Request[Any, Any, Any], services: Services
) -> WebSession | None:
    async with services.connection() as conn:
        return await sessions.resume(
            conn, request.cookies.get(SESSION_COOKIE), _session_settings(services)
        )


async def _console_session(
    request: Request[Any, Any, Any], services: Services, *roles: Role
) -> WebSession:
    """The signed-in console user, holding one of ``roles``; rate-limited like API clients."""
    session = await _optional_session(request, services)
    if session is None:
        raise LoginRequired("sign in to use the console")
    await services.limiter.take(f"client:{session.client.client_id}")
    if roles:
        session.client.require(*roles)
    return session


async def _posted(request: Request[Any, Any, Any], session: WebSession) -> FormMultiDict:
    """The form of a console POST, once its CSRF token is this session's."""
    form = await request.form()
    if not sessions.csrf_matches(session.csrf_token, _field(form, "csrf_token")):
        raise CsrfRejected("the form did not carry this session's CSRF token")
    return form


def _home(session: WebSession) -> str:
    return CONSOLE if session.client.has(Role.REVIEWER) else f"{CONSOLE}/admin"


class PublicPages(Controller):
    include_in_schema = False

    @get("/", cache=False)
    async def index(self) -> Redirect:
        return Redirect("/verify")

    @get("/verify", cache=False)
    async def verify_form(self, services: AppServices) -> Template:
        return _page("verify.html", view=None, error=None, **_verify_context(services))

    @post("/verify", guards=[public], status_code=200)
    async def verify(self, request: Request[Any, Any, Any], services: AppServices) -> Template:
        parts = await read_parts(request, {"file": services.settings.max_image_bytes}, ("file",))
        part = parts["file"]
        upload = Upload(data=bytes(part.data), content_type=part.content_type, filename=None)
        async with services.connection() as conn:
            verification = await services.provenance.verify(conn, upload)
            lookup = None
            if verification.state == "absent" and verification.image.decoded:
                # No manifest: the copy may have been stripped; look for what we signed (by
                # its pixels, so only when they decode).
                lookup = await services.provenance.lookup(conn, upload)
        return _page(
            "verify.html",
            view=web.verify_view(verification, lookup),
            error=None,
            **_verify_context(services),
        )


def _verify_context(services: Services) -> dict[str, Any]:
    settings = services.settings
    return {
        "max_mb": settings.max_image_bytes // 1_048_576,
        "max_distance": settings.provenance_lookup_max_distance,
        "consent_words": web.CONSENT_WORDS,
    }


class ConsolePages(Controller):
    path = CONSOLE
    include_in_schema = False

    @get("/login", cache=False)
    async def login_form(
        self, request: Request[Any, Any, Any], services: AppServices
    ) -> Response[Any]:
        session = await _optional_session(request, services)
        if session is not None:
            return Redirect(_home(session))
        return _login_page(request, services, error=None, status=200)

    @post("/login", guards=[public], status_code=303)
    async def login(self, request: Request[Any, Any, Any], services: AppServices) -> Response[Any]:
        form = await request.form()
        if not sessions.csrf_matches(
            request.cookies.get(LOGIN_COOKIE, ""), _field(form, "csrf_token")
        ):
            raise CsrfRejected("the sign-in form did not carry its CSRF token")
        try:
            async with services.connection() as conn:
                client = await auth.authenticate(conn, f"Bearer {_field(form, 'api_key')}")
        except errors.Unauthenticated:
            return _login_page(request, services, error="That API key is not valid.", status=401)
        if not client.has(Role.REVIEWER, Role.ADMIN):
            return _login_page(
                request,
                services,
                error="This API key has neither the reviewer nor the admin role, "
                "so it cannot use the console.",
                status=403,
            )
        settings = _session_settings(services)
        async with services.unit_of_work(client) as uow:
            await sessions.purge_expired(uow.conn, settings)
            started = await sessions.start(uow, client, settings)
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=started.session_id,
            path=CONSOLE,
            max_age=services.settings.console_session_ttl,
            httponly=True,
            samesite="strict",
            secure=_https(request, services),
        )
        cleared = Cookie(key=LOGIN_COOKIE, value="", path=LOGIN, max_age=0, httponly=True)
        return Redirect(_home(started.session), status_code=303, cookies=[cookie, cleared])

    @post("/logout", status_code=303)
    async def logout(self, request: Request[Any, Any, Any], services: AppServices) -> Response[Any]:
        session = await _console_session(request, services)
        await _posted(request, session)
        async with services.unit_of_work(session.client) as uow:
            await sessions.end(uow, request.cookies.get(SESSION_COOKIE))
        cleared = Cookie(key=SESSION_COOKIE, value="", path=CONSOLE, max_age=0, httponly=True)
        return Redirect(LOGIN, status_code=303, cookies=[cleared])

    @get("/", cache=False)
    async def queue(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        done: Notice = None,
    ) -> Response[Any]:
        session = await _console_session(request, services, Role.REVIEWER, Role.ADMIN)
        if not session.client.has(Role.REVIEWER):
            return Redirect(f"{CONSOLE}/admin")
        scope = review.review_scope(session.client.tenant)
        async with services.connection() as conn:
            waiting = await review.list_tickets(conn, scope=scope, status="open", limit=_QUEUE)
            claimed = await review.list_tickets(conn, scope=scope, status="claimed", limit=_QUEUE)
            names = await auth.client_names(conn, [t.claimed_by for t in claimed if t.claimed_by])
        tickets = sorted(
            [*waiting, *claimed], key=lambda t: (t.rank, t.deadline, t.created_at, t.id)
        )
        view = web.queue_view(
            tickets, me=session.client.client_id, now=datetime.now(UTC), names=names
        )
        return _page(
            "console/queue.html",
            session=session,
            view=view,
            notice=_NOTICES.get(done or ""),
            limit=_QUEUE,
            lease_minutes=services.settings.review_lease_seconds // 60,
        )

    @post("/claim", status_code=303)
    async def claim(self, request: Request[Any, Any, Any], services: AppServices) -> Redirect:
        session = await _console_session(request, services, Role.REVIEWER)
        await _posted(request, session)
        reviewer = session.client
        async with services.unit_of_work(reviewer) as uow:
            claimed = await review.claim(
                uow,
                reviewer=reviewer,
                lease=timedelta(seconds=services.settings.review_lease_seconds),
                via="console",
            )
        if claimed is None:
            return Redirect(f"{CONSOLE}?done=empty", status_code=303)
        ticket = claimed.ticket
        return Redirect(f"{CONSOLE}/tickets/{ticket.id}", status_code=303)

    @get("/tickets/{ticket_id:str}", cache=False)
    async def ticket(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        ticket_id: TicketId,
    ) -> Template:
        session = await _console_session(request, services, Role.REVIEWER)
        return await _ticket_page(services, session, ticket_id, error=None, status=200)

    @get("/tickets/{ticket_id:str}/image", cache=False)
    async def image(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        ticket_id: FromPath[str],
    ) -> Response[bytes]:
        session = await _console_session(request, services, Role.REVIEWER)
        async with services.unit_of_work(session.client) as uow:
            image = await services.review_images.show_to_reviewer(uow, ticket_id, session.client)
        return Response(
            image.data,
            media_type=image.media_type,
            headers={"Content-Disposition": "inline", "Cache-Control": "no-store, private"},
        )

    @post("/tickets/{ticket_id:str}/decision", status_code=303)
    async def decide(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        ticket_id: FromPath[str],
    ) -> Response[Any]:
        session = await _console_session(request, services, Role.REVIEWER)
        form = await _posted(request, session)
        outcome = _field(form, "outcome")
        note = _field(form, "note")
        if outcome not in {"allowed", "blocked"}:
            return await _ticket_page(
                services, session, ticket_id, error="Choose allowed or blocked.", status=422
            )
        if not 1 <= len(note) <= MAX_NOTE:
            return await _ticket_page(
                services,
                session,
                ticket_id,
                error=f"Write a note for the record (1 to {MAX_NOTE} characters).",
                status=422,
            )
        reviewer = session.client
        try:
            async with services.unit_of_work(reviewer) as uow:
                await review.decide(
                    uow,
                    reviewer=reviewer,
                    ticket_id=ticket_id,
                    outcome="allowed" if outcome == "allowed" else "blocked",
                    note=note,
                    via="console",
                )
        except review.ConsentEnded as exc:
            # The ticket page again, saying why, rather than an error page: the reviewer
            # can block it from there.
            return await _ticket_page(services, session, ticket_id, error=exc.message, status=409)
        return Redirect(f"{CONSOLE}?done={outcome}", status_code=303)

    @get("/admin", cache=False)
    async def admin(self, request: Request[Any, Any, Any], services: AppServices) -> Template:
        session = await _console_session(request, services, Role.ADMIN)
        async with services.connection() as conn:
            checkpoint = await audit.latest_checkpoint(conn)
            stats = await review.compute_stats(conn)
            days = await web.decisions_by_day(conn, days=_CHART_DAYS)
        policy = services.gate.policy
        return _page(
            "console/admin.html",
            session=session,
            checkpoint=checkpoint,
            stats=stats,
            days=days,
            day_max=max((d.total for d in days), default=0),
            reasons=sorted(stats.by_reason.items(), key=lambda item: (-item[1], item[0]))[:8],
            policy=policy,
        )


async def _ticket_page(
    services: Services,
    session: WebSession,
    ticket_id: str,
    *,
    error: str | None,
    status: int,
) -> Template:
    async with services.connection() as conn:
        case = await review.review_case(
            conn,
            services.gate.vault,
            ticket_id,
            scope=review.review_scope(session.client.tenant),
        )
        kept = await services.review_images.exists(conn, case.ticket.decision_id)
        names = await auth.client_names(
            conn, [case.client_id, *(entry.actor for entry in case.decision.history)]
        )
    view = web.ticket_view(
        case,
        services.gate.policy,
        me=session.client.client_id,
        now=datetime.now(UTC),
        image_kept=kept,
        names=names,
    )
    return _page(
        "console/ticket.html",
        session=session,
        view=view,
        error=error,
        max_note=MAX_NOTE,
        policy=services.gate.policy,
        status=status,
    )


def _login_page(
    request: Request[Any, Any, Any], services: Services, *, error: str | None, status: int
) -> Template:
    token = secrets.token_urlsafe(32)
    cookie = Cookie(
        key=LOGIN_COOKIE,
        value=token,
        path=LOGIN,
        max_age=_LOGIN_COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_https(request, services),
    )
    settings = services.settings
    return _page(
        "console/login.html",
        login_csrf=token,
        error=error,
        status=status,
        cookies=[cookie],
        idle_minutes=settings.console_idle_timeout // 60,
        ttl_hours=settings.console_session_ttl / 3600,
    )


# Errors, as pages.

_CSRF_MESSAGE = (
    "This form has expired or did not come from this site. Go back, reload the page and try again."
)


def _page_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, LoginRequired):
        return Redirect(LOGIN, status_code=303)
    headers: dict[str, str] = {}
    title = "Error"
    if isinstance(exc, HTTPException):
        status = exc.status_code
        message = exc.detail if status < 500 else "Something went wrong on our side."  # noqa: PLR2004
    elif database_fault(exc) is not None:
        status, message = 503, "The database is not reachable; try again in a moment."
    elif isinstance(exc, CsrfRejected):
        status, title, message = 403, "Form refused", _CSRF_MESSAGE
    elif hasattr(exc, "code"):
        problem = errors.to_problem(exc, instance=request.url.path)
        status, title = problem.status, problem.title
        message = problem.detail or problem.title
        if isinstance(exc, errors.RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
            message = f"Too many requests from you; try again in {exc.retry_after} seconds."
    else:
        status, message = 500, "Something went wrong on our side."
    if status == 503:  # noqa: PLR2004
        headers["Retry-After"] = str(errors.UNAVAILABLE_RETRY_AFTER)
    if status >= 500:  # noqa: PLR2004
        log.error("page error (%s) on %s", type(exc).__name__, request.url.path, exc_info=exc)
    if request.url.path == "/verify" and request.method == "POST":
        return Template(
            "verify.html",
            context={
                "session": None,
                "view": None,
                "error": message,
                **_verify_context(app_services(request)),
            },
            status_code=status,
            headers=headers,
        )
    console = request.url.path.startswith(CONSOLE)
    return Template(
        "error.html",
        context={
            "session": None,
            "title": title,
            "message": message,
            "back_href": CONSOLE if console else "/verify",
            "back_text": "Back to the console" if console else "Back to the image check",
        },
        status_code=status,
        headers=headers,
    )


async def _security_headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(_SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def pages_router(domain_errors: tuple[type[Exception], ...]) -> Router:
    """The pages, answering every error the API would answer as JSON with an HTML page."""
    handlers: dict[Any, Any] = dict.fromkeys(
        (*domain_errors, DatabaseError, HTTPException, Exception), _page_error
    )
    return Router(
        path="/",
        route_handlers=[PublicPages, ConsolePages],
        exception_handlers=handlers,
        after_request=_security_headers,
        include_in_schema=False,
    )
