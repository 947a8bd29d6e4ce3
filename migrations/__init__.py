"""The schema migrations, shipped as the package ``registry.migrations``.

The folder stays at the top of the checkout; pyproject.toml maps it into the wheel, and
``registry.core.db`` reads the ``NNNN_name.sql`` files through ``importlib.resources``.
"""
