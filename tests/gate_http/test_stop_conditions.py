"""Kill-switches against the real service: a burst of blocked decisions trips the policy's
stop conditions in the service's own background round, the client and the model are
suspended (never `allowed`, no signing), the operator's webhook gets a signed notice, an
admin lifts it; the manual switches pause a feature for everyone; bad input changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import jwt
import pytest

from moderation import default_policy, load_policy
from moderation.errors import PolicyError
from tests.gate_http.conftest import output, rows
from tests.review_http.test_takedown import Receiver
from tests.support import assert_problem

BLOCKING = {"sexual_content": 0.95, "minor_presence": 0.01}
CLEAN = {"sexual_content": 0.01, "minor_presence": 0.01}
BURST = 4


def _quick_policy(tmp_path: Any) -> Any:
    """The default policy with its blocked-rate conditions counting from BURST decisions."""
    text = re.sub(r"min_decisions = \d+", f"min_decisions = {BURST}", default_policy().text)
    path = tmp_path / "quick-stops.toml"
    path.write_text(text)
    assert len(load_policy(path).stop_conditions) == 3
    return path


async def _until(what: Any, *, within: float = 20.0) -> Any:
    """Poll ``what`` (a coroutine function) until it returns something true."""
    deadline = time.monotonic() + within
    while True:
        found = await what()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def _suspensions(http: Any, admin: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = await http.get("/v1/admin/suspensions", params=query, headers=admin)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["suspensions"]
    return found


def _body(world: Any, generation_id: str, *, model: str, scores: dict[str, float]) -> Any:
    return {
        "generation_id": generation_id,
        "scores": scores,
        "metadata": {"model": model, "generator_client_id": world.generator.client_id},
    }


async def _sign(http: Any, world: Any, *, model: str, generation_id: str) -> Any:
    return await http.post(
        "/v1/provenance/sign",
        files={
            "file": ("output.jpg", output(7), "image/jpeg"),
            "metadata": (
                None,
                f'{{"generation_id": "{generation_id}", "model": "{model}", "consent_tokens": []}}',
                "application/json",
            ),
        },
        headers=world.generator.headers,
    )


async def _notices(http: Any, receiver: Any, audience: str, *, count: int) -> list[Any]:
    """The first ``count`` notices the receiver got, each verified against the JWKS."""

    async def arrived() -> bool:
        return len(receiver.received) >= count

    assert await _until(arrived)
    jwks = (await http.get("/.well-known/jwks.json")).json()
    notices = []
    for headers, body in receiver.received[:count]:
        assert headers["Content-Type"] == "application/jwt"
        header = jwt.get_unverified_header(body.decode())
        assert header["typ"] == "misuse+jwt"
        [key] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
        notices.append(
            jwt.decode(
                body.decode(),
                jwt.PyJWK(key).key,
                algorithms=[header["alg"]],
                audience=audience,
            )
        )
    return notices


async def _burst(world: Any, gate: Any, http: Any, make_client: Any) -> tuple[Any, Any]:
    """Blocked decisions from the world's publisher naming burst-model, then from two other
    publishers: the client's suspension, then the model's, as the service's rounds trip them."""
    for seed in range(BURST):
        blocked = await gate(
            output(300 + seed),
            http=http,
            **_body(world, f"gen-abuse-{seed}", model="burst-model", scores=BLOCKING),
        )
        assert blocked.json()["safety_status"] == "blocked", blocked.text

    # The service's own round (every 0.2 s here) trips the client's condition.
    async def suspended(count: int) -> list[dict[str, Any]]:
        found = await _suspensions(http, world.admin, active="true")
        return found if len(found) == count else []

    [alone] = await _until(lambda: suspended(1))
    assert alone["subject_kind"] == "client"
    # One client naming a model cannot get it suspended for everyone who runs it:
    # its figures count from three clients (min_clients).
    await asyncio.sleep(0.6)
    assert [s["subject_kind"] for s in await _suspensions(http, world.admin)] == ["client"]
    for n in (1, 2):
        _, other = await make_client("publisher", tenant=f"pub-{n}", name=f"pub {n}")
        blocked = await gate(
            output(350 + n),
            http=http,
            headers=other,
            **_body(world, f"gen-other-{n}", model="burst-model", scores=BLOCKING),
        )
        assert blocked.json()["safety_status"] == "blocked", blocked.text

    found = {s["subject_kind"]: s for s in await _until(lambda: suspended(2))}
    assert set(found) == {"client", "model"}
    return found["client"], found["model"]


