"""PostgreSQL restarted (``pg_ctl restart -m immediate``) under a mixed load.

What must hold: no 5xx but 503, every 503 with Retry-After, a 2xx within 5 s of the server
being ready, no request made after that fails, and every acknowledged write readable with its
audit event, the chain intact (`registry audit verify`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx

from tests.faults import support
from tests.support import ADMIN_KEY, bearer
from tests.web.support import make_world

if TYPE_CHECKING:
    from pathlib import Path

    from tests.faults.support import Outcome, RestartablePostgres

RESTARTS = 3
TASKS = 4
LOAD_SECONDS = 9.0
MAX_REQUESTS = 4000
RECOVERY_SECONDS = 5.0
UNAVAILABLE = {"database_unavailable", "decision_not_recorded"}


def _ok(outcome: Outcome) -> bool:
    return outcome.status is not None and outcome.status < 300


def _figures(outcomes: list[Outcome], restarts: list[tuple[float, float]]) -> dict[str, object]:
    unavailable = [o for o in outcomes if o.status == 503]
    recovery = []
    for _, ready in restarts:
        after = [o.done for o in outcomes if _ok(o) and o.done >= ready]
        recovery.append(round(min(after) - ready, 3) if after else None)
    return {
        "requests": len(outcomes),
        "2xx": sum(1 for o in outcomes if _ok(o)),
        "503": len(unavailable),
        "503_codes": sorted({o.code for o in unavailable if o.code}),
        "slowest_503_s": round(max((o.seconds for o in unavailable), default=0.0), 3),
        "first_2xx_after_ready_s": recovery,
        "restart_s": [round(ready - began, 3) for began, ready in restarts],
        # Decisions made while evidence could not be read fail closed (review, blocked).
        "decisions": dict(Counter(o.safety_status for o in outcomes if o.safety_status)),
    }


def _after_ready(outcomes: list[Outcome], restarts: list[tuple[float, float]]) -> list[Outcome]:
    """Requests made while the server was up again and answered before the next restart
    began (one in flight when it began may meet it)."""
    windows = [
        (ready, restarts[i + 1][0] if i + 1 < len(restarts) else float("inf"))
        for i, (_, ready) in enumerate(restarts)
    ]
    return [o for o in outcomes if any(start <= o.sent and o.done < end for start, end in windows)]


async def test_postgres_restarts_under_load(
    restartable_pg: RestartablePostgres, fault_database: str, tmp_path: Path
) -> None:
    port = support.free_port()
    env = support.service_env(
        fault_database, tmp_path, port, db_pool_max="4", db_acquire_timeout="2"
    )
    with support.running(env, tmp_path / "serve.log") as service:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
            world = await make_world(http, bearer(ADMIN_KEY))
            load = await support.Load.prepare(world)
            restarted: list[tuple[float, float]] = []

            async def restarts() -> None:
                for _ in range(RESTARTS):
                    await asyncio.sleep(1.5)
                    began = time.monotonic()
                    restarted.append((began, await asyncio.to_thread(restartable_pg.restart)))

            async with asyncio.timeout(LOAD_SECONDS + 30):
                await asyncio.gather(
                    load.run(tasks=TASKS, seconds=LOAD_SECONDS, max_requests=MAX_REQUESTS),
                    restarts(),
                )
            outcomes = load.outcomes
            figures = _figures(outcomes, restarted)
            print("restart figures:", json.dumps(figures))  # noqa: T201 - docs/reliability.md

            # Every answer is a success or a 503 that says when to retry: no 500, no 4xx, no
            # dropped connection.
            unavailable = [o for o in outcomes if o.status == 503]
            others = [o for o in outcomes if not _ok(o) and o.status != 503]
            assert others == [], others[:5]
            assert all(o.retry_after for o in unavailable), unavailable[:5]
            assert {o.code for o in unavailable} <= UNAVAILABLE
            # The restarts really hit the load, and the service came back after each.
            assert unavailable, "no request met a restart"
            assert len(restarted) == RESTARTS
            for _, ready in restarted:
                first = min((o.done for o in outcomes if _ok(o) and o.done >= ready), default=None)
                assert first is not None, figures
                assert first - ready < RECOVERY_SECONDS, figures
            # No request made once the server was ready met a dead pooled connection.
            after = _after_ready(outcomes, restarted)
            assert len(after) > RESTARTS, figures
            late = [o for o in after if not _ok(o)]
            assert late == [], late[:5]

            acknowledged = [o for o in outcomes if o.ident is not None]
            assert {o.op for o in acknowledged} == {"decide", "consent", "client"}
            assert await support.unreadable(world, acknowledged) == []
            ids = [o.ident for o in acknowledged if o.ident is not None]
            assert await support.audited(fault_database, ids) == set(ids)

    verified = support.audit_verify(env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
