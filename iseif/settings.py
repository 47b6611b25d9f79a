"""Settings for the ISEIF Rainforest Logger, read from the environment.

One module, no per-environment files. Every variable read here is documented in the README's configuration
table; keep the two in step. Defaults are the embedded, single-machine ones (SQLite, a local archive folder),
and are safe: DEBUG is off unless asked for, and secrets are never invented in production.
"""

from __future__ import annotations

import ipaddress
import socket as _socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from iseif.env import env_bool, env_float, env_int, env_list, env_secret, env_str
from iseif.private import create_private_file, dir_mode, file_mode, make_private_dir

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data")))

DEBUG = env_bool("DEBUG", False)

# --- Secrets ---------------------------------------------------------------------------------------------
# Both are required unless DEBUG; when they are missing, start-up stops with one message naming every missing one
# and the ways to give it (manage.py prints it as one line, see manage.py).
SECRET_KEY = env_secret("SECRET_KEY")
# Keys for EAGLE passwords at rest: comma-separated Fernet keys, newest first; older ones still decrypt so that
# keys can be rotated (`manage.py reencrypt_passwords`). Deliberately separate from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = [key.strip() for key in env_secret("FIELD_ENCRYPTION_KEY").split(",") if key.strip()]
_missing_secrets = [
    name for name, value in (("SECRET_KEY", SECRET_KEY), ("FIELD_ENCRYPTION_KEY", FIELD_ENCRYPTION_KEYS)) if not value
]
if _missing_secrets and not DEBUG:
    _fernet_hint = (
        " A new Fernet key: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'."
        if "FIELD_ENCRYPTION_KEY" in _missing_secrets
        else ""
    )
    raise ImproperlyConfigured(
        f"{' and '.join(_missing_secrets)} {'is' if len(_missing_secrets) == 1 else 'are'} not set: run manage.py "
        'as `make manage ARGS="..."` (the environment of `make run`) or `scripts/iseif manage ...` (an install\'s '
        "environment file), or set "
        + " and ".join(f"{name} (or {name}_FILE, a file holding it)" for name in _missing_secrets)
        + "."
        + _fernet_hint
    )
if not SECRET_KEY:
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on-" + "x" * 20
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- Applications ----------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "loggerapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "iseif.urls"
WSGI_APPLICATION = "iseif.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------------------
# PostgreSQL through DATABASE_URL in production; an embedded SQLite file when it is unset.
_database_url = env_str("DATABASE_URL")
if _database_url:
    try:
        _database = dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
    except ValueError as exc:  # dj-database-url's ParseError and UnknownSchemeError; never echo the URL (password)
        raise ImproperlyConfigured(
            f"DATABASE_URL cannot be read ({type(exc).__name__}); it looks like "
            "postgres://user:password@host:5432/name (special characters in the password %-encoded)"
        ) from None
    # A database that accepts connections and never answers must not hang a process for ever: libpq gives up
    # connecting after DB_CONNECT_TIMEOUT seconds, the server cancels a statement after DB_STATEMENT_TIMEOUT
    # (0 = no limit). Options given in DATABASE_URL's query string win.
    if _database.get("ENGINE", "").endswith("postgresql"):
        _options = _database.setdefault("OPTIONS", {})
        _options.setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 10))
        _statement_ms = int(env_float("DB_STATEMENT_TIMEOUT", 300.0) * 1000)
        if _statement_ms > 0 and "options" not in _options:
            _options["options"] = f"-c statement_timeout={_statement_ms}"
    DATABASES = {"default": {**_database, "CONN_HEALTH_CHECKS": True}}
else:
    try:
        make_private_dir(DATA_DIR)  # the embedded default must work on a fresh clone; 0700 (iseif/private.py)
        create_private_file(DATA_DIR / "db.sqlite3")  # 0600 before SQLite creates it (its journals copy the mode)
    except OSError as exc:
        raise ImproperlyConfigured(f"DATA_DIR {DATA_DIR} cannot be created ({exc.strerror}); set DATA_DIR") from None
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 20},
        }
    }
