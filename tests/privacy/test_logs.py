"""Nothing personal a caller sends reaches the service's log (issue 18, item 5).

`registry serve` runs as a subprocess at DEBUG, its most verbose level, with stdout and
stderr in one file. A whole flow then plants a marker of its own in every personal field a
caller can send (the consent form's subject reference and photo label, the Idempotency-Key,
the gate's prompt, user id and metadata, the image's address, the prompt check's prompt and
user id, the appeal's statement, the reviewer's note), a consent token and an API key in URL
paths and queries, credential-named parameters hidden in a path by percent-encoding, a
malformed request id, and bad requests (a broken body, an invalid form, an unknown path)
that carry markers too. After a clean stop the log must hold none of them, and, so the test
can fail, it must hold an access line with the id, method, status and (redacted) path of
every request a route answered.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import httpx
import pytest

from registry.core.logs import REDACTED, redact
from registry_client import RegistryClient, SourceAsset
from registry_client.forms import FormAsset, FormSigner
from tests.client import support
from tests.faults.support import Service, free_port, service_env
from tests.support import ADMIN_KEY, bearer, service_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FIELDS = (
    "subject_ref",
    "photo_label",
    "idempotency_key",
    "gate_prompt",
    "gate_user_id",
    "gate_model",
    "image_url",
    "prompt_check_prompt",
    "prompt_check_user_id",
    "appeal_statement",
    "reviewer_note",
    "query_subject_ref",
    "path_session",
    "path_code",
    "query_session",
    "request_id",
    "malformed_body",
    "invalid_form",
    "invalid_idempotency_key",
    "unknown_path",
)


@pytest.fixture
def verbose_service(database_url: str, tmp_path: Path) -> Iterator[Service]:
    env = service_env(
        service_url(database_url),
        tmp_path,
        free_port(),
        log_level="DEBUG",
        # The gate fetches one output by address from a local server (image_url).
        image_fetch_allowed_hosts="127.0.0.1",
    )
    # stdout too: the service logs to stdout, and the test greps everything it printed.
    service = Service(env, tmp_path / "serve.log", stdout_too=True)
    try:
        service.wait_ready()
        yield service
    finally:
        if service.proc.poll() is None:
            service.stop()


class Seen:
    """Every response the test got from the service: method, raw path, status, request id."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, str, int, str | None]] = []
        self._clients: list[httpx.Client] = []

    def __call__(self, response: httpx.Response) -> None:
        request = response.request
        raw_path = request.url.raw_path.decode("ascii").partition("?")[0]
        self.responses.append(
            (request.method, raw_path, response.status_code, response.headers.get("x-request-id"))
        )

    def http(self) -> httpx.Client:
        made = httpx.Client(timeout=support.DEADLINE_SECONDS, event_hooks={"response": [self]})
        self._clients.append(made)
        return made

    def close(self) -> None:
        for made in self._clients:
            made.close()


