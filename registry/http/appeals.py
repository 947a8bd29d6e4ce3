"""Appeals and reports over HTTP, a gate decision's record with its plain-language statement,
and the admins' listing of decisions (the legal-reporting flag among its filters).

A publisher appeals on behalf of its user; it sees only its own tenant's decisions (another
tenant's decision is "not found", never "forbidden", so ids cannot be probed). The appeal's
statement is stored with the appeal, never in the audit log.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - msgspec and Litestar read annotations at runtime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.params import FromPath, QueryParameter

from registry import review
from registry.core.auth import Client, Role
from registry.gate import DecisionSummary, list_decisions
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.provenance import read_parts
from registry.http.security import BEARER, allow
from verifier import ImageLimits, decode
from verifier.imaging import sha256_hex

MAX_STATEMENT = 4000
DecisionId = FromPath[str]
AppealId = FromPath[str]


def _media_type_and_sha256(
    data: bytes, limits: ImageLimits, declared: str | None
) -> tuple[str, str]:
    # In the image workers, like the decode: hashing megabytes does not belong on the loop.
    return decode(data, limits, declared, hash_only=True).media_type, sha256_hex(data)


class FileAppeal(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    decision_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    statement: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_STATEMENT, pattern=r"\S")]
    """The user's case, in their words (1-4000 characters)."""


class AppealCreated(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    decision_id: str
    ticket_id: str
    status: str
    appealed_status: str
    created_at: datetime
    deadline: datetime
    """When a reviewer should have decided it, by the active policy's tiers."""


_APPEAL_IMAGE_PARTS: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {
            "type": "string",
            "format": "binary",
            "description": "The exact bytes the gate was sent for this decision (its SHA-256 "
            "is checked), JPEG, PNG or WebP, within the gate's limits.",
        },
    },
}


