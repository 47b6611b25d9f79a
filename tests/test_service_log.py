"""The one logging setup (loggerapp/service_log.py): service log files opened once, the same --log-level for every
long-running command (real manage.py subprocesses), and the web process's server.log (a real gunicorn)."""

from __future__ import annotations

import logging
import logging.handlers
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from loggerapp import service_log
from tests.fixtures.core import REPO_ROOT, manage_command, subprocess_env

LONG_RUNNING = [
    ["runpinger", "--once"],
    ["rotate_logs", "--dry-run"],
    ["eagle_simulator", "--households", "0", "--port", "0"],
]


@pytest.fixture
def clean_handlers():
    """Whatever a test attaches to the root or the rotation's logger is closed and removed afterwards."""
    loggers = [logging.getLogger(), logging.getLogger("loggerapp.rotation")]
    before = {id(logger): list(logger.handlers) for logger in loggers}
    level = logging.getLogger().level
    yield
    for logger in loggers:
        for handler in [h for h in logger.handlers if h not in before[id(logger)]]:
            logger.removeHandler(handler)
            handler.close()
    logging.getLogger().setLevel(level)


def _file_handlers(logger: logging.Logger, path: Path) -> list[logging.Handler]:
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.handlers.WatchedFileHandler) and Path(h.baseFilename) == path
    ]


# --- the helper ----------------------------------------------------------------------------------------------
def test_a_service_log_is_opened_once_in_its_own_new_folder(tmp_path, settings, clean_handlers):
    settings.LOG_ROOT = tmp_path / "new-root"
    path = tmp_path / "new-root" / "pinger" / "pinger.log"
    first = service_log.configure_service_log("pinger", "debug")
    again = service_log.configure_service_log("pinger")
    assert first is again and len(_file_handlers(logging.getLogger(), path)) == 1
    assert logging.getLogger().level == logging.DEBUG
    logging.getLogger("loggerapp.pinger").info("one line, written once")
    first.flush()
    text = path.read_text()
    assert text.count("one line, written once") == 1
    assert " INFO loggerapp.pinger: one line, written once" in text  # the one format


def test_the_rotation_job_logs_to_rotate_log_only_while_it_runs_and_never_twice(tmp_path, settings, clean_handlers):
    settings.LOG_ROOT = tmp_path
    package = logging.getLogger("loggerapp.rotation")
    path = tmp_path / "rotate" / "rotate.log"
    with service_log.service_log("rotate", "loggerapp.rotation"):
        assert len(_file_handlers(package, path)) == 1
        package.warning("inside the job")
    assert _file_handlers(package, path) == []  # an RQ worker runs other jobs afterwards
    package.warning("after the job")
    assert "inside the job" in path.read_text() and "after the job" not in path.read_text()

    service_log.configure_service_log("rotate")  # `manage.py rotate_logs`: the whole process logs there already
    with service_log.service_log("rotate", "loggerapp.rotation"):
        assert _file_handlers(package, path) == []
        package.warning("by the command")
    assert len(_file_handlers(logging.getLogger(), path)) == 1  # and it stays after the job
    logging.getLogger().handlers[-1].flush()
    assert path.read_text().count("by the command") == 1


# --- --log-level ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", LONG_RUNNING, ids=lambda c: c[0])
def test_every_long_running_command_refuses_a_bad_log_level_cleanly(command, db, tmp_path):
    """`runpinger --log-level FOO` used to end in a traceback; now every command answers argparse's usage error."""
    result = subprocess.run(
        manage_command(*command, "--log-level", "FOO"),
        env=subprocess_env(LOG_ROOT=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "argument --log-level: invalid choice: 'FOO'" in result.stderr
    assert "DEBUG" in result.stderr.splitlines()[-1]  # the same one-line answer naming the levels


def test_a_log_level_in_any_case_is_taken(db, tmp_path):
    result = subprocess.run(
        manage_command("rotate_logs", "--dry-run", "--log-level", "debug"),
        env=subprocess_env(LOG_ROOT=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "nothing to upload" not in result.stdout  # a dry run says what it would do...
    assert "dry run: would upload 0 files" in (tmp_path / "rotate" / "rotate.log").read_text()


def test_a_bad_log_level_setting_stops_start_up_naming_the_variable(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "iseif.settings",
            "PYTHONPATH": str(REPO_ROOT),
            "DATA_DIR": str(tmp_path),
            "DEBUG": "1",
            "LOG_LEVEL": "LOUD",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'" in result.stderr


# --- the web process -----------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_and_django_both_log_to_server_log_without_an_environment_handshake(db, tmp_path):
    port = _free_port()
    env = subprocess_env(LOG_ROOT=str(tmp_path), WEB_BIND=f"127.0.0.1:{port}", WEB_WORKERS="1", HOME=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "--no-control-socket", "iseif.wsgi"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = tmp_path / "server" / "server.log"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/no-such-page-x7", timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert response.status_code == 404
        deadline = time.monotonic() + 10
        while "GET /no-such-page-x7" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    text = log.read_text()
    assert "INFO gunicorn.error: Booting worker" in text  # gunicorn's own logger (the master's configuration)
    assert text.count("WARNING django.request: Not Found: /no-such-page-x7") == 1, text + output  # Django, once
    assert "gunicorn.access: 127.0.0.1 - - " in text and '"GET /no-such-page-x7 HTTP/1.1" 404' in text


FULL_DISK_SCRIPT = """
import logging, resource, sys
from loggerapp.service_log import MakingWatchedFileHandler
handler = MakingWatchedFileHandler(sys.argv[1], encoding="utf-8")
log = logging.getLogger("full")
log.addHandler(handler)
log.propagate = False
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
log.warning("before the disk filled up")
resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))
for n in range(50):
    log.warning("record %d of a long outage, padded to be well past the limit ........................", n)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.warning("after the disk has room again")
"""


def test_a_service_log_on_a_full_disk_drops_records_quietly_and_says_how_many_once_it_recovers(tmp_path):
    """The file refuses bytes (RLIMIT_FSIZE, as a full disk would): no logging traceback per record, one line on
    stderr when it starts, and a count of the dropped records in the file once it can be written again."""
    path = tmp_path / "svc" / "svc.log"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(path)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr, result.stderr
    assert result.stderr.count("cannot be written (EFBIG)") == 1, result.stderr
    text = path.read_text()
    assert "before the disk filled up" in text
    assert "after the disk has room again" in text
    assert "records dropped while it could not be written (EFBIG)" in text
    assert text.index("records dropped") < text.index("after the disk has room again")
