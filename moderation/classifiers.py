"""Content classifiers: one interface, three implementations.

A ``Classifier`` turns an image into scores in 0..1 per category (``sexual_content``,
``minor_presence``, ``violence``, ...). It never raises for a bad answer: a timeout, an HTTP
error or a malformed answer is a ``ClassifierResult`` with an ``error`` code, and a score that
is not a finite number in 0..1 is kept aside as ``invalid``. The decision engine turns both
into ``classifier_unavailable`` / ``classifier_invalid_score``, never into "allowed".

``SuppliedScores``: scores the caller computed with its own classifiers, recorded with origin
``supplied``.

``HttpClassifier``: a classifier service at a configured URL. The contract:

    request   POST <url>
              Content-Type: the image's media type (image/jpeg, image/png or image/webp)
              body: the image bytes, exactly as received by the gate
    response  200, Content-Type: application/json, at most 64 KiB:
              {"scores": {"sexual_content": 0.02, "violence": 0.1, ...}, "model": "name-1.2"}
              "scores" maps category names (a-z, 0-9, _) to numbers in 0..1; "model" is
              optional; so is "regions", the boxes that explain the scores:
              [{"label": "FACE_FEMALE", "confidence": 0.91, "box": [x, y, width, height]}]
              in the image's pixels (x, y the top left corner; at most 50). A region that
              is not such an object, lies outside the image or has no numeric confidence
              in 0..1 is dropped and counted (the decision notes classifier_invalid_region);
              the scores still count. No other members; no redirects (a 3xx is an error,
              never followed).

  Outbound safety (DESIGN §6): the URL's host must be on ``allowed_hosts``; the host is
  resolved first, and every address actually connected to must be public, or itself be
  allow-listed (an IP or a CIDR network in ``allowed_hosts``). Loopback, link-local (cloud
  metadata at 169.254.169.254), private and other special ranges are refused unless listed.
  The request then goes to the resolved address (``Host``/SNI carry the name), so a second
  DNS answer cannot redirect it. Proxies from the environment are ignored.

  A circuit breaker opens after ``failure_threshold`` consecutive failures and answers
  ``circuit_open`` at once for ``cooldown`` seconds; the first call after that tries again.

``NudeNetClassifier``: the optional offline nudity detector of the ``nudenet`` package (its
ONNX model ships inside the wheel; it needs ``onnxruntime`` and ``opencv-python-headless``).
It is not a dependency of this project: install it with ``pip install nudenet`` to use it;
without it the constructor raises ``classifier_not_installed``. Its detections of exposed
breasts, buttocks, genitalia or anus map to ``sexual_content`` (the highest detection score;
0.0 when it detects none, and it reports nothing below 0.2).
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import json
import math
import re
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import msgspec
import numpy as np

from moderation.errors import (
    ClassifierConfigInvalid,
    ClassifierHostNotAllowed,
    ClassifierNotInstalled,
)
from moderation.evidence import ClassifierResult, InvalidScore, Region

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from verifier import DecodedImage

__all__ = [
    "MAX_CATEGORIES",
    "MAX_REGIONS",
    "Classifier",
    "HttpClassifier",
    "ImageInput",
    "NudeNetClassifier",
    "SuppliedScores",
    "run_classifiers",
    "validate_regions",
    "validate_scores",
]

MAX_CATEGORIES = 64
# Enough for every detection a detector reports on one image; the rest are dropped, counted.
MAX_REGIONS = 50
_CATEGORY = re.compile(r"[a-z][a-z0-9_]{0,47}")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_. -]{0,63}")
_RAW_CHARS = 32
_MAX_RESPONSE_BYTES = 64 * 1024
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ImageInput(msgspec.Struct, frozen=True, kw_only=True):
    """The image to score: the bytes as received and the safely decoded image."""

    data: bytes
    decoded: DecodedImage


class Classifier(Protocol):
    @property
    def name(self) -> str: ...

    async def score(self, image: ImageInput, *, timeout: float) -> ClassifierResult:  # noqa: ASYNC109 - the gate gives each step its own bound
        """Scores for ``image`` within ``timeout`` seconds; never raises for a bad answer."""
        ...


def validate_scores(
    raw: Mapping[Any, object],
) -> tuple[dict[str, float], tuple[InvalidScore, ...]]:
    """Split ``raw`` into valid scores and invalid ones (NaN, infinite, outside 0..1, not a
    number, a bad category name, or more than ``MAX_CATEGORIES`` entries)."""
    scores: dict[str, float] = {}
    invalid: list[InvalidScore] = []
    for position, (category, value) in enumerate(raw.items()):
        name = category if isinstance(category, str) else repr(category)
        if position >= MAX_CATEGORIES:
            invalid.append(InvalidScore(category="*", raw=f"more than {MAX_CATEGORIES} scores"))
            break
        if _CATEGORY.fullmatch(name) is None:
            invalid.append(InvalidScore(category=name[:48], raw="not a category name"))
            continue
        number = _number(value)
        if number is None:
            invalid.append(InvalidScore(category=name, raw=repr(value)[:_RAW_CHARS]))
            continue
        scores[name] = number
    return scores, tuple(invalid)


def validate_regions(
    raw: Sequence[object], *, width: int, height: int
) -> tuple[tuple[Region, ...], int]:
    """The valid regions of ``raw`` (see the contract above) and how many were dropped."""
    regions: list[Region] = []
    dropped = 0
    for item in raw:
        region = _region(item, width=width, height=height)
        if region is None or len(regions) >= MAX_REGIONS:
            dropped += 1
        else:
            regions.append(region)
    return tuple(regions), dropped


def _region(item: object, *, width: int, height: int) -> Region | None:
    if not isinstance(item, dict) or set(item) != {"label", "confidence", "box"}:
        return None
    label, confidence, box = item["label"], _number(item["confidence"]), item["box"]
    if not isinstance(label, str) or _LABEL.fullmatch(label) is None or confidence is None:
        return None
    if not isinstance(box, list) or len(box) != 4:  # noqa: PLR2004 - x, y, width, height
        return None
    numbers = [v for v in box if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):  # noqa: PLR2004 - the four of the box
        return None
    x, y, w, h = (round(v) for v in numbers)
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
        return None
    return Region(label=label, confidence=confidence, x=x, y=y, width=w, height=h)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float, from a classifier's answer
        return None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        return None
    return number


class SuppliedScores:
    """Scores the caller sent with its request, validated and recorded as ``supplied``."""

    __slots__ = ("_result",)

    def __init__(self, scores: Mapping[str, object], *, name: str = "supplied") -> None:
        valid, invalid = validate_scores(scores)
        self._result = ClassifierResult(
            classifier=name, origin="supplied", scores=valid, invalid=invalid
        )

    @property
    def name(self) -> str:
        return self._result.classifier

    def result(self) -> ClassifierResult:
        return self._result

    async def score(self, image: ImageInput, *, timeout: float) -> ClassifierResult:  # noqa: ASYNC109 - the Classifier interface
        del image, timeout
        return self._result


class _Breaker:
    """Opens after ``threshold`` consecutive failures, for ``cooldown`` seconds."""

    __slots__ = ("_clock", "_cooldown", "_failures", "_open_until", "_threshold")

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float]) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    def is_open(self) -> bool:
        return self._failures >= self._threshold and self._clock() < self._open_until

    def record(self, *, failed: bool) -> None:
        if not failed:
            self._failures = 0
            return
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = self._clock() + self._cooldown


class _Refused(Exception):
    """Raised inside a request to end it with an error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _Answer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scores: dict[str, Any]
    model: str | None = None
    regions: list[Any] = []