# Lets concurrent test runs on one PostgreSQL server use separate test databases.
if env_str("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times as the study reads them everywhere in the admin: 2026-01-05 00:00:00 UTC (24-hour, zone said), never
# "Jan. 5, 2026, midnight" (loggerapp/formats/en/formats.py).
FORMAT_MODULE_PATH = "loggerapp.formats"

STATIC_URL = "static/"
# Where collectstatic writes and WhiteNoise serves from: one setting for both, so that an image that collects at
# build time serves the same folder at run time (the Docker image sets it outside its /data volume).
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))

# --- Redis and RQ ----------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600},
}

# --- Files on disk ---------------------------------------------------------------------------------------
LOG_ROOT = Path(env_str("LOG_ROOT", str(DATA_DIR / "logs")))
# Folders 0750 and files 0640 instead of 0700 / 0600, for a group that reads the data (iseif/private.py reads the
# variable itself, also in scripts/iseif and gunicorn's master; read here so that a malformed value stops start-up).
DATA_GROUP_READABLE = env_bool("DATA_GROUP_READABLE", False)
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()

# --- Permanent archive (S3 through django-storages, or a local folder) -----------------------------------
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL")
ARCHIVE_ROOT = Path(env_str("ARCHIVE_ROOT", str(DATA_DIR / "archive")))
ARCHIVE_PREFIX = env_str("ARCHIVE_PREFIX", "rainforest-logs").strip("/")
ARCHIVE_GZIP = env_bool("ARCHIVE_GZIP", False)
ARCHIVE_CONCURRENCY = env_int("ARCHIVE_CONCURRENCY", 16)
# Also HEAD every object after its PUT; off: the PUT's own answer (ETag = MD5, checked by Content-MD5) verifies it.
ARCHIVE_VERIFY_WITH_HEAD = env_bool("ARCHIVE_VERIFY_WITH_HEAD", False)
# Archived hour files read back at once, per process (the export, the API's readings, the admin; see below).
EXPORT_CONCURRENCY = env_int("EXPORT_CONCURRENCY", 16)
ROTATION_GRACE_SECONDS = env_int("ROTATION_GRACE_SECONDS", 120)

if AWS_STORAGE_BUCKET_NAME:
    from botocore.config import Config as _BotoConfig

    # Passing client_config replaces django-storages' own, so addressing style and signature go in it.
    # boto3 >= 1.36 sends CRC32 checksums by default, which several S3-compatible stores reject; only ask
    # for them when required unless told otherwise (see the README).
    _checksum_mode = env_str("AWS_S3_CHECKSUMS", "when_required")
    _archive_options = {
        "bucket_name": AWS_STORAGE_BUCKET_NAME,
        "access_key": env_secret("AWS_ACCESS_KEY_ID") or None,
        "secret_key": env_secret("AWS_SECRET_ACCESS_KEY") or None,
        "endpoint_url": AWS_S3_ENDPOINT_URL or None,
        "region_name": env_str("AWS_S3_REGION_NAME") or None,
        "file_overwrite": True,  # keys are fixed; the rotation code decides itself what to do on a clash
        "default_acl": None,
        "querystring_auth": True,
        "client_config": _BotoConfig(
            s3={"addressing_style": env_str("AWS_S3_ADDRESSING_STYLE", "path")},
            signature_version="s3v4",
            request_checksum_calculation=_checksum_mode,
            response_checksum_validation=_checksum_mode,
            connect_timeout=env_float("AWS_S3_CONNECT_TIMEOUT", 5.0),
            read_timeout=env_float("AWS_S3_READ_TIMEOUT", 30.0),
            retries={"max_attempts": env_int("AWS_S3_MAX_ATTEMPTS", 3), "mode": "standard"},
            max_pool_connections=max(10, ARCHIVE_CONCURRENCY, EXPORT_CONCURRENCY),
        ),
    }
    _archive_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _archive_options}
