"""`make run`, `make manage`, `make demo` and `make demo-clean`, run as a user types them, from a shell that holds
nothing of the tests' settings (each with its own data folder, port and Redis database); and the demo's commands.

`-o .venv/.installed` tells make not to rebuild the virtualenv the suite is running in, whatever the timestamps
of the requirements files say; everything after that step is what a user gets.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.core.management import CommandError, call_command

from loggerapp.demo import DEMO_NOTES, demo_cloud_id, demo_email
from loggerapp.models import Household, HouseholdStats
from tests.fixtures.core import PYENV_ENV, REPO_ROOT, redis_url
from tests.fixtures.s3 import free_ports

DEMO_REDIS_DB = 11  # the demo test's database on the tests' Redis server (TEST_REDIS)
RUN_REDIS_DB = 12


def _shell(tmp_path: Path, **variables: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **PYENV_ENV, **variables}


def _make(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def redis_db():
    """Factory: a flushed database of the tests' Redis server, flushed again afterwards."""
    used = []

    def take(number: int) -> str:
        redis.Redis.from_url(redis_url(number)).flushdb()
        used.append(number)
        return redis_url(number)

    yield take
    for number in used:
        redis.Redis.from_url(redis_url(number)).flushdb()


def test_make_run_stops_at_once_naming_the_variable_when_its_port_is_taken(tmp_path):
    """Issue 10: with port 8000 taken, `make run` printed the 8000 URL (another program's) while `web` restarted
    forever. Now it checks first, says which variable to set, and starts nothing."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        result = _make("run", f"WEB_BIND=127.0.0.1:{port}", env=_shell(tmp_path, DATA_DIR=str(tmp_path / "data")))
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert f"iseif: error: 127.0.0.1:{port} (the web server) is in use by another program; set WEB_BIND" in (
        result.stderr
    )
    assert re.search(rf"`make run WEB_BIND=127\.0\.0\.1:(?!{port}`)\d+`", result.stderr)
    assert "http://" not in result.stdout  # no admin URL pointing at the other program
    assert not (tmp_path / "data" / "logs" / "supervisor").exists()  # supervisord never started
    assert not (tmp_path / "data" / "db.sqlite3").exists()  # nor did it get as far as migrating


def test_make_manage_uses_the_recorded_environment_not_the_callers(tmp_path, redis_db):
    """What `make run` recorded (here: a Redis database) reaches manage.py in a later shell that lacks it, and
    a DATABASE_URL exported in that shell does not."""
    data = tmp_path / "data"
    first = _make("manage", "ARGS=migrate -v 0", env=_shell(tmp_path, DATA_DIR=str(data), REDIS_URL=redis_db(12)))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"REDIS_URL={redis_url(RUN_REDIS_DB)}" in (data / "service.env").read_text()

    other_shell = _shell(tmp_path, DATA_DIR=str(data), DATABASE_URL="postgres://nobody@127.0.0.1:1/elsewhere")
    doctor = _make("manage", "ARGS=doctor --skip-eagle", env=other_shell)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr
    assert re.search(rf"database\s+PASS\s+\d+\s+sqlite {data / 'db.sqlite3'}, migrations applied", doctor.stdout)
    assert re.search(r"redis\s+PASS", doctor.stdout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_the_demo_keeps_to_its_own_folder_doctor_knows_its_relay_and_demo_clean_removes_it(tmp_path, redis_db):
    """Issue 10: the demo's households stayed in the install's database, logs and archive, and a later `make run`
    polled the real relay with them; `doctor` beside the demo did not know its relay. The shell here holds a real
    install's configuration (unreachable on purpose): if the demo used any of it, it would fail."""
    data = tmp_path / "data"
    web_port, simulator_port = free_ports(2)
    real_install = {
        "DATA_DIR": str(data),
        "DATABASE_URL": "postgres://study@127.0.0.1:1/iseif",
        "AWS_STORAGE_BUCKET_NAME": "study-archive",
        "ALERT_EMAILS": "pi@example.org",
        "EAGLE_CLOUD_URL": "http://127.0.0.1:1/cgi-bin/post_manager",
    }
    shell = _shell(tmp_path, **real_install)
    demo_args = [
        "demo",
        "DEMO_HOUSEHOLDS=2",
        f"WEB_BIND=127.0.0.1:{web_port}",
        f"DEMO_SIMULATOR_PORT={simulator_port}",
        f"DEMO_REDIS_URL={redis_db(DEMO_REDIS_DB)}",
    ]
    output = (tmp_path / "demo.out").open("w+")
    demo = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", *demo_args],
        cwd=REPO_ROOT,
        env=shell,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the whole foreground group; so does our SIGINT below
    )
    pid_file = data / "demo" / "logs" / "supervisor" / "supervisord.pid"  # written once supervisord is up
    try:
        deadline = time.monotonic() + 180
        while not pid_file.exists():
            assert demo.poll() is None, Path(output.name).read_text()
            assert time.monotonic() < deadline, Path(output.name).read_text()
            time.sleep(0.5)

        # doctor beside the demo: its database, its simulator as the relay, its pinger's heartbeat.
        while True:
            doctor = _make("manage", "DEMO=1", "ARGS=doctor", env=shell)
            if doctor.returncode == 0 and re.search(r"pinger heartbeat\s+PASS", doctor.stdout):
                break
            assert time.monotonic() < deadline, doctor.stdout + doctor.stderr + Path(output.name).read_text()
            time.sleep(2)
        assert "Traceback" not in doctor.stderr
        assert re.search(rf"database\s+PASS\s+\d+\s+sqlite {data / 'demo' / 'db.sqlite3'}", doctor.stdout)
        assert re.search(r"EAGLE\s+PASS\s+\d+\s+dd0000: the cloud relay answered -?\d+\.\d+ kW", doctor.stdout)

        refused = _make("demo-clean", env=shell)
        assert refused.returncode != 0
        assert "the demo is running; stop it" in refused.stderr
        assert (data / "demo" / "db.sqlite3").exists()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise

    printed = Path(output.name).read_text()
    assert 'manage.py with the same environment: make manage DEMO=1 ARGS="doctor"' in printed
    assert "2 demo household(s) created" in printed
    assert "stopped: simulator (exit status 0)" in printed and "stopped: pinger (exit status 0)" in printed
    assert sorted(path.name for path in data.iterdir()) == ["demo"]  # nothing of the demo in the install's folder
    hour_files = list((data / "demo" / "logs").glob("*/iseif-rainforest-dd0000-*.jl"))
    assert hour_files, "the demo's pinger wrote no hour file for dd0000"

    cleaned = _make("demo-clean", env=shell)
    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout.strip() == f"Removed the demo data in {data / 'demo'}."
    assert list(data.iterdir()) == []


