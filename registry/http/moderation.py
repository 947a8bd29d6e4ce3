"""The publish gate over HTTP: the gate itself, the pre-generation check and the policy.

Handlers read and check the request and hand it to ``registry.gate.GateService``, which
collects the evidence, decides, and records the decision with its audit event before the
handler answers. Refusals (bad input, a refused ``image_url``) are problem documents and
store nothing; every other outcome, however bad the evidence, is a stored decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime

from moderation.policy import MAX_POLICY_BYTES
from moderation.redteam import Report  # noqa: TC001 - Litestar reads annotations at runtime
from registry.core.auth import Client, Role
from registry.core.strictjson import parse_strict_json
from registry.gate import (
    CheckRequest,
    GateResponse,
    PromptCheckRequest,
    RequestPartInvalid,
)
from registry.gate.commands import check_candidate
from registry.http.deps import AppServices, read_payload
from registry.http.security import BEARER, allow, public
from registry.services import Services  # noqa: TC001 - Litestar reads annotations at runtime

if TYPE_CHECKING:
    from registry.gate import GateOutcome

REPLAYED_HEADER = "Idempotent-Replayed"
_PARTS = frozenset({"request", "image"})

_CHECK_PARTS: dict[str, Any] = {
    "type": "object",
    "required": ["request", "image"],
    "properties": {
        "request": {
            **msgspec.json.schema(CheckRequest),
            "description": "The request as JSON (strict: unknown fields and duplicate keys "
            "are refused), without image_url.",
        },
        "image": {
            "type": "string",
            "format": "binary",
            "description": "The generated image (JPEG, PNG or WebP).",
        },
    },
    "encoding": {"request": {"contentType": "application/json"}},
}


class PolicyView(msgspec.Struct, kw_only=True, frozen=True):
    label: str
    """The ``version`` string written in the file."""
    version: str
    """SHA-256 of the file: the ``policy_version`` of every decision made under it."""
    text: str
    """The policy file, exactly as loaded (TOML)."""


class PolicyCandidate(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    policy: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_POLICY_BYTES)]
    """The candidate policy file (TOML), as it would be deployed."""


def _answer(outcome: GateOutcome) -> Response[GateResponse]:
    headers = {"Cache-Control": "no-store"}
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    return Response(outcome.response, status_code=200, headers=headers)


async def _read_check(
    request: Request[Any, Any, Any], services: Services
) -> tuple[CheckRequest, bytes | None]:
    """The request and the uploaded image, from a JSON or a multipart/form-data body."""
    settings = services.settings
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "multipart/form-data":
        body: CheckRequest = await read_payload(request, services)
        return body, None
    form = await request.form()
    parts = list(form.multi_items())
    try:
        names = [name for name, _ in parts]
        unknown = sorted(set(names) - _PARTS)
        if unknown:
            raise RequestPartInvalid(f"unknown part {unknown[0][:64]!r}; send request and image")
        if sorted(names) != ["image", "request"]:
            raise RequestPartInvalid("send exactly one 'request' part and one 'image' part")
        values = dict(parts)
        raw = values["request"]
        text = await raw.read() if isinstance(raw, UploadFile) else str(raw).encode("utf-8")
        if len(text) > settings.max_json_bytes:
            raise RequestPartInvalid(f"the 'request' part exceeds {settings.max_json_bytes} bytes")
        body = parse_strict_json(text, CheckRequest, max_depth=settings.max_json_depth)
        image = values["image"]
        if not isinstance(image, UploadFile):
            raise RequestPartInvalid("the 'image' part must be a file upload")
        return body, await image.read()
    finally:
        for _, value in parts:
            if isinstance(value, UploadFile):
                await value.close()


class ModerationController(Controller):
    tags = ["moderation"]  # noqa: RUF012 - Litestar reads class attributes

    @post(
        "/v1/moderation/check",
        summary="The publish gate: allowed, review or blocked, with stable reasons",
        description=(
            "Send the generated image as `multipart/form-data` (`request` JSON part and "
            "`image` file part), or JSON with `image_url` (fetched only from allow-listed "
            "hosts; loopback, link-local, private and reserved addresses and redirects to "
            "another host are refused with 422 `image_url_not_allowed` before connecting). "
            "The gate decodes the image safely, reads the prompt's intent, verifies every "
            "source asset's consent token (signature, expiry, live revocation, audience = "
            "`metadata.generator_client_id`, asset binding, uses), reads the image's C2PA "
            "manifest, scores it (supplied `scores` and the configured classifier) and "
            "matches it against the protected hash lists; the policy then decides. Every "
            "decision is stored with its evidence and an audit event before this answer. "
            "The same `generation_id` and image again returns the same decision (header "
            "`Idempotent-Replayed: true`); the same `generation_id` with another image is "
            "409 `generation_conflict`. A decision that cannot be stored is 503 "
            "`decision_not_recorded`: nothing was decided."
        ),
        guards=[allow(Role.PUBLISHER)],
        security=BEARER,
        status_code=200,
        opt={"body": CheckRequest, "multipart": _CHECK_PARTS},
    )
    async def check(
        self,
        request: Request[Any, Any, Any],
        services: AppServices,
        caller: NamedDependency[Client],
    ) -> Response[GateResponse]:
        body, image = await _read_check(request, services)
        outcome = await services.gate.check(actor=caller, request=body, image=image)
        return _answer(outcome)

    @post(
        "/v1/moderation/prompt-check",
        summary="Before generation: check a prompt and its source assets' consent",
        description=(
            "The same decision shape as the publish gate, before any image exists: the "
            "prompt's intent against real-person sources (e.g. undressing or sexualising "
            "someone in a reference photo), and every source's consent token for the "
            "caller (the token's audience) and the `intended_uses`. Stored and audited like "
            "every decision; idempotent per `generation_id` and request."
        ),
        guards=[allow(Role.GENERATOR)],
        security=BEARER,
        status_code=200,
        opt={"body": PromptCheckRequest},
    )
    async def prompt_check(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[PromptCheckRequest],
    ) -> Response[GateResponse]:
        outcome = await services.gate.prompt_check(actor=caller, request=payload)
        return _answer(outcome)

    @get(
        "/v1/policy",
        summary="The active publish-gate policy: its text, version (SHA-256) and label",
        guards=[public],
    )
    async def policy(self, services: AppServices) -> PolicyView:
        policy = services.gate.policy
        return PolicyView(label=policy.label, version=policy.version, text=policy.text)

    @post(
        "/v1/policy/check",
        summary="Run the shipped red-team corpus against a candidate policy before it is loaded",
        description=(
            "Validates the candidate (a policy that does not load is 422 with the loader's "
            "code, e.g. `policy_unknown_key`, naming the key) and replays every case of the "
            "red-team corpus shipped with the service through the gate's decision engine "
            "under it. The answer lists the cases whose outcome differs from the one "
            "expected: `more_permissive` ones are holes the candidate would open (`ok` is "
            "false), `stricter` ones cost reviewer time but are not holes. Nothing is "
            "loaded, stored or changed: deploy a policy with `REGISTRY_POLICY_FILE`. "
            "docs/redteam.md describes the corpus."
        ),
        guards=[allow(Role.ADMIN)],
        security=BEARER,
        status_code=200,
        opt={"body": PolicyCandidate},
    )
    async def check_policy(self, payload: NamedDependency[PolicyCandidate]) -> Response[Report]:
        report = await check_candidate(payload.policy)
        return Response(report, status_code=200, headers={"Cache-Control": "no-store"})
