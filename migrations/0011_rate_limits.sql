-- Several service processes (issue 12): rate limits and moderation KPIs shared through the
-- database instead of held in each process.

-- One token bucket per caller ("client:<id>" or "addr:<address>"), updated by one statement
-- per check (registry.core.ratelimit): the refill is computed on the database's clock from
-- updated_at, so every process, on any machine, sees the same bucket. `granted` is whether
-- the check that last wrote the row took a token, which that statement's RETURNING reports.
--
-- A bucket that has refilled completely is the same as no row, so the service deletes rows
-- untouched for longer than a full refill: the table holds only the callers of the last
-- minute or so. UNLOGGED: the buckets are worth no WAL. After a crash of PostgreSQL (or on a
-- promoted standby) the table starts empty, every bucket full, which gives each caller at
-- most one burst more; it never lifts the limit. The low fill factor leaves room on each page
-- for HOT updates (no indexed column changes), so a busy bucket does not bloat the index.
CREATE UNLOGGED TABLE rate_limit_buckets (
    key        text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 300),
    tokens     double precision NOT NULL CHECK (tokens >= 0),
    updated_at timestamptz NOT NULL,
    granted    boolean NOT NULL
) WITH (fillfactor = 50);

-- The moderation KPIs (registry.review.stats), computed by one process per refresh interval
-- under an advisory lock and published as gauges by every process from this one row.
CREATE TABLE kpi_snapshot (
    id          integer PRIMARY KEY CHECK (id = 1),
    computed_at timestamptz NOT NULL,
    stats       jsonb NOT NULL
);

-- Buckets are checked, created, refilled and, once full again, deleted.
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_buckets TO registry_service;
-- The snapshot row is written once and then replaced in place.
GRANT SELECT, INSERT, UPDATE ON kpi_snapshot TO registry_service;
