# trio-monitor in a container. Build: docker build -t trio-monitor .
# Run (config mounted read-only, history in a named volume, status server on 9180):
#   docker run -d --name trio-monitor --init --stop-timeout 30 \
#     -v "$PWD/monitor.toml:/etc/trio-monitor/monitor.toml:ro" \
#     -v trio-monitor-state:/var/lib/trio-monitor -p 9180:9180 trio-monitor
# Reload the config: docker kill -s HUP trio-monitor. JSON lines: docker logs -f trio-monitor.
# Browser checks (kind = "browser") need Chromium: build the browser variant with
#   docker build --build-arg WITH_CHROMIUM=true -t trio-monitor:browser .
FROM python:3.12-slim-bookworm

# "true": Debian's chromium in the image (browser checks); the default image has none
ARG WITH_CHROMIUM=false

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STATE_DIRECTORY=/var/lib/trio-monitor

# A fixed UID/GID, so a bind-mounted state directory can be chowned to it (10001:10001).
RUN groupadd --system --gid 10001 trio-monitor \
    && useradd --system --uid 10001 --gid trio-monitor --no-create-home \
        --home-dir /var/lib/trio-monitor --shell /usr/sbin/nologin trio-monitor \
    && install -d -o trio-monitor -g trio-monitor -m 0750 /var/lib/trio-monitor \
    && install -d -m 0755 /etc/trio-monitor

RUN if [ "$WITH_CHROMIUM" = "true" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends chromium \
        && rm -rf /var/lib/apt/lists/*; \
    fi

COPY pyproject.toml README.md /src/
COPY trio_monitor /src/trio_monitor
RUN if [ "$WITH_CHROMIUM" = "true" ]; then extra="[browser]"; else extra=""; fi \
    && pip install --no-cache-dir "/src$extra" && rm -rf /src

USER trio-monitor
WORKDIR /var/lib/trio-monitor
# History ($STATE_DIRECTORY/trio-monitor.db): keep it across container replacements.
VOLUME ["/var/lib/trio-monitor"]
# The [server] status page, API and health endpoint; listen on "0.0.0.0:9180" to publish it.
EXPOSE 9180

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["trio-monitor", "health", "-c", "/etc/trio-monitor/monitor.toml"]

# SIGTERM: finish probes in flight within `grace`, flush every line, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["trio-monitor"]
CMD ["run", "-c", "/etc/trio-monitor/monitor.toml"]
