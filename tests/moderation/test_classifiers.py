"""Classifiers: supplied scores, and the HTTP classifier against a real local server."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from moderation import (
    ClassifierConfigInvalid,
    ClassifierHostNotAllowed,
    ClassifierNotInstalled,
    ClassifierResult,
    HttpClassifier,
    ImageInput,
    NudeNetClassifier,
    SuppliedScores,
    decide,
    run_classifiers,
    validate_scores,
)
from tests.moderation.support import LIMITS, clean_evidence, encode_jpeg, make_image
from verifier import decode

GOOD = {
    "scores": {
        "sexual_content": 0.02,
        "minor_presence": 0.01,
        "nonconsensual_transformation": 0.02,
        "violence": 0.3,
    },
    "model": "m-1",
}


ANSWERS = {
    "/ok": (200, json.dumps(GOOD).encode()),
    "/500": (500, b'{"error": "model crashed"}'),
    "/nan": (200, b'{"scores": {"sexual_content": NaN, "minor_presence": 0.1}}'),
    "/range": (200, b'{"scores": {"sexual_content": 1.5, "minor_presence": -1, "violence": "x"}}'),
    "/text": (200, b"sexual_content=0.1", "text/plain"),
    "/big": (200, b'{"scores": {}, "model": "' + b"x" * 100_000 + b'"}'),
    "/extra": (200, b'{"scores": {"sexual_content": 0.1}, "debug": true}'),
    "/duplicate": (200, b'{"scores": {"sexual_content": 0.9}, "scores": {"sexual_content": 0}}'),
    "/array": (200, b"[0.1, 0.2]"),
    # The image posted is 320 x 240: two regions inside it, and one of each kind of bad one.
    "/regions": (
        200,
        json.dumps(
            {
                "scores": GOOD["scores"],
                "regions": [
                    {"label": "FACE_FEMALE", "confidence": 0.91, "box": [10, 20, 100, 80]},
                    {"label": "FEET_COVERED", "confidence": 0.4, "box": [200.4, 150, 120, 90]},
                    {"label": "OUTSIDE", "confidence": 0.9, "box": [300, 200, 40, 50]},
                    {"label": "NEGATIVE", "confidence": 0.9, "box": [-1, 0, 10, 10]},
                    {"label": "NO_SIZE", "confidence": 0.9, "box": [0, 0, 0, 10]},
                    {"label": "WORDS", "confidence": "high", "box": [0, 0, 10, 10]},
                    {"label": "TOO_SURE", "confidence": 1.5, "box": [0, 0, 10, 10]},
                    {"label": "SHORT", "confidence": 0.5, "box": [0, 0, 10]},
                    {"label": "EXTRA", "confidence": 0.5, "box": [0, 0, 1, 1], "crop": "x"},
                    {"label": "<script>", "confidence": 0.5, "box": [0, 0, 1, 1]},
                    "a string",
                ],
            }
        ).encode(),
    ),
    "/regions-bad": (200, b'{"scores": {"sexual_content": 0.1}, "regions": {"not": "a list"}}'),
}


class Handler(BaseHTTPRequestHandler):
    server: ClassifierServer

    def log_message(self, *args):
        del args

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = self.headers
        self.server.requests.append((self.path, headers["Content-Type"], headers["Host"], body))
        path = self.server.mode if self.path == "/switch" else self.path
        if path == "/slow":
            time.sleep(1.0)
            path = "/ok"
        if path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.reply(*ANSWERS.get(path, (404, b"{}")))

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ClassifierServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests = []
        self.mode = "/500"


@pytest.fixture(scope="module")
def server():
    httpd = ClassifierServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def image():
    data = encode_jpeg(make_image(seed=11, size=(320, 240)))
    return ImageInput(data=data, decoded=decode(data, LIMITS))


def url(server, path, host="127.0.0.1"):
    return f"http://{host}:{server.server_address[1]}{path}"


async def classify(server, image, path, *, seconds=2.0):
    classifier = HttpClassifier(url(server, path), timeout=seconds, allowed_hosts=["127.0.0.1"])
    try:
        return await classifier.score(image, timeout=seconds)
    finally:
        await classifier.aclose()


async def test_a_normal_answer_is_scored_and_the_image_is_posted(server, image):
    server.requests.clear()
    result = await classify(server, image, "/ok")
    assert result.error is None
    assert result.scores == GOOD["scores"]
    assert (result.classifier, result.origin, result.model) == ("http", "computed", "m-1")
    assert result.latency_ms > 0
    ((path, content_type, host, body),) = server.requests
    assert (path, content_type, body) == ("/ok", "image/jpeg", image.data)
    assert host == f"127.0.0.1:{server.server_address[1]}"
    decision = decide(clean_evidence(classifiers=(result,)), default_policy())
    assert decision.status == "allowed"


def default_policy():
    from moderation import default_policy as load

    return load()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/500", "http_status"),
        ("/missing", "http_status"),
        ("/redirect", "redirect_refused"),
        ("/text", "bad_response"),
        ("/big", "bad_response"),
        ("/extra", "bad_response"),
        ("/duplicate", "bad_response"),
        ("/array", "bad_response"),
    ],
)
async def test_failures_are_results_and_never_allowed(server, image, path, error):
    result = await classify(server, image, path)
    assert (result.error, result.scores) == (error, {})
    decision = decide(clean_evidence(classifiers=(result,)), default_policy())
    assert decision.status == "review"
    assert decision.reasons == ("classifier_unavailable",)


async def test_a_redirect_to_the_metadata_address_is_not_followed(server, image):
    server.requests.clear()
    result = await classify(server, image, "/redirect")
    assert result.error == "redirect_refused"
    assert [r[0] for r in server.requests] == ["/redirect"]


async def test_a_late_answer_is_a_timeout(server, image):
    result = await classify(server, image, "/slow", seconds=0.2)
    assert result.error == "timeout"
    decision = decide(clean_evidence(classifiers=(result,)), default_policy())
    assert (decision.status, decision.reasons) == ("review", ("classifier_unavailable",))


async def test_the_gate_step_bound_applies_when_shorter_than_the_configured_timeout(server, image):
    classifier = HttpClassifier(url(server, "/slow"), timeout=5, allowed_hosts=["127.0.0.1"])
    try:
        result = await classifier.score(image, timeout=0.2)
    finally:
        await classifier.aclose()
    assert result.error == "timeout"


async def test_regions_inside_the_image_are_kept_and_bad_ones_dropped_and_noted(server, image):
    result = await classify(server, image, "/regions")
    assert result.error is None
    assert result.scores == GOOD["scores"]
    assert [(r.label, r.confidence, r.x, r.y, r.width, r.height) for r in result.regions] == [
        ("FACE_FEMALE", 0.91, 10, 20, 100, 80),
        ("FEET_COVERED", 0.4, 200, 150, 120, 90),
    ]
    assert result.invalid_regions == 9
    decision = decide(clean_evidence(classifiers=(result,)), default_policy())
    # A dropped region explains nothing, but it does not make the scores wrong.
    assert decision.status == "allowed"
    assert "classifier_invalid_region" in decision.notes
    [finding] = [f for f in decision.findings if f.code == "classifier_invalid_region"]
    assert (finding.subject, finding.detail) == ("http", "9 dropped")


async def test_regions_that_are_not_a_list_make_the_answer_unreadable(server, image):
    result = await classify(server, image, "/regions-bad")
    assert (result.error, result.regions) == ("bad_response", ())


async def test_nan_scores_are_invalid_not_allowed(server, image):
    result = await classify(server, image, "/nan")
    assert result.error is None
    assert result.scores == {"minor_presence": 0.1}
    assert [(i.category, i.raw) for i in result.invalid] == [("sexual_content", "nan")]
    decision = decide(clean_evidence(classifiers=(result,)), default_policy())
    # The answer had no nonconsensual_transformation, which a real-person source requires.
    assert (decision.status, decision.reasons) == (
        "review",
        ("classifier_invalid_score", "score_missing"),
    )


async def test_out_of_range_scores_are_invalid(server, image):
    result = await classify(server, image, "/range")
    assert result.scores == {}
    assert [i.category for i in result.invalid] == ["sexual_content", "minor_presence", "violence"]
    assert decide(clean_evidence(classifiers=(result,)), default_policy()).status == "review"


async def test_a_hostname_that_resolves_to_loopback_is_refused_before_connecting(server, image):
    server.requests.clear()
    classifier = HttpClassifier(
        url(server, "/ok", host="localhost"), timeout=2, allowed_hosts=["localhost"]
    )
    try:
        result = await classifier.score(image, timeout=2)
    finally:
        await classifier.aclose()
    assert result.error == "address_refused"
    assert server.requests == []


async def test_a_listed_network_allows_its_addresses(server, image):
    classifier = HttpClassifier(
        url(server, "/ok", host="localhost"),
        timeout=2,
        allowed_hosts=["localhost", "127.0.0.0/8", "::1"],
    )
    try:
        result = await classifier.score(image, timeout=2)
    finally:
        await classifier.aclose()
    assert result.error is None


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("http://169.254.169.254/latest/meta-data/", ["127.0.0.1"]),
        ("http://169.254.169.254/", ["metadata.google.internal"]),
        ("http://127.0.0.1:9/", ["classifier.example"]),
        ("http://10.1.2.3/", ["192.168.0.0/16"]),
        ("http://[::1]:9/", ["127.0.0.1"]),
        ("http://classifier.example.evil/", ["classifier.example"]),
    ],
)
def test_hosts_off_the_allow_list_are_refused_at_configuration(target, allowed):
    with pytest.raises(ClassifierHostNotAllowed) as caught:
        HttpClassifier(target, timeout=1, allowed_hosts=allowed)
    assert caught.value.code == "classifier_host_not_allowed"


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("ftp://127.0.0.1/", {}),
        ("http://user:pw@127.0.0.1/", {}),
        ("http:///nohost", {}),
        ("http://127.0.0.1/", {"timeout": 0}),
        ("http://127.0.0.1/", {"failure_threshold": 0}),
        ("http://127.0.0.1/", {"allowed_hosts": []}),
        ("http://127.0.0.1/", {"allowed_hosts": "127.0.0.1"}),
        ("http://127.0.0.1/", {"allowed_hosts": ["10.0.0.0/99"]}),
    ],
)
def test_bad_configuration_is_refused(target, options):
    values = {"timeout": 1, "allowed_hosts": ["127.0.0.1"], **options}
    with pytest.raises(ClassifierConfigInvalid) as caught:
        HttpClassifier(target, **values)
    assert caught.value.code in {"classifier_config_invalid", "classifier_host_not_allowed"}


def test_repr_names_no_url_secrets():
    classifier = HttpClassifier(
        "http://127.0.0.1/score?key=secret", timeout=1, allowed_hosts=["127.0.0.1"]
    )
    assert "secret" not in repr(classifier)


async def test_the_circuit_opens_after_consecutive_failures_and_closes_after_cooldown(
    server, image
):
    now = [1000.0]
    server.mode = "/500"
    classifier = HttpClassifier(
        url(server, "/switch"),
        timeout=2,
        allowed_hosts=["127.0.0.1"],
        failure_threshold=2,
        cooldown=30,
        clock=lambda: now[0],
    )
    try:
        server.requests.clear()
        first = await classifier.score(image, timeout=2)
        second = await classifier.score(image, timeout=2)
        assert (first.error, second.error) == ("http_status", "http_status")
        third = await classifier.score(image, timeout=2)
        assert third.error == "circuit_open"
        assert len(server.requests) == 2
        decision = decide(clean_evidence(classifiers=(third,)), default_policy())
        assert decision.status == "review"
        # After the cooldown one call goes through; it fails, so the circuit opens again.
        now[0] += 31
        assert (await classifier.score(image, timeout=2)).error == "http_status"
        assert (await classifier.score(image, timeout=2)).error == "circuit_open"
        now[0] += 31
        server.mode = "/ok"
        assert (await classifier.score(image, timeout=2)).error is None
        # Success resets the count: one failure does not open it again.
        server.mode = "/500"
        assert (await classifier.score(image, timeout=2)).error == "http_status"
        assert (await classifier.score(image, timeout=2)).error == "http_status"
        assert len(server.requests) == 6
    finally:
        await classifier.aclose()


async def test_run_classifiers_runs_them_together_and_contains_a_broken_one(server, image):
    class Broken:
        name = "broken"

        async def score(self, _image, **_):
            raise RuntimeError("bug")

    http = HttpClassifier(url(server, "/ok"), timeout=2, allowed_hosts=["127.0.0.1"])
    try:
        results = await run_classifiers(
            [SuppliedScores({"sexual_content": 0.1}), http, Broken()], image, timeout=2
        )
    finally:
        await http.aclose()
    assert [(r.classifier, r.origin, r.error) for r in results] == [
        ("supplied", "supplied", None),
        ("http", "computed", None),
        ("broken", "computed", "unavailable"),
    ]


async def test_supplied_scores_are_recorded_as_supplied(image):
    supplied = SuppliedScores({"sexual_content": 0.2, "minor_presence": 0})
    result = await supplied.score(image, timeout=1)
    assert result == supplied.result()
    assert (result.origin, result.scores) == (
        "supplied",
        {"sexual_content": 0.2, "minor_presence": 0.0},
    )


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-0.01, "-0.01"),
        (1.0001, "1.0001"),
        ("0.5", "'0.5'"),
        (True, "True"),
        (None, "None"),
    ],
)
def test_invalid_supplied_scores_are_flagged(value, raw):
    result = SuppliedScores({"sexual_content": value, "violence": 0.1}).result()
    assert result.scores == {"violence": 0.1}
    assert [(i.category, i.raw) for i in result.invalid] == [("sexual_content", raw)]
    decision = decide(clean_evidence(classifiers=(result,)), default_policy())
    assert decision.status == "review"
    assert "classifier_invalid_score" in decision.reasons


def test_bad_category_names_and_too_many_scores_are_flagged():
    scores, invalid = validate_scores({"Sexual Content": 0.1, 3: 0.1})
    assert scores == {}
    assert [i.raw for i in invalid] == ["not a category name", "not a category name"]
    scores, invalid = validate_scores({f"c{i}": 0.0 for i in range(70)})
    assert len(scores) == 64
    assert invalid[0].category == "*"


def test_a_classifier_result_round_trips_through_json():
    import msgspec

    result = SuppliedScores({"a": 0.5, "b": float("nan")}).result()
    assert msgspec.json.decode(msgspec.json.encode(result), type=ClassifierResult) == result


@pytest.mark.skipif(importlib.util.find_spec("nudenet") is not None, reason="nudenet installed")
def test_nudenet_without_the_package_says_how_to_install_it():
    with pytest.raises(ClassifierNotInstalled) as caught:
        NudeNetClassifier()
    assert caught.value.code == "classifier_not_installed"
    assert "pip install nudenet" in caught.value.message


@pytest.mark.skipif(importlib.util.find_spec("nudenet") is None, reason="nudenet not installed")
async def test_nudenet_scores_a_harmless_picture_low(image):
    result = await NudeNetClassifier().score(image, timeout=30)
    assert result.error is None
    assert 0.0 <= result.scores["sexual_content"] < 0.3
