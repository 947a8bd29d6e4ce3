"""`/metrics` with several workers is the whole service's view, from any of them (issue 12).

A real `registry serve` with REGISTRY_WORKERS=2 on the tests' PostgreSQL: its supervisor
keeps the workers' metrics in a private directory (PROMETHEUS_MULTIPROC_DIR), which the test
finds because it gives the service a TMPDIR of its own. The files also show which worker
counted what, so the test can tell that both served requests and both answered scrapes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import asyncpg
import msgspec
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from registry.cli import supervise
from registry.review.stats import AppealStats, ClassifierStats, Percentiles, Stats
from tests.faults.support import Service, free_port, service_env
from tests.support import ADMIN_KEY, bearer

log = logging.getLogger(__name__)
HEALTHZ = 40
ADMIN_READS = 10
SCRAPES = 12
MAX_SCRAPES = 60
# The stored KPI snapshot the workers publish (REGISTRY_STATS_REFRESH_INTERVAL is an hour in
# service_env: fresh, so no worker recomputes it), and what each gauge must then show once.
STATS = Stats(
    generated_at=dt.datetime.now(dt.UTC),
    decisions=5,
    by_status={"review": 3, "allowed": 2},
    by_current_status={"review": 2, "blocked": 1, "allowed": 2},
    by_reason={"classifier_unavailable": 1},
    blocked_rate=0.0,
    review_latency_seconds=Percentiles(count=1, p50=60.0, p95=60.0),
    open_tickets=2,
    open_tickets_past_deadline=1,
    appeals=AppealStats(filed=1, decided=1, overturned=1, overturn_rate=1.0),
    classifiers=[
        ClassifierStats(
            classifier="http",
            calls=5,
            errors={"timeout": 1},
            invalid_scores=0,
            latency_ms=Percentiles(count=5, p50=12.5, p95=40.0),
        )
    ],
)
KPIS = {
    ("registry_moderation_decisions", (("status", "review"),)): 3.0,
    ("registry_moderation_decisions", (("status", "allowed"),)): 2.0,
    ("registry_moderation_decisions_current", (("status", "review"),)): 2.0,
    ("registry_moderation_decisions_current", (("status", "blocked"),)): 1.0,
    ("registry_moderation_decisions_current", (("status", "allowed"),)): 2.0,
    ("registry_moderation_decision_reasons", (("reason", "classifier_unavailable"),)): 1.0,
    ("registry_review_latency_seconds", (("quantile", "0.5"),)): 60.0,
    ("registry_review_latency_seconds", (("quantile", "0.95"),)): 60.0,
    ("registry_review_tickets_open", ()): 2.0,
    ("registry_review_tickets_past_deadline", ()): 1.0,
    ("registry_appeal_overturn_ratio", ()): 1.0,
    ("registry_classifier_calls", (("classifier", "http"),)): 5.0,
    ("registry_classifier_errors", (("classifier", "http"), ("error", "timeout"))): 1.0,
    ("registry_classifier_latency_ms", (("classifier", "http"), ("quantile", "0.5"))): 12.5,
    ("registry_classifier_latency_ms", (("classifier", "http"), ("quantile", "0.95"))): 40.0,
}
KPI_FAMILIES = {name for name, _ in KPIS}


async def _store_snapshot(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO kpi_snapshot (id, computed_at, stats) VALUES (1, now(), $1::jsonb)",
            msgspec.json.encode(STATS).decode(),
        )
    finally:
        await conn.close()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One request on a connection of its own (urllib opens one each time)."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return response.status, response.read().decode()


def _count(text: str, path: str, status: str = "200") -> float:
    for family in text_string_to_metric_families(text):
        if family.name != "registry_requests":
            continue
        for sample in family.samples:
            if (
                sample.name == "registry_requests_total"
                and sample.labels["path"] == path
                and sample.labels["status_code"] == status
            ):
                return sample.value
    return 0.0


def _metrics_dir(tmpdir: Path, timeout: float = 10) -> Path:
    deadline = time.monotonic() + timeout
    while not (found := list(tmpdir.glob("registry-metrics-*"))):
        assert time.monotonic() < deadline, "the supervisor made no metrics directory"
        time.sleep(0.1)
    assert len(found) == 1, found
    return found[0]


def _requests_by_worker(directory: Path, path: str) -> Counter[int]:
    """Each worker's own count of ``path`` answered 200, from its counter file."""
    counts: Counter[int] = Counter()
    for file in directory.glob("counter_*.db"):
        pid = int(file.stem.removeprefix("counter_"))
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(file)):
            _, name, labels, _ = json.loads(key)
            if (
                name == "registry_requests_total"
                and labels["path"] == path
                and labels["status_code"] == "200"
            ):
                counts[pid] += int(value)
    return counts


