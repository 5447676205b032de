# syntax=docker/dockerfile:1
# One image for every lull service: `lull ingest`, `lull processor`, `lull sender`
# (and the operator tools, e.g. `lull stats`). Build from the repository root:
#   docker build -t lull .
# Compose (deploy/docker-compose.yml) and Kubernetes (deploy/k8s/) pick the command.

# Build stage: wheels of lull and its runtime dependencies (no dev extras), so the final
# image gets neither pip's cache nor the source tree. Every dependency ships manylinux
# wheels for x86_64 and arm64 (hiredis, orjson, uvloop), so no compiler is needed.
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
# lull/ links to the folders below: the installed import names are lull.common, … (README).
COPY lull ./lull
COPY common ./common
COPY ingest ./ingest
COPY processor ./processor
COPY sender ./sender
COPY ops ./ops
RUN pip wheel --wheel-dir /wheels .

FROM python:3.12-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels lull \
 && groupadd --system --gid 10001 lull \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin lull
# Containers listen on every interface: the defaults (127.0.0.1) suit a laptop only.
# JSON logs: no terminal in a container, but say it rather than rely on the detection.
ENV LULL_INGEST_HOST=0.0.0.0 LULL_METRICS_HOST=0.0.0.0 LULL_LOG_FORMAT=json
# Numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 8080 ingest webhook; 9100 ingest metrics; 9101 processor metrics; 9102 sender metrics.
EXPOSE 8080 9100 9101 9102
# Every service stops reading on SIGTERM, settles what it holds and exits within its bound.
STOPSIGNAL SIGTERM
ENTRYPOINT ["lull"]
CMD ["--help"]
