"""2 uvicorn workers against 1 (REGISTRY_WORKERS), on tokens/verify and the gate.

A second service (and a second floor) with 2 workers runs on the same database next to the
1-worker ones; the four are measured in interleaved rounds and the table gives each pair's
throughput ratio. The floor's ratio is what this machine allows (wrk, PostgreSQL and the
servers share its cores), so the service's ratio is best read next to it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bench.context import ScalingTable
from bench.gate import gate_request
from bench.load import Medians, ScalingRow, Target, check, interleave

if TYPE_CHECKING:
    from bench.context import Bench, Table
    from bench.load import Request


def run(bench: Bench) -> list[Table]:
    if not bench.http:
        return [bench.skipped("Workers (issue 12)")]
    world = bench.world()
    verify = world.verify_token_request()
    requests: list[tuple[str, Request]] = [
        ("POST /v1/tokens/verify", verify),
        gate_request(world, "0.3 MP"),
    ]
    rows = []
    with world.scaled() as (service, floor):
        check(service.url, verify, lambda body: json.loads(body)["valid"] is True)
        check(floor.url, verify, lambda body: json.loads(body)["valid"] is True)
        for name, request in requests:
            targets = [
                Target("service-1w", world.service.url, request),
                Target("service-2w", service.url, request),
                Target("floor-1w", world.floor.url, request),
                Target("floor-2w", floor.url, request),
            ]
            runs = interleave(targets, bench.settings)
            rows.append(ScalingRow(name, {k: Medians.of(v) for k, v in runs.items()}))
    return [ScalingTable("Workers (issue 12): throughput with 2 uvicorn workers", rows)]
