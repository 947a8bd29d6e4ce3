"""Hash lists: administration over HTTP and the CLI, and matching copies at the gate, in
every service process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gate_http.conftest import (
    REPO_ROOT,
    consented_source,
    counts,
    output,
    rows,
    variant,
)
from tests.moderation.support import image_hashes, make_image
from tests.support import assert_problem, opened_decisions


def phash_of(seed: int) -> str:
    """The pHash the gate computes for ``output(seed)``."""
    return image_hashes(make_image(seed))[0]


async def _create(http, admin, name="known-abuse", action="block", **fields):
    response = await http.post(
        "/v1/admin/hash-lists", json={"name": name, "action": action, **fields}, headers=admin
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _add(http, admin, name, entries):
    response = await http.post(
        f"/v1/admin/hash-lists/{name}/entries", json={"entries": entries}, headers=admin
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_lists_are_created_once_by_admins(world, database_url):
    http, admin = world.http, world.admin
    created = await _create(http, admin)
    assert (created["name"], created["action"], created["entries"]) == ("known-abuse", "block", 0)

    assert_problem(
        await http.post(
            "/v1/admin/hash-lists", json={"name": "known-abuse", "action": "review"}, headers=admin
        ),
        409,
        "hash_list_exists",
    )
    bad = await http.post(
        "/v1/admin/hash-lists", json={"name": "Bad Name", "action": "block"}, headers=admin
    )
    assert_problem(bad, 400, "invalid_value")
    assert_problem(
        await http.post(
            "/v1/admin/hash-lists",
            json={"name": "x", "action": "block"},
            headers=world.publisher.headers,
        ),
        403,
        "forbidden",
    )
    listed = (await http.get("/v1/admin/hash-lists", headers=admin)).json()
    assert [entry["name"] for entry in listed["lists"]] == ["known-abuse"]
    [event] = await rows(
        database_url, "SELECT payload FROM audit_events WHERE action = 'hash_list.created'"
    )
    assert "block" in event["payload"]


@pytest.mark.parametrize(
    ("change", "reasons"),
    [
        ("flipped", {"hash_match_block"}),
        ("recoloured", {"hash_match_block"}),
        ("cropped", {"hash_match_block", "hash_match_review"}),
    ],
)
async def test_copies_of_a_protected_entry_are_held_back(
    world, gate, database_url, settings, change, reasons
):
    await _create(world.http, world.admin)
    await _add(
        world.http,
        world.admin,
        "known-abuse",
        [{"hash": phash_of(40), "label": "case-17", "source": "hotline"}],
    )
    source = await consented_source(world)

    response = await gate(variant(output(40), change), sources=[source.asset()])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety_status"] in {"blocked", "review"}
    assert reasons & set(body["reasons"]), body
    if "hash_match_block" in body["reasons"]:
        assert body["safety_status"] == "blocked"
    [files] = await opened_decisions(database_url, settings.master_key)
    assert "case-17" in json.dumps(files.evidence)


async def test_an_unrelated_image_passes_a_protected_list(world, gate):
    await _create(world.http, world.admin)
    await _add(world.http, world.admin, "known-abuse", [{"hash": phash_of(41), "label": "c"}])
    source = await consented_source(world)
    response = await gate(output(42), sources=[source.asset()])
    assert response.json()["safety_status"] == "allowed"


async def test_the_consented_photo_itself_is_not_held_against_its_owner(world, gate):
    source = await consented_source(world)
    await _create(world.http, world.admin, name="protected-likeness", action="block")
    await _add(
        world.http,
        world.admin,
        "protected-likeness",
        [{"hash": phash_of(43), "label": "person-1", "source": source.asset_id}],
    )

    mine = await gate(output(43), sources=[source.asset()])
    someone = await gate(output(43), generation_id="gen-2")

    assert mine.json()["safety_status"] == "allowed", mine.json()
    assert someone.json()["safety_status"] == "blocked"
    assert someone.json()["reasons"] == ["hash_match_block"]


async def test_disabled_entries_stop_matching(world, gate, database_url):
    await _create(world.http, world.admin)
    await _add(world.http, world.admin, "known-abuse", [{"hash": phash_of(44), "label": "c"}])
    source = await consented_source(world)
    assert (await gate(output(44), sources=[source.asset()])).json()["safety_status"] == "blocked"

    disabled = await world.http.post(
        "/v1/admin/hash-lists/known-abuse/entries/disable",
        json={"hashes": [phash_of(44), "0000000000000000"]},
        headers=world.admin,
    )

    assert disabled.status_code == 200, disabled.text
    assert disabled.json() == {"list": "known-abuse", "disabled": 1}
    again = await gate(output(44), sources=[source.asset()], generation_id="gen-2")
    assert again.json()["safety_status"] == "allowed"
    [entry] = await rows(database_url, "SELECT enabled FROM hash_list_entries")
    assert entry["enabled"] is False


async def test_every_process_sees_a_change_on_its_next_decision(world, gate, app_with):
    source = await consented_source(world)
    await _create(world.http, world.admin)
    async with app_with() as other:
        first = await gate(output(45), sources=[source.asset()], http=other)
        assert first.json()["safety_status"] == "allowed"
        # Added through this process; the other one has its index loaded already.
        await _add(world.http, world.admin, "known-abuse", [{"hash": phash_of(45), "label": "c"}])
        second = await gate(output(45), sources=[source.asset()], http=other, generation_id="g2")
    assert second.json()["safety_status"] == "blocked"


async def test_entries_upload_as_csv_and_json_lines(world, database_url):
    await _create(world.http, world.admin)
    csv_body = "hash,label,source\n00000000000000ff,a,feed-1\n000000000000ff00,b\n"
    jsonl_body = (
        '{"hash": "0000000000ff0000", "label": "c"}\n'
        '{"hash": "00000000000000ff", "label": "a2", "source": "feed-2"}\n'
    )

    from_csv = await world.http.post(
        "/v1/admin/hash-lists/known-abuse/entries",
        files={"file": ("list.csv", csv_body.encode(), "text/csv")},
        headers=world.admin,
    )
    from_jsonl = await world.http.post(
        "/v1/admin/hash-lists/known-abuse/entries",
        files={"file": ("list.jsonl", jsonl_body.encode(), "application/octet-stream")},
        headers=world.admin,
    )

    assert from_csv.json() == {
        "list": "known-abuse",
        "received": 2,
        "added": 2,
        "updated": 0,
        "low_quality": 0,
    }
    assert from_jsonl.json() == {
        "list": "known-abuse",
        "received": 2,
        "added": 1,
        "updated": 1,
        "low_quality": 0,
    }
    stored = await rows(
        database_url,
        "SELECT encode(hash, 'hex') AS h, label, source FROM hash_list_entries ORDER BY hash",
    )
    assert [(r["h"], r["label"], r["source"]) for r in stored] == [
        ("00000000000000ff", "a2", "feed-2"),
        ("000000000000ff00", "b", None),
        ("0000000000ff0000", "c", None),
    ]


PDQ_A = "f" * 16 + "0" * 48
PDQ_B = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("signal", "files", "json_body", "query", "status", "code"),
    [
        (
            "phash",
            {"file": ("list.csv", b"00000000000000ff,a\nnot-a-hash,b\n", "text/csv")},
            None,
            "",
            422,
            "hash_list_line_invalid",
        ),
        (
            "phash",
            {"other": ("list.csv", b"00000000000000ff,a\n", "text/csv")},
            None,
            "",
            400,
            None,
        ),
        (
            "phash",
            None,
            {"entries": [{"hash": "xyz", "label": "a"}]},
            "",
            422,
            "hash_value_invalid",
        ),
        (
            "pdq",
            None,
            {"entries": [{"hash": "z" * 64, "label": "a"}]},
            "",
            422,
            "hash_value_invalid",
        ),
        (
            "pdq",
            None,
            {
                "entries": [
                    {"hash": PDQ_A, "label": "a"},
                    {"hash": "00000000000000ff", "label": "b"},
                ]
            },
            "",
            422,
            "hash_signal_mismatch",
        ),
        (
            "phash",
            {"file": ("list.csv", f"{PDQ_A},a\n".encode(), "text/csv")},
            None,
            "",
            422,
            "hash_signal_mismatch",
        ),
        (
            "pdq",
            {"file": ("list.csv", f"{PDQ_A},a\n00000000000000ff,b\n".encode(), "text/csv")},
            None,
            "",
            422,
            "hash_signals_mixed",
        ),
        (
            "pdq",
            {"file": ("list.csv", f"{PDQ_A},a\n".encode(), "text/csv")},
            None,
            "?format=xml",
            422,
            "hash_format_unknown",
        ),
        (
            "phash",
            None,
            {"entries": [{"hash": "00000000000000ff", "label": ""}]},
            "",
            400,
            "invalid_value",
        ),
        (
            "phash",
            None,
            {"entries": [{"hash": "00000000000000ff", "label": "two\nlines"}]},
            "",
            400,
            "invalid_value",
        ),
    ],
    ids=[
        "bad-line",
        "wrong-part",
        "wrong-length",
        "not-hex",
        "other-signal-json",
        "other-signal-file",
        "mixed-file",
        "unknown-format",
        "empty-label",
        "control-character",
    ],
)
async def test_bad_uploads_store_nothing(
    world, database_url, signal, files, json_body, query, status, code
):
    await _create(world.http, world.admin, signal=signal)
    before = await counts(database_url)
    response = await world.http.post(
        f"/v1/admin/hash-lists/known-abuse/entries{query}",
        files=files,
        json=json_body,
        headers=world.admin,
    )
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
    assert await counts(database_url) == before


async def test_entries_for_an_unknown_list_are_404(world):
    response = await world.http.post(
        "/v1/admin/hash-lists/nope/entries",
        json={"entries": [{"hash": "00000000000000ff", "label": "a"}]},
        headers=world.admin,
    )
    assert_problem(response, 404, "hash_list_not_found")


def _cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")},
        "REGISTRY_DATABASE_URL": settings.database_url,
        "REGISTRY_MASTER_KEY": settings.master_key,
        "REGISTRY_DATA_DIR": str(settings.data_dir),
        "REGISTRY_LOG_JSON": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "registry.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_imports_a_file_with_progress(world, settings, tmp_path, gate, database_url):
    await _create(world.http, world.admin)
    path = tmp_path / "protected.csv"
    lines = [f"{i:016x},entry-{i},feed" for i in range(1, 120_001)]
    lines.append(f"{phash_of(46)},case-46,hotline")
    path.write_text("hash,label,source\n" + "\n".join(lines) + "\n")

    done = _cli(settings, "hashes", "import", "known-abuse", str(path))

    assert done.returncode == 0, done.stderr
    assert "120,001 entries read, 120,001 added, 0 updated" in done.stderr
    assert "[" in done.stderr
    assert "100.0%" in done.stderr
    [count] = await rows(database_url, "SELECT count(*) AS n FROM hash_list_entries")
    assert count["n"] == 120_001
    [event] = await rows(
        database_url, "SELECT actor FROM audit_events WHERE action = 'hash_list.entries_added'"
    )
    assert event["actor"] == "cli"
    # The running service matches against the imported entries on its next decision.
    source = await consented_source(world)
    response = await gate(output(46), sources=[source.asset()])
    assert response.json()["reasons"] == ["hash_match_block"]


async def test_cli_refuses_a_bad_file_whole(world, settings, tmp_path, database_url):
    await _create(world.http, world.admin)
    path = tmp_path / "bad.jsonl"
    path.write_text('{"hash": "00000000000000ff", "label": "a"}\n{"hash": "zz", "label": "b"}\n')
    before = await counts(database_url)

    done = _cli(settings, "hashes", "import", "known-abuse", str(path))

    assert done.returncode == 2
    assert "hash_list_line_invalid: line 2" in done.stderr
    assert await counts(database_url) == before
    missing = _cli(settings, "hashes", "import", "no-such-list", str(path))
    assert missing.returncode == 2
    assert "no hash list named 'no-such-list'" in missing.stderr


def _photo_png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "transpose",
    ["FLIP_TOP_BOTTOM", "FLIP_LEFT_RIGHT", "TRANSPOSE", "TRANSVERSE", "ROTATE_90", "ROTATE_270"],
)
async def test_every_flip_and_rotation_of_a_protected_real_photo_is_blocked(world, gate, transpose):
    """A real photo (scikit-image's astronaut) on a block list by its pHash: every flip and
    rotation of it is blocked, the vertical flip and both transposes included (before, only
    the mirror and three rotations were hashed)."""
    from importlib.resources import files

    from PIL import Image

    from verifier import ImageLimits, decode, phash

    photo = Image.open(files("skimage") / "data" / "astronaut.png").convert("RGB")
    stored = phash(decode(_photo_png(photo), ImageLimits(max_bytes=10**7, max_pixels=10**7)).image)
    await _create(world.http, world.admin)
    await _add(world.http, world.admin, "known-abuse", [{"hash": stored, "label": "case-31"}])

    copy = photo.transpose(getattr(Image.Transpose, transpose))
    response = await gate(_photo_png(copy), generation_id=f"gen-{transpose.lower()}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["safety_status"] == "blocked", body
    assert "hash_match_block" in body["reasons"], body


# PDQ lists, the exchange formats, images and tenants.

PDQ_C = "00ff" * 16


# Two PDQ entries in every format an exchange hands out: case-1 reviewed with a source,
# case-2 unverified without one. Hand-written in each exchange's own shape.
def _lines(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


EXCHANGE_FILES = {
    "csv": (
        "list.csv",
        "text/csv",
        _lines(
            "hash,label,source,reviewed", f"{PDQ_A},case-1,hotline,true", f"{PDQ_B},case-2,,false"
        ),
    ),
    "jsonl": (
        "list.jsonl",
        "application/octet-stream",
        _lines(
            f'{{"hash": "{PDQ_A}", "label": "case-1", "source": "hotline", "signal": "pdq", '
            '"quality": 90}',
            f'{{"hash": "{PDQ_B}", "label": "case-2", "reviewed": false}}',
        ),
    ),
    "threatexchange": (
        "dataset.csv",
        "text/csv",
        _lines(
            "signal_type,signal_str,collab,category,tags",
            f"pdq,{PDQ_A},hotline,POSITIVE_CLASS,case-1",
            f"pdq,{PDQ_B},,INVESTIGATION_SEED,case-2",
            f"pdq,{PDQ_C},hotline,NEGATIVE_CLASS,false-positive",
        ),
    ),
    "hma": (
        "bank.jsonl",
        "application/octet-stream",
        _lines(
            f'{{"id": 7, "signals": {{"pdq": "{PDQ_A}"}}, "note": "case-1", '
            '"metadata": {"content_uri": "hotline"}, "disable_until_ts": 1}',
            f'{{"id": 8, "signals": {{"pdq": "{PDQ_B}"}}, "note": "case-2", '
            '"disable_until_ts": 0}',
        ),
    ),
    "stopncii": (
        "hashes.jsonl",
        "application/octet-stream",
        _lines(
            f'{{"signalType": "ImagePDQ", "hashValue": "{PDQ_A}", "hashStatus": "Active", '
            '"CSPFeedbacks": [{"source": "hotline", "feedbackValue": "Blocked", '
            '"tags": ["case-1"]}]}',
            f'{{"signalType": "ImagePDQ", "hashValue": "{PDQ_B}", "hashStatus": "Received", '
            '"CSPFeedbacks": [{"feedbackValue": "PendingReview", "tags": ["case-2"]}]}',
            f'{{"signalType": "ImagePDQ", "hashValue": "{PDQ_C}", "hashStatus": "Withdrawn"}}',
        ),
    ),
}
EXPECTED = {(PDQ_A, "case-1", "hotline", True), (PDQ_B, "case-2", None, False)}


async def _stored(database_url, name):
    found = await rows(
        database_url,
        "SELECT encode(e.hash, 'hex') AS h, e.label, e.source, e.reviewed"
        " FROM hash_list_entries e JOIN hash_lists l USING (list_id)"
        " WHERE l.name = $1 AND e.enabled",
        name,
    )
    return {(r["h"], r["label"], r["source"], r["reviewed"]) for r in found}


async def _upload(http, admin, name, filename, media, body, query=""):
    return await http.post(
        f"/v1/admin/hash-lists/{name}/entries{query}",
        files={"file": (filename, body if isinstance(body, bytes) else body.encode(), media)},
        headers=admin,
    )


async def test_lists_carry_their_signal_scope_and_unreviewed_distance(world):
    http, admin = world.http, world.admin
    old = await _create(http, admin, name="old-caller")
    pdq = await _create(
        http, admin, name="exchange", signal="pdq", scope="tenant", unreviewed_distance=16
    )

    assert (old["signal"], old["scope"], old["unreviewed_distance"]) == ("phash", "global", None)
    assert (pdq["signal"], pdq["scope"], pdq["unreviewed_distance"]) == ("pdq", "tenant", 16)
    assert pdq["tenant"] == old["tenant"]
    listed = (await http.get("/v1/admin/hash-lists", headers=admin)).json()["lists"]
    assert {(v["name"], v["signal"], v["scope"]) for v in listed} == {
        ("old-caller", "phash", "global"),
        ("exchange", "pdq", "tenant"),
    }
    shown = await http.get("/v1/admin/hash-lists/exchange", headers=admin)
    assert shown.json() == pdq
    too_far = await http.post(
        "/v1/admin/hash-lists",
        json={"name": "far", "action": "block", "unreviewed_distance": 65},
        headers=admin,
    )
    assert_problem(too_far, 422, "hash_value_invalid")
    bad_signal = await http.post(
        "/v1/admin/hash-lists",
        json={"name": "md5", "action": "block", "signal": "md5"},
        headers=admin,
    )
    assert_problem(bad_signal, 400, "invalid_value")


@pytest.mark.parametrize("fmt", sorted(EXCHANGE_FILES))
async def test_a_pdq_list_imports_every_exchange_format(world, database_url, fmt):
    await _create(world.http, world.admin, name="exchange", signal="pdq")
    filename, media, body = EXCHANGE_FILES[fmt]
    # hma is named; the others are told from the file name and first line.
    query = "?format=hma" if fmt == "hma" else ""

    response = await _upload(world.http, world.admin, "exchange", filename, media, body, query)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "list": "exchange",
        "received": 2,
        "added": 2,
        "updated": 0,
        "low_quality": 0,
    }
    assert await _stored(database_url, "exchange") == EXPECTED
    [event] = await rows(
        database_url,
        "SELECT payload::text AS p FROM audit_events WHERE action = 'hash_list.entries_added'",
    )
    assert PDQ_A not in event["p"]


async def test_low_quality_pdq_entries_are_counted_not_stored(world, database_url):
    await _create(world.http, world.admin, name="exchange", signal="pdq")
    body = (
        f'{{"hash": "{PDQ_A}", "label": "flat", "quality": 10}}\n'
        f'{{"hash": "{PDQ_B}", "label": "photo", "quality": 95}}\n'
    )

    response = await _upload(world.http, world.admin, "exchange", "l.jsonl", "text/plain", body)

    assert response.status_code == 200, response.text
    assert response.json()["low_quality"] == 1
    assert response.json()["added"] == 1
    assert {entry[0] for entry in await _stored(database_url, "exchange")} == {PDQ_B}


@pytest.mark.parametrize(
    ("signal", "fmt"),
    [("pdq", fmt) for fmt in sorted(EXCHANGE_FILES)]
    + [("phash", fmt) for fmt in ("csv", "jsonl", "threatexchange", "hma")],
)
async def test_an_export_imports_back_to_the_same_entries(world, database_url, signal, fmt):
    http, admin = world.http, world.admin
    await _create(http, admin, name="first", signal=signal)
    await _create(http, admin, name="second", signal=signal)
    if signal == "pdq":
        await _upload(http, admin, "first", *EXCHANGE_FILES["csv"])
    else:
        await _add(
            http,
            admin,
            "first",
            [
                {"hash": "c3a1b2d4e5f60718", "label": "case-1041", "source": "hotline"},
                {"hash": "00ff00ff00ff00ff", "label": "known, cropped", "reviewed": False},
            ],
        )
    await http.post(
        "/v1/admin/hash-lists/first/entries/disable",
        json={"hashes": [PDQ_C if signal == "pdq" else "0000000000000001"]},
        headers=admin,
    )

    exported = await http.get(f"/v1/admin/hash-lists/first/export?format={fmt}", headers=admin)

    assert exported.status_code == 200, exported.text
    extension = "csv" if fmt in {"csv", "threatexchange"} else "jsonl"
    assert exported.headers["content-type"].startswith(
        "text/csv" if extension == "csv" else "application/x-ndjson"
    )
    disposition = exported.headers["content-disposition"]
    filename = f"first.{fmt}.{extension}"
    assert disposition == f'attachment; filename="{filename}"'
    imported = await _upload(
        http, admin, "second", filename, "application/octet-stream", exported.content
    )
    assert imported.status_code == 200, imported.text
    first = await _stored(database_url, "first")
    assert len(first) == 2
    assert await _stored(database_url, "second") == first


async def test_an_export_is_refused_before_it_starts(world):
    http, admin = world.http, world.admin
    await _create(http, admin, name="pictures")
    assert_problem(
        await http.get("/v1/admin/hash-lists/pictures/export?format=stopncii", headers=admin),
        422,
        "hash_signal_mismatch",
    )
    assert_problem(
        await http.get("/v1/admin/hash-lists/pictures/export?format=xml", headers=admin),
        422,
        "hash_format_unknown",
    )
    assert_problem(
        await http.get("/v1/admin/hash-lists/nope/export", headers=admin),
        404,
        "hash_list_not_found",
    )
    empty = await http.get("/v1/admin/hash-lists/pictures/export", headers=admin)
    assert empty.text == "hash,label,source,reviewed\n"


async def test_disabling_takes_hashes_of_the_lists_signal(world, database_url):
    await _create(world.http, world.admin, name="exchange", signal="pdq")
    await _upload(world.http, world.admin, "exchange", *EXCHANGE_FILES["csv"])
    before = await counts(database_url)

    wrong = await world.http.post(
        "/v1/admin/hash-lists/exchange/entries/disable",
        json={"hashes": ["00000000000000ff"]},
        headers=world.admin,
    )
    right = await world.http.post(
        "/v1/admin/hash-lists/exchange/entries/disable",
        json={"hashes": [PDQ_A.upper()]},
        headers=world.admin,
    )

    assert_problem(wrong, 422, "hash_value_invalid")
    assert right.json() == {"list": "exchange", "disabled": 1}
    assert await counts(database_url) == {**before, "audit_events": before["audit_events"] + 1}
    assert {entry[0] for entry in await _stored(database_url, "exchange")} == {PDQ_B}


def _astronaut():
    from importlib.resources import files

    from PIL import Image

    return Image.open(files("skimage") / "data" / "astronaut.png").convert("RGB")


async def _add_image(http, admin, name, image: bytes, label="person-7", media="image/png"):
    return await http.post(
        f"/v1/admin/hash-lists/{name}/images",
        files={
            "image": ("photo.png", image, media),
            "label": (None, label),
            "source": (None, "request-7"),
        },
        headers=admin,
    )


@pytest.mark.parametrize("change", ["crop_left_10", "FLIP_TOP_BOTTOM", "TRANSPOSE", "ROTATE_90"])
async def test_an_image_on_a_phash_list_holds_back_its_crops_and_turns(
    world, gate, database_url, settings, change
):
    """A real photo added as an image: a one-sided 10 % crop (beyond pHash's own reach,
    caught by the stored crop grid), a vertical flip, a transpose and a quarter turn."""
    from PIL import Image

    photo = _astronaut()
    await _create(world.http, world.admin, name="protected-photos")
    added = await _add_image(world.http, world.admin, "protected-photos", _photo_png(photo))
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["entries"] == 31
    assert body["quality"] is None
    crops = await rows(
        database_url,
        "SELECT count(DISTINCT crop) AS n FROM hash_list_entries WHERE crop IS NOT NULL",
    )
    assert crops[0]["n"] == 30

    if change == "crop_left_10":
        width, height = photo.size
        copy = photo.crop((round(width * 0.1), 0, width, height))
    else:
        copy = photo.transpose(getattr(Image.Transpose, change))
    response = await gate(_photo_png(copy), generation_id=f"gen-{change.lower()}")

    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["safety_status"] in {"review", "blocked"}, decision
    assert {"hash_match_block", "hash_match_review"} & set(decision["reasons"]), decision
    [files] = await opened_decisions(database_url, settings.master_key)
    assert "person-7" in json.dumps(files.evidence)


async def test_a_page_on_a_list_is_found_again_in_a_white_frame(world, gate, database_url):
    """A photo on a white page (white edges of its own) framed again in white: the frame
    merges with the page, and only the entry of the page without its border (crop
    ``without border``) is near the framed copy's trimmed hashes."""
    from PIL import Image, ImageOps

    with Image.open(Path(__file__).parents[1] / "fixtures" / "c2pa" / "no_manifest.jpg") as raw:
        page = raw.convert("RGB")
    await _create(world.http, world.admin, name="protected-pages")
    added = await _add_image(world.http, world.admin, "protected-pages", _photo_png(page))
    assert added.status_code == 201, added.text
    assert added.json()["entries"] == 32
    trimmed = await rows(
        database_url, "SELECT count(*) AS n FROM hash_list_entries WHERE crop = 'without border'"
    )
    assert trimmed[0]["n"] == 1

    framed = ImageOps.expand(page, round(page.width * 0.08), (255, 255, 255))
    response = await gate(_photo_png(framed), generation_id="gen-framed-page")

    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["safety_status"] == "blocked", decision
    assert "hash_match_block" in decision["reasons"], decision


async def test_an_image_on_a_pdq_list_keeps_its_pdq(world, database_url):
    await _create(world.http, world.admin, name="exchange", signal="pdq")

    added = await _add_image(world.http, world.admin, "exchange", _photo_png(_astronaut()))

    assert added.status_code == 201, added.text
    body = added.json()
    assert (body["entries"], len(body["hash"])) == (1, 64)
    assert body["quality"] >= 50
    assert {entry[0] for entry in await _stored(database_url, "exchange")} == {body["hash"]}


@pytest.mark.parametrize(
    ("data", "media", "label", "status", "code"),
    [
        (b"this is not an image at all", "image/png", "x", 415, "image_format_not_allowed"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", "x", 422, "image_corrupt"),
        (None, "image/png", "", 422, "hash_value_invalid"),
    ],
    ids=["not-an-image", "truncated-png", "blank-label"],
)
async def test_a_bad_image_stores_nothing(world, database_url, data, media, label, status, code):
    await _create(world.http, world.admin, name="protected-photos")
    before = await counts(database_url)

    image = _photo_png(_astronaut().resize((64, 64))) if data is None else data
    response = await _add_image(world.http, world.admin, "protected-photos", image, label, media)

    assert_problem(response, status, code)
    assert await counts(database_url) == before


async def test_another_tenants_admin_neither_sees_nor_changes_a_list(
    world, make_client, database_url
):
    http = world.http
    await _create(http, world.admin, name="exchange", signal="pdq")
    await _upload(http, world.admin, "exchange", *EXCHANGE_FILES["csv"])
    _, other = await make_client("admin", tenant="elsewhere")
    before = await counts(database_url)

    listed = await http.get("/v1/admin/hash-lists", headers=other)
    assert listed.json() == {"lists": []}
    for response in (
        await http.get("/v1/admin/hash-lists/exchange", headers=other),
        await http.get("/v1/admin/hash-lists/exchange/export", headers=other),
        await _upload(http, other, "exchange", *EXCHANGE_FILES["threatexchange"]),
        await http.post(
            "/v1/admin/hash-lists/exchange/entries",
            json={"entries": [{"hash": PDQ_C, "label": "x"}]},
            headers=other,
        ),
        await http.post(
            "/v1/admin/hash-lists/exchange/entries/disable",
            json={"hashes": [PDQ_A]},
            headers=other,
        ),
        await _add_image(http, other, "exchange", _photo_png(_astronaut())),
    ):
        assert_problem(response, 404, "hash_list_not_found")
    assert await counts(database_url) == before
    # Its own list of the same name cannot be made: names are global.
    taken = await http.post(
        "/v1/admin/hash-lists", json={"name": "exchange", "action": "block"}, headers=other
    )
    assert_problem(taken, 409, "hash_list_exists")
