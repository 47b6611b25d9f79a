"""Are the addresses the services will listen on free? Checked before anything starts.

Why: with port 8000 taken, `make run` used to print the 8000 URL (which led to the other program) while gunicorn
restarted forever under supervisor with no reason on the console. A bind test now names the address, the
variable that moves it, and a free port nearby, before migrating or starting anything.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping

from iseif.service_env import DEFAULT_WEB_BIND, EnvFileError


def parse_bind(bind: str) -> tuple[str, int] | None:
    """(host, port) of a gunicorn bind address; None for a unix socket or file descriptor (no port to check)."""
    bind = bind.strip()
    if bind.startswith(("unix:", "fd://")):
        return None
    host, sep, port = bind.rpartition(":")
    if not sep:  # a host alone: gunicorn's default port
        host, port = bind, "8000"
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - gunicorn's meaning of ":8000"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise EnvFileError(f"WEB_BIND {bind[:60]!r} is not host:port")
    return host, int(port)


def bind_problem(host: str, port: int) -> str | None:
    """None when a server could listen on host:port now; otherwise why not. SO_REUSEADDR as gunicorn sets it, so a
    connection of a previous run in TIME_WAIT does not count as taken, while a listening program does."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        return f"{host} does not resolve"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is in use by another program"
            return f"cannot be used ({exc.strerror})"
    return None


def _free_neighbour(host: str, port: int) -> int | None:
    return next((other for other in range(port + 1, min(port + 50, 65535)) if bind_problem(host, other) is None), None)


def port_problems(env: Mapping[str, str]) -> list[str]:
    """One message per address the services would listen on that is not free: the web server's WEB_BIND, and the
    demo's simulator. Each says which variable moves it, and suggests a free port nearby."""
    wanted: list[tuple[str, int, str, str]] = []
    web = parse_bind(env.get("WEB_BIND") or DEFAULT_WEB_BIND)
    if web:
        wanted.append((*web, "WEB_BIND", "the web server"))
    if env.get("SIMULATOR_PORT"):
        if not env["SIMULATOR_PORT"].isdigit():
            raise EnvFileError("SIMULATOR_PORT must be a port number")
        wanted.append(("127.0.0.1", int(env["SIMULATOR_PORT"]), "DEMO_SIMULATOR_PORT", "the demo's EAGLE simulator"))
    problems = []
    for host, port, variable, what in wanted:
        problem = bind_problem(host, port)
        if problem is None:
            continue
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        free = _free_neighbour(host, port)
        if variable == "WEB_BIND":
            example = f"{'[' + host + ']' if ':' in host else host}:{free}" if free else "host:port"
            hint = f"set WEB_BIND to a free address, e.g. `make run WEB_BIND={example}` or WEB_BIND={example} in the "
            hint += "environment file"
        else:
            hint = f"set DEMO_SIMULATOR_PORT to a free port, e.g. `make demo DEMO_SIMULATOR_PORT={free or 'N'}`"
        problems.append(f"{shown} ({what}) {problem}; {hint}")
    return problems


def web_url(env: Mapping[str, str]) -> str:
    bind = parse_bind(env.get("WEB_BIND") or DEFAULT_WEB_BIND)
    if bind is None:
        return f"the socket {env.get('WEB_BIND')}"
    host, port = bind
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)  # noqa: S104
    return f"http://{host}:{port}"
