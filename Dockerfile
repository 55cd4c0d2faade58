# The orchestrator image: the runtime plus this repository's example project.
# One image serves every orchestrator role of docker-compose.yml (worker, api, migrate);
# the command picks the role. Point ORCHESTRATOR_PROJECT_DIR at a mounted folder to run
# your own project's plans, skills and models instead of the example.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ORCHESTRATOR_PROJECT_DIR=/app \
    ORCHESTRATOR_STATE_DIR=/var/lib/orchestrator \
    ORCHESTRATOR_LOG_FORMAT=json \
    ORCHESTRATOR_METRICS_HOST=0.0.0.0 \
    ORCHESTRATOR_API_HOST=0.0.0.0
RUN useradd --system --uid 10001 --home-dir /app orchestrator \
    && mkdir -p /var/lib/orchestrator \
    && chown orchestrator /var/lib/orchestrator
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=orchestrator models.yaml ./
COPY --chown=orchestrator workflows ./workflows
COPY --chown=orchestrator skills ./skills
COPY --chown=orchestrator connectors ./connectors
COPY --chown=orchestrator model_scripts ./model_scripts
USER orchestrator
# Worker metrics and health (9464); `orchestrator api` (8000).
EXPOSE 9464 8000
CMD ["orchestrator", "worker"]
