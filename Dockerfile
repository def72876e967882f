# syntax=docker/dockerfile:1
# Build: docker build -t executive-assistant .   Run: docker run -p 8000:8000 executive-assistant
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md constraints.txt build-constraints.txt ./
COPY assistant ./assistant
COPY governance ./governance
COPY integrations ./integrations
# The same install step as the Makefile (pip and every package from the lock), plus the
# PostgreSQL driver for production.
RUN pip install --quiet pip==26.3 && \
    pip install --quiet --constraint constraints.txt --build-constraint build-constraints.txt ".[postgres]"

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ASSISTANT_DATA_DIR=/var/lib/assistant \
    ASSISTANT_SERVER__HOST=0.0.0.0
RUN useradd --system --uid 10001 --home-dir /var/lib/assistant --create-home assistant
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config ./config
USER assistant
EXPOSE 8000
# No secret is baked in: ASSISTANT_SECRET_KEY and credentials come from the environment.
# `serve` executes approved actions too (ASSISTANT_GOVERNANCE__EMBEDDED_WORKER, default true),
# on PostgreSQL through procrastinate; scaled out, run `assistant worker` in more containers.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
CMD ["sh", "-c", "assistant db upgrade && assistant serve --host 0.0.0.0 --port 8000"]
