"""A client generated from the committed document by openapi-python-client drives the callers'
flow against a live service: uploader -> generator -> gate -> sign -> verify.

Nothing here is hand-written HTTP: every call goes through the generated functions and models,
so a body, part or status the document leaves out breaks this test.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import subprocess
import sys
from pathlib import Path

from tests.consent_http import helpers
from tests.gate_http.conftest import CLEAN_SCORES, PERMITTED, PROHIBITED, PUBLISH_USES, output
from tests.support import ADMIN_KEY, REPO

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "generated_registry_client"


def generate(tmp_path: Path):
    target = tmp_path / PACKAGE
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(REPO / "openapi" / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # openapi-python-client 0.29.1 annotates a body of several content types (our JSON or
    # multipart operations) as `... | Unset` without importing Unset (endpoint_macros.py.jinja
    # tests a `body_required` it never sets), so those modules fail to import. The one fix a
    # caller needs too, until the generator's is released:
    for module in (target / "api").rglob("*.py"):
        text = module.read_text()
        if "| Unset = UNSET" in text and "import Response, UNSET\n" in text:
            module.write_text(
                text.replace("import Response, UNSET\n", "import Response, UNSET, Unset\n")
            )
    for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[name]  # another test's generation
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))


def call(module: str, package, **kwargs):
    """``sync_detailed`` of one generated operation; the parsed answer and the raw one."""
    operation = importlib.import_module(f"{package.__name__}.api.{module}")
    response = operation.sync_detailed(**kwargs)
    return response.parsed, response


def test_a_generated_client_runs_the_callers_flow(live_service, tmp_path):
    package = generate(tmp_path)
    opened = {}

    def as_(key: str):
        if key not in opened:
            opened[key] = package.AuthenticatedClient(
                base_url=live_service.base_url, token=key, timeout=30.0
            )
        return opened[key]

    try:
        flow(package, live_service.base_url, as_)
    finally:
        for client in opened.values():
            client.get_httpx_client().close()


def flow(package, base_url, as_):
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")

    def file(data: bytes, name: str, media_type: str):
        return types.File(payload=io.BytesIO(data), file_name=name, mime_type=media_type)

    admin = as_(ADMIN_KEY)
    _, raw = call(
        "consent.v1_consent_templates_create_template",
        package,
        client=admin,
        body=models.CreateTemplate(
            id=helpers.TEMPLATE_ID,
            title="Likeness for reference-based generation",
            text=helpers.TEMPLATE_TEXT,
            uses=helpers.TEMPLATE_USES,
        ),
    )
    assert raw.status_code == 201, raw.content
    keys, ids = {}, {}
    for role, tenant in (("uploader", "acme"), ("generator", "genco"), ("publisher", "genco")):
        created, raw = call(
            "admin.v1_admin_clients_create",
            package,
            client=admin,
            body=models.CreateClient(name=f"{role} app", roles=[role], tenant=tenant),
        )
        assert raw.status_code == 201, raw.content
        keys[role], ids[role] = created.api_key, created.client_id

    # The uploader submits a signed form with the photo itself (multipart), and grants.
    photo = helpers.photo(7, size=(320, 240))
    photo_sha256 = hashlib.sha256(photo).hexdigest()
    form = helpers.sign_form(
        helpers.Signer(),
        helpers.form_payload(
            asset_hashes=[photo_sha256], permitted_uses=PERMITTED, prohibited_uses=PROHIBITED
        ),
    )
    consent, raw = call(
        "consent.v1_consents_submit",
        package,
        client=as_(keys["uploader"]),
        body=models.V1ConsentsSubmitFilesBody(
            form=form, assets=[file(photo, "me.png", "image/png")]
        ),
    )
    assert raw.status_code == 201, raw.content
    assert isinstance(consent, models.ConsentCreated)
    _, raw = call(
        "consent.v1_consents_consent_id_grants_grant",
        package,
        client=as_(keys["uploader"]),
        consent_id=consent.consent_id,
        body=models.CreateGrant(client_id=ids["generator"]),
    )
    assert raw.status_code == 201, raw.content

    # The generator takes a token for the photo and checks it.
    token, raw = call(
        "consent.v1_tokens_issue_token",
        package,
        client=as_(keys["generator"]),
        body=models.RequestToken.from_dict(
            {"consent_id": consent.consent_id, "uses": PUBLISH_USES}
        ),
    )
    assert raw.status_code == 201, raw.content
    verified, raw = call(
        "consent.v1_tokens_verify_verify_token",
        package,
        client=as_(keys["generator"]),
        body=models.VerifyToken.from_dict({"token": token.token, "use": "reference.generate"}),
    )
    assert raw.status_code == 200, raw.content
    assert verified.to_dict()["valid"] is True

    # The publisher asks the gate about the output made from it.
    image = output(11)
    request = {
        "generation_id": "gen-generated-client-1",
        "prompt": "the same person reading in a sunny park, watercolour",
        "source_assets": [
            {
                "type": "photo",
                "asset_id": consent.assets[0].asset_id,
                "sha256": photo_sha256,
                "consent_token": token.token,
            }
        ],
        "user_id": "user-9",
        "metadata": {
            "model": "example-diffusion-2",
            "timestamp": "2026-03-01T12:00:00Z",
            "generator_client_id": ids["generator"],
        },
        "scores": CLEAN_SCORES,
    }
    decision, raw = call(
        "moderation.v1_moderation_check_check",
        package,
        client=as_(keys["publisher"]),
        body=models.V1ModerationCheckCheckFilesBody(
            request=models.CheckRequest.from_dict(request),
            image=file(image, "out.jpg", "image/jpeg"),
        ),
    )
    assert raw.status_code == 200, raw.content
    assert decision.safety_status.value == "allowed", raw.content

    # The generator signs the output, naming the decision; anyone verifies it.
    _, raw = call(
        "provenance.v1_provenance_sign_sign",
        package,
        client=as_(keys["generator"]),
        body=models.V1ProvenanceSignSignBody(
            file=file(image, "out.jpg", "image/jpeg"),
            metadata=models.SignMetadata(
                consent_tokens=[token.token],
                generation_id="gen-generated-client-1",
                model="example-diffusion-2",
                decision_id=decision.decision_id,
            ),
        ),
    )
    assert raw.status_code == 200, raw.content
    signed = raw.content
    assert signed != image
    with package.Client(base_url=base_url, timeout=30.0) as anyone:
        verification, raw = call(
            "provenance.v1_provenance_verify_verify",
            package,
            client=anyone,
            body=models.V1ProvenanceVerifyVerifyBody(file=file(signed, "s.jpg", "image/jpeg")),
        )
    assert raw.status_code == 200, raw.content
    assert isinstance(verification, models.Verification)
    assert verification.state.value == "trusted", raw.content
    assert verification.generation_id == "gen-generated-client-1"
    assert verification.decision.id == decision.decision_id


def test_the_generated_client_parses_problems(live_service, tmp_path):
    package = generate(tmp_path)
    models = importlib.import_module(f"{PACKAGE}.models")
    body = models.RequestToken.from_dict({"consent_id": "c_x", "uses": ["reference.generate"]})

    with package.AuthenticatedClient(
        base_url=live_service.base_url, token="rk_" + "B" * 43
    ) as nobody:
        problem, raw = call("consent.v1_tokens_issue_token", package, client=nobody, body=body)

    assert raw.status_code == 401
    assert isinstance(problem, models.Problem)
    assert problem.code == "unauthenticated"
