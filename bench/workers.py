"""2 uvicorn workers against 1 (REGISTRY_WORKERS), on tokens/verify and the gate.

A second service (and a second floor) with 2 workers runs on the same database next to the
1-worker ones; the four are measured in interleaved rounds and the table gives each pair's
throughput ratio. The floor's ratio is what this machine allows (wrk, PostgreSQL and the
servers share its cores), so the service's ratio is best read next to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

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
        notes = [_supervisor_rss(service.proc.pid if service.proc else None), _scrapes(service.url)]
    return [ScalingTable("Workers (issue 12): throughput with 2 uvicorn workers", rows, notes)]


def _supervisor_rss(pid: int | None) -> str:
    """The supervisor's resident memory (``registry serve`` execs into it, same pid)."""
    if pid is None:
        return "Supervisor RSS: not measured (no process)."
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    rss = int(match.group(1)) / 1024 if match else float("nan")
    return (
        f"Supervisor RSS with 2 workers and the 1,000,000-entry list loaded: {rss:.1f} MB "
        "(target <= 60 MB)."
    )


_VERIFY_COUNT = re.compile(
    r'^registry_requests_total\{[^}]*path="/v1/tokens/verify"[^}]*\} ([0-9.e+]+)$', re.MULTILINE
)


def _scrapes(url: str, times: int = 12) -> str:
    """/metrics over fresh connections (so both workers answer): the same count every time?"""
    counts = []
    for _ in range(times):
        with httpx.Client(base_url=url, timeout=30) as http:
            body = http.get("/metrics").text
        counts.append(sum(float(v) for v in _VERIFY_COUNT.findall(body)))
    same = len(set(counts)) == 1
    return (
        f"/metrics from the 2-worker service, {times} scrapes on fresh connections: "
        f"tokens/verify request count {'equal in every scrape' if same else 'DIFFERS'} "
        f"({', '.join(f'{c:,.0f}' for c in sorted(set(counts)))})."
    )
