"""Hash lists: administration over HTTP and the CLI, and matching copies at the gate, in
every service process."""

from __future__ import annotations

import os
import subprocess
import sys

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
from tests.support import assert_problem


def phash_of(seed: int) -> str:
    """The pHash the gate computes for ``output(seed)``."""
    return image_hashes(make_image(seed))[0]


async def _create(http, admin, name="known-abuse", action="block"):
    response = await http.post(
        "/v1/admin/hash-lists", json={"name": name, "action": action}, headers=admin
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
    world, gate, database_url, change, reasons
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
    [row] = await rows(database_url, "SELECT evidence::text AS e FROM moderation_decisions")
    assert "case-17" in row["e"]


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

    assert from_csv.json() == {"list": "known-abuse", "received": 2, "added": 2, "updated": 0}
    assert from_jsonl.json() == {"list": "known-abuse", "received": 2, "added": 1, "updated": 1}
    stored = await rows(
        database_url, "SELECT to_hex(hash) AS h, label, source FROM hash_list_entries ORDER BY hash"
    )
    assert [(r["h"], r["label"], r["source"]) for r in stored] == [
        ("ff", "a2", "feed-2"),
        ("ff00", "b", None),
        ("ff0000", "c", None),
    ]


@pytest.mark.parametrize(
    ("files", "json_body", "status", "code"),
    [
        (
            {"file": ("list.csv", b"00000000000000ff,a\nnot-a-hash,b\n", "text/csv")},
            None,
            422,
            "hash_list_line_invalid",
        ),
        ({"other": ("list.csv", b"00000000000000ff,a\n", "text/csv")}, None, 400, None),
        (None, {"entries": [{"hash": "xyz", "label": "a"}]}, 400, "invalid_value"),
        (None, {"entries": [{"hash": "00000000000000ff", "label": ""}]}, 400, "invalid_value"),
    ],
    ids=["bad-line", "wrong-part", "bad-hash", "empty-label"],
)
async def test_bad_uploads_store_nothing(world, database_url, files, json_body, status, code):
    await _create(world.http, world.admin)
    before = await counts(database_url)
    response = await world.http.post(
        "/v1/admin/hash-lists/known-abuse/entries",
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