else:
    _archive_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Created private whatever the umask (iseif/private.py): archived hour files say when people are home.
        "OPTIONS": {
            "location": str(ARCHIVE_ROOT),
            "base_url": None,
            "file_permissions_mode": file_mode(),
            "directory_permissions_mode": dir_mode(),
        },
    }

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "archive": _archive_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Hourly upload (loggerapp/rotation) ------------------------------------------------------------------
# RQ cron string (UTC) and queue of the upload job; the job itself catches up on every finished hour.
ROTATION_CRON = env_str("ROTATION_CRON", "5 * * * *")
ROTATION_QUEUE = env_str("ROTATION_QUEUE", "default")
# This host's own upload queue (loggerapp/rotation/fanout.py): the scheduled job enqueues one run on the host queue
# of every live worker, so the hour files of every pinger host are uploaded. Must start with "rotation-".
ROTATION_HOST_QUEUE = env_str("ROTATION_HOST_QUEUE", "rotation-" + _socket.gethostname())
if not ROTATION_HOST_QUEUE.startswith("rotation-") or not ROTATION_HOST_QUEUE[len("rotation-") :]:
    raise ImproperlyConfigured(f"ROTATION_HOST_QUEUE must start with 'rotation-', not {ROTATION_HOST_QUEUE!r}")
RQ_QUEUES.setdefault(ROTATION_HOST_QUEUE, {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600})
ROTATION_JOB_TIMEOUT = env_int("ROTATION_JOB_TIMEOUT", 3300)  # seconds; a run never outlives the next one's slot
# A run renews its claims four times per lease; a claim of a run on another host that has not been renewed for
# this long is a dead run's, and taken (a dead run on the same host is recognised at once by its process).
ROTATION_CLAIM_LEASE_SECONDS = env_int("ROTATION_CLAIM_LEASE_SECONDS", 120)
# After this many archive-wide failures in a row (unreachable, refused credentials, missing bucket), a run
# stops trying the rest of its files; they stay on disk for the next run.
ROTATION_MAX_ARCHIVE_ERRORS = env_int("ROTATION_MAX_ARCHIVE_ERRORS", 20)

# --- EAGLE -----------------------------------------------------------------------------------------------
EAGLE_CLOUD_URL = env_str("EAGLE_CLOUD_URL", "https://rainforestcloud.com:9445/cgi-bin/post_manager")
EAGLE_CONNECT_TIMEOUT = env_float("EAGLE_CONNECT_TIMEOUT", 2.0)
EAGLE_READ_TIMEOUT = env_float("EAGLE_READ_TIMEOUT", 4.0)
# The largest EAGLE answer read, counted both as received (compressed) and decompressed. A real answer is a few
# KB; past this a poll is a bad_response and the connection is dropped, so one hostile gateway costs little.
EAGLE_MAX_ANSWER_BYTES = env_int("EAGLE_MAX_ANSWER_BYTES", 65536)
if EAGLE_MAX_ANSWER_BYTES < 4096:
    raise ImproperlyConfigured(f"EAGLE_MAX_ANSWER_BYTES must be at least 4096, not {EAGLE_MAX_ANSWER_BYTES}")


def _networks(values: list[str], name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} is a comma-separated list of IP networks such as 10.8.0.0/16 or fd00::/8; {value!r} is not one"
            ) from None
    return tuple(networks)


# Where the logger may connect for a gateway (loggerapp/eagle/addresses.py): loopback, link-local (the cloud metadata
# service), multicast, unspecified and reserved addresses are refused, private ranges allowed. EAGLE_ALLOWED_NETWORKS
# allows some refused ones back; EAGLE_REFUSED_NETWORKS refuses more (e.g. this server's own LAN address, the
# database's network) and wins over both. The relay, EAGLE_CLOUD_URL, is not checked.
EAGLE_ALLOWED_NETWORKS = _networks(env_list("EAGLE_ALLOWED_NETWORKS"), "EAGLE_ALLOWED_NETWORKS")
EAGLE_REFUSED_NETWORKS = _networks(env_list("EAGLE_REFUSED_NETWORKS"), "EAGLE_REFUSED_NETWORKS")