async def test_a_misuse_burst_trips_the_switch_and_an_admin_lifts_it(
    world, gate, app_with, make_client, tmp_path, database_url
):
    operator_id, _ = await make_client("admin", tenant="operator", name="on-call")
    with Receiver(failures=0) as receiver:
        async with app_with(
            policy_file=_quick_policy(tmp_path),
            risk_interval=0.2,
            webhook_hosts="127.0.0.1",
            takedown_poll_interval=0.05,
        ) as http:
            hook = await http.post(
                "/v1/admin/webhooks",
                json={"client_id": operator_id, "url": receiver.url},
                headers=world.admin,
            )
            assert hook.status_code == 201, hook.text
            client_stop, model_stop = await _burst(world, gate, http, make_client)
            assert client_stop["subject"] == world.publisher.client_id
            assert client_stop["condition_id"] == "client_blocked_rate"
            assert (client_stop["decisions"], client_stop["blocked"]) == (BURST, BURST)
            assert model_stop["subject"] == "burst-model"
            assert (model_stop["decisions"], model_stop["blocked"]) == (BURST + 2, BURST + 2)
            assert model_stop["lifted_at"] is None

            # Suspended: what would be allowed goes to a person, whichever model it names.
            held = await gate(
                output(400),
                http=http,
                **_body(world, "gen-after-trip", model="other-model", scores=CLEAN),
            )
            assert held.json()["safety_status"] == "review", held.text
            assert held.json()["reasons"] == ["suspended_misuse"]
            # The generator is not suspended, but the model is: its prompt checks are held
            # and it signs nothing with that model, while another model signs.
            prompt = await http.post(
                "/v1/moderation/prompt-check",
                json={"generation_id": "gen-p-1", "prompt": "a lighthouse", "model": "burst-model"},
                headers=world.generator.headers,
            )
            assert prompt.json()["safety_status"] == "review", prompt.text
            assert prompt.json()["reasons"] == ["suspended_misuse"]
            refused = await _sign(http, world, model="burst-model", generation_id="gen-s-1")
            problem = assert_problem(refused, 403, "suspended_misuse")
            assert problem["suspension_id"] == model_stop["suspension_id"]
            signed = await _sign(http, world, model="other-model", generation_id="gen-s-2")
            assert signed.status_code == 200, signed.text
            [signed_rows] = await rows(
                database_url,
                "SELECT count(*) AS n FROM signed_outputs WHERE generation_id LIKE 'gen-s-%'",
            )
            assert signed_rows["n"] == 1

            # The operator heard of both, in notices signed with the registry's keys.
            notices = await _notices(http, receiver, operator_id, count=2)
            assert {n["suspension_id"] for n in notices} == {
                client_stop["suspension_id"],
                model_stop["suspension_id"],
            }
            assert {n["event"] for n in notices} == {"misuse.suspended"}

            # An admin lifts the client's suspension: it is allowed again and stays so,
            # although the burst is still inside the window (the count starts afresh).
            lift_path = f"/v1/admin/suspensions/{client_stop['suspension_id']}/lift"
            lifted = await http.post(
                lift_path, json={"reason": "the customer fixed its pipeline"}, headers=world.admin
            )
            assert lifted.status_code == 200, lifted.text
            assert lifted.json()["lifted_at"] is not None
            again = await http.post(lift_path, json={"reason": "twice"}, headers=world.admin)
            assert_problem(again, 409, "suspension_lifted")
            await asyncio.sleep(0.8)  # several rounds
            assert [
                s["subject_kind"] for s in await _suspensions(http, world.admin, active="true")
            ] == ["model"]
            freed = await gate(
                output(401),
                http=http,
                **_body(world, "gen-after-lift", model="other-model", scores=CLEAN),
            )
            assert freed.json()["safety_status"] == "allowed", freed.text
            stats = await http.get("/v1/moderation/stats", headers=world.admin)
            assert stats.json()["stops"] == {
                "suspended_clients": 0,
                "suspended_models": 1,
                "paused_features": [],
            }

    events = await rows(
        database_url,
        "SELECT action, subject_id, payload FROM audit_events"
        " WHERE action LIKE 'misuse.%' ORDER BY seq",
    )
    assert sorted(e["action"] for e in events) == [
        "misuse.lifted",
        "misuse.notice_created",
        "misuse.notice_created",
        "misuse.suspended",
        "misuse.suspended",
    ]
    [lift_event] = [e for e in events if e["action"] == "misuse.lifted"]
    assert "fixed its pipeline" not in str(lift_event["payload"])
    assert len(json.loads(lift_event["payload"])["reason_sha256"]) == 64


