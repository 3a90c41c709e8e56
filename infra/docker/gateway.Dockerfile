# syntax=docker/dockerfile:1
# Gateway image: WebSocket server (5026) with the dual VAD; health/metrics on 8080.
# Build from the repository root:
#   docker build -f infra/docker/gateway.Dockerfile -t speech-pipeline/gateway .
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
# The gateway extra only: no faster-whisper or CTranslate2. Silero's ONNX file ships inside
# faster-whisper, so the builder unpacks that one wheel aside (no dependencies) and copies the
# file to where gateway.vad looks for it; the rest of the wheel stays in this stage.
RUN pip install --timeout=300 --retries=10 ".[gateway]" \
 && pip install --timeout=300 --retries=10 --no-deps --target /tmp/faster-whisper "faster-whisper>=1.1,<2" \
 && install -D -m 0644 /tmp/faster-whisper/faster_whisper/assets/silero_vad_v6.onnx \
        /opt/venv/share/speech-pipeline/silero_vad_v6.onnx \
 && rm -rf /tmp/faster-whisper

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
    GATEWAY_PORT=5026 \
    HEALTH_PORT=8080
USER 10001:10001
WORKDIR /home/app
EXPOSE 5026 8080
# Liveness only: readiness (/ready) is for the load balancer, which checks it itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8080'), timeout=4)" || exit 1
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
