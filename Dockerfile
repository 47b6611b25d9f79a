# ISEIF Rainforest Logger: one image for every process (web, pinger, worker, scheduler); the command picks one.
FROM python:3.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    LOG_ROOT=/data/logs \
    STATIC_ROOT=/app/static \
    WEB_BIND=0.0.0.0:8000

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are built into the image at STATIC_ROOT, the folder WhiteNoise serves at run time (the same ENV, so
# the two cannot differ), outside the /data volume so that a new image's files are never hidden by an old volume.
# A throwaway key is enough for collectstatic, never used at run time.
RUN SECRET_KEY=collectstatic-only-not-a-real-key-0000000000000000000 \
    FIELD_ENCRYPTION_KEY=ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTEyMzQ= \
    python manage.py collectstatic --no-input -v 0

RUN useradd --system --uid 10001 --home-dir /app iseif \
    && mkdir -p /data/logs \
    && chown -R iseif:iseif /data
USER iseif
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"

CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py", "iseif.wsgi"]
