"""The environment of an install, kept in one file; `scripts/iseif` (iseif/launcher.py) runs every command with it.

Why a file: `make run` assembles the services' environment (key files under the data folder, HTTPS off, the data
folder itself) and hands it to supervisord. A `manage.py` typed later in another shell had none of it: it ended in
a traceback about SECRET_KEY, or, worse, ran against another database than the services. So `make run` and
`make demo` write the environment they start with to ``<data folder>/service.env``, start supervisord through
``scripts/iseif``, and ``make manage`` / ``scripts/iseif manage|supervisorctl`` read the same file. An operator's
install writes that file by hand (KEY=value lines, the format of systemd's ``EnvironmentFile=``) and names it in
``ISEIF_ENV_FILE``.

The file is the whole configuration: a variable the service reads (see ``configuration_names``) that the file does
not set is removed from the inherited environment instead of passed on, so a DATABASE_URL left in someone's shell
can never point a command at another database than the one the running services use.

Nothing here imports Django: this runs before the settings can load, and must say in one line why they cannot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from iseif.private import make_private_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_FILE_NAME = "service.env"
DEMO_MARKER = ".iseif-demo"  # in a demo's data folder: `make demo-clean` removes only folders that carry it
DEFAULT_WEB_BIND = "127.0.0.1:8000"  # gunicorn's, in deploy/gunicorn.conf.py

# Read by manage.py and the supervisor files rather than by iseif/settings.py.
_EXTRA_NAMES = {"DJANGO_SETTINGS_MODULE", "SIMULATOR_PORT", "SUPERVISOR_SOCKET"}
# One-off inputs of a command (ensure_admin's first user), not configuration of the service: they pass from the
# caller's shell to the command and are never written to the file, so no admin password lands on disk.
_COMMAND_INPUTS = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_EMAIL"}
# Never recorded: manage.py and the WSGI module choose the settings module themselves (a test run's
# DJANGO_SETTINGS_MODULE=tests.settings in the shell that starts `make run` must not reach the services), and the
# supervisor socket is set anew by scripts/iseif at every start.
_NEVER_RECORDED = {"DJANGO_SETTINGS_MODULE", "SUPERVISOR_SOCKET"}
# What the demo takes from the shell: how it is served, never where data lives or goes.
_DEMO_PASSTHROUGH = ("WEB_BIND", "WEB_WORKERS", "WEB_THREADS", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "LOG_LEVEL")

_SETTING_READ = re.compile(r"""\benv_(str|bool|int|float|list|secret)\(\s*["']([A-Z][A-Z0-9_]*)["']""")
_ENVIRON_READ = re.compile(r"""\bos\.environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""")
_ASSIGNMENT = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")


class EnvFileError(ValueError):
    """A problem with the environment file or the command line; the message is one line and holds no value."""


# --- Which variables are configuration ---------------------------------------------------------------------------
def configuration_names(root: Path = REPO_ROOT) -> frozenset[str]:
    """Every environment variable the service reads: the env_* calls of iseif/settings.py (a secret also as
    NAME_FILE), the os.environ reads of the Django app and the deploy files, and the few manage.py and the demo's
    supervisor file use; not the one-off inputs of a command (_COMMAND_INPUTS). Found in the source, so a setting
    added later is covered without a list to keep."""
    names = set(_EXTRA_NAMES)
    for match in _SETTING_READ.finditer((root / "iseif" / "settings.py").read_text(encoding="utf-8")):
        names.add(match.group(2))
        if match.group(1) == "secret":
            names.add(f"{match.group(2)}_FILE")
    for path in [*(root / "loggerapp").rglob("*.py"), *(root / "deploy").glob("*.py")]:
        names.update(_ENVIRON_READ.findall(path.read_text(encoding="utf-8")))
    return frozenset(names - _COMMAND_INPUTS)


# --- The file format ---------------------------------------------------------------------------------------------
def parse_env_file(text: str, origin: str = "the environment file") -> dict[str, str]:
    """KEY=value lines; blank lines and lines starting with # are ignored, `export ` is allowed, and a value in
    matching single or double quotes loses them (in double quotes, \\" and \\\\ stand for " and \\), as systemd
    reads an EnvironmentFile. Errors name the line, never its value (it may be a secret)."""
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.fullmatch(line)
        if not match:
            raise EnvFileError(f"{origin}, line {number}: expected NAME=value")
        name, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\(["\\])', r"\1", value)
        env[name] = value
    return env


def format_env_file(env: Mapping[str, str], header: str = "") -> str:
    """The inverse of parse_env_file: values with spaces, quotes or backslashes are double-quoted and escaped."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name in sorted(env):
        value = env[name]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise EnvFileError(f"{name[:40]!r} is not a variable name")
        if any(char in value for char in "\n\r\0"):
            raise EnvFileError(f"{name} holds a line break, which an environment file cannot keep")
        if value and (value != value.strip() or any(char in value for char in " \t\"'\\#$`")):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def read_env_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvFileError(
            f"no environment file at {path}: start the service once with `make run` (it writes one there), "
            "or name the install's file in ISEIF_ENV_FILE or with -e FILE"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"cannot read {path} ({type(exc).__name__})") from None
    return parse_env_file(text, origin=str(path))


def write_env_file(path: Path, env: Mapping[str, str], header: str) -> None:
    """Replace the file atomically, mode 0600 whatever the umask: it may hold secrets or name their files."""
    make_private_dir(path.parent)  # DATA_DIR (iseif/private.py)
    text = format_env_file(env, header)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


# --- The environments make run and make demo start with ------------------------------------------------------------
def local_environment(environ: Mapping[str, str], data_dir: Path) -> dict[str, str]:
    """`make run`: the configuration variables of the shell that starts it, plus the defaults for one machine
    (key files written by scripts/local-secrets.sh, plain http on loopback, everything under DATA_DIR)."""
    names = configuration_names() - _NEVER_RECORDED
    data_dir = data_dir.resolve()
    env = {name: value for name, value in environ.items() if name in names}
    env["DATA_DIR"] = str(data_dir)
    for secret, file_name in (("SECRET_KEY", "secret_key"), ("FIELD_ENCRYPTION_KEY", "field_encryption_key")):
        if not (env.get(secret) or env.get(f"{secret}_FILE")):
            env[f"{secret}_FILE"] = str(data_dir / file_name)
    env.setdefault("HTTPS", "0")
    env.setdefault("LOG_ROOT", str(data_dir / "logs"))
    env.setdefault("WEB_BIND", DEFAULT_WEB_BIND)
    return env


def demo_environment(environ: Mapping[str, str], demo_dir: Path, simulator_port: int, redis_url: str) -> dict[str, str]:
    """`make demo`: its own data folder, keys, Redis database and relay (the simulator). Nothing that says where
    a real install keeps or sends data (DATABASE_URL, AWS_*, ARCHIVE_ROOT, ALERT_EMAILS...) is taken from the shell,
    so the demo's fake households never reach a real database, archive or mailbox."""
    demo_dir = demo_dir.resolve()
    env = {name: environ[name] for name in _DEMO_PASSTHROUGH if environ.get(name)}
    env.setdefault("WEB_BIND", DEFAULT_WEB_BIND)
    env.update(
        DATA_DIR=str(demo_dir),
        LOG_ROOT=str(demo_dir / "logs"),
        SECRET_KEY_FILE=str(demo_dir / "secret_key"),
        FIELD_ENCRYPTION_KEY_FILE=str(demo_dir / "field_encryption_key"),
        HTTPS="0",
        REDIS_URL=redis_url,
        SIMULATOR_PORT=str(simulator_port),
        EAGLE_CLOUD_URL=f"http://127.0.0.1:{simulator_port}/cgi-bin/post_manager",
    )
    return env


def service_environment(inherited: Mapping[str, str], configured: Mapping[str, str]) -> dict[str, str]:
    """What a command runs with: the inherited environment without any configuration variable, then the file's.
    LOG_ROOT is spelled out (settings would default it the same way) because supervisor's file needs it."""
    names = configuration_names()
    env = {name: value for name, value in inherited.items() if name not in names}
    env.update(configured)
    data_dir = Path(env.get("DATA_DIR") or REPO_ROOT / "data")
    env.setdefault("LOG_ROOT", str(data_dir / "logs"))
    return env
