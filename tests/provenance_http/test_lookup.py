"""POST /v1/provenance/lookup, the in-memory hash index behind it, and the bounded workers."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import pytest
from PIL import Image

from registry.provenance import BoundedWork, ImageWorkBusy, ImageWorkTimeout, PhashIndex, repository
from tests.provenance_http.conftest import file_part, picture


def with_patch(data: bytes, box: tuple[int, int, int, int]) -> bytes:
    """The same picture with one small rectangle painted over (a near duplicate)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.paste((255, 255, 255), box)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


async def test_unrelated_image_finds_nothing(world, signed):
    response = await world.http.post("/v1/provenance/lookup", files=file_part(picture(500)))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["matches"] == []
    assert len(body["phash"]) == 16
    assert len(body["sha256"]) == 64


async def test_matches_come_nearest_first(world, app_with):
    base = picture(501, size=(320, 240))
    near = with_patch(base, (0, 0, 60, 40))
    async with app_with(provenance_lookup_max_distance=24) as http:
        ids = []
        for number, image in enumerate((near, base)):
            response = await http.post(
                "/v1/provenance/sign",
                files={
                    "file": ("o.jpg", image, "image/jpeg"),
                    "metadata": (
                        None,
                        f'{{"generation_id":"g{number}","model":"m","consent_tokens":[]}}',
                    ),
                },
                headers=world.generator.headers,
            )
            assert response.status_code == 200, response.text
            ids.append(response.headers["provenance-output-id"])

        body = (await http.post("/v1/provenance/lookup", files=file_part(base))).json()

    distances = [match["distance"] for match in body["matches"]]
    assert [match["output"]["output_id"] for match in body["matches"]] == [ids[1], ids[0]]
    assert distances[0] == 0
    assert distances == sorted(distances)
    assert 0 < distances[1] <= 24


async def test_an_output_signed_by_another_process_is_found(world, sign_output, app_with):
    image = picture(502)
    async with app_with() as other:
        before = (await other.post("/v1/provenance/lookup", files=file_part(image))).json()
        response = await sign_output(image, tokens=[])
        assert response.status_code == 200, response.text
        after = (await other.post("/v1/provenance/lookup", files=file_part(image))).json()

    assert before["matches"] == []
    assert [m["output"]["output_id"] for m in after["matches"]] == [
        response.headers["provenance-output-id"]
    ]


# The index against a real database.


def new_output(number: int, client_id: str, phash: str) -> repository.NewOutput:
    return repository.NewOutput(
        output_id=f"out_{number:020d}",
        tenant="t",
        client_id=client_id,
        generation_id=f"g{number}",
        model="m",
        media_type="image/jpeg",
        width=1,
        height=1,
        sha256=f"{number:064x}",
        phash=phash,
        decision_id=None,
        assertion="a.b.c",
        consents=(),
    )


@pytest.fixture
async def api_client_id(pool) -> str:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO api_clients (client_id, name, tenant, roles, key_hash)"
            " VALUES ('cl_index', 'index', 't', '{generator}', '\\x00')"
        )
    return "cl_index"


async def test_index_sees_an_output_committed_after_a_later_one(pool, api_client_id):
    index = PhashIndex()
    slow = await pool.acquire()
    try:
        transaction = slow.transaction()
        await transaction.start()
        slow_id = await repository.insert_output(
            slow, new_output(1, api_client_id, "ffffffffffffffff")
        )
        async with pool.acquire() as fast:
            fast_id = await repository.insert_output(
                fast, new_output(2, api_client_id, "0000000000000000")
            )
        assert slow_id is not None
        assert fast_id is not None
        assert slow_id < fast_id
        async with pool.acquire() as conn:
            await index.refresh(conn)
        assert index.nearest(0, max_distance=0, limit=5) == [(fast_id, 0)]
        assert index.nearest(2**64 - 1, max_distance=0, limit=5) == []

        await transaction.commit()
    finally:
        await pool.release(slow)
    async with pool.acquire() as conn:
        await index.refresh(conn)

    assert len(index) == 2
    assert index.nearest(2**64 - 1, max_distance=0, limit=5) == [(slow_id, 0)]
    assert index._gaps == {}


async def test_index_forgets_a_rolled_back_id_after_its_horizon(pool, api_client_id):
    index = PhashIndex(gap_horizon=0.0)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await repository.insert_output(conn, new_output(3, api_client_id, "00000000000000ff"))
        await transaction.rollback()
        kept = await repository.insert_output(
            conn, new_output(4, api_client_id, "00000000000000f0")
        )
        await index.refresh(conn)
        assert len(index._gaps) == 1
        await asyncio.sleep(0.01)
        await index.refresh(conn)

    assert index._gaps == {}
    assert index.nearest(0xF0, max_distance=0, limit=5) == [(kept, 0)]


async def test_index_distance_and_limit(pool, api_client_id):
    index = PhashIndex()
    async with pool.acquire() as conn:
        for number, phash in enumerate(
            ["0000000000000000", "0000000000000001", "8000000000000003"]
        ):
            await repository.insert_output(conn, new_output(10 + number, api_client_id, phash))
        await index.refresh(conn)
        rows = await conn.fetch("SELECT id, phash FROM signed_outputs ORDER BY id")

    # The top bit survives the trip through a signed bigint.
    assert repository.phash_from_db(rows[2]["phash"]) == "8000000000000003"
    ids = [row["id"] for row in rows]
    assert index.nearest(0, max_distance=3, limit=10) == [(ids[0], 0), (ids[1], 1), (ids[2], 3)]
    assert index.nearest(0, max_distance=1, limit=10) == [(ids[0], 0), (ids[1], 1)]
    assert index.nearest(0, max_distance=64, limit=1) == [(ids[0], 0)]


# Bounded work.


async def test_work_past_its_time_bound_times_out_and_keeps_its_slot():
    work = BoundedWork(threads=1, timeout=0.2)
    try:
        with pytest.raises(ImageWorkTimeout):
            await work.run(time.sleep, 0.6)
        # The thread still sleeps: a second job cannot start, it waits and gives up.
        with pytest.raises(ImageWorkBusy):
            await work.run(time.sleep, 0)
        await asyncio.sleep(0.5)
        assert await work.run(sum, [1, 2, 3]) == 6
    finally:
        work.close()


async def test_work_runs_off_the_event_loop_up_to_its_thread_count():
    work = BoundedWork(threads=2, timeout=5.0)
    # Both jobs pass the barrier only if they run at the same time; each then waits for an
    # event that only the event loop sets, which it can only do while the jobs run.
    barrier = threading.Barrier(2, timeout=3)
    loop_ran = threading.Event()

    def job() -> bool:
        barrier.wait()
        return loop_ran.wait(3)

    try:
        jobs = asyncio.gather(work.run(job), work.run(job))
        await asyncio.sleep(0.05)
        loop_ran.set()
        assert await jobs == [True, True]
    finally:
        work.close()


async def test_work_errors_reach_the_caller():
    work = BoundedWork(threads=1, timeout=5.0)
    try:
        with pytest.raises(ZeroDivisionError):
            await work.run(divmod, 1, 0)
    finally:
        work.close()
