"""A tenant's export, end to end: records made through the real API (a consent, its token, a
gate decision sent to review and reviewed, the signed output, a hash list), exported by the
`registry` command and by `GET /v1/admin/export`, then verified offline by
`python -m verifier export` with nothing but the export's files; a changed byte fails and
names its file. Refusals (a non-admin, a directory that is not empty, an unknown tenant)
write nothing and record nothing."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from typing import TYPE_CHECKING, Any

import pytest

from tests.consent_http import helpers
from tests.consent_http.conftest import Party, World
from tests.gate_http.conftest import check_request, consented_source, output, post_check
from tests.registry.cli_support import REPO, rows, run
from tests.support import assert_problem

if TYPE_CHECKING:
    from pathlib import Path

TENANT = "acme"
REVIEW_SCORES = {"sexual_content": 0.4, "minor_presence": 0.01}


@pytest.fixture
async def world(client, admin, make_client) -> World:
    """The consent tests' parties, all of one tenant, so its export holds every kind of
    record: the uploader's consents, the generator's outputs, the publisher's decisions."""
    response = await client.post(
        "/v1/consent-templates",
        json={
            "id": helpers.TEMPLATE_ID,
            "title": "Likeness for reference-based generation",
            "text": helpers.TEMPLATE_TEXT,
            "uses": helpers.TEMPLATE_USES,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    parties = [
        Party(*await make_client(role, tenant=TENANT, name=f"{role} client"))
        for role in ("uploader", "generator", "publisher")
    ]
    return World(
        http=client,
        admin=admin,
        uploader=parties[0],
        generator=parties[1],
        publisher=parties[2],
        signer=helpers.Signer(),
    )


@pytest.fixture
async def records(world, make_client) -> dict[str, Any]:
    """One of each record type in tenant acme, made through the API."""
    http = world.http
    source = await consented_source(world)
    image = output(5)
    gated = await post_check(
        http,
        world.publisher.headers,
        check_request("gen-export", sources=[source.asset()], generator=world.generator.client_id),
        image,
    )
    assert gated.status_code == 200, gated.text
    decision = gated.json()
    assert decision["safety_status"] == "allowed", decision["reasons"]

    held = await post_check(
        http, world.publisher.headers, check_request("gen-held", scores=REVIEW_SCORES), output(6)
    )
    assert held.json()["safety_status"] == "review", held.text
    _, reviewer = await make_client("reviewer", tenant="system", name="reviewer")
    ticket = held.json()["review_ticket"]
    claimed = await http.post("/v1/reviews/claim", headers=reviewer)
    assert claimed.json()["id"] == ticket
    decided = await http.post(
        f"/v1/reviews/{ticket}/decision",
        json={"outcome": "allowed", "note": "A stylised portrait; nothing sexual."},
        headers=reviewer,
    )
    assert decided.status_code == 200, decided.text

    signed = await http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", image, "image/jpeg"),
            "metadata": (
                None,
                json.dumps(
                    {
                        "generation_id": "gen-export",
                        "model": "example-diffusion-2",
                        "consent_tokens": [source.token],
                        "decision_id": decision["decision_id"],
                    }
                ),
                "application/json",
            ),
        },
        headers=world.generator.headers,
    )
    assert signed.status_code == 200, signed.text

    _, tenant_admin = await make_client("admin", tenant=TENANT, name="acme admin")
    created = await http.post(
        "/v1/admin/hash-lists",
        json={"name": "acme-known", "action": "review", "scope": "tenant"},
        headers=tenant_admin,
    )
    assert created.status_code == 201, created.text
    added = await http.post(
        "/v1/admin/hash-lists/acme-known/entries",
        json={"entries": [{"hash": "0123456789abcdef", "label": "a known copy"}]},
        headers=tenant_admin,
    )
    assert added.status_code == 200, added.text
    return {
        "source": source,
        "decision_id": decision["decision_id"],
        "reviewed_id": held.json()["decision_id"],
        "output_id": signed.headers["provenance-output-id"],
        "tenant_admin": tenant_admin,
    }


def verify(directory: Path) -> tuple[int, dict[str, Any]]:
    """``python -m verifier export DIR --json`` as a third party runs it: another process."""
    done = subprocess.run(
        [sys.executable, "-m", "verifier", "export", str(directory), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout)


def lines(directory: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / name).read_text().splitlines()]


def _env(settings) -> dict[str, str]:
    return {
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_MASTER_KEY": settings.master_key,
    }


async def _events(database_url: str) -> int:
    [row] = await rows(database_url, "SELECT count(*) AS n FROM audit_events")
    return int(row["n"])