def _wait_counted(directory: Path, path: str, n: int) -> Counter[int]:
    """Each worker's count of ``path`` once they sum to ``n``: a worker counts a request just
    after its answer went out, so the next request may reach the other one first."""
    deadline = time.monotonic() + 5
    while sum((counts := _requests_by_worker(directory, path)).values()) != n:
        assert time.monotonic() < deadline, (path, n, counts)
        time.sleep(0.02)
    return counts


def test_every_worker_answers_metrics_for_the_whole_service(
    database_url, service_database_url, tmp_path
):
    asyncio.run(_store_snapshot(database_url))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = service_env(service_database_url, tmp_path / "data", free_port(), workers="2")
    # An inherited directory is never used: the supervisor makes its own.
    env.update({"TMPDIR": str(tmpdir), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "stale")})
    service = Service(env, tmp_path / "serve.log")
    url = service.base_url
    try:
        service.wait_ready()
        directory = _metrics_dir(tmpdir)
        assert directory.stat().st_mode & 0o777 == 0o700
        assert not (tmp_path / "stale").exists()

        healthz, by_worker = _load(service, directory)
        answers, scrapes_by_worker = _scrape(url, directory)
        log.info(
            "healthz by worker %s, scrapes by worker %s", dict(by_worker), dict(scrapes_by_worker)
        )
        # A scrape is counted once it has been answered: the k-th sees the k before it.
        for k, (status, text) in enumerate(answers):
            assert status == 200
            assert _count(text, "/healthz") == healthz
            assert _count(text, "/v1/admin/clients") == ADMIN_READS
            assert _count(text, "/metrics") == k
            _assert_one_sample_per_label_set(text)

        # A worker killed: the supervisor starts another and marks the dead one's live
        # gauges gone; what it counted stays in the totals.
        dead = next(iter(by_worker))
        os.kill(dead, signal.SIGKILL)
        killed = time.monotonic()
        while list(directory.glob(f"gauge_live*_{dead}.db")):
            assert time.monotonic() - killed < 10, "the dead worker's gauges were not removed"
            time.sleep(0.05)
        log.info(
            "dead worker's live gauges removed %.2f s after SIGKILL", time.monotonic() - killed
        )
        assert (directory / f"counter_{dead}.db").exists()
        status, text = _get(f"{url}/metrics")
        assert status == 200
        assert _count(text, "/healthz") == healthz
        _assert_one_sample_per_label_set(text)
        # Its replacement writes files of its own as soon as it has imported the service.
        deadline = time.monotonic() + 20
        while not {
            int(f.stem.rpartition("_")[2]) for f in directory.glob("gauge_livemostrecent_*.db")
        } - set(by_worker):
            assert time.monotonic() < deadline, "no worker replaced the dead one\n" + service.log()
            time.sleep(0.1)
    finally:
        assert service.stop() == 0, service.log()
    # The supervisor removes its directory when it ends.
    assert list(tmpdir.glob("registry-metrics-*")) == []


