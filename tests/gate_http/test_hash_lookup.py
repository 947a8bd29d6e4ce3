"""POST /v1/hashes/lookup: PDQ and pHash hashes looked up in the protected lists over HTTP,
one at a time or in batches, within the policy's bands, per tenant, audited as counts."""

from __future__ import annotations

import json

import pytest

from tests.gate_http.conftest import counts, rows
from tests.support import assert_problem

PDQ = "f" * 16 + "0" * 48
OTHER_PDQ = "0123456789abcdef" * 4
PHASH = "c3a1b2d4e5f60718"
TE_FILE = (
    "signal_type,signal_str,collab,category,tags\n"
    f"pdq,{PDQ},hotline,POSITIVE_CLASS,case-1041\n"
    f"pdq,{OTHER_PDQ},,INVESTIGATION_SEED,case-1042\n"
)


def flipped(value: str, bits: int) -> str:
    """``value`` with its lowest ``bits`` bits flipped: that many bits away."""
    width = len(value)
    return f"{int(value, 16) ^ ((1 << bits) - 1):0{width}x}"


async def _list(http, admin, name="exchange", *, signal="pdq", action="block", **fields):
    made = await http.post(
        "/v1/admin/hash-lists",
        json={"name": name, "signal": signal, "action": action, **fields},
        headers=admin,
    )
    assert made.status_code == 201, made.text


async def _import_te(http, admin, name="exchange"):
    done = await http.post(
        f"/v1/admin/hash-lists/{name}/entries",
        files={"file": ("dataset.csv", TE_FILE.encode(), "text/csv")},
        headers=admin,
    )
    assert done.status_code == 200, done.text


async def _lookup(http, headers, body):
    return await http.post("/v1/hashes/lookup", json=body, headers=headers)


async def _events(database_url):
    found = await rows(
        database_url,
        "SELECT actor, subject_type, subject_id, payload::text AS p FROM audit_events"
        " WHERE action = 'hashes.looked_up' ORDER BY seq",
    )
    return [(r["actor"], r["subject_type"], r["subject_id"], json.loads(r["p"])) for r in found]


async def test_an_imported_pdq_entry_is_found_by_its_hash(world, database_url):
    await _list(world.http, world.admin)
    await _import_te(world.http, world.admin)
    publisher = world.publisher

    exact = await _lookup(world.http, publisher.headers, {"signal": "pdq", "hash": PDQ})
    near = await _lookup(
        world.http, world.generator.headers, {"signal": "pdq", "hash": flipped(PDQ, 3).upper()}
    )
    narrow = await _lookup(
        world.http,
        publisher.headers,
        {"signal": "pdq", "hash": flipped(PDQ, 3), "max_distance": 2},
    )

    assert exact.status_code == 200, exact.text
    assert exact.json() == {
        "matches": [
            {
                "list": "exchange",
                "signal": "pdq",
                "distance": 0,
                "label": "case-1041",
                "source": "hotline",
                "reviewed": True,
                "crop": None,
                "action": "block",
            }
        ]
    }
    assert near.status_code == 200, near.text
    [match] = near.json()["matches"]
    assert (match["distance"], match["label"], match["action"]) == (3, "case-1041", "block")
    assert narrow.json() == {"matches": []}
    events = await _events(database_url)
    assert [(e[0], e[1], e[3]) for e in events] == [
        (publisher.client_id, "api_client", {"queries": 1, "matched": 1}),
        (world.generator.client_id, "api_client", {"queries": 1, "matched": 1}),
        (publisher.client_id, "api_client", {"queries": 1, "matched": 0}),
    ]
    # Counts only: no hash that was looked up is kept.
    [text] = await rows(
        database_url, "SELECT string_agg(payload::text, ' ') AS t FROM audit_events"
    )
    assert PDQ not in text["t"]
    assert flipped(PDQ, 3) not in text["t"]


async def test_a_match_farther_than_the_block_band_is_review(world):
    await _list(world.http, world.admin)
    await _import_te(world.http, world.admin)

    far = await _lookup(
        world.http, world.publisher.headers, {"signal": "pdq", "hash": flipped(PDQ, 28)}
    )

    [match] = far.json()["matches"]
    assert (match["distance"], match["action"]) == (28, "review")


async def test_a_batch_answers_every_query_in_order(world, database_url):
    await _list(world.http, world.admin)
    await _import_te(world.http, world.admin)
    await _list(world.http, world.admin, "pictures", signal="phash", action="review")
    await world.http.post(
        "/v1/admin/hash-lists/pictures/entries",
        json={"entries": [{"hash": PHASH, "label": "case-7"}]},
        headers=world.admin,
    )
    queries = [
        {"signal": "phash", "hash": flipped(PHASH, 2)},
        {"signal": "pdq", "hash": "5" * 64},
        {"signal": "pdq", "hash": OTHER_PDQ, "max_distance": 0},
        {"signal": "pdq", "hash": PDQ},
    ]

    response = await _lookup(world.http, world.publisher.headers, {"queries": queries})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    found = [
        [(m["list"], m["label"], m["distance"], m["action"]) for m in r["matches"]] for r in results
    ]
    assert found == [
        [("pictures", "case-7", 2, "review")],
        [],
        [("exchange", "case-1042", 0, "block")],
        [("exchange", "case-1041", 0, "block")],
    ]
    assert results[2]["matches"][0]["reviewed"] is False
    [event] = await _events(database_url)
    assert event[3] == {"queries": 4, "matched": 3}