async def test_an_export_by_the_command_verifies_offline(records, settings, database_url, tmp_path):
    out = tmp_path / "acme-export"
    done = run("export", "--tenant", TENANT, str(out), env=_env(settings))
    assert done.returncode == 0, done.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tenant"] == TENANT
    assert {
        "consents.jsonl",
        "tokens.jsonl",
        "outputs.jsonl",
        "decisions.jsonl",
        "reviews.jsonl",
        "hashlists.jsonl",
        "hashlists/acme-known.jsonl",
        "audit.jsonl",
        "checkpoint.json",
        "keys/registry-keys.jws",
        "keys/jwks.json",
    } <= set(manifest["files"])

    source = records["source"]
    [consent] = lines(out, "consents.jsonl")
    assert consent["consent_id"] == source.consent_id
    assert consent["receipt"].count(".") == 2
    [token] = lines(out, "tokens.jsonl")
    assert (token["jti"], token["status_name"]) == (source.jti, "valid")
    [signed] = lines(out, "outputs.jsonl")
    assert signed["output_id"] == records["output_id"]
    decision, reviewed = lines(out, "decisions.jsonl")
    assert decision["decision_id"] == records["decision_id"]
    assert (reviewed["decision_id"], reviewed["status"], reviewed["current_status"]) == (
        records["reviewed_id"],
        "review",
        "allowed",
    )
    # What the tenant's own client sent is there; the sealed evidence is not.
    assert decision["request"]["prompt"] == "put her in a sunny park, watercolour style"
    assert "evidence" not in decision
    assert [c["consent_id"] for c in decision["consents"]] == [source.consent_id]
    reviews = [(r["decision_id"], r["event"]) for r in lines(out, "reviews.jsonl")]
    assert (records["reviewed_id"], "reviewed") in reviews
    [hash_list] = lines(out, "hashlists.jsonl")
    assert hash_list["name"] == "acme-known"
    audited = lines(out, "audit.jsonl")
    assert {line["event"]["tenant"] for line in audited} == {TENANT}
    # Those the tenant's clients did and those done to its records by others (the review).
    assert {"consent.submitted", "moderation.decided", "review.decided"} <= {
        line["event"]["action"] for line in audited
    }

    code, report = verify(out)
    assert (code, report["result"]) == (0, "verified"), report
    assert report["checked"]["receipts"] == 1
    assert report["checked"]["assertions"] == 1
    assert report["checked"]["token_statuses"] == 1
    assert report["checked"]["audit_events"] == len(audited)

    # The export is audited, after the checkpoint it carries.
    exported = await rows(
        database_url,
        "SELECT actor, tenant, payload FROM audit_events WHERE action = 'tenant.exported'",
    )
    assert [(r["actor"], r["tenant"]) for r in exported] == [("cli", TENANT)]


async def test_a_changed_byte_fails_naming_the_file(records, settings, tmp_path):
    out = tmp_path / "export"
    assert run("export", "--tenant", TENANT, str(out), env=_env(settings)).returncode == 0
    path = out / "decisions.jsonl"
    path.write_text(
        path.read_text().replace('"current_status":"allowed"', '"current_status":"blocked"', 1)
    )
    code, report = verify(out)
    assert (code, report["result"]) == (1, "invalid")
    assert [(p["file"], p["code"]) for p in report["problems"]] == [
        ("decisions.jsonl", "sha256_mismatch")
    ]


async def test_a_changed_receipt_fails_even_with_the_manifest_rehashed(records, settings, tmp_path):
    """Whoever changes a record and the manifest's hash with it still cannot sign: the
    receipt's signature fails against the export's own key history."""
    import hashlib

    out = tmp_path / "export"
    assert run("export", "--tenant", TENANT, str(out), env=_env(settings)).returncode == 0
    path = out / "consents.jsonl"
    [consent] = lines(out, "consents.jsonl")
    head, body, signature = consent["receipt"].split(".")
    consent["receipt"] = f"{head}.{body}.{signature[:-4]}AAAA"
    path.write_text(json.dumps(consent) + "\n")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["consents.jsonl"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))
    code, report = verify(out)
    assert code == 1
    assert [(p["file"], p["line"]) for p in report["problems"]] == [("consents.jsonl", 1)]


