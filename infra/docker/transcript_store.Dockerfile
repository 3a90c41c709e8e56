# syntax=docker/dockerfile:1
# Transcript store image: consumes the transcripts stream into PostgreSQL (or SQLite);
# health/metrics on 8083. The same image runs the migration step:
#   python -m transcript_store.migrate upgrade
# Build from the repository root:
#   docker build -f infra/docker/transcript_store.Dockerfile -t speech-pipeline/transcript-store .
# Two stages: the builder installs the project into a virtualenv (what `make install` does);
# the runtime stage copies only that virtualenv, so no compiler or pip cache ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# Every runtime dependency ships as a manylinux wheel, so no build tools are needed here either;
# the timeout and retries are the seed's cure for broken pipes on large downloads.
RUN pip install --timeout=300 --retries=10 .

FROM ${PYTHON_IMAGE} AS runtime
# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 /home/app/.cache
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    HEALTH_PORT=8083
USER 10001:10001
WORKDIR /home/app
EXPOSE 8083
# Liveness only: readiness (/ready: Redis and the database reachable) is for the orchestrator.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8083'), timeout=4)" || exit 1
STOPSIGNAL SIGTERM
CMD ["python", "-m", "transcript_store"]
