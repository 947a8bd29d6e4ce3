# The service's image: `registry serve` on an external PostgreSQL. compose.yaml runs it with
# PostgreSQL 16, the database roles and the secrets; docs/deployment.md says what it holds and
# what was verified of it. tests/deploy runs this file's commands without a container.
#
# Base images are pinned by tag, not by digest: this file is written and checked on machines
# with no container engine and no access to a registry's manifests, so no digest could be read
# or checked here, and an unchecked digest would be worse than none. Pin them where you build:
# `docker buildx imagetools inspect python:3.11-slim-bookworm` gives the digest, then write
# `FROM python:3.11-slim-bookworm@sha256:...` (and the same for the build stage).

# Build stage: the full image, because pdqhash ships as source only and needs a C++ compiler.
# Same Python (3.11) and Debian (bookworm) as the runtime stage, so the venv runs there as is.
FROM python:3.11-bookworm AS build

# No pip cache in a layer; no byte-code of the build tools' own runs.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv

# The dependencies before the source, so a code change reuses this layer. Every package is
# pinned with its hashes (base, server extra and the bootstrap group, at requirements.lock's
# versions). As the Makefile's install does: pdqhash's build tools (Cython, numpy, setuptools)
# come from the lock first, so the whole lock then installs without build isolation and
# nothing unpinned is fetched to build pdqhash.
COPY requirements-server.lock ./
RUN awk '/^[^ #]/ { keep = ($1 ~ /^(cython|numpy|setuptools)==/) } keep' requirements-server.lock > build.lock \
    && /opt/venv/bin/python -m pip install --require-hashes --no-deps -r build.lock \
    && /opt/venv/bin/python -m pip install --require-hashes --no-deps --no-build-isolation -r requirements-server.lock

# The project itself, not editable (the runtime stage has no source tree), built by the
# locked setuptools. README.md and LICENSE are the package's metadata (pyproject.toml).
COPY pyproject.toml setup.py README.md LICENSE ./
COPY registry ./registry
COPY registry_client ./registry_client
COPY moderation ./moderation
COPY verifier ./verifier
COPY keys ./keys
COPY migrations ./migrations
RUN /opt/venv/bin/python -m pip install --no-deps --no-build-isolation . \
    && /opt/venv/bin/python -m pip check

# Runtime stage: the venv alone on the slim image (no compiler, no source, no pip cache).
FROM python:3.11-slim-bookworm AS runtime

# A fixed uid and gid (not root), so the files the container reads (compose's secrets are bind
# mounts that keep their host owner and mode) can be made readable to it ahead of time.
RUN groupadd --system --gid 10001 registry \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/registry --shell /usr/sbin/nologin registry \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/registry

COPY --from=build /opt/venv /opt/venv

# REGISTRY_HOST: a container is reached on its own interface, never on its loopback.
# REGISTRY_DATA_DIR: the service's home; with an external database it holds nothing secret.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REGISTRY_HOST=0.0.0.0 \
    REGISTRY_PORT=8000 \
    REGISTRY_DATA_DIR=/var/lib/registry

WORKDIR /var/lib/registry
USER 10001:10001
EXPOSE 8000

# /readyz: 200 once the database answers and no migration is pending, 503 otherwise (urlopen
# raises on it, and on a refused connection, so the check exits non-zero). The slim image has
# no curl: the venv's Python asks, on the port the service listens on.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('REGISTRY_PORT', '8000') + '/readyz', timeout=4)"]

ENTRYPOINT ["registry"]
CMD ["serve"]
