"""The install's environment file (iseif/service_env.py), its ports (iseif/ports.py) and scripts/iseif
(iseif/launcher.py), which runs every command with it."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from iseif.launcher import UNIX_SOCKET_MAX_BYTES, supervisor_socket
from iseif.ports import parse_bind, port_problems
from iseif.service_env import (
    EnvFileError,
    configuration_names,
    demo_environment,
    format_env_file,
    local_environment,
    parse_env_file,
    service_environment,
)
from tests.fixtures.core import REPO_ROOT
from tests.fixtures.s3 import free_ports

ISEIF = str(REPO_ROOT / "scripts" / "iseif")
FERNET_KEY = "MHJXjwjtCfaQpZLg0T1ulGUo4YnJAINTAP-FiaxjrDs="  # test-only


# --- The file format ---------------------------------------------------------------------------------------------
def test_the_file_reads_as_systemd_reads_an_environment_file():
    text = """
# a comment
DATA_DIR=/srv/iseif-data
export LOG_LEVEL=DEBUG
ROTATION_CRON="5 * * * *"
ALERT_EMAILS='a@example.org,b@example.org'
QUOTED="say \\"hi\\" \\\\ bye"
EMPTY=
  SPACED = value with spaces
"""
    assert parse_env_file(text) == {
        "DATA_DIR": "/srv/iseif-data",
        "LOG_LEVEL": "DEBUG",
        "ROTATION_CRON": "5 * * * *",
        "ALERT_EMAILS": "a@example.org,b@example.org",
        "QUOTED": 'say "hi" \\ bye',
        "EMPTY": "",
        "SPACED": "value with spaces",
    }


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "5 * * * *",
        " leading and trailing ",
        'a "quoted" word',
        "back\\slash\\",
        "'single'",
        "#hash",
        "$HOME",
    ],
)
def test_what_is_written_reads_back_the_same(value):
    env = {"SOME_VALUE": value, "OTHER": "x"}
    assert parse_env_file(format_env_file(env, header="two\nlines")) == env


def test_a_bad_line_is_named_by_number_without_its_value():
    with pytest.raises(EnvFileError) as error:
        parse_env_file("A=1\nSECRET_KEY hunter2-secret\n", origin="/etc/iseif/iseif.env")
    assert str(error.value) == "/etc/iseif/iseif.env, line 2: expected NAME=value"


def test_a_value_with_a_line_break_cannot_be_written():
    with pytest.raises(EnvFileError, match="SECRET_KEY holds a line break"):
        format_env_file({"SECRET_KEY": "one\ntwo"})


# --- Which variables are configuration -----------------------------------------------------------------------------
def test_configuration_names_are_found_in_the_source():
    names = configuration_names()
    for name in ["DATABASE_URL", "SECRET_KEY", "SECRET_KEY_FILE", "AWS_SECRET_ACCESS_KEY_FILE", "STATIC_ROOT"]:
        assert name in names  # settings.py
    for name in ["WEB_BIND", "FORWARDED_ALLOW_IPS", "DJANGO_SETTINGS_MODULE", "SIMULATOR_PORT"]:
        assert name in names  # gunicorn's config, manage.py, the demo's supervisor file
    assert "PATH" not in names and "HOME" not in names
    assert "DJANGO_SUPERUSER_PASSWORD" not in names  # a command's input, not the service's configuration


def test_every_variable_of_the_settings_is_in_the_readme_configuration_table():
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Households")]
    settings_text = (REPO_ROOT / "iseif" / "settings.py").read_text()
    read = set(re.findall(r"""\benv_\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""", settings_text))
    assert read, "the pattern no longer finds the settings"
    assert sorted(name for name in read if f"`{name}`" not in table) == []


# --- The environments of make run and make demo --------------------------------------------------------------------
def test_make_run_records_the_shell_configuration_and_the_local_defaults(tmp_path):
    shell = {
        "PATH": "/usr/bin",
        "HOME": str(tmp_path / "home"),
        "REDIS_URL": "redis://127.0.0.1:6390/2",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LOG_LEVEL": "DEBUG",
    }
    env = local_environment(shell, tmp_path / "data")
    assert env == {
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY_FILE": str(tmp_path / "data" / "secret_key"),
        "FIELD_ENCRYPTION_KEY_FILE": str(tmp_path / "data" / "field_encryption_key"),
        "HTTPS": "0",
        "LOG_ROOT": str(tmp_path / "data" / "logs"),
        "WEB_BIND": "127.0.0.1:8000",
        "REDIS_URL": "redis://127.0.0.1:6390/2",
        "LOG_LEVEL": "DEBUG",
    }


def test_make_run_keeps_secrets_and_addresses_the_shell_gives(tmp_path):
    shell = {"SECRET_KEY": "k" * 50, "FIELD_ENCRYPTION_KEY_FILE": "/etc/k", "HTTPS": "1", "WEB_BIND": "0.0.0.0:80"}
    env = local_environment(shell, tmp_path)
    assert env["SECRET_KEY"] == "k" * 50 and "SECRET_KEY_FILE" not in env
    assert env["FIELD_ENCRYPTION_KEY_FILE"] == "/etc/k"
    assert (env["HTTPS"], env["WEB_BIND"]) == ("1", "0.0.0.0:80")


def test_the_demo_takes_nothing_that_says_where_real_data_goes(tmp_path):
    shell = {
        "DATABASE_URL": "postgres://study@db/iseif",
        "AWS_STORAGE_BUCKET_NAME": "study-archive",
        "ARCHIVE_ROOT": "/srv/archive",
        "LOG_ROOT": "/srv/logs",
        "ALERT_EMAILS": "pi@example.org",
        "EAGLE_CLOUD_URL": "https://rainforestcloud.com:9445/cgi-bin/post_manager",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "WEB_BIND": "127.0.0.1:8100",
    }
    demo = tmp_path / "demo"
    env = demo_environment(shell, demo, 8651, "redis://127.0.0.1:6379/1")
    assert env == {
        "DATA_DIR": str(demo),
        "LOG_ROOT": str(demo / "logs"),
        "SECRET_KEY_FILE": str(demo / "secret_key"),
        "FIELD_ENCRYPTION_KEY_FILE": str(demo / "field_encryption_key"),
        "HTTPS": "0",
        "REDIS_URL": "redis://127.0.0.1:6379/1",
        "SIMULATOR_PORT": "8651",
        "EAGLE_CLOUD_URL": "http://127.0.0.1:8651/cgi-bin/post_manager",
        "WEB_BIND": "127.0.0.1:8100",
    }


def test_a_command_gets_configuration_only_from_the_file():
    inherited = {
        "PATH": "/usr/bin",
        "DATABASE_URL": "postgres://elsewhere/db",
        "LOG_LEVEL": "DEBUG",
        "DJANGO_SUPERUSER_PASSWORD": "first-admin-pw",
    }
    env = service_environment(inherited, {"DATA_DIR": "/srv/data", "LOG_LEVEL": "INFO"})
    assert env == {
        "PATH": "/usr/bin",
        "DJANGO_SUPERUSER_PASSWORD": "first-admin-pw",  # ensure_admin's input passes through
        "DATA_DIR": "/srv/data",
        "LOG_LEVEL": "INFO",
        "LOG_ROOT": "/srv/data/logs",
    }


def test_make_run_never_writes_the_first_admin_password_to_the_file(tmp_path):
    env = local_environment({"DJANGO_SUPERUSER_PASSWORD": "first-admin-pw"}, tmp_path)
    assert "DJANGO_SUPERUSER_PASSWORD" not in env


# --- Ports -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bind", "parsed"),
    [
        ("127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("[::1]:8001", ("::1", 8001)),
        (":8002", ("0.0.0.0", 8002)),  # noqa: S104 - gunicorn's meaning of a bare port
        ("localhost", ("localhost", 8000)),
        ("unix:/run/iseif.sock", None),
    ],
)
def test_web_bind_forms(bind, parsed):
    assert parse_bind(bind) == parsed


def test_a_malformed_web_bind_is_named():
    with pytest.raises(EnvFileError, match="WEB_BIND 'localhost:http' is not host:port"):
        parse_bind("localhost:http")


def test_a_taken_port_is_named_with_the_variable_and_a_free_one():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        (problem,) = port_problems({"WEB_BIND": f"127.0.0.1:{port}"})
        suggested = int(re.search(r"make run WEB_BIND=127\.0\.0\.1:(\d+)`", problem).group(1))
        assert problem.startswith(f"127.0.0.1:{port} (the web server) is in use by another program; set WEB_BIND")
        assert suggested > port and port_problems({"WEB_BIND": f"127.0.0.1:{suggested}"}) == []
    assert port_problems({"WEB_BIND": f"127.0.0.1:{port}"}) == []  # free again


def test_the_demo_simulator_port_is_checked_too():
    web, simulator = free_ports(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", simulator))
        holder.listen()
        (problem,) = port_problems({"WEB_BIND": f"127.0.0.1:{web}", "SIMULATOR_PORT": str(simulator)})
    assert f"127.0.0.1:{simulator} (the demo's EAGLE simulator) is in use" in problem
    assert "DEMO_SIMULATOR_PORT" in problem


# --- scripts/iseif -------------------------------------------------------------------------------------------------
def test_the_supervisor_socket_sits_beside_its_logs_when_the_path_fits():
    log_root = Path("/srv/iseif-data/logs")
    assert supervisor_socket(log_root) == log_root / "supervisor" / "supervisor.sock"


def test_a_deep_install_gets_a_short_private_socket_path(tmp_path):
    """supervisord refused to start ("AF_UNIX path too long") when LOG_ROOT was deep, as in CI's folders."""
    deep = tmp_path / ("x" * 120) / "logs"
    socket_path = supervisor_socket(deep)
    assert len(str(socket_path)) <= UNIX_SOCKET_MAX_BYTES
    assert socket_path == supervisor_socket(deep)  # every command finds the same one
    assert socket_path != supervisor_socket(tmp_path / ("y" * 120) / "logs")  # another install, another socket
    assert oct(socket_path.parent.stat().st_mode & 0o777) == "0o700"
    with socket.socket(socket.AF_UNIX) as server:  # and a server can really listen there
        server.bind(str(socket_path))
    socket_path.unlink()


