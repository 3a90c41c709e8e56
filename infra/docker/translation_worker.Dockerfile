# syntax=docker/dockerfile:1
# Translation worker image: CTranslate2 (NLLB-200 / opus-mt); health/metrics on 8082.
# No translation model is installable from a package: mount a CTranslate2 model directory and
# point TRANSLATION_MODEL at it, or give a hub id (needs network at first start). Without a
# model the worker stays up and reports it in /health.
#
# Build from the repository root:
#   docker build -f infra/docker/translation_worker.Dockerfile -t speech-pipeline/translation-worker .
# Build arguments:
#   VARIANT=cuda     add cuBLAS and cuDNN 9 wheels for CTranslate2 on a GPU.
#   EXTRAS=translation,easynmt  also the project's easynmt extra (pulls PyTorch: a much larger image).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG VARIANT=cpu

FROM ${PYTHON_IMAGE} AS builder
ARG VARIANT
ARG EXTRAS=translation
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install --timeout=300 --retries=10 ".[${EXTRAS}]" \
 && if [ "$VARIANT" = "cuda" ]; then \
        pip install --timeout=300 --retries=10 "nvidia-cublas-cu12>=12,<13" "nvidia-cudnn-cu12>=9,<10"; \
    elif [ "$VARIANT" != "cpu" ]; then \
        echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1; \
    fi

FROM ${PYTHON_IMAGE} AS runtime-base
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 /home/app/.cache /models
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    HEALTH_PORT=8082 \
    MODEL_CACHE_DIR=/home/app/.cache/speech-pipeline

FROM runtime-base AS runtime-cpu

FROM runtime-base AS runtime-cuda
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM runtime-${VARIANT} AS runtime
USER 10001:10001
WORKDIR /home/app
EXPOSE 8082
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8082'), timeout=4)" || exit 1
STOPSIGNAL SIGTERM
CMD ["python", "-m", "translation_worker"]
