# syntax=docker/dockerfile:1
# One image for the operator, the REST gateway and the clustering Jobs:
#   recluster operator | recluster gateway | recluster run-job
# It runs as a non-root user (10001) with a read-only root filesystem; only
# /tmp (an emptyDir in the cluster) is written.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtualenv with the project and its dependencies ------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv --without-pip /opt/venv

# Dependencies first, from the project's own metadata (pyproject.toml), with a
# placeholder package: this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p operator/recluster \
    && touch operator/recluster/__init__.py \
    && pip --python /opt/venv/bin/python install . \
    && pip --python /opt/venv/bin/python uninstall --yes recluster \
    && rm -rf build operator

# Then the project itself (no dependency resolution: they are all installed).
COPY operator/ operator/
RUN pip --python /opt/venv/bin/python install --no-deps . \
    && rm -rf build operator/*.egg-info

# Compile the engine's numba kernels into the cache the Jobs start from
# (portable CPU target, so nodes of another CPU model can use it too).
ENV OMP_WAIT_POLICY=PASSIVE \
    NUMBA_CACHE_DIR=/opt/recluster/numba-cache \
    NUMBA_CPU_NAME=generic
RUN /opt/venv/bin/python -m recluster.engine.warmup \
    && /opt/venv/bin/recluster --version

# --- runtime ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/recluster/recluster
LABEL org.opencontainers.image.title="recluster" \
      org.opencontainers.image.description="Kubernetes operator that keeps embedding collections clustered: operator, REST gateway and clustering job" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="recluster"

RUN groupadd --system --gid 10001 recluster \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin recluster

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/recluster/numba-cache /opt/recluster/numba-cache
COPY --chmod=0755 tools/docker-entrypoint.sh /usr/local/bin/recluster-entrypoint

# NUMBA_CACHE_DIR is under /tmp: numba needs a writable cache directory, and the
# entry point seeds it from the prebuilt one (see tools/docker-entrypoint.sh).
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_WAIT_POLICY=PASSIVE \
    NUMBA_CPU_NAME=generic \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    RECLUSTER_NUMBA_CACHE_SEED=/opt/recluster/numba-cache

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/recluster-entrypoint"]
CMD ["--help"]