# --- Pinger ----------------------------------------------------------------------------------------------
PINGER_INTERVAL = env_float("PINGER_INTERVAL", 6.0)
PINGER_REFRESH = env_float("PINGER_REFRESH", 60.0)
PINGER_MAX_IN_FLIGHT = env_int("PINGER_MAX_IN_FLIGHT", 1024)
# Every household's hour file stays open (a line costs a write, not an open + write + close: bench/pinger.py).
PINGER_MAX_OPEN_FILES = env_int("PINGER_MAX_OPEN_FILES", 16384)
# Back-off ceiling for bad credentials (2, 4, 8... intervals up to this), how often statistics and the heartbeat
# are written (at most this far apart, and at least once per interval), and the summary line's period.
PINGER_MAX_BACKOFF = env_float("PINGER_MAX_BACKOFF", 300.0)
PINGER_FLUSH_SECONDS = env_float("PINGER_FLUSH_SECONDS", 5.0)
PINGER_SUMMARY_SECONDS = env_float("PINGER_SUMMARY_SECONDS", 60.0)
# Polls in flight for households whose last poll did not succeed (timeouts, never polled yet...): their own
# budget, so that however many there are, healthy households always find room in PINGER_MAX_IN_FLIGHT.
PINGER_MAX_SLOW_IN_FLIGHT = env_int("PINGER_MAX_SLOW_IN_FLIGHT", 256)
# How long a stopping pinger waits for its last statistics flush (a hung database) before it exits anyway,
# logging what stays unsaved; keep it under supervisor's stopwaitsecs (30).
PINGER_STOP_WAIT = env_float("PINGER_STOP_WAIT", 10.0)
# A statistics flush or a household load blocked this many intervals is logged as a warning.
PINGER_BLOCKED_INTERVALS = env_int("PINGER_BLOCKED_INTERVALS", 5)
PINGER_PRICE_INTERVAL = env_float("PINGER_PRICE_INTERVAL", 60.0)  # price-and-energy polls (issue 14); 0: none
# Fleet mode (runpinger without --shard, loggerapp/fleet): each pinger writes its member row every
# FLEET_HEARTBEAT_SECONDS; a member silent for FLEET_MEMBER_TIMEOUT seconds (database clock) has its households
# taken over; a joining member takes its share FLEET_JOIN_DELAY seconds after it joined (default two heartbeats).
FLEET_HEARTBEAT_SECONDS = env_float("FLEET_HEARTBEAT_SECONDS", 3.0)
FLEET_MEMBER_TIMEOUT = env_float("FLEET_MEMBER_TIMEOUT", 9.0)
FLEET_JOIN_DELAY = env_float("FLEET_JOIN_DELAY", 2 * FLEET_HEARTBEAT_SECONDS)
# A member cut off from the database goes on polling its share (duplicates rather than gaps) unless this is on.
FLEET_STOP_WHEN_CUT_OFF = env_bool("FLEET_STOP_WHEN_CUT_OFF", False)
# uvloop (the default; asyncio's own loop if uvloop is not installed) or asyncio (loggerapp/pinger/eventloop.py).
PINGER_EVENT_LOOP = env_str("PINGER_EVENT_LOOP", "uvloop")

