"""Issue 11: the data files are private whatever the umask of whoever starts the service.

Under the usual umask 022 the SQLite database, the hour files, the archive and the service logs were created 0644
in 0755 folders, and another local user read a session key from the database. Each test here starts the real
command (runpinger, rotate_logs, gunicorn, migrate and ensure_admin on SQLite, the local-secrets script) with
umask 022 into folders that do not exist yet, then checks every folder (0700) and file (0600) it created.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from loggerapp.hourfiles.layout import hour_file_path
from loggerapp.models import HourFile
from tests.fixtures.core import REPO_ROOT, manage_command, subprocess_env
from tests.fixtures.s3 import hour_content
from tests.test_rotation import H1
from tests.test_service_log import _free_port

UMASK = 0o022


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under root (root included) with its mode, e.g. {"logs": "0700", ...}."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def assert_private(root: Path) -> dict[str, str]:
    found = modes(root)
    for name, mode in found.items():
        path = root / name
        if path.is_socket():
            continue
        expected = "0o700" if path.is_dir() else "0o600"
        assert mode == expected, f"{name}: {mode}, not {expected}; all: {found}"
    return found


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, umask=UMASK)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.django_db(transaction=True)
def test_the_pinger_makes_log_root_its_hour_folders_and_files_private(eagle_simulator, make_household, tmp_path):
    eagle_simulator.add_household("0f0001", protocol="cloud", user_email="h0f0001@example.org", password="pw-0f0001")
    make_household("0f0001", password="pw-0f0001")
    log_root = tmp_path / "new" / "logs"  # neither exists yet
    env = subprocess_env(LOG_ROOT=str(log_root), EAGLE_CLOUD_URL=eagle_simulator.cloud_url)
    run(manage_command("runpinger", "--once"), env)
    found = assert_private(tmp_path / "new")
    assert any(name.endswith(".jl") for name in found) and "logs/pinger/pinger.log" in found


@pytest.mark.django_db(transaction=True)
def test_rotate_logs_makes_the_archive_folder_and_its_files_private(tmp_path):
    log_root, archive = tmp_path / "logs", tmp_path / "new" / "archive"
    source = hour_file_path(log_root, "0f0002", H1)
    source.parent.mkdir(parents=True)
    source.write_bytes(hour_content("0f0002", H1, 10))
    env = subprocess_env(LOG_ROOT=str(log_root), ARCHIVE_ROOT=str(archive), ROTATION_GRACE_SECONDS="0")
    for name in ("AWS_STORAGE_BUCKET_NAME", "AWS_S3_ENDPOINT_URL"):
        env.pop(name, None)  # the embedded default: a local archive folder
    run(manage_command("rotate_logs"), env)
    assert HourFile.objects.get().state == HourFile.State.UPLOADED
    found = assert_private(tmp_path / "new")
    assert any(name.endswith("iseif-rainforest-0f0002-" + f"{H1:%Y-%m-%d-%H}.jl") for name in found)
    assert oct(stat.S_IMODE((log_root / "rotate" / "rotate.log").stat().st_mode)) == "0o600"
    assert oct(stat.S_IMODE((log_root / "rotate").stat().st_mode)) == "0o700"


def test_sqlite_database_admin_password_and_data_dir_are_private(tmp_path):
    data_dir = tmp_path / "new" / "data"
    env = subprocess_env(DATABASE_URL="", DATA_DIR=str(data_dir), LOG_ROOT=str(data_dir / "logs"))
    env.pop("DJANGO_SUPERUSER_PASSWORD", None)
    run(manage_command("migrate", "--no-input"), env)
    run(manage_command("ensure_admin"), env)
    found = assert_private(tmp_path / "new")
    assert {"data/db.sqlite3", "data/admin-password"} <= set(found)


def test_the_local_secrets_script_makes_a_private_folder(tmp_path):
    folder = tmp_path / "new" / "data"
    subprocess.run(
        ["sh", str(REPO_ROOT / "scripts" / "local-secrets.sh"), str(folder), sys.executable],
        check=True,
        umask=UMASK,
        timeout=60,
    )
    assert modes(folder) == {".": "0o700", "secret_key": "0o600", "field_encryption_key": "0o600"}


@pytest.mark.django_db
def test_gunicorn_makes_the_server_log_private(tmp_path):
    port = _free_port()
    log_root = tmp_path / "new" / "logs"
    env = subprocess_env(LOG_ROOT=str(log_root), WEB_BIND=f"127.0.0.1:{port}", WEB_WORKERS="1", HOME=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "--no-control-socket", "iseif.wsgi"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=UMASK,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/no-such-page", timeout=5)
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    found = assert_private(tmp_path / "new")
    assert "logs/server/server.log" in found


def test_existing_folders_keep_their_mode_and_are_reported(tmp_path, monkeypatch):
    """An operator's choice is not undone at start; doctor reports what others can read."""
    from iseif.private import make_private_dir, open_private, readable_by_others

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)  # noqa: S103 - an operator's open folder, on purpose
    make_private_dir(shared / "a" / "b")
    assert oct(stat.S_IMODE(shared.stat().st_mode)) == "0o755"
    assert readable_by_others(shared) and not readable_by_others(shared / "a")
    monkeypatch.setenv("DATA_GROUP_READABLE", "1")  # the documented group option
    old = os.umask(UMASK)
    try:
        make_private_dir(shared / "group")
        os.close(open_private(shared / "group" / "file", os.O_WRONLY))
    finally:
        os.umask(old)
    assert modes(shared / "group") == {".": "0o750", "file": "0o640"}


@pytest.mark.django_db
def test_doctor_warns_about_data_others_can_read(settings, tmp_path):
    from iseif.private import make_private_dir
    from loggerapp.ops.doctor import PASS, WARN, check_private_files

    settings.DATA_DIR = tmp_path / "data"
    settings.LOG_ROOT = tmp_path / "data" / "logs"
    archive = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}}
    settings.STORAGES = {**settings.STORAGES, "archive": archive}
    make_private_dir(settings.LOG_ROOT)
    assert check_private_files()[0] == PASS
    os.chmod(settings.LOG_ROOT, 0o755)  # noqa: S103 - made readable on purpose
    outcome, detail = check_private_files()
    assert outcome == WARN and str(settings.LOG_ROOT) in detail and "chmod" in detail


def test_the_group_option_is_configuration_that_reaches_every_service():
    """scripts/iseif passes on only the variables the service reads (iseif/service_env.py)."""
    from iseif.service_env import configuration_names

    assert "DATA_GROUP_READABLE" in configuration_names()
