"""registry/consent."""