# --- Live reads (loggerapp/live.py) and the REST API (loggerapp/api) ---------------------------------------
# A live read asks a household's EAGLE now (/api/event/, the admin's "test connection now", doctor) and never
# takes longer than LIVE_READ_DEADLINE seconds in total (the admin action: all its households together).
# API_LIVE_READ_DEADLINE is its former name, still read when the new one is unset.
LIVE_READ_DEADLINE = env_float("LIVE_READ_DEADLINE", env_float("API_LIVE_READ_DEADLINE", 8.0))
# Through the API: at most one per household per API_LIVE_READ_MIN_INTERVAL seconds (others get 429 +
# Retry-After), at most API_LIVE_READS_PER_MINUTE per token or staff user. Counters live in Redis (REDIS_URL)
# under API_REDIS_PREFIX.
API_LIVE_READ_MIN_INTERVAL = env_float("API_LIVE_READ_MIN_INTERVAL", 2.0)
API_LIVE_READS_PER_MINUTE = env_int("API_LIVE_READS_PER_MINUTE", 60)
API_REDIS_PREFIX = env_str("API_REDIS_PREFIX", "iseif:api:")
API_PAGE_SIZE = env_int("API_PAGE_SIZE", 50)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 500)

# --- Export of readings (loggerapp/export, loggerapp/hourfiles/span.py) -----------------------------------------
# Archived hour files are fetched EXPORT_CONCURRENCY at a time on one pool per process (the export command, the API,
# the admin's download and day chart share it). EXPORT_MAX_DAYS bounds the command's range; EXPORT_WEB_MAX_DAYS
# the API's and the admin download's (a web request holds a worker thread while it streams), and
# EXPORT_WEB_MAX_HOUSEHOLDS the households of one admin download.
EXPORT_MAX_DAYS = env_int("EXPORT_MAX_DAYS", 366)
EXPORT_WEB_MAX_DAYS = env_int("EXPORT_WEB_MAX_DAYS", 31)
EXPORT_WEB_MAX_HOUSEHOLDS = env_int("EXPORT_WEB_MAX_HOUSEHOLDS", 50)
for _name, _value in {
    "EXPORT_CONCURRENCY": EXPORT_CONCURRENCY,
    "EXPORT_MAX_DAYS": EXPORT_MAX_DAYS,
    "EXPORT_WEB_MAX_DAYS": EXPORT_WEB_MAX_DAYS,
    "EXPORT_WEB_MAX_HOUSEHOLDS": EXPORT_WEB_MAX_HOUSEHOLDS,
}.items():
    if _value < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {_value}")

# --- Operations: health, metrics, status page, alerts, doctor (loggerapp/ops) ----------------------------
# Alerts (manage.py check_alerts, or the RQ cron job in loggerapp/ops/cron.py): a household is silent after
# ALERT_SILENCE_MINUTES without a successful reading; uploads are failing when a finished hour's file is still
# not uploaded ALERT_UPLOAD_FAILING_MINUTES after it was due. Mails go to ALERT_EMAILS (see Mail below).
ALERT_SILENCE_MINUTES = env_int("ALERT_SILENCE_MINUTES", 10)
ALERT_UPLOAD_FAILING_MINUTES = env_int("ALERT_UPLOAD_FAILING_MINUTES", 60)
ALERT_MAX_LISTED = env_int("ALERT_MAX_LISTED", 50)  # households named one by one in a grouped mail
ALERT_CRON = env_str("ALERT_CRON", "* * * * *")  # UTC cron string of the alert job
ALERT_QUEUE = env_str("ALERT_QUEUE", "default")  # RQ queue of the alert job (one of RQ_QUEUES)
# /healthz: a pinger heartbeat is stale after HEALTH_HEARTBEAT_INTERVALS of its own interval (never sooner
# than HEALTH_HEARTBEAT_MIN_SECONDS); heartbeats older than HEALTH_HEARTBEAT_FORGET_MINUTES belong to retired
# shards and are ignored. HEALTH_REQUIRE_PINGER=0 for a web-only host where no pinger runs.
HEALTH_HEARTBEAT_INTERVALS = env_float("HEALTH_HEARTBEAT_INTERVALS", 2.0)
HEALTH_HEARTBEAT_MIN_SECONDS = env_float("HEALTH_HEARTBEAT_MIN_SECONDS", 10.0)
HEALTH_HEARTBEAT_FORGET_MINUTES = env_int("HEALTH_HEARTBEAT_FORGET_MINUTES", 60)
HEALTH_REQUIRE_PINGER = env_bool("HEALTH_REQUIRE_PINGER", True)
HEALTH_REDIS_TIMEOUT = env_float("HEALTH_REDIS_TIMEOUT", 1.0)
# /metrics: staff session or API token always; plain requests from loopback only when this is on (and they
# carry no X-Forwarded-For/Forwarded/X-Real-IP header, i.e. they did not come through a reverse proxy).
METRICS_ALLOW_LOOPBACK = env_bool("METRICS_ALLOW_LOOPBACK", True)
# /status/: rows per page (sparklines and coverage strips are drawn for these rows only) and auto-refresh.
STATUS_PAGE_SIZE = env_int("STATUS_PAGE_SIZE", 100)
STATUS_REFRESH_SECONDS = env_int("STATUS_REFRESH_SECONDS", 30)
STATUS_CHART_CACHE_SECONDS = env_int("STATUS_CHART_CACHE_SECONDS", 20)
ADMIN_CHART_HOURS = env_int("ADMIN_CHART_HOURS", 6)  # the household admin page's demand chart
# manage.py doctor fails when LOG_ROOT's file system has less free space than this.
DOCTOR_MIN_FREE_MB = env_int("DOCTOR_MIN_FREE_MB", 1024)