class FileReport(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    category: review.ReportCategory
    """What the publisher's users say is wrong with the published output."""


class ReportView(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    decision_id: str
    ticket_id: str
    category: str
    status: str
    created_at: datetime
    created: bool
    """False when this decision's report was open already: this is that report."""
    deadline: datetime
    """When a reviewer should have decided it, by the active policy's tiers."""


class DecisionList(msgspec.Struct, kw_only=True, frozen=True):
    decisions: list[DecisionSummary]
    next_before: int | None
    """Pass as ``before`` for the next page; null when this page is the last."""


class AppealsController(Controller):
    tags = ["appeals"]  # noqa: RUF012 - Litestar reads class attributes

    @post(
        "/v1/appeals",
        summary="Appeal a blocked decision on behalf of the publisher's user",
        description=(
            "Only the publisher's own tenant's decisions (others: 404 decision_not_found), only "
            "while the decision blocks publication (else 409 decision_not_appealable), once per "
            "decision (else 409 appeal_exists). Opens an appeal ticket that a reviewer other "
            "than those who decided this decision before must claim and decide."
        ),
        guards=[allow(Role.PUBLISHER)],
        security=BEARER,
        opt={"body": FileAppeal},
    )
    async def file(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[FileAppeal],
    ) -> AppealCreated:
        async with services.unit_of_work(caller) as uow:
            filed = await review.file_appeal(
                uow,
                client_id=caller.client_id,
                tenant=caller.tenant,
                decision_id=payload.decision_id,
                statement=payload.statement,
                policy=services.gate.policy,
            )
            appeal = filed.appeal
        return AppealCreated(
            id=appeal.id,
            decision_id=appeal.decision_id,
            ticket_id=appeal.ticket_id,
            status=appeal.status,
            appealed_status=appeal.appealed_status,
            created_at=appeal.created_at,
            deadline=filed.deadline,
        )

    @put(
        "/v1/appeals/{appeal_id:str}/image",
        summary="Attach the decided image to an open appeal, for its reviewer to see",
        description=(
            "Multipart: `image`, the exact bytes sent to the gate (their SHA-256 must be the "
            "decision's, else 422 `appeal_image_mismatch`). Kept sealed, as a review image "
            "is, until the appeal's ticket is decided (or the retention setting, or an "
            "erasure of a consent it relied on, ends it sooner). Only the publisher's own "
            "tenant's appeals (others: 404 `appeal_not_found`), only while the appeal is open "
            "(409 `appeal_not_open`), never for a decision blocked for a likely minor or a "
            "match within block distance of a listed image (409 `appeal_image_not_kept`: "
            "the appeal is decided from its evidence). Sending it again changes nothing "
            "(`created: false`)."
        ),
        guards=[allow(Role.PUBLISHER)],
        security=BEARER,
        opt={"multipart": _APPEAL_IMAGE_PARTS},
    )
    async def attach_image(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
        appeal_id: AppealId,
    ) -> review.AppealImage:
        parts = await read_parts(request, {"image": services.settings.max_image_bytes}, ("image",))
        part = parts["image"]
        data = bytes(part.data)
        # Decoded as the gate decodes, in its bounded image workers: what is kept is an image
        # of an allowed format within the pixel caps, whatever the part says it is.
        media_type, sha256 = await services.provenance.work.run(
            _media_type_and_sha256, data, services.gate.settings.image_limits, part.content_type
        )
        async with services.unit_of_work(caller) as uow:
            return await review.attach_image(
                uow,
                appeal_id=appeal_id,
                tenant=caller.tenant,
                data=data,
                sha256=sha256,
                media_type=media_type,
                keep=services.review_images.keep,
            )

    @post(
        "/v1/moderation/decisions/{decision_id:str}/reports",
        summary="Report an allowed output after publication (its users flagged it)",
        description=(
            "Only the publisher's own tenant's decisions (others: 404 decision_not_found), "
            "only a publish decision that is allowed now (else 409 decision_not_reportable). "
            "Opens a ticket of kind `report`; a reviewer who blocks it makes the decision "
            "`blocked` (take the output down) and counts the gate's `allowed` as a false "
            "negative of its policy version. While a report is open, filing again returns it "
            "(200, `created: false`) instead of opening another."
        ),
        guards=[allow(Role.PUBLISHER)],
        security=BEARER,
        opt={"body": FileReport},
        status_code=201,
    )
    async def report(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[FileReport],
        decision_id: DecisionId,
    ) -> Response[ReportView]:
        async with services.unit_of_work(caller) as uow:
            filed = await review.file_report(
                uow,
                client_id=caller.client_id,
                tenant=caller.tenant,
                decision_id=decision_id,
                category=payload.category,
                policy=services.gate.policy,
            )
        report = filed.report
        view = ReportView(
            id=report.id,
            decision_id=report.decision_id,
            ticket_id=report.ticket_id,
            category=report.category,
            status=report.status,
            created_at=report.created_at,
            created=filed.created,
            deadline=filed.deadline,
        )
        return Response(view, status_code=201 if filed.created else 200)

    @get(
        "/v1/moderation/decisions",
        summary="Gate decisions, newest first; `legal_report=true` lists those flagged for "
        "the operator's legal reporting",
        description=(
            "Admins only, every tenant's. `legal_report=true` keeps the decisions flagged for "
            "reporting (reason `minor_sexual`: a likely minor in likely sexual content), "
            "`false` the others. Pages of `limit` (1-500, default 100); `next_before` is "
            "the `before` of the next page, null on the last."
        ),
        guards=[allow(Role.ADMIN)],
        security=BEARER,
    )
    async def decisions(
        self,
        services: AppServices,
        legal_report: Annotated[
            bool | None, QueryParameter(description="Only flagged (true) or unflagged (false)")
        ] = None,
        before: Annotated[
            int | None, QueryParameter(ge=1, description="A previous page's next_before")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> DecisionList:
        async with services.connection() as conn:
            found = await list_decisions(
                conn, legal_report=legal_report, tenant=None, before=before, limit=limit
            )
        more = len(found) == limit
        return DecisionList(decisions=found, next_before=found[-1].seq if more else None)

    @get(
        "/v1/moderation/decisions/{decision_id:str}",
        summary="A gate decision with its plain-language statement, history and appeal",
        description=(
            "Publishers see their own tenant's decisions; admins and reviewers see any. "
            "`status` is the gate's outcome, `current_status` the outcome after reviews and "
            "appeals; `history` lists every change with its actor, time and note."
        ),
        guards=[allow(Role.PUBLISHER, Role.REVIEWER, Role.ADMIN)],
        security=BEARER,
    )
    async def decision(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        decision_id: DecisionId,
    ) -> review.DecisionRecord:
        if caller.has(Role.ADMIN):
            tenant: str | None = None
        elif caller.has(Role.REVIEWER):
            tenant = review.review_scope(caller.tenant)
        else:
            tenant = caller.tenant
        async with services.connection() as conn:
            return await review.decision_record(conn, decision_id, tenant=tenant)
