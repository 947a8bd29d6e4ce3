"""Benchmarks: our code next to the raw library doing the same work, in the same run."""
