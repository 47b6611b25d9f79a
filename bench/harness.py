"""What every benchmark needs: the repository on the path, free ports, a throwaway PostgreSQL database, and
the environment for the manage.py processes it measures. Benchmarks run as scripts (`python bench/x.py`), so
this module is imported by its plain name."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FERNET_KEY = "MHJXjwjtCfaQpZLg0T1ulGUo4YnJAINTAP-FiaxjrDs="  # bench-only key for a throwaway database
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "manage.py"), *args]


def service_env(db_url: str, log_root: Path, **extra: str) -> dict[str, str]:
    """The environment of a measured manage.py process: production settings on a throwaway database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="iseif.settings",
        DATABASE_URL=db_url,
        SECRET_KEY="bench-secret-key-" + "b" * 40,
        FIELD_ENCRYPTION_KEY=FERNET_KEY,
        LOG_ROOT=str(log_root),
        LOG_LEVEL="INFO",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
        HTTPS="0",
        EAGLE_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",  # the simulator's local gateways listen on loopback
    )
    env.update(extra)
    return env


def create_database(name: str) -> str:
    """A fresh, empty database (dropped first if a previous run left it); returns its URL."""
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop_process(process: subprocess.Popen | None, grace: float = 15.0) -> None:
    """SIGTERM a helper process (simulator, relay) that is still running; SIGKILL it after ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()


def clean_up(db_name: str, work: Path, keep: bool = False) -> None:
    """Drop a run's database and folder, or say where they were kept (``--keep``)."""
    if keep:
        print(f"kept {work} and database {db_name}")
        return
    drop_database(db_name)
    shutil.rmtree(work, ignore_errors=True)


def wait_for_simulator(base_url: str, process: subprocess.Popen, timeout: float = 120, name: str = "simulator") -> None:
    """Wait until a simulator (or the fast relay) answers its stats endpoint; exit if it died or never came up."""
    import time

    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {name} exited with {process.returncode}")
        try:
            if requests.get(f"{base_url}/_sim/stats", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the {name} did not start")
