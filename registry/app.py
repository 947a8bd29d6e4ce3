"""Composition root of the HTTP service: the parts from ``registry.compose``, wired into
Litestar."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.routes import HTTPRoute

import keys
from moderation import (
    ModerationError,
)
from registry.core import logs
from registry.core.errors import RegistryError
from registry.http import openapi, problems
from registry.http.appeals import AppealsController
from registry.http.audit import AuditController
from registry.http.clients import ClientsController
from registry.http.consent import ConsentController
from registry.http.database import wait_budget_middleware
from registry.http.deps import DEPENDENCIES
from registry.http.export import ExportController
from registry.http.hash_lookup import HashLookupController
from registry.http.hashlists import HashListsController
from registry.http.keys import KeysController
from registry.http.misuse import MisuseController
from registry.http.moderation import ModerationController
from registry.http.observability import MetricsController, request_id_middleware
from registry.http.provenance import ProvenanceController
from registry.http.reviews import ReviewsController, StatsController
from registry.http.system import SystemController
from registry.http.takedown import TakedownController
from registry.http.web import pages_router, static_files, template_config
from verifier.errors import VerifierError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from registry.core.settings import Settings


from registry.compose import build_services, check_settings, start_background, stop

log = logging.getLogger(__name__)


VERSION = "0.1.0"


def create_app(settings: Settings) -> Litestar:
    """The Litestar application for these settings; parts are built in its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await build_services(settings)
        try:
            await start_background(services)
        except BaseException:
            await stop(services)
            raise
        app.state.services = services
        log.info("registry ready at %s", settings.public_issuer)
        try:
            yield
        finally:
            await stop(services)

    # The registry's one root, and the roots of the floors below it (which cannot import it).
    domain_errors: tuple[type[Exception], ...] = (
        RegistryError,
        keys.KeysError,
        VerifierError,
        ModerationError,
    )
    app = Litestar(
        route_handlers=[
            SystemController,
            KeysController,
            ClientsController,
            ExportController,
            AuditController,
            MetricsController,
            ConsentController,
            ProvenanceController,
            ModerationController,
            HashListsController,
            HashLookupController,
            ReviewsController,
            AppealsController,
            TakedownController,
            MisuseController,
            StatsController,
            pages_router(domain_errors),
            static_files(),
        ],
        template_config=template_config(),
        # Handlers declare services, caller and payload as parameters (registry.http.deps).
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        middleware=[
            # Request ids, access log and metrics; the caller's address behind
            # REGISTRY_TRUSTED_PROXIES (registry.core.proxies).
            DefineMiddleware(
                request_id_middleware, trusted_proxies=settings.trusted_proxy_networks
            ),
            # REGISTRY_DB_ACQUIRE_TIMEOUT bounds all of a request's waits for connections.
            DefineMiddleware(wait_budget_middleware, seconds=settings.db_acquire_timeout),
        ],
        exception_handlers=problems.handlers(domain_errors),
        request_max_body_size=settings.max_upload_bytes,
        openapi_config=OpenAPIConfig(
            title="Consent and provenance registry",
            version=VERSION,
            description=(
                "Signed consent tokens for reference photos, C2PA provenance for generated "
                "images, and a fail-closed publish gate. Errors are RFC 9457 problem documents "
                "with a stable `code`."
            ),
            path="/schema",
            # Swagger UI at /schema from installed files; the committed document as JSON.
            render_plugins=[openapi.OfflineSwaggerUI(), openapi.ServedDocument()],
        ),
        debug=False,
        # Our handlers (registry.core.logs) own the root logger; Litestar's would replace it.
        logging_config=None,
    )
    _complete_allow_headers(app)
    return app


def _complete_allow_headers(app: Litestar) -> None:
    """Make OPTIONS list every method of its path, in ``Allow``.

    Litestar registers a controller's handlers one at a time; the OPTIONS handler it makes
    for a path answers with the methods of the route object that existed when it was made (a
    closure over it), so ``/v1/consents`` said ``GET, OPTIONS`` without ``POST``. The route
    that serves the path holds them all: the earlier one is pointed at its method set.
    (tests/openapi checks ``Allow`` on every path, through schemathesis.)"""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.handler_name != "options_handler":
                continue
            for cell in getattr(handler.fn, "__closure__", None) or ():
                if isinstance(cell.cell_contents, HTTPRoute):
                    cell.cell_contents.methods = route.methods


def app_from_env() -> Litestar:
    """Factory for ASGI servers (``uvicorn --factory registry.app:app_from_env``)."""
    from registry.core import settings  # noqa: PLC0415 - only when run as a server

    loaded = settings.load()
    logs.configure(loaded.log_level, json_lines=loaded.log_json)
    check_settings(loaded)
    return create_app(loaded)


__all__ = ["app_from_env", "create_app"]