async def test_an_image_entry_is_found_by_its_pdq(world):
    from importlib.resources import files

    photo = (files("skimage") / "data" / "astronaut.png").read_bytes()
    await _list(world.http, world.admin, "photos")
    added = await world.http.post(
        "/v1/admin/hash-lists/photos/images",
        files={"image": ("a.png", photo, "image/png"), "label": (None, "person-7")},
        headers=world.admin,
    )
    assert added.status_code == 201, added.text

    found = await _lookup(
        world.http, world.publisher.headers, {"signal": "pdq", "hash": added.json()["hash"]}
    )

    assert [(m["label"], m["distance"]) for m in found.json()["matches"]] == [("person-7", 0)]


async def test_a_tenant_list_matches_its_own_tenant_only(world, make_client):
    # The publisher is of tenant pubco, the generator of genco.
    _, pubco_admin = await make_client("admin", tenant="pubco")
    await _list(world.http, pubco_admin, "pubco-only", scope="tenant")
    await _import_te(world.http, pubco_admin, "pubco-only")
    query = {"signal": "pdq", "hash": PDQ}

    own = await _lookup(world.http, world.publisher.headers, query)
    other = await _lookup(world.http, world.generator.headers, query)

    assert [m["list"] for m in own.json()["matches"]] == ["pubco-only"]
    assert other.json() == {"matches": []}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"signal": "pdq", "hash": "abc"}, 422, "hash_value_invalid"),
        ({"signal": "pdq", "hash": "g" * 64}, 422, "hash_value_invalid"),
        ({"signal": "pdq", "hash": PHASH}, 422, "hash_value_invalid"),
        ({"signal": "phash", "hash": PDQ}, 422, "hash_value_invalid"),
        ({"signal": "pdq", "hash": PDQ, "max_distance": 32}, 422, "max_distance_invalid"),
        ({"signal": "phash", "hash": PHASH, "max_distance": 11}, 422, "max_distance_invalid"),
        (
            {
                "queries": [
                    {"signal": "pdq", "hash": PDQ},
                    {"signal": "pdq", "hash": PDQ, "max_distance": 256},
                ]
            },
            422,
            "max_distance_invalid",
        ),
        ({"signal": "pdq", "hash": PDQ, "max_distance": -1}, 400, "invalid_value"),
        ({"queries": [{"signal": "pdq", "hash": PDQ}] * 1001}, 400, "invalid_value"),
        ({"queries": []}, 400, "invalid_value"),
        ({"signal": "md5", "hash": PDQ}, 400, "invalid_value"),
        ({"signal": "pdq"}, 400, "invalid_value"),
        (
            {"signal": "pdq", "hash": PDQ, "queries": [{"signal": "pdq", "hash": PDQ}]},
            400,
            "invalid_value",
        ),
        ({"signal": "pdq", "hash": PDQ, "radius": 3}, 400, "unknown_field"),
    ],
    ids=[
        "short",
        "not-hex",
        "phash-as-pdq",
        "pdq-as-phash",
        "pdq-beyond-band",
        "phash-beyond-band",
        "batch-beyond-band",
        "negative",
        "batch-over-1000",
        "empty-batch",
        "unknown-signal",
        "no-hash",
        "both-shapes",
        "unknown-field",
    ],
)
async def test_bad_lookups_are_refused_and_record_nothing(world, database_url, body, status, code):
    await _list(world.http, world.admin)
    await _import_te(world.http, world.admin)
    before = await counts(database_url)

    response = await _lookup(world.http, world.publisher.headers, body)

    assert_problem(response, status, code)
    assert await counts(database_url) == before


async def test_only_publishers_and_generators_look_up(world):
    uploader = world.uploader.headers
    query = {"signal": "pdq", "hash": PDQ}
    assert_problem(await _lookup(world.http, uploader, query), 403, "forbidden")
    assert_problem(await _lookup(world.http, world.admin, query), 403, "forbidden")
    assert_problem(await _lookup(world.http, {}, query), 401, "unauthenticated")


async def test_a_batch_counts_one_request_per_hundred_queries(world, app_with):
    # 60 a minute: a bucket of 10 tokens, refilled at one a second.
    async with app_with(rate_limit_per_minute=60) as http:
        batch = {"queries": [{"signal": "pdq", "hash": PDQ}] * 1000}
        first = await _lookup(http, world.publisher.headers, batch)
        after = await _lookup(http, world.publisher.headers, {"signal": "pdq", "hash": PDQ})
        # The generator's bucket is its own.
        other = await _lookup(http, world.generator.headers, {"signal": "pdq", "hash": PDQ})

    assert first.status_code == 200, first.text
    assert len(first.json()["results"]) == 1000
    assert_problem(after, 429, "rate_limited")
    assert other.status_code == 200, other.text
