# One image for web, stream, worker and beat; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FLAGSTAFF_VAR_DIR=/app/var
WORKDIR /app

COPY pyproject.toml setup.py ./
COPY client ./client
COPY controlplane ./controlplane
COPY flags ./flags
COPY telemetry ./telemetry
COPY evals ./evals
COPY rollouts ./rollouts
COPY deprecations ./deprecations
COPY autopilot ./autopilot
COPY demo ./demo
COPY templates ./templates
COPY static ./static
COPY manage.py ./

# gcc builds telemetry's C speedups (setup.py), then leaves the image. Editable, so that the
# built module lands in /app/telemetry, the package the processes import from /app.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir ./client -e . \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home flagstaff \
    && mkdir -p /app/var && chown flagstaff /app/var
USER flagstaff

# 8000: web (gunicorn, below); 8001: the stream process (uvicorn controlplane.asgi:application,
# docker-compose.yml's `stream` service).
EXPOSE 8000 8001
# gthread workers, one listening socket each: controlplane/gunicorn_conf.py (docs/serving.md, "Workers").
CMD ["gunicorn", "controlplane.wsgi:application", "--config", "controlplane/gunicorn_conf.py", "--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "32"]
