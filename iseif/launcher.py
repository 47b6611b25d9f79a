"""`scripts/iseif`: run manage.py, supervisord or supervisorctl with the environment of the install.

The environment comes from one file (iseif/service_env.py says why): -e FILE, else ISEIF_ENV_FILE, else the data
folder's service.env that `make run` writes. The Makefile also uses it to write that file (write-local,
write-demo). Errors are one line on stderr and exit status 2; otherwise the command replaces this process, so
supervisord and manage.py get signals and exit statuses directly.
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from iseif.ports import port_problems, web_url
from iseif.private import make_private_dir
from iseif.service_env import (
    DEMO_MARKER,
    ENV_FILE_NAME,
    REPO_ROOT,
    EnvFileError,
    demo_environment,
    local_environment,
    read_env_file,
    service_environment,
    write_env_file,
)

SUPERVISOR_CONF = REPO_ROOT / "deploy" / "supervisord.conf"
UNIX_SOCKET_MAX_BYTES = 100  # Linux allows 107 bytes in a socket's path (macOS 103); keep a margin

USAGE = """usage: scripts/iseif [-e ENV_FILE] COMMAND [ARGS...]

Runs a command of the ISEIF logger with the environment of its install, read from ENV_FILE (default:
$ISEIF_ENV_FILE, else $DATA_DIR/service.env, else data/service.env, the file `make run` writes).

commands:
  manage ARGS...        manage.py ARGS (e.g. `manage doctor`)
  supervisord [ARGS]    start the services (deploy/supervisord.conf unless -c is given); checks the ports first
  supervisorctl [ARGS]  control them (e.g. `supervisorctl status`, `supervisorctl shutdown`)
  check-ports           fail, naming the variable to change, when an address the services listen on is taken
  write-local FILE      (make run) write the environment of this shell plus the local defaults to FILE
  write-demo FILE PORT REDIS_URL
                        (make demo) write the demo's own environment to FILE, and mark its folder as a demo's
"""


def default_env_file(environ: Mapping[str, str]) -> Path:
    if environ.get("ISEIF_ENV_FILE"):
        return Path(environ["ISEIF_ENV_FILE"])
    return Path(environ.get("DATA_DIR") or REPO_ROOT / "data") / ENV_FILE_NAME


def supervisor_socket(log_root: Path) -> Path:
    """Where supervisord listens for supervisorctl: beside its logs, unless that path is too long for a unix
    socket (supervisord then refuses to start). A deep install folder then gets a socket named after its LOG_ROOT
    in a folder of this user's own (mode 0700) in the system's temporary folder, the same for every command."""
    beside_logs = log_root / "supervisor" / "supervisor.sock"
    if len(os.fsencode(beside_logs)) <= UNIX_SOCKET_MAX_BYTES:
        return beside_logs
    private = Path(tempfile.gettempdir()) / f"iseif-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    owner = private.stat()
    if owner.st_uid != os.getuid() or owner.st_mode & 0o077:
        raise EnvFileError(f"{private} must belong to this user with mode 0700 (it holds supervisord's socket)")
    digest = hashlib.sha256(os.fsencode(log_root.resolve())).hexdigest()[:16]
    socket = private / f"{digest}.sock"
    if len(os.fsencode(socket)) > UNIX_SOCKET_MAX_BYTES:
        raise EnvFileError("no short enough place for supervisord's socket: set TMPDIR to a short folder")
    return socket


def _venv_tool(name: str) -> str:
    return str(Path(sysconfig.get_path("scripts")) / name)


def _command_line(command: str, args: Sequence[str], env: Mapping[str, str]) -> list[str]:
    if command == "manage":
        return [sys.executable, str(REPO_ROOT / "manage.py"), *args]
    if command == "supervisorctl":
        # supervisorctl reads only [supervisorctl] (no includes), which is the same for the demo's file.
        return [_venv_tool("supervisorctl"), "-c", str(SUPERVISOR_CONF), *args]
    if command == "supervisord":
        problems = port_problems(env)
        if problems:
            raise EnvFileError(problems[0] if len(problems) == 1 else " / ".join(problems))
        make_private_dir(Path(env["LOG_ROOT"]) / "supervisor")  # supervisord's logs hold every program's output
        has_config = any(arg in ("-c", "--configuration") or arg.startswith("--configuration=") for arg in args)
        print(
            f"iseif: admin {web_url(env)}/admin/ (status page /status/); "
            f"logs in {env['LOG_ROOT']}/{{server,pinger,rotate,supervisor}}/",
            flush=True,
        )
        return [_venv_tool("supervisord"), *([] if has_config else ["-c", str(SUPERVISOR_CONF)]), *args]
    raise EnvFileError(f"unknown command {command[:40]!r} (manage, supervisord, supervisorctl, check-ports)")


def _write(command: str, args: Sequence[str]) -> int:
    if command == "write-local" and len(args) == 1:
        path = Path(args[0])
        env = local_environment(os.environ, Path(os.environ.get("DATA_DIR") or path.parent))
        header = "The environment `make run` started the services with; `make manage` runs manage.py with it.\n"
        header += "Written at every `make run`: change the configuration where you start it, not here."
        write_env_file(path, env, header)
        return 0
    if command == "write-demo" and len(args) == 3 and args[1].isdigit():
        path = Path(args[0])
        env = demo_environment(os.environ, path.parent, int(args[1]), args[2])
        header = "The environment of `make demo`, in its own data folder; `make manage DEMO=1` uses it.\n"
        header += "`make demo-clean` removes this folder."
        write_env_file(path, env, header)
        (path.parent / DEMO_MARKER).write_text("This folder holds `make demo` data; `make demo-clean` removes it.\n")
        return 0
    raise EnvFileError(f"usage: scripts/iseif {command} FILE" + (" PORT REDIS_URL" if command == "write-demo" else ""))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        env_file = default_env_file(os.environ)
        if args[:1] in (["-e"], ["--env-file"]):
            if len(args) < 2:
                raise EnvFileError("-e needs a file")
            env_file, args = Path(args[1]), args[2:]
        if not args or args[0] in ("-h", "--help", "help"):
            sys.stdout.write(USAGE)
            return 0 if args else 2
        command, rest = args[0], args[1:]
        if command.startswith("write-"):
            return _write(command, rest)
        env = service_environment(os.environ, read_env_file(env_file))
        if command == "check-ports":
            problems = port_problems(env)
            for problem in problems:
                sys.stderr.write(f"iseif: error: {problem}\n")
            return 1 if problems else 0
        if command.startswith("supervisor"):
            env["SUPERVISOR_SOCKET"] = str(supervisor_socket(Path(env["LOG_ROOT"])))
        command_line = _command_line(command, rest, env)
    except EnvFileError as exc:
        sys.stderr.write(f"iseif: error: {exc}\n")
        return 2
    os.execve(command_line[0], command_line, env)  # noqa: S606 - our own tools by absolute path, no shell
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
