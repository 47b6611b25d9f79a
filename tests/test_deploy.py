"""The deployment files: supervisor, gunicorn, Docker. Docker has no engine here, so they are checked by what
can run: supervisor's own config parser, gunicorn's config loader, `docker-compose config` when present, the
Dockerfile's environment given to the real settings and collectstatic. The README's supervisor install steps are
run as written, in a temporary install."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from supervisor.options import ServerOptions

from tests.fixtures.core import PYENV_ENV, REPO_ROOT, redis_url
from tests.fixtures.s3 import free_ports

PROGRAMS = {"web", "pinger", "worker", "scheduler"}
INSTALL_REDIS_DB = 12  # the install test's own database on the tests' Redis server (TEST_REDIS)


@pytest.fixture
def supervisor_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LOG_ROOT", str(tmp_path))
    monkeypatch.setenv("SUPERVISOR_SOCKET", str(tmp_path / "supervisor" / "supervisor.sock"))
    monkeypatch.setenv("SIMULATOR_PORT", "8650")
    (tmp_path / "supervisor").mkdir()  # supervisord refuses a log folder that is missing; scripts/iseif creates it


def _supervisor_programs(name: str = "supervisord.conf") -> dict:
    options = ServerOptions()
    options.realize(["-c", str(REPO_ROOT / "deploy" / name)])
    return {group.name: group for group in options.process_group_configs}


def test_supervisor_runs_every_process_and_stops_them_gracefully(supervisor_env):
    programs = _supervisor_programs()
    assert set(programs) == PROGRAMS  # the simulator is the demo's, never production's
    for name, group in programs.items():
        (process,) = group.process_configs
        assert process.stopsignal == 15, name  # SIGTERM: the pinger finishes its cycle and closes its files
        assert process.autorestart, name
        assert process.autostart, name


def test_the_demo_file_adds_the_simulator_on_its_port(supervisor_env):
    programs = _supervisor_programs("supervisord-demo.conf")
    assert set(programs) == PROGRAMS | {"simulator"}
    (simulator,) = programs["simulator"].process_configs
    assert simulator.autostart
    assert simulator.command.endswith("eagle_simulator --from-db --port 8650")


def test_the_production_file_needs_no_variable_but_the_two_scripts_iseif_sets(monkeypatch, tmp_path):
    """It needed SIMULATOR_AUTOSTART, documented as optional; scripts/iseif spells out LOG_ROOT and the socket."""
    for name in [name for name in os.environ if name not in ("PATH", "HOME")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LOG_ROOT", str(tmp_path))
    monkeypatch.setenv("SUPERVISOR_SOCKET", str(tmp_path / "supervisor.sock"))
    (tmp_path / "supervisor").mkdir()
    assert set(_supervisor_programs()) == PROGRAMS


def test_the_pinger_gets_time_to_drain_before_a_kill(supervisor_env):
    (pinger,) = _supervisor_programs()["pinger"].process_configs
    assert pinger.stopwaitsecs >= 10
    assert "runpinger" in pinger.command


def test_the_gunicorn_config_loads_and_logs_to_server_log(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_ROOT", str(tmp_path))
    monkeypatch.delenv("WEB_BIND", raising=False)
    config = REPO_ROOT / "deploy/gunicorn.conf.py"
    namespace = {"__file__": str(config)}
    exec(compile(config.read_text(), str(config), "exec"), namespace)  # noqa: S102
    assert namespace["bind"] == "127.0.0.1:8000"
    assert namespace["logconfig_dict"]["handlers"]["file"]["filename"] == str(tmp_path / "server" / "server.log")


# --- The README's supervisor install steps, run as written ------------------------------------------------------
def _readme_install_steps() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text()
    marker = readme.index("<!-- supervisor-install-steps")
    block = re.search(r"```sh\n(.*?)```", readme[marker:], re.DOTALL)
    return block.group(1).splitlines()


@pytest.fixture
def install_database():
    """An empty PostgreSQL database of its own, as a new install has; dropped afterwards."""
    server = urlsplit(os.environ["DATABASE_URL"])
    name = f"{os.environ.get('TEST_DATABASE_NAME') or 'test'}_install"
    admin = urlunsplit(server._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(server._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def install_redis():
    url = redis_url(INSTALL_REDIS_DB)
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    yield url
    connection.flushdb()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_the_readme_supervisor_install_steps_work(tmp_path, install_database, install_redis):
    """Every line of the README's block, in order, in a fresh install: its own key folder, environment file, data
    folder, PostgreSQL database, Redis database and port. Only the clone is skipped (this checkout is the clone)
    and the example values are pointed at the test's; then the programs must be RUNNING, and stop cleanly."""
    (web_port,) = free_ports(1)
    # A deep folder, as installs (and CI's temporary folders) have: supervisord's socket path must still fit.
    data = tmp_path / ("deep-install-folder-" * 4) / "data"
    steps = _readme_install_steps()
    assert steps[0].startswith("git clone ") and steps[0].endswith("&& cd /srv/iseif")
    assert steps[-1] == "scripts/iseif supervisorctl status"
    script = "\n".join(steps[1:-1])
    for example, ours in {
        "/etc/iseif": str(tmp_path / "etc"),
        "/srv/iseif-data": str(data),
        "postgres://iseif@127.0.0.1:5432/iseif": install_database,
        "redis://127.0.0.1:6379/0": install_redis,
        "127.0.0.1:8000": f"127.0.0.1:{web_port}",
    }.items():
        assert example in script, f"the README's steps no longer hold {example!r}"
        script = script.replace(example, ours)
    (tmp_path / "home").mkdir()
    shell = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8", **PYENV_ENV}
    env_file = tmp_path / "etc" / "iseif.env"
    ctl = [str(REPO_ROOT / "scripts" / "iseif"), "supervisorctl"]
    ctl_env = {**shell, "ISEIF_ENV_FILE": str(env_file)}
    pid_file = data / "logs" / "supervisor" / "supervisord.pid"
    try:
        installed = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=REPO_ROOT,
            env=shell,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert "Traceback" not in installed.stderr
        assert re.search(r"Created admin user 'admin' with password \S+", installed.stdout)
        assert (data / "static" / "admin" / "css" / "base.css").is_file()  # collectstatic's STATIC_ROOT
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"

        def all_running():  # the README's last line, until every program is up
            status = subprocess.run(
                ["bash", "-c", steps[-1]], cwd=REPO_ROOT, env=ctl_env, capture_output=True, text=True, check=False
            )
            states = dict(line.split()[:2] for line in status.stdout.splitlines() if line.strip())
            return states if set(states) == PROGRAMS and set(states.values()) == {"RUNNING"} else None

        _wait_for(all_running, 90, "every program RUNNING under `scripts/iseif supervisorctl status`")
        request = urllib.request.Request(f"http://127.0.0.1:{web_port}/healthz", headers={"Host": "logger.example.org"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                health = json.loads(response.read())
        except urllib.error.HTTPError as failing:  # 503 until the pinger's first heartbeat
            health = json.loads(failing.read())
        assert health["checks"]["database"]["ok"] and health["checks"]["redis"]["ok"]
    finally:
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        subprocess.run([*ctl, "shutdown"], env=ctl_env, capture_output=True, timeout=120, check=False)
        deadline = time.monotonic() + 120
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            pytest.fail("supervisord did not exit within 120 s of `supervisorctl shutdown`")
    log = (data / "logs" / "supervisor" / "supervisord.log").read_text()
    # The pinger must drain and exit 0; an RQ process stopped before it installed its handlers dies of SIGTERM,
    # which is a clean stop too. Nothing may need SIGKILL.
    assert "stopped: pinger (exit status 0)" in log, log
    for program in sorted(PROGRAMS):
        assert re.search(rf"stopped: {program} \((exit status 0|terminated by SIGTERM)\)", log), log
    assert "SIGKILL" not in log, log


# --- Docker ------------------------------------------------------------------------------------------------------
def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (current + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    return instructions


def _image_environment() -> dict[str, str]:
    env = {}
    for keyword, arguments in _dockerfile():
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(arguments))
    return env


def _collectstatic_step() -> tuple[dict[str, str], list[str]]:
    """The variables the Dockerfile's collectstatic RUN sets for itself, and its command."""
    (arguments,) = [
        arguments for keyword, arguments in _dockerfile() if keyword == "RUN" and "collectstatic" in arguments
    ]
    tokens = shlex.split(arguments)
    assignments = {}
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
        name, value = tokens.pop(0).split("=", 1)
        assignments[name] = value
    assert "&&" not in tokens, "the collectstatic step does more than collectstatic; update this test"
    return assignments, tokens


def _python_with(env: dict[str, str], code: str) -> str:
    """Run code under the real settings (iseif.settings) with exactly env; return what it printed."""
    # DATABASE_URL only keeps the settings from creating the image's DATA_DIR (/data) on this machine, as they do
    # for the embedded SQLite default; it plays no part in the static files and is never connected to.
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "DATABASE_URL": "postgres://probe@127.0.0.1:1/x"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**base, **env, "DJANGO_SETTINGS_MODULE": "iseif.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _compose_config() -> str:
    result = subprocess.run(
        ["docker-compose", "config"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEY": "k"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _compose_environment(config: str, service: str) -> dict[str, str]:
    """A service's environment from `docker-compose config`, which prints it as a flat mapping."""
    section = re.search(rf"^  {service}:\n(.*?)(?=^  \S|\Z)", config, re.DOTALL | re.MULTILINE).group(1)
    block = re.search(r"^    environment:\n((?:      .*\n)*)", section, re.MULTILINE).group(1)
    pairs = [line.strip().split(":", 1) for line in block.splitlines()]
    return {name: value.strip().strip("'\"") for name, value in pairs}


def test_the_dockerfile_runs_as_a_non_root_user_with_gunicorn():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "-slim" in dockerfile.splitlines()[1]
    assert "\nUSER iseif\n" in dockerfile
    assert _image_environment()["LOG_ROOT"] == "/data/logs"
    assert 'CMD ["gunicorn"' in dockerfile


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_the_image_collects_static_files_where_its_web_server_serves_them():
    """Issue 11: the build collected into /app/data/static while the container served /data/static (no CSS)."""
    image = _image_environment()
    build_vars, _ = _collectstatic_step()
    web = _compose_environment(_compose_config(), "web")
    assert web["DATABASE_URL"].startswith("postgres://")  # the parser read the mapping
    probe = "from django.conf import settings; print(settings.STATIC_ROOT)"
    at_build = _python_with({**image, **build_vars}, probe)
    at_run = _python_with({**image, **web}, probe)
    assert at_build == at_run
    assert at_run == image.get("STATIC_ROOT")  # the setting, spelled out in the image
    volumes = [path for keyword, arguments in _dockerfile() if keyword == "VOLUME" for path in json.loads(arguments)]
    assert volumes == ["/data"]
    # A named volume takes the image's files only when it is created: after an upgrade it would serve old ones.
    assert not Path(at_run).is_relative_to("/data")


def test_the_image_collectstatic_step_runs_and_the_web_app_serves_what_it_wrote(tmp_path):
    """The RUN step's own command and variables on the image's environment; only STATIC_ROOT points into
    tmp_path instead of /app. Then the real settings (WhiteNoise, not the tests' finders) serve the result."""
    static_root = tmp_path / "static"
    build_vars, command = _collectstatic_step()
    env = {**_image_environment(), **build_vars, "STATIC_ROOT": str(static_root)}
    assert command[:3] == ["python", "manage.py", "collectstatic"]
    _python_with(env, f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, *{command[1:]!r}]))")
    assert (static_root / "admin" / "css" / "base.css").is_file()
    assert (static_root / "admin" / "css" / "base.css.gz").is_file()  # WhiteNoise's compressed copy

    serve = (
        "import django; django.setup(); from django.test import Client; "
        "print(Client().get('/static/admin/css/base.css', secure=True, HTTP_HOST='localhost').status_code)"
    )
    assert _python_with({**env, "ALLOWED_HOSTS": "localhost"}, serve) == "200"
    elsewhere = {**env, "ALLOWED_HOSTS": "localhost", "STATIC_ROOT": str(tmp_path / "elsewhere")}
    assert _python_with(elsewhere, serve) == "404"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_accepts_the_compose_file():
    config = _compose_config()
    for service in ["postgres", "redis", "web", "pinger", "worker", "scheduler"]:
        assert f"\n  {service}:\n" in config
