"""The package list, which pyproject.toml cannot state: see [tool.setuptools.package-dir] there."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["registry*", "verifier*", "moderation*", "keys*"]),
        # The top-level migrations/ folder, mapped in pyproject.toml.
        "registry.migrations",
    ],
)
