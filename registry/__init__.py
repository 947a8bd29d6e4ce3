"""The consent and provenance registry service (floor 4: the shell and the consent domain)."""
