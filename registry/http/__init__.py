"""registry/http."""
