# syntax=docker/dockerfile:1
# One image for every lull service: `lull ingest`, `lull processor`, `lull sender`
# (and the operator tools `lull stats`, `lull dead`, `lull flush`, `lull simulate`). Build
# from the repository root:
#   docker build -t lull .
# Compose (deploy/docker-compose.yml) and Kubernetes (deploy/k8s/) pick the command.
#
# Build arguments (all optional):
#   BASE_IMAGE      any Debian-like image with python3 (>= 3.11) and its venv module.
#                   `make containers` passes a Debian bookworm built with debootstrap.
#   EXTRA_CA_CERTS  PEM certificates pip must trust on top of its own, for networks whose
#                   HTTPS proxy re-signs traffic. Used in the build stage only.
# Targets: the default is the production image; `--target dev` adds the development tools
# (deploy/image/dev-only.txt: `lull fake-graph`, `lull dev`), which the compose stack's fake
# Graph API needs.
ARG BASE_IMAGE=python:3.12-slim

# Build stage: two virtual environments, each installed from uv.lock with its hashes checked
# (the runtime dependencies only: no dev extra, no compiler: hiredis, orjson and uvloop ship
# manylinux wheels for x86_64 and arm64). uv itself comes from the package index, pinned with
# its hashes in requirements-uv.txt. /opt/lull-dev gets the whole source; /opt/lull the
# source less the dev tools. A listed path that no longer exists fails the build, so the list
# follows the code. No uv cache: a cached build of lull would not see the removed files.
FROM ${BASE_IMAGE} AS build
ARG EXTRA_CA_CERTS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
WORKDIR /src
COPY pyproject.toml README.md uv.lock requirements-uv.txt ./
# lull/ links to the folders below: the installed import names are lull.common, … (README).
COPY lull ./lull
COPY common ./common
COPY ingest ./ingest
COPY processor ./processor
COPY sender ./sender
COPY ops ./ops
COPY dev ./dev
COPY deploy/image/dev-only.txt /tmp/dev-only.txt
RUN set -eu; \
    python3 -m venv /opt/uv; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        bundle=/tmp/ca-bundle.pem; \
        /opt/uv/bin/python -c 'import pip._vendor.certifi as c; print(open(c.where()).read())' > "$bundle"; \
        printf '%s\n' "$EXTRA_CA_CERTS" >> "$bundle"; \
        export PIP_CERT="$bundle" SSL_CERT_FILE="$bundle"; \
    fi; \
    /opt/uv/bin/pip install --quiet --no-deps --require-hashes -r requirements-uv.txt; \
    uv="/opt/uv/bin/uv"; \
    UV_PROJECT_ENVIRONMENT=/opt/lull-dev "$uv" sync --quiet --locked --no-editable \
        --python /usr/bin/python3; \
    sed -e '/^#/d' -e '/^$/d' /tmp/dev-only.txt | while read -r path; do \
        rm -r -- "$path"; rm -f -- "lull/$path"; \
    done; \
    rm -rf /src/build /src/*.egg-info; \
    UV_PROJECT_ENVIRONMENT=/opt/lull "$uv" sync --quiet --locked --no-editable \
        --python /usr/bin/python3

# What both images share: the non-root user and the container settings.
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 lull \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin lull
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Containers listen on every interface: the defaults (127.0.0.1) suit a laptop only.
# JSON logs: no terminal in a container, but say it rather than rely on the detection.
ENV LULL_INGEST_HOST=0.0.0.0 LULL_METRICS_HOST=0.0.0.0 LULL_LOG_FORMAT=json
WORKDIR /tmp
# 8080 ingest webhook; 9100 ingest metrics; 9101 processor metrics; 9102 sender metrics.
EXPOSE 8080 9100 9101 9102
# Every service stops reading on SIGTERM, settles what it holds and exits within its bound.
STOPSIGNAL SIGTERM
ENTRYPOINT ["lull"]
CMD ["--help"]

# Development image: lull with its dev tools (`lull fake-graph`, `lull dev`).
FROM runtime AS dev
COPY --from=build /opt/lull-dev /opt/lull-dev
ENV PATH=/opt/lull-dev/bin:$PATH
USER 10001:10001

# The production image (the default target).
FROM runtime AS production
COPY --from=build /opt/lull /opt/lull
ENV PATH=/opt/lull/bin:$PATH
# Numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
