"""gunicorn settings for the web process; values come from the environment like the rest of the service.

Logging goes to LOG_ROOT/server/server.log and the console, in the service log format, through the one logging
helper (loggerapp/service_log.py; gunicorn runs from the repository, which it puts on the import path):
- gunicorn's own loggers (boots, worker timeouts, access lines) by ``logconfig_dict`` below, in every process;
- Django's loggers by ``post_worker_init``: Django applies its LOGGING (console only) when a worker loads the
  application, replacing the root logger's handlers, so the hook adds the file once that has happened.
"""

import os
from pathlib import Path

from iseif.env import env_bool  # the same reading of a boolean as iseif/settings.py (a malformed value stops start-up)

_data_dir = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
_log_file = Path(os.environ.get("LOG_ROOT", _data_dir / "logs")) / "server" / "server.log"  # as in settings.py

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A live EAGLE read is bounded by the client's timeouts (a few seconds); leave room above them.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
# Which peers may tell gunicorn that a request came over https (X-Forwarded-Proto). Only a service configured to run
# behind a reverse proxy believes anyone (USE_X_FORWARDED_PROTO=1, which is also what makes Django read the header);
# then the proxies' addresses come from FORWARDED_ALLOW_IPS (comma-separated addresses or networks, "*" for any).
# Otherwise nobody: a local program, or a proxy that passes the client's headers on, must not make a plain http
# request look secure (skipping the https redirect, for one). One header, the one Django reads, not gunicorn's three.
forwarded_allow_ips = (
    os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1") if env_bool("USE_X_FORWARDED_PROTO") else ""
)
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"()": "loggerapp.service_log.formatter"}},
    "handlers": {
        "file": {
            "class": "loggerapp.service_log.MakingWatchedFileHandler",
            "filename": str(_log_file),
            "formatter": "plain",
        },
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["file", "console"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "gunicorn.error": {"handlers": ["file", "console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        "botocore": {"level": "WARNING"},
    },
}


def post_worker_init(worker):
    """The worker has loaded Django (and its LOGGING): send Django's own logs to server/server.log too."""
    from loggerapp.service_log import configure_service_log

    configure_service_log("server")
