"""manage.py run bare, without the service's environment: one line naming what is missing, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.core import REPO_ROOT

OUR_COMMANDS = sorted(path.stem for path in (REPO_ROOT / "loggerapp/management/commands").glob("[!_]*.py"))
# The ones the supervisor file, the Makefile and the README run.
THEIR_COMMANDS = ["migrate", "collectstatic", "createsuperuser", "check", "shell", "rqworker", "rqcron"]
FERNET_KEY = "MHJXjwjtCfaQpZLg0T1ulGUo4YnJAINTAP-FiaxjrDs="  # test-only


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # What a new user's shell has: no DJANGO_SETTINGS_MODULE, no PYTHONPATH, none of the tests' settings.
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_list_of_our_commands_is_complete():
    assert {"doctor", "import_households", "runpinger", "rotate_logs", "demo_setup"} <= set(OUR_COMMANDS)


@pytest.mark.parametrize("command", OUR_COMMANDS + THEIR_COMMANDS)
def test_every_command_reports_missing_secrets_in_one_line(command, tmp_path):
    result = _manage(command, env={"DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: SECRET_KEY and FIELD_ENCRYPTION_KEY are not set: run manage.py as `make manage")
    assert "SECRET_KEY_FILE" in line and "FIELD_ENCRYPTION_KEY_FILE" in line


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PINGER_INTERVAL", "six", "error: PINGER_INTERVAL must be a number, not 'six'"),
        ("HTTPS", "maybe", "error: HTTPS must be a boolean (1/0, true/false, yes/no), not 'maybe'"),
        (
            "DATABASE_URL",
            "postgress://iseif:hunter2-db-pw@db/iseif",
            "error: DATABASE_URL cannot be read (UnknownSchemeError); it looks like "
            "postgres://user:password@host:5432/name (special characters in the password %-encoded)",
        ),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(name, value, expected, tmp_path):
    env = {"DATA_DIR": str(tmp_path), "SECRET_KEY": "k" * 50, "FIELD_ENCRYPTION_KEY": FERNET_KEY, name: value}
    result = _manage("doctor", env=env)
    assert result.returncode == 2
    assert result.stderr == expected + "\n"  # and no password from the URL


def test_an_unreadable_secret_file_is_one_line(tmp_path):
    env = {"DATA_DIR": str(tmp_path), "SECRET_KEY_FILE": str(tmp_path / "missing"), "FIELD_ENCRYPTION_KEY": FERNET_KEY}
    result = _manage("migrate", env=env)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: SECRET_KEY_FILE points at '{tmp_path / 'missing'}', which cannot be read")


def test_a_data_dir_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    env = {"DATA_DIR": str(Path(blocker) / "data"), "SECRET_KEY": "k" * 50, "FIELD_ENCRYPTION_KEY": FERNET_KEY}
    result = _manage("check", env=env)
    assert result.returncode == 2
    assert result.stderr == f"error: DATA_DIR {blocker / 'data'} cannot be created (Not a directory); set DATA_DIR\n"
