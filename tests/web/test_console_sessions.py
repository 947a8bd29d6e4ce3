"""Console sign-in over HTTP: sessions, cookies, CSRF, roles, expiry."""

from __future__ import annotations

import hashlib

import asyncpg
from litestar.testing import AsyncTestClient

from registry.app import create_app
from tests.support import ADMIN_KEY
from tests.web.conftest import count, sign_in
from tests.web.support import csrf_of

SESSIONS = "SELECT count(*) FROM web_sessions"
SIGN_INS = "SELECT count(*) FROM audit_events WHERE action = 'console.signed_in'"


def set_cookie_headers(response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def test_reviewer_signs_in_with_a_strict_http_only_cookie(client, make_key, database_url):
    client_id, key = await make_key("reviewer")

    response = await sign_in(client, key)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console"
    cookie = next(c for c in set_cookie_headers(response) if c.startswith("registry_console="))
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/console" in attributes
    assert "secure" not in attributes  # plain http on 127.0.0.1 (see docs/web.md)
    session_id = cookie.split(";", 1)[0].split("=", 1)[1]
    # Stored as a hash only, with the client and an audit event.
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT id_hash, client_id FROM web_sessions")
        event = await conn.fetchrow(
            "SELECT actor, subject_id FROM audit_events WHERE action = 'console.signed_in'"
        )
    finally:
        await conn.close()
    assert bytes(row["id_hash"]) == hashlib.sha256(session_id.encode()).digest()
    assert row["client_id"] == client_id
    assert event["actor"] == client_id


async def test_cookie_is_secure_when_the_request_came_over_https(settings, make_key):
    _, key = await make_key("reviewer")
    async with AsyncTestClient(
        app=create_app(settings), base_url="https://testserver.local"
    ) as https:
        response = await sign_in(https, key)

    cookie = next(c for c in set_cookie_headers(response) if c.startswith("registry_console="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_cookies_are_secure_when_the_public_url_is_https(settings, tmp_path):
    """Behind a TLS proxy the service sees http; its https public URL still marks cookies."""
    from tests.support import make_settings

    behind_tls = make_settings(
        settings.database_url,
        tmp_path / "tls",
        master_key=settings.master_key,
        issuer="https://registry.example",
    )
    async with AsyncTestClient(app=create_app(behind_tls)) as http:
        response = await http.get("/console/login")

    cookie = next(
        c for c in set_cookie_headers(response) if c.startswith("registry_console_login=")
    )
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


async def test_a_bad_key_is_a_form_error_and_stores_nothing(client, database_url):
    for key in ("rk_" + "B" * 43, "not-a-key", ""):
        response = await sign_in(client, key)

        assert response.status_code == 401
        assert 'id="login-error"' in response.text
        assert "That API key is not valid." in response.text
        assert "registry_console=" not in " ".join(set_cookie_headers(response))
    assert await count(database_url, SESSIONS) == 0
    assert await count(database_url, SIGN_INS) == 0


async def test_a_key_without_reviewer_or_admin_role_cannot_sign_in(client, make_key, database_url):
    _, key = await make_key("publisher", tenant="pubco")

    response = await sign_in(client, key)

    assert response.status_code == 403
    assert "neither the reviewer nor the admin role" in response.text
    assert await count(database_url, SESSIONS) == 0
    assert (await client.get("/console/admin", follow_redirects=False)).headers[
        "location"
    ] == "/console/login"


async def test_sign_in_without_or_with_a_wrong_csrf_token_is_refused(
    client, make_key, database_url
):
    _, key = await make_key("reviewer")
    page = await client.get("/console/login")
    token = csrf_of(page.text)

    missing = await client.post("/console/login", data={"api_key": key})
    wrong = await client.post("/console/login", data={"api_key": key, "csrf_token": token + "x"})
    client.cookies.clear()
    no_cookie = await client.post("/console/login", data={"api_key": key, "csrf_token": token})

    for response in (missing, wrong, no_cookie):
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "did not come from this site" in response.text
    assert await count(database_url, SESSIONS) == 0


async def test_console_pages_send_a_signed_out_browser_to_the_sign_in_form(client):
    for path in ("/console/admin",):
        response = await client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/login"


async def test_logout_needs_the_session_csrf_token(client, make_key, database_url):
    _, key = await make_key("admin")
    await sign_in(client, key)
    page = await client.get("/console/admin")
    assert page.status_code == 200
    token = csrf_of(page.text)

    refused = await client.post("/console/logout", data={})
    wrong = await client.post("/console/logout", data={"csrf_token": "A" * 43})

    assert refused.status_code == 403
    assert wrong.status_code == 403
    assert await count(database_url, SESSIONS) == 1
    assert (await client.get("/console/admin")).status_code == 200

    done = await client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False)

    assert done.status_code == 303
    assert done.headers["location"] == "/console/login"
    assert await count(database_url, SESSIONS) == 0
    assert (
        await count(
            database_url, "SELECT count(*) FROM audit_events WHERE action = 'console.signed_out'"
        )
        == 1
    )
    assert (await client.get("/console/admin", follow_redirects=False)).status_code == 303


async def test_a_stolen_cookie_is_useless_after_logout(client, make_key):
    _, key = await make_key("admin")
    response = await sign_in(client, key)
    stolen = response.cookies["registry_console"]
    token = csrf_of((await client.get("/console/admin")).text)
    await client.post("/console/logout", data={"csrf_token": token})

    client.cookies.set("registry_console", stolen, path="/console")
    replay = await client.get("/console/admin", follow_redirects=False)

    assert replay.status_code == 303
    assert replay.headers["location"] == "/console/login"


async def test_sessions_expire_when_idle_and_at_their_end(client, make_key, database_url):
    _, key = await make_key("admin")
    await sign_in(client, key)
    assert (await client.get("/console/admin")).status_code == 200
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("UPDATE web_sessions SET last_seen_at = now() - interval '31 minutes'")
        idle = await client.get("/console/admin", follow_redirects=False)
        await conn.execute(
            "UPDATE web_sessions SET created_at = now() - interval '9 hours', last_seen_at = now(),"
            " expires_at = now() - interval '1 hour'"
        )
        ended = await client.get("/console/admin", follow_redirects=False)
    finally:
        await conn.close()

    assert idle.status_code == 303
    assert ended.status_code == 303
    # The next sign-in clears sessions that ended.
    await sign_in(client, key)
    assert await count(database_url, SESSIONS) == 1


async def test_a_disabled_client_loses_its_session(client, make_key, database_url):
    client_id, key = await make_key("admin")
    await sign_in(client, key)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE api_clients SET disabled_at = now() WHERE client_id = $1", client_id
        )
    finally:
        await conn.close()

    response = await client.get("/console/admin", follow_redirects=False)

    assert response.status_code == 303


async def test_admin_view_needs_the_admin_role(client, make_key):
    _, key = await make_key("reviewer")
    await sign_in(client, key)

    response = await client.get("/console/admin")

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "admin role" in response.text


async def test_admin_signs_in_to_the_admin_view(client):
    response = await sign_in(client, ADMIN_KEY)

    assert response.headers["location"] == "/console/admin"
    page = await client.get("/console/admin")
    assert page.status_code == 200
    assert "Latest audit checkpoint" in page.text
    assert "no-store" in page.headers["cache-control"]