async def test_lifting_wrongly_changes_nothing(world, database_url):
    unknown = await world.http.post(
        "/v1/admin/suspensions/sus_0000000000000000000000/lift",
        json={"reason": "x"},
        headers=world.admin,
    )
    assert_problem(unknown, 404, "suspension_not_found")
    for body, code in (({}, "missing_field"), ({"reason": ""}, "invalid_value")):
        bad = await world.http.post(
            "/v1/admin/suspensions/sus_0000000000000000000000/lift",
            json=body,
            headers=world.admin,
        )
        assert_problem(bad, 400, code)
    for query in ({"active": "maybe"}, {"limit": "0"}, {"limit": "501"}):
        listed = await world.http.get("/v1/admin/suspensions", params=query, headers=world.admin)
        assert_problem(listed, 400, "invalid_parameter")
    forbidden = await world.http.get("/v1/admin/suspensions", headers=world.publisher.headers)
    assert_problem(forbidden, 403, "forbidden")
    [row] = await rows(
        database_url,
        "SELECT count(*) AS n FROM audit_events WHERE action LIKE 'misuse.%'",
    )
    assert row["n"] == 0


async def test_the_manual_switches_pause_a_feature_for_everyone(world, gate, database_url):
    admin = world.admin
    paused = await world.http.post(
        "/v1/admin/switches/publish/pause", json={"reason": "incident 42"}, headers=admin
    )
    assert paused.status_code == 200, paused.text
    assert [s["feature"] for s in paused.json()["paused"]] == ["publish"]
    held = await gate(output(500), generation_id="gen-paused", scores=CLEAN)
    assert held.json()["safety_status"] == "review", held.text
    assert held.json()["reasons"] == ["feature_paused"]
    # Prompt checks and signing still run until they are paused too.
    prompt = {"generation_id": "gen-p", "prompt": "a lighthouse at dusk"}
    running = await world.http.post(
        "/v1/moderation/prompt-check", json=prompt, headers=world.generator.headers
    )
    assert running.json()["safety_status"] == "allowed", running.text
    for feature in ("prompt_check", "sign"):
        answer = await world.http.post(
            f"/v1/admin/switches/{feature}/pause", json={"reason": "incident 42"}, headers=admin
        )
        assert answer.status_code == 200, answer.text
    stopped = await world.http.post(
        "/v1/moderation/prompt-check",
        json={**prompt, "generation_id": "gen-p-2"},
        headers=world.generator.headers,
    )
    assert stopped.json()["reasons"] == ["feature_paused"]
    refused = await _sign(world.http, world, model="example-diffusion-2", generation_id="g-1")
    assert_problem(refused, 503, "feature_paused")
    assert refused.headers["Retry-After"]
    listed = await world.http.get("/v1/admin/switches", headers=admin)
    assert [s["feature"] for s in listed.json()["paused"]] == ["prompt_check", "publish", "sign"]

    for feature in ("publish", "prompt_check", "sign"):
        resumed = await world.http.post(f"/v1/admin/switches/{feature}/resume", headers=admin)
        assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] == []
    allowed = await gate(output(501), generation_id="gen-resumed", scores=CLEAN)
    assert allowed.json()["safety_status"] == "allowed", allowed.text
    signed = await _sign(world.http, world, model="example-diffusion-2", generation_id="g-2")
    assert signed.status_code == 200, signed.text

    events = await rows(
        database_url,
        "SELECT action, subject_id, payload FROM audit_events"
        " WHERE action LIKE 'switch.%' ORDER BY seq",
    )
    assert [(e["action"], e["subject_id"]) for e in events] == [
        ("switch.paused", "publish"),
        ("switch.paused", "prompt_check"),
        ("switch.paused", "sign"),
        ("switch.resumed", "publish"),
        ("switch.resumed", "prompt_check"),
        ("switch.resumed", "sign"),
    ]
    assert all("incident" not in str(e["payload"]) for e in events)


