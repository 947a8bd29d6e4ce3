"""Look hashes up in the protected-hash lists over HTTP (publishers and generators).

A platform that hashes its own images (PDQ or pHash) asks whether they are on a list before
it publishes, without sending the image: one hash, or up to 1,000 in a batch. A query matches
the lists the gate would match the caller's images against (global lists and its tenant's),
within the policy's review distance for the signal at most, so no caller can page through a
list by asking for a wide radius. The answer gives each list's closest entry with its label
and what the policy does with a match that close. Only counts are audited: a hash someone
looked up is not kept.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from litestar import Controller, post
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime

from moderation.decision import match_code
from moderation.signals import Signal, parse_hash
from registry.core.auth import Client, Role
from registry.core.errors import RegistryError
from registry.core.strictjson import InvalidValueError
from registry.http.deps import AppServices  # noqa: TC001 - Litestar reads annotations at runtime
from registry.http.security import BEARER, allow

if TYPE_CHECKING:
    from moderation import HashIndex, IndexHit
    from moderation.policy import Policy

MAX_QUERIES = 1000
QUERIES_PER_TOKEN = 100
"""A batch takes one rate-limit token per this many queries (the guard took the first)."""

_Distance = Annotated[int, msgspec.Meta(ge=0)]


class MaxDistanceInvalid(RegistryError):
    """A ``max_distance`` beyond the policy's review distance for the signal."""

    code = "max_distance_invalid"
    kind = "invalid"


class HashQuery(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    signal: Signal
    hash: str
    """Hex: 64 characters for ``pdq``, 16 for ``phash``."""
    max_distance: _Distance | None = None
    """Bits; at most the policy's review distance for the signal, which is the default."""


class LookupRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One query (``signal``, ``hash``, ``max_distance``) or a batch (``queries``)."""

    signal: Signal | None = None
    hash: str | None = None
    max_distance: _Distance | None = None
    queries: (
        Annotated[list[HashQuery], msgspec.Meta(min_length=1, max_length=MAX_QUERIES)] | None
    ) = None

    def as_queries(self) -> tuple[list[HashQuery], bool]:
        """The queries, and whether the request was a batch."""
        if self.queries is not None:
            if self.signal is not None or self.hash is not None or self.max_distance is not None:
                raise InvalidValueError("send either signal and hash, or queries, not both")
            return self.queries, True
        if self.signal is None or self.hash is None:
            raise InvalidValueError("send signal and hash, or queries")
        query = HashQuery(signal=self.signal, hash=self.hash, max_distance=self.max_distance)
        return [query], False


class HashMatchView(msgspec.Struct, kw_only=True, frozen=True):
    list: str
    signal: Signal
    distance: int
    label: str
    source: str | None
    reviewed: bool
    crop: str | None
    """For an entry made from a crop of an added image, which crop ("left 10%")."""
    action: Literal["allow", "review", "block"]
    """What the policy does with an image this close to the entry."""


class LookupResult(msgspec.Struct, kw_only=True, frozen=True):
    matches: list[HashMatchView]
    """The closest entry of each matching list, nearest first."""


class BatchLookupResult(msgspec.Struct, kw_only=True, frozen=True):
    results: list[LookupResult]
    """One result a query, in the queries' order."""


def _checked(queries: list[HashQuery], policy: Policy) -> list[tuple[Signal, bytes, int]]:
    checked = []
    for number, query in enumerate(queries, start=1):
        _, review = policy.hashes.bands(query.signal)
        distance = review if query.max_distance is None else query.max_distance
        if distance > review:
            raise MaxDistanceInvalid(
                f"query {number}: max_distance is at most {review} for {query.signal} "
                "(the policy's review distance)"
            )
        checked.append((query.signal, parse_hash(query.signal, query.hash), distance))
    return checked


def _match_all(
    index: HashIndex, queries: list[tuple[Signal, bytes, int]], tenant: str
) -> list[list[IndexHit]]:
    """Each query's own matches, in order: one scan of each signal's entries for all of its
    queries (a batch of 1,000 reads the entries once a block, not once a query)."""
    found: list[list[IndexHit]] = [[] for _ in queries]
    for signal in {signal for signal, _, _ in queries}:
        at = [i for i, (s, _, _) in enumerate(queries) if s == signal]
        asked = [(queries[i][1], queries[i][2]) for i in at]
        for i, hits in zip(at, index.match_each(signal, asked, tenant=tenant), strict=True):
            found[i] = hits
    return found


class HashLookupController(Controller):
    path = "/v1/hashes"
    tags = ["hash lists"]  # noqa: RUF012 - Litestar reads class attributes

    @post(
        "/lookup",
        summary="Look PDQ or pHash hashes up in the protected-hash lists",
        description=(
            'One query `{"signal": "pdq"|"phash", "hash": "<hex>", "max_distance"?: n}` '
            'answers `{"matches": [...]}`; a batch `{"queries": [...]}` of 1 to 1,000 '
            'answers `{"results": [{"matches": [...]}, ...]}` in the queries\' order. Each '
            "match is the closest entry of one list (global lists and the caller's tenant's) "
            "with its label and the policy's `action` for that distance. `max_distance` "
            "defaults to, and may not exceed, the policy's review distance for the signal "
            "(422 `max_distance_invalid`); a hash that is not hex of its signal's length is "
            "422 `hash_value_invalid`. Rate-limited per client: a batch counts one request "
            "per 100 queries. Audited as counts only."
        ),
        guards=[allow(Role.PUBLISHER, Role.GENERATOR)],
        security=BEARER,
        status_code=200,
        opt={"body": LookupRequest},
    )
    async def lookup(
        self,
        services: AppServices,
        caller: NamedDependency[Client],
        payload: NamedDependency[LookupRequest],
    ) -> LookupResult | BatchLookupResult:
        queries, batch = payload.as_queries()
        gate = services.gate
        checked = _checked(queries, gate.policy)
        # The guard took one token; a batch costs as many requests as its hundreds of queries.
        for _ in range(math.ceil(len(checked) / QUERIES_PER_TOKEN) - 1):
            await services.limiter.take(f"client:{caller.client_id}")
        async with services.connection() as conn:
            index = await gate.hash_lists.index(conn)
        found = await asyncio.to_thread(_match_all, index, checked, caller.tenant)
        entries = await gate.hash_lists.entries(hit for hits in found for hit in hits)
        results = []
        for hits in found:
            matches = []
            for hit in hits:
                entry = entries[hit.entry_id]
                code = match_code(gate.policy.hashes, hit.signal, hit.action, hit.distance)
                matches.append(
                    HashMatchView(
                        list=hit.list,
                        signal=hit.signal,
                        distance=hit.distance,
                        label=entry.label,
                        source=entry.source,
                        reviewed=hit.reviewed,
                        crop=entry.crop,
                        # Every hit is within the review distance, so there is a code;
                        # were there none, the match would block (fail closed).
                        action=gate.policy.action(code or "hash_match_block"),
                    )
                )
            results.append(LookupResult(matches=matches))
        async with services.unit_of_work(caller) as uow:
            uow.record(
                "hashes.looked_up",
                subject_type="api_client",
                subject_id=caller.client_id,
                payload={"queries": len(checked), "matched": sum(1 for r in results if r.matches)},
            )
        return BatchLookupResult(results=results) if batch else results[0]