def _admin(http: httpx.Client, base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(base + path, json=body, headers=bearer(ADMIN_KEY))
    assert response.status_code in {200, 201}, response.text
    created: dict[str, Any] = response.json()
    return created


def test_no_personal_field_or_secret_reaches_the_log(verbose_service):  # noqa: PLR0915 - one flow
    base = verbose_service.base_url
    marker = {name: f"pii{name.replace('_', '')}{uuid.uuid4().hex[:12]}" for name in FIELDS}
    seen = Seen()
    http = seen.http()
    _admin(http, base, "/v1/consent-templates", support.TEMPLATE_BODY)
    callers = support.make_callers(base)
    reviewer = _admin(
        http,
        base,
        "/v1/admin/clients",
        {"name": "reviewer", "roles": ["reviewer"], "tenant": callers.tenant},
    )["api_key"]
    signer = FormSigner.generate()
    reference = support.photo(31)
    generated = support.generated_from(reference)
    served = support.ScriptedServer(support.Reply(200, {"Content-Type": "image/jpeg"}, generated))

    def client(key: str | None) -> RegistryClient:
        return RegistryClient(base, key, http_client=seen.http())

    with (
        client(callers.uploader) as uploader,
        client(callers.generator) as generator,
        client(callers.publisher) as publisher,
        client(None) as anyone,
    ):
        # The uploader: the person's key and signed form, with the photo; a grant.
        template = anyone.get_template(support.TEMPLATE_ID)
        uploader.enrol_signer(signer.public_jwk(), subject_ref=marker["subject_ref"])
        form = signer.sign_form(
            template_id=template.id,
            template_sha256=template.sha256,
            subject_ref=marker["subject_ref"],
            assets=[FormAsset.of(reference, label=marker["photo_label"])],
            permitted_uses=support.PERMITTED,
            prohibited_uses=support.PROHIBITED,
            valid_until=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
            jurisdiction="DE",
        )
        submitted = uploader.submit_consent(
            form, photos=[reference], idempotency_key=marker["idempotency_key"]
        )
        assert submitted.status == "active"
        consent_id = submitted.consent_id
        [asset] = submitted.assets
        assert [c.consent_id for c in uploader.find_consents(marker["subject_ref"])] == [consent_id]
        assert uploader.find_consents(marker["query_subject_ref"]) == []
        uploader.grant(consent_id, callers.generator_id)

        # The generator: a token, its check, the prompt check.
        issued = generator.issue_token(consent_id, support.TOKEN_USES)
        assert generator.verify_token(issued.token).valid
        source = SourceAsset(asset_id=asset.asset_id, consent_token=issued.token)
        checked = generator.prompt_check(
            "gen-log-1",
            marker["prompt_check_prompt"],
            source_assets=[source],
            intended_uses=["reference.generate"],
            user_id=marker["prompt_check_user_id"],
        )
        assert checked.safety_status == "allowed", checked.reasons

        # The publisher: the output by upload and by address, a blocked image, its appeal.
        gate = {
            "prompt": marker["gate_prompt"],
            "source_assets": [source],
            "scores": support.CLEAN_SCORES,
            "generator_client_id": callers.generator_id,
            "model": marker["gate_model"],
            "user_id": marker["gate_user_id"],
        }
        decision = publisher.gate_check("gen-log-1", image=generated, **gate)
        assert decision.safety_status == "allowed", decision.reasons
        with support.serving(served):
            fetched = publisher.gate_check(
                "gen-log-2",
                image_url=f"{served.base_url}/outputs/{marker['image_url']}.jpg",
                **gate,
            )
        assert fetched.safety_status == "allowed", fetched.reasons
        assert [path for _, path, _ in served.requests] == [f"/outputs/{marker['image_url']}.jpg"]
        blocked = publisher.gate_check(
            "gen-log-3",
            image=support.photo(32),
            scores={
                "sexual_content": 0.99,
                "minor_presence": 0.0,
                "nonconsensual_transformation": 0.01,
            },
            user_id=marker["gate_user_id"],
        )
        assert blocked.safety_status == "blocked", blocked.reasons
        publisher.appeal(blocked.decision_id, marker["appeal_statement"])

        # The reviewer decides the appeal with a note.
        claimed = http.post(base + "/v1/reviews/claim", headers=bearer(reviewer))
        assert claimed.status_code == 200, claimed.text
        ticket = claimed.json()
        assert ticket["decision_id"] == blocked.decision_id
        decided = http.post(
            f"{base}/v1/reviews/{ticket['id']}/decision",
            json={"outcome": "blocked", "note": marker["reviewer_note"]},
            headers=bearer(reviewer),
        )
        assert decided.status_code == 200, decided.text

        # Secrets where they do not belong: a token and an API key in paths and a query, and
        # credential-named parameters hidden in a path ("%3F" is decoded to "?" before
        # routing, so the route sees them as part of the consent id).
        uploading = bearer(callers.uploader)
        hidden = quote(f"x?session={marker['path_session']}&code={marker['path_code']}", safe="")
        misplaced = [
            f"/v1/consents/{issued.token}",
            f"/v1/status-lists/{issued.token}",
            f"/v1/consents/{callers.uploader}",
            f"/v1/consents/{hidden}",
        ]
        for path in misplaced:
            answer = http.get(base + path, headers=uploading)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.headers["x-request-id"]
        queried = http.get(
            base + "/v1/consents",
            params={
                "subject_ref": marker["query_subject_ref"],
                "token": issued.token,
                "api_key": callers.uploader,
                "session": marker["query_session"],
            },
            headers=uploading,
        )
        assert queried.status_code in {200, 400}, queried.text

        # Bad input carrying markers: a request id not in the opaque form, a broken body, an
        # invalid form with an invalid Idempotency-Key, an unknown path.
        forged_id = f'{marker["request_id"]} "level": "ERROR"'
        replaced = http.get(base + "/healthz", headers={"X-Request-ID": forged_id})
        assert replaced.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{16}", replaced.headers["x-request-id"])
        trace_id = f"trace-{uuid.uuid4().hex}"
        kept = http.get(base + "/healthz", headers={"X-Request-ID": trace_id})
        assert kept.headers["x-request-id"] == trace_id
        broken = http.post(
            base + "/v1/moderation/check",
            content=f'{{"generation_id": "gen-log-4", "prompt": "{marker["malformed_body"]}"',
            headers={**bearer(callers.publisher), "Content-Type": "application/json"},
        )
        assert broken.status_code == 400, broken.text
        invalid = http.post(
            base + "/v1/consents",
            json={"form": marker["invalid_form"]},
            headers={**uploading, "Idempotency-Key": f"{marker['invalid_idempotency_key']} x"},
        )
        assert invalid.status_code in {400, 422}, invalid.text
        unknown = http.get(f"{base}/v1/{marker['unknown_path']}/x", headers=uploading)
        assert unknown.status_code == 404

        # The end of consent.
        uploader.withdraw(consent_id, withdrawal=signer.sign_withdrawal(consent_id))
        assert uploader.erase(consent_id).status == "erased"
    seen.close()

    # uvicorn ends the process by re-raising SIGTERM once it has shut down (and drained).
    assert verbose_service.stop() == -signal.SIGTERM, verbose_service.log()
    text = verbose_service.log_path.read_text()
    secrets = {"consent token": issued.token, "API key": callers.uploader, **marker}
    found = sorted(name for name, value in secrets.items() if value in text)
    assert found == [], f"in the log: {found}\n{text[-4000:]}"
    # Not the token's parts either (its signature alone is a lookup key for it).
    assert all(part not in text for part in issued.token.split("."))

    # The control: the log is there, parses line by line, and names every routed request.
    lines = [json.loads(line) for line in text.splitlines()]
    access = {line["request_id"]: line for line in lines if line["logger"] == "registry.access"}
    # The router answers an unknown path before the middleware: no id, no line. Every other
    # answer has both.
    unrouted = [response for response in seen.responses if response[3] is None]
    assert unrouted == [("GET", f"/v1/{marker['unknown_path']}/x", 404, None)]
    routed = [response for response in seen.responses if response[3] is not None]
    for method, raw_path, status, rid in routed:
        line = access.get(rid)
        assert line is not None, (method, raw_path, rid)
        assert (line["method"], line["status"]) == (method, status)
        assert line["path"] == redact(unquote(raw_path))
    assert access[trace_id]["path"] == "/healthz"
    redacted = {access[rid]["path"] for *_, rid in routed if REDACTED in access[rid]["path"]}
    assert redacted == {
        f"/v1/consents/{REDACTED}",
        f"/v1/status-lists/{REDACTED}",
        f"/v1/consents/x?session={REDACTED}&code={REDACTED}",
    }
    assert f"/v1/consents/{consent_id}/erase" in {line["path"] for line in access.values()}