async def test_an_export_over_http_is_a_tar_that_verifies(records, world, database_url, tmp_path):
    response = await world.http.get(f"/v1/admin/export?tenant={TENANT}", headers=world.admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-tar")
    assert "acme-export.tar" in response.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        archive.extractall(tmp_path, filter="data")
    out = tmp_path / "acme-export"
    code, report = verify(out)
    assert (code, report["result"]) == (0, "verified"), report
    assert report["checked"]["receipts"] == 1
    # Audited as the admin that asked, under the tenant exported.
    [event] = await rows(
        database_url,
        "SELECT e.tenant, c.name FROM audit_events e JOIN api_clients c ON c.client_id = e.actor"
        " WHERE e.action = 'tenant.exported'",
    )
    assert (event["tenant"], event["name"]) == (TENANT, "bootstrap-admin")


async def test_a_non_admin_is_refused_and_nothing_is_recorded(records, world, database_url):
    before = await _events(database_url)
    response = await world.http.get(
        f"/v1/admin/export?tenant={TENANT}", headers=world.uploader.headers
    )
    assert_problem(response, 403, "forbidden")
    response = await world.http.get(f"/v1/admin/export?tenant={TENANT}")
    assert_problem(response, 401, "unauthenticated")
    assert await _events(database_url) == before


async def test_a_tenant_admin_exports_its_own_tenant_only(
    records, world, make_client, database_url
):
    _, other_admin = await make_client("admin", tenant="globex", name="globex admin")
    before = await _events(database_url)
    response = await world.http.get(f"/v1/admin/export?tenant={TENANT}", headers=other_admin)
    assert_problem(response, 404, "tenant_not_found")
    assert await _events(database_url) == before
    own = await world.http.get(f"/v1/admin/export?tenant={TENANT}", headers=records["tenant_admin"])
    assert own.status_code == 200, own.text


async def test_an_unknown_tenant_is_404_over_http_and_by_the_command(
    world, settings, database_url, tmp_path
):
    before = await _events(database_url)
    response = await world.http.get("/v1/admin/export?tenant=nobody", headers=world.admin)
    assert_problem(response, 404, "tenant_not_found")
    out = tmp_path / "nobody"
    done = run("export", "--tenant", "nobody", str(out), env=_env(settings))
    assert done.returncode == 2
    assert "no tenant named 'nobody'" in done.stderr
    assert not out.exists()
    assert await _events(database_url) == before


async def test_a_directory_that_is_not_empty_is_refused(world, settings, database_url, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    before = await _events(database_url)
    done = run("export", "--tenant", TENANT, str(out), env=_env(settings))
    assert done.returncode == 2
    assert "is not an empty directory: nothing was written" in done.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert await _events(database_url) == before


@pytest.fixture
async def exported(records, settings, tmp_path) -> Path:
    """The acme export, written by the command into an empty directory that exists."""
    out = tmp_path / "exported"
    out.mkdir()
    done = run("export", "--tenant", TENANT, str(out), env=_env(settings))
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    return out


def _rehash(out: Path, name: str) -> None:
    """Make the manifest agree with a changed file, as a forger would."""
    import hashlib

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest))


async def test_a_changed_audit_event_or_token_status_fails_with_the_manifest_rehashed(exported):
    audit = exported / "audit.jsonl"
    first, *rest = audit.read_text().splitlines()
    event = json.loads(first)
    event["event"]["actor"] = "someone-else"
    audit.write_text("\n".join([json.dumps(event), *rest]) + "\n")
    _rehash(exported, "audit.jsonl")
    tokens = exported / "tokens.jsonl"
    [token] = lines(exported, "tokens.jsonl")
    token["status"] = 1
    tokens.write_text(json.dumps(token) + "\n")
    _rehash(exported, "tokens.jsonl")
    code, report = verify(exported)
    assert code == 1
    assert [(p["file"], p["code"], p["line"]) for p in report["problems"]] == [
        ("tokens.jsonl", "token_status", 1),
        ("audit.jsonl", "event_hash", 1),
    ]


async def test_files_outside_the_manifest_or_missing_from_it_fail(exported):
    (exported / "extra.jsonl").write_text("{}\n")
    (exported / "reviews.jsonl").unlink()
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["files"]["../escape.jsonl"] = {"sha256": "0" * 64}
    (exported / "manifest.json").write_text(json.dumps(manifest))
    code, report = verify(exported)
    assert code == 1
    assert sorted((p["file"], p["code"]) for p in report["problems"]) == [
        ("extra.jsonl", "unlisted"),
        ("manifest.json", "malformed"),
        ("reviews.jsonl", "missing"),
    ]


def test_the_verifier_refuses_what_is_not_an_export(tmp_path):
    code, report = verify(tmp_path)
    assert (code, report["problems"][0]["file"], report["problems"][0]["code"]) == (
        1,
        "manifest.json",
        "missing",
    )
    done = subprocess.run(
        [sys.executable, "-m", "verifier", "export", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert done.returncode == 64
    assert "is not a directory" in done.stderr


async def test_a_malformed_tenant_is_refused(world, database_url):
    before = await _events(database_url)
    response = await world.http.get("/v1/admin/export?tenant=Not%20A%20Tenant", headers=world.admin)
    assert "tenant" in assert_problem(response, 400, "invalid_parameter")["detail"]
    response = await world.http.get("/v1/admin/export", headers=world.admin)
    assert_problem(response, 400, "invalid_parameter")
    assert await _events(database_url) == before