class HttpClassifier:
    """A classifier service over HTTP; see the module docstring for the contract."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        allowed_hosts: Collection[str],
        name: str = "http",
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        max_response_bytes: int = _MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < timeout <= 300:  # noqa: PLR2004 - a classifier call is bounded by minutes
            raise ClassifierConfigInvalid("timeout must be in (0, 300] seconds")
        if failure_threshold < 1 or cooldown < 0:
            raise ClassifierConfigInvalid("failure_threshold >= 1 and cooldown >= 0 are needed")
        self._names, self._networks = _allow_list(allowed_hosts)
        self._url = _checked_url(url, self._names, self._networks)
        self._name = name
        self._timeout = timeout
        self._max_bytes = max_response_bytes
        self._breaker = _Breaker(failure_threshold, cooldown, clock)
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout)
        )

    def __repr__(self) -> str:
        return f"HttpClassifier(name={self._name!r}, host={self._url.host!r})"

    @property
    def name(self) -> str:
        return self._name

    async def aclose(self) -> None:
        await self._client.aclose()

    async def score(self, image: ImageInput, *, timeout: float) -> ClassifierResult:  # noqa: ASYNC109 - the gate gives each step its own bound
        if self._breaker.is_open():
            return self._result(error="circuit_open", started=time.perf_counter())
        started = time.perf_counter()
        try:
            async with asyncio.timeout(min(timeout, self._timeout)):
                answer = await self._post(image)
        except TimeoutError:
            result = self._result(error="timeout", started=started)
        except _Refused as refused:
            result = self._result(error=refused.code, started=started)
        except (httpx.HTTPError, OSError):
            result = self._result(error="unavailable", started=started)
        else:
            scores, invalid = validate_scores(answer.scores)
            decoded = image.decoded
            regions, dropped = validate_regions(
                answer.regions, width=decoded.width, height=decoded.height
            )
            result = ClassifierResult(
                classifier=self._name,
                origin="computed",
                scores=scores,
                invalid=invalid,
                model=answer.model[:128] if answer.model else None,
                latency_ms=_elapsed_ms(started),
                regions=regions,
                invalid_regions=dropped,
            )
        self._breaker.record(failed=result.error is not None or bool(result.invalid))
        return result

    def _result(self, *, error: str, started: float) -> ClassifierResult:
        return ClassifierResult(
            classifier=self._name, origin="computed", error=error, latency_ms=_elapsed_ms(started)
        )

    async def _post(self, image: ImageInput) -> _Answer:
        address = await self._resolve()
        url = self._url.copy_with(host=str(address))
        extensions = {"sni_hostname": self._url.host} if self._url.scheme == "https" else {}
        request = self._client.build_request(
            "POST",
            url,
            content=image.data,
            headers={
                "Host": self._url.netloc.decode("ascii"),
                "Content-Type": image.decoded.media_type,
                "Accept": "application/json",
            },
            extensions=extensions,
        )
        response = await self._client.send(request, stream=True)
        try:
            if response.is_redirect:
                raise _Refused("redirect_refused")
            if response.status_code != 200:  # noqa: PLR2004 - the contract says 200
                raise _Refused("http_status")
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise _Refused("bad_response")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self._max_bytes:
                    raise _Refused("bad_response")
        finally:
            await response.aclose()
        return _parse_answer(bytes(body))

    async def _resolve(self) -> _IPAddress:
        host = self._url.host
        literal = _ip_literal(host)
        if literal is not None:
            candidates = [literal]
        else:
            port = self._url.port or (443 if self._url.scheme == "https" else 80)
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            candidates = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in candidates:
            if _address_allowed(address, self._networks):
                return address
        raise _Refused("address_refused")


def _parse_answer(body: bytes) -> _Answer:
    try:
        # NaN and Infinity are read as numbers here so that they are reported as invalid
        # scores (classifier_invalid_score), not as an unreadable answer.
        raw = json.loads(
            body.decode("utf-8"), parse_constant=float, object_pairs_hook=_no_duplicates
        )
        return msgspec.convert(raw, _Answer)
    except (ValueError, RecursionError, msgspec.ValidationError):
        raise _Refused("bad_response") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _allow_list(entries: Collection[str]) -> tuple[frozenset[str], tuple[_IPNetwork, ...]]:
    if isinstance(entries, str) or not entries:
        raise ClassifierConfigInvalid("allowed_hosts is a non-empty collection of hosts")
    names: set[str] = set()
    networks: list[_IPNetwork] = []
    for entry in entries:
        value = entry.strip().lower().strip("[]")
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            if not value or "/" in value:
                raise ClassifierConfigInvalid(
                    f"{entry[:64]!r} is not a host, IP or network"
                ) from None
            names.add(value.rstrip("."))
        else:
            networks.append(network)
            if "/" not in value:
                names.add(str(network.network_address))
    return frozenset(names), tuple(networks)


def _checked_url(url: str, names: frozenset[str], networks: tuple[_IPNetwork, ...]) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise ClassifierConfigInvalid("the classifier URL does not parse") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ClassifierConfigInvalid("the classifier URL must be http(s)://host/...")
    if parsed.userinfo or parsed.fragment:
        raise ClassifierConfigInvalid("the classifier URL may not carry credentials or a fragment")
    host = parsed.host.lower().rstrip(".")
    literal = _ip_literal(host)
    listed = host in names or (literal is not None and any(literal in n for n in networks))
    if not listed:
        raise ClassifierHostNotAllowed(f"host {host[:64]!r} is not on the classifier allow-list")
    return parsed


def _ip_literal(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _address_allowed(address: _IPAddress, networks: tuple[_IPNetwork, ...]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in networks):
        return True
    return address.is_global and not address.is_multicast


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


class NudeNetClassifier:
    """The ``nudenet`` detector, offline, mapped to ``sexual_content`` (optional extra)."""

    EXPLICIT_LABELS = frozenset(
        {
            "FEMALE_BREAST_EXPOSED",
            "FEMALE_GENITALIA_EXPOSED",
            "MALE_GENITALIA_EXPOSED",
            "BUTTOCKS_EXPOSED",
            "ANUS_EXPOSED",
        }
    )

    __slots__ = ("_detector", "_name")

    def __init__(self, *, name: str = "nudenet") -> None:
        try:
            module = importlib.import_module("nudenet")
        except ImportError:
            raise ClassifierNotInstalled(
                "the nudenet package is not installed; `pip install nudenet` adds it (with "
                "onnxruntime and opencv-python-headless; its model ships in the wheel)"
            ) from None
        self._detector = module.NudeDetector()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def score(self, image: ImageInput, *, timeout: float) -> ClassifierResult:  # noqa: ASYNC109 - the gate gives each step its own bound
        started = time.perf_counter()
        # Our safely decoded pixels, never the raw bytes: OpenCV's decoders do not get
        # untrusted input. NudeNet expects four channels and reorders them itself.
        pixels = np.asarray(image.decoded.image.convert("RGBA"))
        try:
            async with asyncio.timeout(timeout):
                detections = await asyncio.to_thread(self._detector.detect, pixels)
        except TimeoutError:
            return self._failed("timeout", started)
        except Exception:  # noqa: BLE001 - any model failure is a result, never an exception
            return self._failed("unavailable", started)
        found = _detections(detections)
        explicit = [float(d["score"]) for d in found if d.get("class") in self.EXPLICIT_LABELS]
        scores, invalid = validate_scores({"sexual_content": max(explicit, default=0.0)})
        # Every detection is kept as a region, the covered and harmless classes too: they
        # show the reviewer what the detector looked at, and why it scored what it did.
        regions, dropped = validate_regions(
            [
                {"label": d.get("class"), "confidence": d.get("score"), "box": d.get("box")}
                for d in found
            ],
            width=image.decoded.width,
            height=image.decoded.height,
        )
        return ClassifierResult(
            classifier=self._name,
            origin="computed",
            scores=scores,
            invalid=invalid,
            model="nudenet-320n",
            latency_ms=_elapsed_ms(started),
            regions=regions,
            invalid_regions=dropped,
        )

    def _failed(self, error: str, started: float) -> ClassifierResult:
        return ClassifierResult(
            classifier=self._name, origin="computed", error=error, latency_ms=_elapsed_ms(started)
        )


def _detections(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict) and "score" in item]


async def run_classifiers(
    classifiers: Iterable[Classifier],
    image: ImageInput,
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to each classifier
) -> tuple[ClassifierResult, ...]:
    """Run ``classifiers`` concurrently; one that raises anyway is recorded as unavailable."""

    async def one(classifier: Classifier) -> ClassifierResult:
        started = time.perf_counter()
        try:
            return await classifier.score(image, timeout=timeout)
        except Exception:  # noqa: BLE001 - a broken classifier must not break the gate
            return ClassifierResult(
                classifier=classifier.name,
                origin="computed",
                error="unavailable",
                latency_ms=_elapsed_ms(started),
            )

    return tuple(await asyncio.gather(*(one(c) for c in classifiers)))
