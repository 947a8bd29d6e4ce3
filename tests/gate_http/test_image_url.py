"""`image_url`: fetched from allow-listed hosts only, refused before connecting otherwise."""

from __future__ import annotations

import pytest

from tests.gate_http.conftest import check_request, consented_source, counts, output, post_check
from tests.support import assert_problem

JPEG = {"Content-Type": "image/jpeg"}


async def _check_url(world, http, url, **request):
    source = await consented_source(world)
    body = check_request(
        sources=[source.asset()], generator=world.generator.client_id, image_url=url, **request
    )
    return await post_check(http, world.publisher.headers, body, None)


async def test_image_from_an_allow_listed_host_is_fetched_and_decided(
    world, app_with, local_server, database_url
):
    image = output(30)
    local_server.routes["/out.jpg"] = (200, JPEG, image)
    local_server.routes["/moved"] = (302, {"Location": "/out.jpg"}, b"")
    async with app_with(image_fetch_allowed_hosts="127.0.0.1") as http:
        direct = await _check_url(world, http, local_server.base + "/out.jpg")
        moved = await _check_url(
            world, http, local_server.base + "/moved", generation_id="gen-moved"
        )
    assert direct.status_code == 200, direct.text
    assert direct.json()["safety_status"] == "allowed"
    # A redirect on the same host is followed (and checked again).
    assert moved.status_code == 200, moved.text
    assert moved.json()["safety_status"] == "allowed"
    assert local_server.requests == ["/out.jpg", "/moved", "/out.jpg"]
    assert (await counts(database_url))["moderation_decisions"] == 2


async def test_a_listed_network_admits_a_name_that_resolves_into_it(world, app_with, local_server):
    local_server.routes["/out.jpg"] = (200, JPEG, output(31))
    port = local_server.server_address[1]
    async with app_with(image_fetch_allowed_hosts="localhost, 127.0.0.0/8") as http:
        response = await _check_url(world, http, f"http://localhost:{port}/out.jpg")
    assert response.status_code == 200, response.text
    assert local_server.requests == ["/out.jpg"]


@pytest.mark.parametrize(
    ("allowed", "url"),
    [
        ("", "{base}/out.jpg"),
        ("images.example", "{base}/out.jpg"),
        ("127.0.0.1", "http://169.254.169.254/latest/meta-data/"),
        ("127.0.0.1", "http://10.0.0.8/out.jpg"),
        ("127.0.0.1", "http://192.168.1.20/out.jpg"),
        ("127.0.0.1", "http://[::1]:{port}/out.jpg"),
        ("localhost", "http://localhost:{port}/out.jpg"),
        ("127.0.0.1", "{base}/to-metadata"),
        ("127.0.0.1", "{base}/to-other-host"),
        ("127.0.0.1", "file:///etc/passwd"),
        ("127.0.0.1", "http://user:secret@127.0.0.1:{port}/out.jpg"),
    ],
    ids=[
        "no-allow-list",
        "host-not-listed",
        "cloud-metadata",
        "private-10",
        "private-192-168",
        "ipv6-loopback",
        "listed-name-resolving-to-loopback",
        "redirect-to-metadata",
        "redirect-to-another-host",
        "not-http",
        "credentials",
    ],
)
async def test_refused_urls_store_nothing_and_reach_nothing(
    world, app_with, local_server, database_url, allowed, url
):
    port = local_server.server_address[1]
    local_server.routes["/out.jpg"] = (200, JPEG, output(32))
    local_server.routes["/to-metadata"] = (
        302,
        {"Location": "http://169.254.169.254/latest/meta-data/"},
        b"",
    )
    local_server.routes["/to-other-host"] = (
        302,
        {"Location": f"http://localhost:{port}/out.jpg"},
        b"",
    )
    target = url.format(base=local_server.base, port=port)
    overrides = {"image_fetch_allowed_hosts": allowed} if allowed else {}
    async with app_with(**overrides) as http:
        source = await consented_source(world)
        before = await counts(database_url)
        body = check_request(
            sources=[source.asset()], generator=world.generator.client_id, image_url=target
        )
        response = await post_check(http, world.publisher.headers, body, None)

    assert_problem(response, 422, "image_url_not_allowed")
    assert await counts(database_url) == before
    # Only the allow-listed redirecting URL itself was ever asked for.
    assert all(path.startswith("/to-") for path in local_server.requests)


async def test_an_unhelpful_host_is_a_fetch_failure(world, app_with, local_server, database_url):
    local_server.routes["/gone.jpg"] = (404, {}, b"")
    async with app_with(image_fetch_allowed_hosts="127.0.0.1") as http:
        source = await consented_source(world)
        before = await counts(database_url)
        body = check_request(
            sources=[source.asset()],
            generator=world.generator.client_id,
            image_url=local_server.base + "/gone.jpg",
        )
        response = await post_check(http, world.publisher.headers, body, None)
    assert_problem(response, 422, "image_fetch_failed")
    assert await counts(database_url) == before


async def test_a_too_large_image_is_cut_off(world, app_with, local_server, database_url):
    local_server.routes["/big.jpg"] = (200, JPEG, output(33))
    async with app_with(image_fetch_allowed_hosts="127.0.0.1", max_image_bytes=2000) as http:
        source = await consented_source(world)
        before = await counts(database_url)
        body = check_request(
            sources=[source.asset()],
            generator=world.generator.client_id,
            image_url=local_server.base + "/big.jpg",
        )
        response = await post_check(http, world.publisher.headers, body, None)
    assert_problem(response, 413, "image_too_large")
    assert await counts(database_url) == before


async def test_an_upload_and_an_image_url_together_are_refused(world, database_url):
    before = await counts(database_url)
    body = check_request(image_url="https://images.example/out.jpg")
    response = await post_check(world.http, world.publisher.headers, body, output(34))
    assert_problem(response, 422, "image_missing")
    assert await counts(database_url) == before
