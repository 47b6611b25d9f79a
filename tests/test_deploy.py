"""The deployment files: supervisor, gunicorn, Docker. Docker has no engine here, so they are checked by what
can run: supervisor's own config parser, gunicorn's config loader, and `docker-compose config` when present."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from supervisor.options import ServerOptions

from tests.fixtures.core import REPO_ROOT

EXPECTED_PROGRAMS = {"web", "pinger", "worker", "scheduler", "simulator"}


@pytest.fixture
def supervisor_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LOG_ROOT", str(tmp_path))
    monkeypatch.setenv("SIMULATOR_AUTOSTART", "false")
    (tmp_path / "supervisor").mkdir()  # supervisord refuses a log folder that is missing; make run creates it


def _supervisor_programs() -> dict:
    options = ServerOptions()
    options.realize(["-c", str(REPO_ROOT / "deploy" / "supervisord.conf")])
    return {group.name: group for group in options.process_group_configs}


def test_supervisor_runs_every_process_and_stops_them_gracefully(supervisor_env):
    programs = _supervisor_programs()
    assert set(programs) == EXPECTED_PROGRAMS
    for name, group in programs.items():
        (process,) = group.process_configs
        assert process.stopsignal == 15, name  # SIGTERM: the pinger finishes its cycle and closes its files
        assert process.autorestart, name
    assert programs["simulator"].process_configs[0].autostart is False


def test_the_pinger_gets_time_to_drain_before_a_kill(supervisor_env):
    (pinger,) = _supervisor_programs()["pinger"].process_configs
    assert pinger.stopwaitsecs >= 10
    assert "runpinger" in pinger.command


def test_the_gunicorn_config_loads_and_logs_to_server_log(tmp_path, monkeypatch):
    monkeypatch.setenv("LOG_ROOT", str(tmp_path))
    monkeypatch.delenv("SERVICE_LOG", raising=False)  # the config sets it; monkeypatch removes it afterwards
    config = REPO_ROOT / "deploy/gunicorn.conf.py"
    namespace = {"__file__": str(config)}
    exec(compile(config.read_text(), str(config), "exec"), namespace)  # noqa: S102
    assert namespace["bind"] == "127.0.0.1:8000"
    assert namespace["logconfig_dict"]["handlers"]["file"]["filename"] == str(tmp_path / "server" / "server.log")


def test_the_dockerfile_runs_as_a_non_root_user_with_gunicorn():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "-slim" in dockerfile.splitlines()[1]
    assert "\nUSER iseif\n" in dockerfile
    assert "LOG_ROOT=/data/logs" in dockerfile
    assert 'CMD ["gunicorn"' in dockerfile


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_docker_compose_accepts_the_compose_file():
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
    for service in ["postgres", "redis", "web", "pinger", "worker", "scheduler"]:
        assert f"\n  {service}:\n" in result.stdout
