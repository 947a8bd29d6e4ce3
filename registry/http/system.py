"""Health and readiness."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from registry.core import db, errors
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime

_RETRY_LATER = {"Retry-After": str(errors.UNAVAILABLE_RETRY_AFTER)}


class SystemController(Controller):
    tags = ["operations"]  # noqa: RUF012 - Litestar reads class attributes

    @get("/healthz", summary="Process is up", cache=False)
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="Database reachable and migrations current", cache=False)
    async def readyz(self, services: AppServices) -> Response[dict[str, Any]]:
        try:
            async with services.connection() as conn:
                pending = await db.pending_migrations(conn)
        except (db.DatabaseError, OSError) as exc:
            return Response(
                {"status": "unavailable", "database": type(exc).__name__},
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                headers=_RETRY_LATER,
            )
        if pending:
            return Response(
                {"status": "migrations_pending", "pending": pending},
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                headers=_RETRY_LATER,
            )
        return Response({"status": "ready"}, status_code=HTTP_200_OK)
