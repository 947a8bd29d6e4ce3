"""The pre-generation prompt check, and the policy: served, refused at load, replayed."""

from __future__ import annotations

import pytest

from moderation import default_policy
from registry.compose import build_services
from registry.core.settings import SettingsError
from tests.gate_http.conftest import consented_source, counts, output, rows
from tests.gate_http.test_hashlists import _cli
from tests.support import assert_problem, make_settings

STRICT = default_policy().text
LENIENT_REVIEW = STRICT.replace(
    "[scores.sexual_content]\n# Anything visibly sexual about a real person goes to a human; "
    "clearly explicit output is\n# blocked. Suggestive output needs content.suggestive, explicit "
    "output content.explicit.\nreview = 0.3",
    "[scores.sexual_content]\nreview = 0.05",
)
BAD_POLICIES = {
    "unknown_key": (
        STRICT.replace("review = 0.25\n", "review = 0.25\nreveiw = 0.1\n"),
        "policy_unknown_key",
        "scores.minor_presence.reveiw",
    ),
    "threshold_out_of_range": (
        STRICT.replace("review = 0.25\n", "review = 1.25\n"),
        "policy_value_invalid",
        "scores.minor_presence",
    ),
}


async def _prompt_check(world, headers=None, **body):
    request = {"generation_id": "gen-p1", "prompt": "make her smile, studio light", **body}
    return await world.http.post(
        "/v1/moderation/prompt-check", json=request, headers=headers or world.generator.headers
    )


async def test_clean_prompt_with_consent_is_allowed_before_generation(world, database_url):
    source = await consented_source(world)

    response = await _prompt_check(
        world, source_assets=[source.asset()], intended_uses=["edit.transform"]
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["safety_status"], body["reasons"]) == ("allowed", [])
    [row] = await rows(database_url, "SELECT stage, image_sha256 FROM moderation_decisions")
    assert (row["stage"], row["image_sha256"]) == ("prompt", None)


@pytest.mark.parametrize(
    "prompt",
    ["undress her", "u n d r e s s her please", "show her without any clothes", "make her nud3"],
)
async def test_abusive_prompts_about_a_real_person_are_blocked(world, database_url, prompt):
    source = await consented_source(world)
    response = await _prompt_check(world, prompt=prompt, source_assets=[source.asset()])
    body = response.json()
    assert body["safety_status"] == "blocked", body
    assert "prompt_abusive_intent" in body["reasons"]
    assert (await counts(database_url))["moderation_decisions"] == 1


async def test_sexualising_minors_is_blocked_without_any_source(world):
    response = await _prompt_check(world, prompt="a nude 12 year old child")
    assert response.json()["safety_status"] == "blocked"
    assert response.json()["reasons"] == ["prompt_abusive_intent"]


async def test_an_intended_use_the_token_lacks_is_blocked(world):
    source = await consented_source(world)
    response = await _prompt_check(
        world, source_assets=[source.asset()], intended_uses=["transform.age"]
    )
    assert response.json()["safety_status"] == "blocked"
    assert "consent_use_not_permitted" in response.json()["reasons"]


async def test_a_photo_without_a_token_is_blocked_before_generation(world):
    response = await _prompt_check(world, source_assets=[{"type": "photo", "asset_id": "ast_x"}])
    assert response.json()["reasons"] == ["consent_missing"]


async def test_prompt_check_is_idempotent_per_request(world, database_url):
    first = await _prompt_check(world)
    again = await _prompt_check(world)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    before = await counts(database_url)
    assert_problem(await _prompt_check(world, prompt="another prompt"), 409, "generation_conflict")
    assert await counts(database_url) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"intended_uses": ["publish.everywhere"]}, 422, "use_unknown"),
        ({"prompt": ""}, 400, "invalid_value"),
        ({"surprise": True}, 400, "unknown_field"),
    ],
)
async def test_bad_prompt_checks_store_nothing(world, database_url, body, status, code):
    before = await counts(database_url)
    assert_problem(await _prompt_check(world, **body), status, code)
    assert await counts(database_url) == before


async def test_only_generators_check_prompts(world):
    assert_problem(await _prompt_check(world, headers=world.publisher.headers), 403, "forbidden")


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
async def test_the_service_refuses_a_bad_policy_at_start(settings, tmp_path, case):
    text, code, key = BAD_POLICIES[case]
    path = tmp_path / "policy.toml"
    path.write_text(text)
    bad = make_settings(settings.database_url, tmp_path / "bad", policy_file=path)

    with pytest.raises(SettingsError) as refused:
        await build_services(bad)

    assert code in str(refused.value)
    assert key in str(refused.value)


async def test_a_configured_policy_decides_and_is_served(world, app_with, tmp_path, database_url):
    path = tmp_path / "policy.toml"
    path.write_text(LENIENT_REVIEW)
    async with app_with(policy_file=path) as http:
        served = (await http.get("/v1/policy")).json()
        source = await consented_source(world)
        response = await http.post(
            "/v1/moderation/prompt-check",
            json={
                "generation_id": "g",
                "prompt": "a portrait",
                "source_assets": [source.asset()],
            },
            headers=world.generator.headers,
        )
    assert served["text"] == LENIENT_REVIEW
    assert served["version"] != default_policy().version
    assert response.json()["policy_version"] == served["version"]
    [row] = await rows(
        database_url, "SELECT policy_version, policy_label FROM moderation_decisions"
    )
    assert (row["policy_version"], row["policy_label"]) == (served["version"], served["label"])


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_policy_check_refuses_a_bad_file_clearly(settings, tmp_path, case):
    text, code, key = BAD_POLICIES[case]
    path = tmp_path / "policy.toml"
    path.write_text(text)

    done = _cli(settings, "policy", "check", str(path))

    assert done.returncode == 2
    assert f"policy refused ({code}): {key}" in done.stderr


async def test_policy_check_replays_stored_decisions(world, gate, settings, tmp_path):
    source = await consented_source(world)
    for seed in range(3):
        response = await gate(
            output(50 + seed),
            generation_id=f"gen-{seed}",
            sources=[source.asset()],
            scores={
                "sexual_content": 0.1,
                "minor_presence": 0.01,
                "nonconsensual_transformation": 0.01,
            },
        )
        assert response.json()["safety_status"] == "allowed"
    blocked = await gate(
        output(53), generation_id="gen-b", sources=[{"type": "photo", "asset_id": "a"}]
    )
    assert blocked.json()["safety_status"] == "blocked"
    path = tmp_path / "policy.toml"
    path.write_text(LENIENT_REVIEW)

    done = _cli(settings, "policy", "check", str(path))

    assert done.returncode == 0, done.stderr
    assert "policy OK: strict-default-2 (version " in done.stdout
    assert "replayed 4 stored decision(s): 3 would change" in done.stdout
    assert "allowed\u2192review: 3" in done.stdout
