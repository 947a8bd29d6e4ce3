"""A typed HTTP client for the registry (the package lands with its tests next)."""
