"""Kill-switches over HTTP (admins): suspensions the policy's stop conditions tripped, and
the manual per-feature switches (``registry.gate.misuse``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import FromPath, QueryParameter

from registry.core.auth import (
    Client,
    Role,
)
from registry.gate import misuse
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow

_Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class ActionReason(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: _Reason
    """Why (required: whoever reads the audit log later needs it); audited as its SHA-256
    only, since it may name people and the log is append-only."""


class SuspensionList(msgspec.Struct, kw_only=True, frozen=True):
    suspensions: list[misuse.SuspensionRow]


class MisuseController(Controller):
    tags = ["admin"]  # noqa: RUF012 - Litestar reads class attributes
    guards = [allow(Role.ADMIN)]  # noqa: RUF012 - Litestar reads class attributes
    security = BEARER

    @get(
        "/v1/admin/suspensions",
        summary="Clients and models suspended by a stop condition (admin)",
        description=(
            "Newest first. `active=true` lists those in force, `active=false` lifted ones. "
            "While a suspension is in force, every gate decision involving its subject (the "
            "calling client, the generator it names, or the model) carries "
            "`suspended_misuse` (never `allowed`) and signing answers 403 `suspended_misuse`."
        ),
    )
    async def suspensions(
        self,
        services: AppServices,
        active: Annotated[bool | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> SuspensionList:
        async with services.connection() as conn:
            found = await misuse.list_suspensions(conn, active=active, limit=limit)
        return SuspensionList(suspensions=found)

    @post(
        "/v1/admin/suspensions/{suspension_id:str}/lift",
        summary="Lift a suspension (admin)",
        description=(
            "The subject's decisions may be `allowed` again and it may sign; its stop "
            "conditions count afresh from now. An unknown id: 404 `suspension_not_found`; "
            "one lifted already: 409 `suspension_lifted`. Audited (`misuse.lifted`)."
        ),
        status_code=200,
        opt={"body": ActionReason},
    )
    async def lift(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[ActionReason],
        suspension_id: FromPath[str],
    ) -> misuse.SuspensionRow:
        async with services.unit_of_work(caller) as uow:
            return await misuse.lift(uow, suspension_id, reason=payload.reason)

    @get(
        "/v1/admin/switches",
        summary="Features paused for everyone (admin)",
        description=f"The features: {', '.join(misuse.FEATURES)}; one not listed runs.",
    )
    async def switches(self, services: AppServices) -> misuse.SwitchesView:
        async with services.connection() as conn:
            return await misuse.switches(conn)

    @post(
        "/v1/admin/switches/{feature:str}/pause",
        summary="Pause a feature for everyone (admin)",
        description=(
            "`publish` and `prompt_check`: every gate decision carries `feature_paused` "
            "(review at least, a person decides); `sign`: signing answers 503 "
            "`feature_paused`, nothing signed. Pausing a paused feature changes nothing. An "
            "unknown feature: 404 `feature_unknown`. Audited (`switch.paused`)."
        ),
        status_code=200,
        opt={"body": ActionReason},
    )
    async def pause(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[ActionReason],
        feature: FromPath[str],
    ) -> misuse.SwitchesView:
        checked = misuse.check_feature(feature)
        async with services.unit_of_work(caller) as uow:
            return await misuse.pause(uow, checked, reason=payload.reason)

    @post(
        "/v1/admin/switches/{feature:str}/resume",
        summary="Resume a paused feature (admin)",
        description=(
            "Resuming a running feature changes nothing. An unknown feature: 404 "
            "`feature_unknown`. Audited (`switch.resumed`)."
        ),
        status_code=200,
    )
    async def resume(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        feature: FromPath[str],
    ) -> misuse.SwitchesView:
        checked = misuse.check_feature(feature)
        async with services.unit_of_work(caller) as uow:
            return await misuse.resume(uow, checked)
