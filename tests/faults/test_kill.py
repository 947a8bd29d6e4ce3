"""The service killed with SIGKILL in the middle of gate decisions.

A decision the client saw (200) was committed with its audit event before the answer left;
one in flight when the process died left nothing half-written, and the chain verifies.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import asyncpg
import httpx

from tests.faults import support
from tests.support import ADMIN_KEY, bearer
from tests.web.support import make_world

if TYPE_CHECKING:
    from pathlib import Path

TASKS = 4
KILL_AFTER = 2.0
MAX_REQUESTS = 2000


async def test_kill_9_during_gate_decisions_loses_no_acknowledged_decision(
    fault_database: str, tmp_path: Path
) -> None:
    env = support.service_env(fault_database, tmp_path, support.free_port())
    service = support.Service(env, tmp_path / "serve.log")
    try:
        service.wait_ready()
        async with httpx.AsyncClient(base_url=service.base_url, timeout=15) as http:
            world = await make_world(http, bearer(ADMIN_KEY))
            load = await support.Load.prepare(world)

            async def decide() -> None:
                while service.proc.poll() is None and len(load.outcomes) < MAX_REQUESTS:
                    load.outcomes.append(await support.record("decide", load.decide))

            async def kill() -> None:
                await asyncio.sleep(KILL_AFTER)
                service.kill()

            async with asyncio.timeout(30):
                await asyncio.gather(*(decide() for _ in range(TASKS)), kill())
    finally:
        service.kill()

    outcomes = load.outcomes
    acknowledged = [o.ident for o in outcomes if o.ident is not None]
    cut = [o for o in outcomes if o.error is not None]
    print(  # noqa: T201 - figures for docs/reliability.md
        "kill figures:",
        json.dumps({"requests": len(outcomes), "acknowledged": len(acknowledged), "cut": len(cut)}),
    )
    assert acknowledged, "no decision was made before the kill"
    assert all(o.status == 200 for o in outcomes if o.error is None), outcomes[-5:]
    conn = await asyncpg.connect(fault_database)
    try:
        stored = {
            row["decision_id"]
            for row in await conn.fetch(
                "SELECT decision_id FROM moderation_decisions WHERE decision_id = ANY($1::text[])",
                acknowledged,
            )
        }
        decided = {
            row["subject_id"]
            for row in await conn.fetch(
                "SELECT subject_id FROM audit_events WHERE action = 'moderation.decided'"
            )
        }
        # Every stored decision has its event, acknowledged or not: nothing half-written.
        every = {
            r["decision_id"]
            for r in await conn.fetch("SELECT decision_id FROM moderation_decisions")
        }
    finally:
        await conn.close()
    assert stored == set(acknowledged)
    assert set(acknowledged) <= decided
    assert every == decided

    verified = support.audit_verify(env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
