"""Settings: embedded defaults, environment parsing and the production checks, in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.fixtures.core import REPO_ROOT

FERNET_KEY = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTEyMzQ="
PROBE = (
    "import json, django; from django.conf import settings as s; django.setup(); "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']), "
    "'debug': s.DEBUG, 'redis': s.REDIS_URL, 'log_root': str(s.LOG_ROOT), "
    "'archive': s.STORAGES['archive']['BACKEND'], 'cloud': s.EAGLE_CLOUD_URL, 'hosts': s.ALLOWED_HOSTS}))"
)


def _python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "iseif.settings", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        env={**base, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    return {
        "SECRET_KEY": "k7Qp-2vX9_mLr4Tz8wYb1NcFhJ6sGdE3aUoKiP0qRxVnZe5yW-tM8",
        "FIELD_ENCRYPTION_KEY": FERNET_KEY,
        "DATA_DIR": str(tmp_path),
    }


def test_embedded_defaults(production_env, tmp_path):
    result = _python(PROBE, production_env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["db"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "db.sqlite3")
    assert values["debug"] is False
    assert values["redis"] == "redis://127.0.0.1:6379/0"
    assert values["log_root"] == str(tmp_path / "logs")
    assert values["archive"] == "django.core.files.storage.FileSystemStorage"
    assert values["cloud"] == "https://rainforestcloud.com:9445/cgi-bin/post_manager"


def test_environment_overrides(production_env):
    env = {
        **production_env,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "AWS_STORAGE_BUCKET_NAME": "study-bucket",
        "ALLOWED_HOSTS": "logger.example.org, api.example.org",
        "LOG_ROOT": "/srv/iseif/logs",
    }
    values = json.loads(_python(PROBE, env).stdout)
    assert values["db"] == "django.db.backends.postgresql"
    assert values["archive"] == "storages.backends.s3.S3Storage"
    assert values["hosts"] == ["logger.example.org", "api.example.org"]
    assert values["log_root"] == "/srv/iseif/logs"


def test_secrets_can_come_from_files(production_env, tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text("f" * 60 + "\n")
    env = {**production_env, "SECRET_KEY": "", "SECRET_KEY_FILE": str(key_file)}
    result = _python("import django; from django.conf import settings; print(settings.SECRET_KEY)", env)
    assert result.stdout.strip() == "f" * 60


def test_a_missing_secret_key_stops_production_start_up_with_a_clear_message(production_env):
    env = {**production_env, "SECRET_KEY": ""}
    result = _python("", env, "manage.py", "check")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_a_missing_encryption_key_stops_production_start_up(production_env):
    env = {**production_env, "FIELD_ENCRYPTION_KEY": ""}
    result = _python("", env, "manage.py", "check")
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY is not set" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "perhaps"),
        ("PINGER_INTERVAL", "six"),
        ("EMAIL_PORT", "x"),
        ("FLEET_MEMBER_TIMEOUT", "nine"),
        ("ROTATION_HOST_QUEUE", "uploads-host-a"),
    ],
)
def test_a_malformed_value_is_refused_not_guessed(production_env, name, value):
    result = _python("", {**production_env, name: value}, "manage.py", "check")
    assert result.returncode != 0
    assert name in result.stderr


def test_debug_is_off_unless_set(production_env):
    assert json.loads(_python(PROBE, production_env).stdout)["debug"] is False
    assert json.loads(_python(PROBE, {**production_env, "DEBUG": "1"}).stdout)["debug"] is True


def test_check_deploy_reports_nothing_with_debug_off(production_env):
    result = _python("", production_env, "manage.py", "check", "--deploy", "--fail-level", "DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_reports_nothing_with_postgres_and_s3(production_env):
    env = {
        **production_env,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
        "AWS_STORAGE_BUCKET_NAME": "b",
        "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    result = _python("", env, "manage.py", "check", "--deploy", "--fail-level", "DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr


DB_OPTIONS_PROBE = (
    "import json, django; from django.conf import settings as s; django.setup(); "
    "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {})))"
)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"connect_timeout": 10, "options": "-c statement_timeout=300000"}),
        (
            {"DB_CONNECT_TIMEOUT": "3", "DB_STATEMENT_TIMEOUT": "2.5"},
            {"connect_timeout": 3, "options": "-c statement_timeout=2500"},
        ),
        ({"DB_STATEMENT_TIMEOUT": "0"}, {"connect_timeout": 10}),
    ],
)
def test_postgresql_connections_are_bounded_by_connect_and_statement_timeouts(production_env, env, expected):
    """A database that accepts connections and never answers must not hang a process (issue 16)."""
    database = {"DATABASE_URL": "postgres://iseif@127.0.0.1:5432/iseif"}
    result = _python(DB_OPTIONS_PROBE, {**production_env, **database, **env})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_a_malformed_database_timeout_is_one_line(production_env):
    result = _python(
        DB_OPTIONS_PROBE, {**production_env, "DATABASE_URL": "postgres://x@h/db", "DB_CONNECT_TIMEOUT": "soon"}
    )
    assert result.returncode != 0
    assert "DB_CONNECT_TIMEOUT must be an integer" in result.stderr
