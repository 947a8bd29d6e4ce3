"""The shell every domain stands on: settings, database, errors, audit log, authentication,
logging, outbound requests, rate limits, strict JSON and the signing identity.

Nothing here knows a domain; domains import from here, never the other way round.
"""
