"""The red-team corpus over HTTP (POST /v1/policy/check) and on the command line
(registry policy redteam): a candidate policy is tested, never loaded."""

from __future__ import annotations

import json

import pytest

from moderation import default_policy
from tests.gate_http.conftest import counts
from tests.gate_http.test_hashlists import _cli
from tests.moderation.test_redteam import GOOD_CASE, LOOSER, STRICT
from tests.support import assert_problem

BAD_CANDIDATES = {
    "unknown key": (
        STRICT.replace("review = 0.25\n", "review = 0.25\nreveiw = 0.1\n"),
        "policy_unknown_key",
        "scores.minor_presence.reveiw",
    ),
    "minors floor lowered": (
        STRICT.replace('minor_real_person = "block"', 'minor_real_person = "allow"'),
        "policy_value_invalid",
        "actions.minor_real_person",
    ),
    "not TOML": ("version = ", "policy_syntax_invalid", "not valid TOML"),
}


async def _check(world, text, headers=None):
    return await world.http.post(
        "/v1/policy/check", json={"policy": text}, headers=headers or world.admin
    )


async def test_a_candidate_policy_is_run_against_the_shipped_corpus(world, database_url):
    before = await counts(database_url)

    same = await _check(world, STRICT)
    looser = await _check(world, LOOSER)

    assert same.status_code == 200, same.text
    assert same.headers["cache-control"] == "no-store"
    body = same.json()
    assert (body["ok"], body["more_permissive"], body["differences"]) == (True, 0, [])
    assert body["cases"] >= 200
    assert body["policy_version"] == default_policy().version
    found = looser.json()
    assert found["ok"] is False
    holes = {d["id"]: d for d in found["differences"] if d["change"] == "more_permissive"}
    assert holes["score-sexual_content-0.7"]["actual"] == "review"
    assert holes["score-sexual_content-0.7"]["file"] == "scores.toml"
    # Tested, not loaded: the active policy and the database are as they were.
    active = (await world.http.get("/v1/policy")).json()
    assert active["version"] == default_policy().version
    assert await counts(database_url) == before


@pytest.mark.parametrize("name", sorted(BAD_CANDIDATES))
async def test_an_invalid_candidate_is_refused_and_nothing_changes(world, database_url, name):
    text, code, where = BAD_CANDIDATES[name]
    before = await counts(database_url)

    body = assert_problem(await _check(world, text), 422, code)

    assert where in body["detail"]
    assert (await world.http.get("/v1/policy")).json()["version"] == default_policy().version
    assert await counts(database_url) == before


async def test_only_admins_check_candidate_policies(world, database_url):
    before = await counts(database_url)
    for party in (world.publisher, world.generator, world.uploader):
        assert_problem(await _check(world, STRICT, headers=party.headers), 403, "forbidden")
    assert await counts(database_url) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [({"policy": ""}, "invalid_value"), ({"policy": STRICT, "load": True}, "unknown_field")],
)
async def test_a_malformed_check_request_is_refused(world, body, code):
    response = await world.http.post("/v1/policy/check", json=body, headers=world.admin)
    assert_problem(response, 400, code)


def test_redteam_passes_the_configured_policy_and_fails_a_looser_one(settings, tmp_path):
    path = tmp_path / "looser.toml"
    path.write_text(LOOSER)

    passed = _cli(settings, "policy", "redteam")
    failed = _cli(settings, "policy", "redteam", "--policy", str(path))
    as_json = _cli(settings, "policy", "redteam", "--policy", str(path), "--json")

    assert passed.returncode == 0, passed.stderr
    assert "0 more permissive" in passed.stdout
    assert failed.returncode == 1, failed.stderr
    header, *rows = failed.stdout.splitlines()
    assert header.split() == ["case", "expected", "actual", "change", "where"]
    assert any(
        row.split()[:4] == ["score-sexual_content-0.7", "blocked", "review", "more"] for row in rows
    )
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1
    assert report["ok"] is False
    assert report["more_permissive"] == sum(
        d["change"] == "more_permissive" for d in report["differences"]
    )


def test_redteam_runs_a_corpus_directory_and_refuses_a_malformed_one(settings, tmp_path):
    (tmp_path / "cases.toml").write_text(GOOD_CASE)
    good = _cli(settings, "policy", "redteam", str(tmp_path))
    (tmp_path / "cases.toml").write_text(GOOD_CASE.replace("expect =", "expcet ="))
    bad = _cli(settings, "policy", "redteam", str(tmp_path))
    policy = tmp_path / "bad-policy.toml"
    policy.write_text(STRICT.replace("review = 0.25\n", "review = 1.25\n"))
    bad_policy = _cli(settings, "policy", "redteam", "--policy", str(policy))

    assert good.returncode == 0, good.stderr
    assert "1 case(s) under policy strict-default-2" in good.stdout
    assert bad.returncode == 2
    assert (
        "corpus refused (redteam_case_invalid): cases.toml:2: case 'incident-1': "
        "Object contains unknown field `expcet`" in bad.stderr
    )
    assert bad_policy.returncode == 2
    assert "policy refused (policy_value_invalid): scores.minor_presence" in bad_policy.stderr
