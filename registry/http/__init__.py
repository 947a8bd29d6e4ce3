"""The HTTP edge: Litestar controllers of every domain, auth guards, problems, OpenAPI."""