def _iseif(*args: str, env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([ISEIF, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_without_an_environment_file_it_says_how_to_get_one(tmp_path):
    result = _iseif("manage", "doctor", env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == (
        f"iseif: error: no environment file at {tmp_path / 'service.env'}: start the service once with `make run` "
        "(it writes one there), or name the install's file in ISEIF_ENV_FILE or with -e FILE\n"
    )


def test_manage_runs_with_the_file_and_not_the_shell(tmp_path):
    """A DATABASE_URL in the caller's shell must not reach the command: the file has none, so SQLite it is."""
    env_file = tmp_path / "iseif.env"
    env_file.write_text(f"DATA_DIR={tmp_path / 'data'}\nSECRET_KEY={'s' * 50}\nFIELD_ENCRYPTION_KEY={FERNET_KEY}\n")
    probe = "from django.conf import settings; print(settings.DATABASES['default']['NAME'], settings.LOG_ROOT)"
    shell = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/elsewhere", "LOG_ROOT": "/x"}
    result = _iseif("-e", str(env_file), "manage", "shell", "-c", probe, env=shell, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()[-1].split()  # after the shell's note on its automatic imports
    assert printed == [str(tmp_path / "data" / "db.sqlite3"), str(tmp_path / "data" / "logs")]


def test_supervisord_does_not_start_on_a_taken_port(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env_file = tmp_path / "iseif.env"
        env_file.write_text(f"DATA_DIR={tmp_path}\nWEB_BIND=127.0.0.1:{port}\n")
        result = _iseif("-e", str(env_file), "supervisord", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"iseif: error: 127.0.0.1:{port} (the web server) is in use by another program" in result.stderr
    assert not (tmp_path / "logs" / "supervisor").exists()  # nothing was started