async def test_bad_switch_requests_change_nothing(world, database_url):
    unknown = await world.http.post(
        "/v1/admin/switches/everything/pause", json={"reason": "x"}, headers=world.admin
    )
    assert_problem(unknown, 404, "feature_unknown")
    no_reason = await world.http.post(
        "/v1/admin/switches/publish/pause", json={}, headers=world.admin
    )
    assert_problem(no_reason, 400, "missing_field")
    forbidden = await world.http.post(
        "/v1/admin/switches/publish/pause",
        json={"reason": "x"},
        headers=world.publisher.headers,
    )
    assert_problem(forbidden, 403, "forbidden")
    listed = await world.http.get("/v1/admin/switches", headers=world.admin)
    assert listed.json() == {"paused": []}
    [row] = await rows(database_url, "SELECT count(*) AS n FROM feature_switches")
    assert row["n"] == 0


STOPS = """
[[stop_conditions.rules]]
id = "probe"
subject = "client"
signal = "blocked_rate"
threshold = 0.5
"""


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('subject = "client"', 'subject = "tenant"'), "stop_conditions.rules[0].subject"),
        (('signal = "blocked_rate"', 'signal = "reports"'), "stop_conditions.rules[0].signal"),
        (("threshold = 0.5", "threshold = 1.5"), "stop_conditions.rules[0].threshold"),
        (("threshold = 0.5", "threshold = 0.5\nwindow = 5"), "stop_conditions.rules[0].window"),
        (('id = "probe"', 'id = "Probe!"'), "stop_conditions.rules[0].id"),
        (
            ("threshold = 0.5", "threshold = 0.5\nmin_clients = 2"),
            "stop_conditions.rules[0].min_clients",
        ),
        (
            (
                'signal = "blocked_rate"\nthreshold = 0.5',
                'signal = "hash_matches"\nthreshold = 2.5',
            ),
            "stop_conditions.rules[0].threshold",
        ),
        (
            (
                "threshold = 0.5",
                (
                    'threshold = 0.5\n[[stop_conditions.rules]]\nid = "probe"\n'
                    'subject = "model"\nsignal = "blocked_rate"\nthreshold = 0.5'
                ),
            ),
            "stop_conditions.rules[1].id",
        ),
    ],
)
def test_a_policy_with_an_unknown_stop_condition_is_refused_naming_the_key(change, key):
    base = re.sub(r"\[\[stop_conditions\.rules\]\][^\[]*", "", default_policy().text)
    assert load_policy(base + STOPS).stop_conditions[0].id == "probe"
    with pytest.raises(PolicyError) as refused:
        load_policy(base + STOPS.replace(*change))
    assert refused.value.key == key


def test_hash_matches_conditions_take_no_min_decisions():
    base = re.sub(r"\[\[stop_conditions\.rules\]\][^\[]*", "", default_policy().text)
    text = base + STOPS.replace('"blocked_rate"', '"hash_matches"').replace(
        "threshold = 0.5", "threshold = 3\nmin_decisions = 5"
    )
    with pytest.raises(PolicyError) as refused:
        load_policy(text)
    assert refused.value.key == "stop_conditions.rules[0].min_decisions"