def _load(service: Service, directory: Path) -> tuple[int, Counter[int]]:
    """GET /healthz on fresh connections until both workers have answered (the second may
    still be starting when the first is ready), at least HEALTHZ times; then ADMIN_READS
    authenticated reads. How many /healthz, and each worker's share."""
    started = time.monotonic()
    healthz = 0
    while healthz < HEALTHZ or len(_requests_by_worker(directory, "/healthz")) < 2:
        assert time.monotonic() - started < 20, "one worker never answered\n" + service.log()
        assert _get(f"{service.base_url}/healthz")[0] == 200
        healthz += 1
        if healthz >= HEALTHZ:
            time.sleep(0.05)  # waiting for the second worker: no need to flood the first
    for _ in range(ADMIN_READS):
        assert _get(f"{service.base_url}/v1/admin/clients", bearer(ADMIN_KEY))[0] == 200
    _wait_counted(directory, "/v1/admin/clients", ADMIN_READS)
    return healthz, _wait_counted(directory, "/healthz", healthz)


def _scrape(url: str, directory: Path) -> tuple[list[tuple[int, str]], Counter[int]]:
    """GET /metrics at least SCRAPES times, and until both workers have answered some; each
    one counted before the next is sent. The answers, and each worker's share."""
    answers: list[tuple[int, str]] = []
    by_worker: Counter[int] = Counter()
    while len(answers) < SCRAPES or len(by_worker) < 2:
        assert len(answers) < MAX_SCRAPES, "one worker answered every scrape"
        answers.append(_get(f"{url}/metrics"))
        by_worker = _wait_counted(directory, "/metrics", len(answers))
    return answers, by_worker


def _assert_one_sample_per_label_set(text: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # Multiprocess mode: no process collector, no per-process copies of any gauge.
    assert not any(name.startswith("process_") for name in families)
    for family in families.values():
        seen = Counter((s.name, tuple(sorted(s.labels.items()))) for s in family.samples)
        assert all(n == 1 for n in seen.values()), (family.name, seen)
        assert all("pid" not in s.labels for s in family.samples), family.name
    # Every worker published the same snapshot: one sample per label set, its value.
    kpis = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for name in KPI_FAMILIES
        for s in families[name].samples
    }
    assert kpis == KPIS
    in_progress = families["registry_requests_in_progress"].samples
    # The scrape being answered, and nothing else.
    assert sum(s.value for s in in_progress) == 1


def test_one_worker_keeps_the_in_process_registry(monkeypatch, tmp_path):
    """With one worker nothing sets the variable, and one inherited is dropped first."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRY_CONFIG_FILE", str(tmp_path / "missing.toml"))
    # main() drops it before it loads anything (the missing file then ends it early).
    assert supervise.main() == 2
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_the_metrics_directory_is_private_fresh_and_removed(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setenv("prometheus_multiproc_dir", "/elsewhere")
    with supervise.metrics_dir() as name:
        path = Path(name)
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == name
        assert "prometheus_multiproc_dir" not in os.environ
        assert path.parent == tmp_path
        assert path.stat().st_mode & 0o777 == 0o700
        assert list(path.iterdir()) == []
        (path / "counter_1.db").touch()
    assert not path.exists()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


# Run in a fresh interpreter: multiprocess mode is chosen when prometheus_client is imported.
_VANISHING = """
import sys
import msgspec
from registry.http.observability import exposition
from registry.review import publish_stats
from registry.review.stats import Percentiles, Stats
stats = msgspec.json.decode(sys.argv[1], type=Stats)
publish_stats(stats)
no_latency = Percentiles(count=0, p50=None, p95=None)
classifier = msgspec.structs.replace(stats.classifiers[0], latency_ms=no_latency)
publish_stats(
    msgspec.structs.replace(stats, by_current_status={"allowed": 2}, classifiers=[classifier])
)
sys.stdout.write(exposition().decode())
"""


def test_in_multiprocess_mode_a_vanished_label_set_reads_zero_or_nan(tmp_path):
    """The files cannot forget a label set: one that left the figures is overwritten."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _VANISHING, msgspec.json.encode(STATS).decode()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    current = {
        s.labels["status"]: s.value
        for s in families["registry_moderation_decisions_current"].samples
    }
    assert current == {"allowed": 2.0, "review": 0.0, "blocked": 0.0}
    latency = families["registry_classifier_latency_ms"].samples
    assert len(latency) == 2
    assert all(math.isnan(s.value) for s in latency)
    assert "process_cpu_seconds_total" not in done.stdout
