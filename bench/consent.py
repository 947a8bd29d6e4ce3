"""Issue 3 rows: consent-token verification and consent submission over HTTP, each against
its floor."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bench import fixtures
from bench.context import HttpTable
from bench.load import check, compare

if TYPE_CHECKING:
    from bench.context import Bench, Table


def run(bench: Bench) -> list[Table]:
    if not bench.http:
        return [bench.skipped("Consent (issue 3), HTTP rows")]
    world = bench.world()
    request = world.verify_token_request()
    for target in world.both(request):
        check(target.base_url, request, lambda body: json.loads(body)["valid"] is True)
    submit = world.consent_request(fixtures.photo((2000, 2000), seed=4))
    for target in world.both(submit):
        check(target.base_url, submit, lambda body: json.loads(body)["status"] == "active")
    return [
        HttpTable(
            "Consent (issue 3)",
            [
                compare(
                    "POST /v1/tokens/verify (valid token)",
                    "API-key lookup by hash, pyjwt.decode (same token, key, audience, issuer) "
                    "and the token's status row, on one pooled connection of the same "
                    "PostgreSQL",
                    *world.both(request),
                    bench.settings,
                ),
                compare(
                    "POST /v1/consents, one 4 MP JPEG (a fresh signed form each)",
                    "key lookup and the template row; the form's EdDSA signature (pyjwt); "
                    "sha256 + Pillow decode (draft) + pHash + dHash of the photo; the form "
                    "sealed (AES-GCM); a receipt (EdDSA JWS); one INSERT",
                    *world.both(submit),
                    bench.settings,
                ),
            ],
        )
    ]
