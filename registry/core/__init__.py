"""The shell every domain stands on: settings, database, errors, audit log, authentication,
logging, outbound requests, rate limits, strict JSON and the signing identity.

Nothing here knows a domain; domains import from here, never the other way round.

owns: api_clients, api_keys (``auth``), audit_events, audit_head, audit_checkpoints
(``audit``), c2pa_identity (``signing_identity``), schema_migrations (``db``),
rate_limit_buckets (``ratelimit``), kpi_snapshot (``kpi_snapshot``), and signing_keys, which
the ``keys`` floor's key ring keeps for the service. Besides the domains' repositories, only
these modules run SQL (``tests/registry/test_repositories.py``).
"""
