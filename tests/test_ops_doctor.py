"""manage.py doctor on a good configuration and on broken ones (real database, Redis, storage and disk)."""

from __future__ import annotations

import socket
import time
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from loggerapp.ops.doctor import FAIL, PASS, SKIP, run_doctor
from tests.fixtures.core import redis_url

pytestmark = pytest.mark.django_db

SECRET = "EAGLE-pw-never-printed-42"


@pytest.fixture(autouse=True)
def good_configuration(settings, tmp_path, log_root):
    settings.REDIS_URL = redis_url(13)
    settings.ARCHIVE_ROOT = tmp_path / "archive"
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "archive")},
        },
    }
    settings.DOCTOR_MIN_FREE_MB = 1
    settings.ALERT_EMAILS = ["ops@example.org"]


def doctor(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("doctor", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def outcomes(results) -> dict[str, str]:
    return {result.name: result.outcome for result in results}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_good_configuration_passes(make_household, tmp_path):
    make_household("002506", password=SECRET)
    out, error = doctor("--skip-eagle")
    assert error is None, out
    assert "No check failed" in out
    for name in ["database", "redis", "archive storage", "LOG_ROOT", "encryption key"]:
        line = next(line for line in out.splitlines() if line.startswith(name))
        assert f"  {PASS}  " in line, line
    assert "the password of 002506 decrypts" in out
    assert SECRET not in out
    # The probe object was deleted again; only its empty folder may remain.
    assert not [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]


def test_an_unwritable_log_root_fails(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings.LOG_ROOT = blocker / "logs"  # even root cannot create a directory inside a file
    out, error = doctor("--skip-eagle")
    assert error is not None and "LOG_ROOT" in str(error)
    line = next(line for line in out.splitlines() if line.startswith("LOG_ROOT"))
    assert FAIL in line and "not writable" in line


def test_too_little_free_space_fails(settings):
    settings.DOCTOR_MIN_FREE_MB = 10**12
    assert outcomes(run_doctor(skip_eagle=True))["LOG_ROOT"] == FAIL


def test_redis_on_a_closed_port_fails(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    _, error = doctor("--skip-eagle")
    assert error is not None and "redis" in str(error)
    results = outcomes(run_doctor(skip_eagle=True))
    assert results["redis"] == FAIL
    assert results["database"] == results["archive storage"] == results["LOG_ROOT"] == PASS


def test_a_wrong_encryption_key_fails_without_printing_the_password(make_household, settings):
    make_household("002506", password=SECRET)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    out, error = doctor("--skip-eagle")
    assert error is not None and "encryption key" in str(error)
    assert "cannot be decrypted" in out
    assert SECRET not in out


def test_a_malformed_encryption_key_fails(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    results = {r.name: r for r in run_doctor(skip_eagle=True)}
    assert results["encryption key"].outcome == FAIL
    assert "malformed" in results["encryption key"].detail


def test_an_unusable_archive_fails(settings, tmp_path):
    blocker = tmp_path / "archive-file"
    blocker.write_text("x")
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocker)}},
    }
    results = {r.name: r for r in run_doctor(skip_eagle=True)}
    assert results["archive storage"].outcome == FAIL
    assert "cannot write a probe object" in results["archive storage"].detail


def test_without_households_the_eagle_check_is_skipped_not_failed():
    assert outcomes(run_doctor())["EAGLE"] == SKIP


def test_a_live_read_through_the_simulator(make_household, settings, eagle_simulator):
    sim = eagle_simulator
    settings.EAGLE_CLOUD_URL = sim.cloud_url
    make_household("002506", password=SECRET, user_email="pilot@example.org")
    sim.add_household("002506", protocol="cloud", user_email="pilot@example.org", password=SECRET)
    results = {r.name: r for r in run_doctor()}
    assert results["EAGLE"].outcome == PASS, results["EAGLE"].detail
    assert "kW" in results["EAGLE"].detail
    sim.set_fault("002506", "reset")
    results = {r.name: r for r in run_doctor(cloud_id="002506")}
    assert results["EAGLE"].outcome == FAIL, results["EAGLE"].detail
    assert SECRET not in results["EAGLE"].detail


def test_the_live_read_ends_at_the_deadline(make_household, settings, eagle_simulator):
    """A gateway that holds its answer back must not hang the doctor (the same bounded read as the admin's)."""
    sim = eagle_simulator
    settings.EAGLE_CLOUD_URL = sim.cloud_url
    settings.EAGLE_READ_TIMEOUT = 10.0
    settings.LIVE_READ_DEADLINE = 1.0
    make_household("002506", password=SECRET, user_email="pilot@example.org")
    sim.add_household("002506", protocol="cloud", user_email="pilot@example.org", password=SECRET)
    sim.set_fault("002506", "slow", delay_ms=4000)
    started = time.monotonic()
    results = {r.name: r for r in run_doctor(cloud_id="002506")}
    assert time.monotonic() - started < 2.5
    assert results["EAGLE"].outcome == FAIL
    # The transport ends the exchange at the deadline ("... by the deadline"); the caller's own bound would say
    # "No answer within 1 s." if the transport did not. Either way the doctor says unreachable, in time.
    detail = results["EAGLE"].detail
    assert "unreachable" in detail and ("by the deadline" in detail or "No answer within 1 s." in detail)
