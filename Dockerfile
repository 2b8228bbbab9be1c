# botkit in a container: the bots of this project's bots.yaml and bots/, run by `botkit run`.
#   docker build -t my-bots .
#   docker run --env-file bots.env -v botkit-state:/app/.botkit my-bots
# bots.env holds XSHATHRA_SERVER_API_KEY (and XSHATHRA_PROJECT_ID, ... as bots.yaml reads them);
# with Docker or Kubernetes secrets, write server_api_key_file: /run/secrets/<name> instead.
# `docker stop` waits 10s by default, the same as --grace: give it more (docker stop -t 20,
# stop_grace_period: 20s, terminationGracePeriodSeconds: 20). See docs/deploy.md.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY botkit ./botkit
# A plain install: no dev hub, no file watcher, no test tools (see pyproject's extras).
RUN python -m venv /opt/botkit && /opt/botkit/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/botkit/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/botkit /opt/botkit
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app botkit \
    && mkdir -p /app/.botkit && chown botkit:botkit /app/.botkit
WORKDIR /app
# Code and configuration belong to root: the bots may read them, not change them.
COPY bots.yaml ./
COPY bots ./bots
# The state file (bots.yaml's state.path, .botkit/state.sqlite) survives a new container.
VOLUME ["/app/.botkit"]
USER botkit
# The ops endpoint (/healthz, /readyz, /metrics) for the platform's probes and Prometheus.
EXPOSE 9180
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9180/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["botkit", "run", "-c", "/app/bots.yaml", "--grace", "10s", "--log-format", "json", "--ops-host", "0.0.0.0", "--ops-port", "9180"]