# --- HTTPS and security headers --------------------------------------------------------------------------
# HTTPS=1 (the default) is production behind TLS: redirect to https, secure cookies, HSTS. `make run` on a
# laptop sets HTTPS=0 so the admin works on http://127.0.0.1.
_HTTPS = env_bool("HTTPS", True)
SECURE_SSL_REDIRECT = _HTTPS and not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # load balancers and a local Prometheus use plain http
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS
SECURE_HSTS_PRELOAD = _HTTPS
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every HTML page (the admin, the status page): scripts and styles from this site
# only, plus the inline ones Django's admin marks with the per-request nonce; no inline style attributes, no
# plugins, no framing, forms post only here. The API sets its own stricter header; django-rq's dashboard gets
# inline code allowed on its pages only (loggerapp/admin/queues.py).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- Admin sign-in (loggerapp/admin/login.py) -----------------------------------------------------------------
# Failed sign-ins per (user name, client address) and per client address within ADMIN_LOGIN_WINDOW seconds;
# at the limit every attempt is refused until the window ends. Counted in Redis (REDIS_URL).
ADMIN_LOGIN_FAILURES = env_int("ADMIN_LOGIN_FAILURES", 5)
ADMIN_LOGIN_ADDRESS_FAILURES = env_int("ADMIN_LOGIN_ADDRESS_FAILURES", 50)
ADMIN_LOGIN_WINDOW = env_int("ADMIN_LOGIN_WINDOW", 900)

# --- Mail (alerts) ---------------------------------------------------------------------------------------
# Django 6.1's MAILERS replaces the EMAIL_* settings; the variables keep their familiar names.
_email_backend = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
_email_options = {}
if _email_backend.endswith("smtp.EmailBackend"):
    _email_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_secret("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": 10,
    }
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "iseif-logger@localhost")
ALERT_EMAILS = env_list("ALERT_EMAILS")

# --- Logging ---------------------------------------------------------------------------------------------
# Console logging for every process, in the one format of loggerapp/service_log.py (referenced by name, so that
# this module imports no app code). The long-running commands and the web process add their own file under
# LOG_ROOT through that module (WatchedFileHandler, so that logrotate can move it); gunicorn's hook opens the
# web's file once this configuration is applied (deploy/gunicorn.conf.py).
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {LOG_LEVEL!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "loggerapp.service_log.formatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO"},
        # botocore logs request headers at DEBUG; never let it inherit a DEBUG root.
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
