"""gunicorn settings for the web process; values come from the environment like the rest of the service."""

import os
from pathlib import Path

_data_dir = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parent.parent / "data"))
_log_dir = Path(os.environ.get("LOG_ROOT", _data_dir / "logs")) / "server"
_log_dir.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("SERVICE_LOG", "server")  # Django adds server/server.log to its logging

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_WORKERS", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A live EAGLE read is bounded by the client's timeouts (a few seconds); leave room above them.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# server/server.log through WatchedFileHandler: logrotate may move the file, gunicorn reopens it.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "file": {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(_log_dir / "server.log"),
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
