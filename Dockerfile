# syntax=docker/dockerfile:1
# orderguard: one image, every service and role. Pick them with the command:
#   docker run ghcr.io/orderguard/orderguard:0.1.0 serve order
#   docker run ghcr.io/orderguard/orderguard:0.1.0 worker inventory
# The base tag is pinned; pin its digest too at release time (deploy/README.md).

# ---- build: resolve and install the package into a self-contained venv ----
FROM python:3.11.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# .dockerignore keeps .git, virtualenvs, runtime data, caches and secrets out.
COPY . .
RUN pip install . \
    && pip check

# ---- runtime: the venv only, no compilers, no source tree, no root ----
FROM python:3.11.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="orderguard" \
      org.opencontainers.image.description="orderguard services: order, inventory, logistics, aftersales, notifier" \
      org.opencontainers.image.source="https://github.com/orderguard/orderguard"

# Fixed UID/GID 10001 so Kubernetes runAsUser/runAsNonRoot and compose `user:` agree with the image.
RUN groupadd --system --gid 10001 orderguard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin orderguard

COPY --from=build /opt/venv /opt/venv

# HOME=/tmp: the root filesystem is read-only in compose and Kubernetes; /tmp is the one writable mount.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    ORDERGUARD_HTTP_PORT=8000

WORKDIR /tmp
USER 10001:10001
EXPOSE 8000

# Liveness only (/healthz has no dependencies); compose and Kubernetes define their own readiness checks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ORDERGUARD_HTTP_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["orderguard"]
CMD ["serve", "order"]
