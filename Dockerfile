# The project's image: the `pacs` CLI, the Prefect worker (flows) and the portal (gunicorn).
#   docker build -t pacs-platform .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=1 \
    PACS_HOME=/data \
    PACS_APP_DIR=/app \
    PACS_VIEWER_DIR=/app/build/viewer

# DejaVu fonts for the report PDFs (any European script).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself (see .dockerignore for what stays out).
COPY . .
RUN pip install --no-deps . \
    && apt-get update && apt-get install -y --no-install-recommends npm \
    && pacs viewer install \
    && apt-get purge -y --auto-remove npm && rm -rf /var/lib/apt/lists/* /root/.npm \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home pacs \
    && mkdir -p /data \
    && chown pacs:pacs /data

# A named volume mounted on /data starts with this ownership.
USER pacs
EXPOSE 5000

CMD ["gunicorn", "--config", "python:portal.gunicorn_config", "--bind", "0.0.0.0:5000", "--threads", "8", \
     "pacs.wsgi:make_app()"]