def test_demo_clean_removes_only_a_folder_the_demo_marked(tmp_path):
    data = tmp_path / "data"
    (data / "demo").mkdir(parents=True)
    (data / "demo" / "precious.jl").write_text("{}\n")
    result = _make("demo-clean", env=_shell(tmp_path, DATA_DIR=str(data)))
    assert result.returncode != 0
    assert "is not a folder `make demo` created (no .iseif-demo marker); not removing it" in result.stderr
    assert (data / "demo" / "precious.jl").exists()


@pytest.mark.django_db
def test_demo_setup_refuses_a_real_install():
    with pytest.raises(CommandError, match="demo_setup runs only in the demo's own data folder"):
        call_command("demo_setup", "--households", "3")
    assert not Household.objects.exists()


@pytest.mark.django_db
def test_remove_demo_households_deletes_what_an_older_demo_left_and_nothing_else(make_household, log_root):
    for number in range(3):
        make_household(demo_cloud_id(number), user_email=demo_email(demo_cloud_id(number)), notes=DEMO_NOTES)
    make_household("dd0003", user_email="someone@example.org", notes=DEMO_NOTES)  # a real EAGLE named dd...
    make_household("dd0004", user_email=demo_email("dd0004"), notes="our own notes")
    make_household("002506")
    (log_root / "2026-01-01-00").mkdir()
    (log_root / "2026-01-01-00" / "iseif-rainforest-dd0001-2026-01-01-00.jl").write_text("{}\n")

    listed = io.StringIO()
    call_command("remove_demo_households", "--dry-run", stdout=listed)
    assert listed.getvalue() == "Would delete 3 demo household(s): dd0000, dd0001, dd0002.\n"
    assert Household.objects.count() == 6

    removed = io.StringIO()
    call_command("remove_demo_households", stdout=removed)
    assert removed.getvalue().startswith("Deleted 3 demo household(s): dd0000, dd0001, dd0002.\n1 hour file(s)")
    assert sorted(Household.objects.values_list("cloud_id", flat=True)) == ["002506", "dd0003", "dd0004"]
    assert not HouseholdStats.objects.filter(household__cloud_id__in=["dd0000", "dd0001", "dd0002"]).exists()
