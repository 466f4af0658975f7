# One image for both roles: `eatcloud api` and `eatcloud worker` (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    EATCLOUD_WORKER__DATA_DIR=/var/lib/eatcloud/worker
WORKDIR /app

COPY setup.cfg pyproject.toml constraints.txt README.md ./
COPY eatcloud ./eatcloud
RUN pip install --upgrade 'pip>=24' && pip install . -c constraints.txt \
    && useradd --system --uid 10001 eatcloud \
    && mkdir -p /var/lib/eatcloud/worker && chown -R eatcloud /var/lib/eatcloud

USER eatcloud
EXPOSE 8000 6066
CMD ["eatcloud", "api"]
