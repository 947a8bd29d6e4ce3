"""A tenant's export over HTTP (admins): the files of ``registry export`` as one tar."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import Stream

from registry import export
from registry.core.auth import Client, Role
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow

TAR = "application/x-tar"

Tenant = Annotated[
    str,
    QueryParameter(
        description="The tenant to export (as its clients were created with)",
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$",
    ),
]


class ExportController(Controller):
    path = "/v1/admin/export"
    tags = ["admin"]  # noqa: RUF012 - Litestar reads class attributes
    guards = [allow(Role.ADMIN)]  # noqa: RUF012 - Litestar reads class attributes
    security = BEARER

    @get(
        "/",
        summary="A tenant's records with the keys and proofs that verify them, as a tar",
        description=(
            "Streamed, uncompressed tar of the directory `registry export` writes, under "
            "`<tenant>-export/`: one JSON-lines file per record type, the public keys, the "
            "signed audit checkpoint the tenant's events are proved against, and "
            "`manifest.json` with the SHA-256 of every file (docs/export.md). "
            "`python -m verifier export DIR` checks it offline. An admin of the `system` "
            "tenant exports any tenant, any other admin only its own; another tenant, or one "
            "no client was ever made in, is 404 `tenant_not_found`; a caller without the "
            "admin role is 403 `forbidden`. The export is audited (`tenant.exported`)."
        ),
        responses={
            200: ResponseSpec(
                data_container=bytes,
                generate_examples=False,
                media_type=TAR,
                description="The tar; attachment, named `<tenant>-export.tar`.",
            )
        },
        cache=False,
    )
    async def export(
        self, services: AppServices, caller: NamedDependency[Client], tenant: Tenant
    ) -> Stream:
        async with services.unit_of_work(caller.client_id, tenant=tenant) as uow:
            files = await export.collect(services, uow, tenant, by_tenant=caller.tenant)
        chunks = await export.tar_chunks(files, root=f"{tenant}-export")
        return Stream(
            chunks,
            media_type=TAR,
            headers={
                "Content-Disposition": f'attachment; filename="{tenant}-export.tar"',
                "Cache-Control": "no-store",
            },
        )
