"""What the web server tells whom (issue 11): /metrics and /healthz behind a proxy, anonymous /healthz, a hung Redis,
and which peers gunicorn believes about https. The views through Django's test client; the Redis hang and the
forwarding headers also through a real gunicorn.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from loggerapp.models import PingerHeartbeat
from tests.fixtures.api import bearer
from tests.fixtures.core import REPO_ROOT, redis_url, subprocess_env
from tests.test_service_log import _free_port

pytestmark = pytest.mark.django_db

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}
FORWARDING_HEADERS = [
    "X-Forwarded-For",
    "X-Forwarded-Proto",  # the one issue 11 found: a proxy adding only this opened /metrics to the internet
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Ssl",
    "Forwarded",
    "X-Real-IP",
    "Via",
    "True-Client-IP",
]


@pytest.fixture
def healthy(settings):
    settings.REDIS_URL = redis_url(13)
    PingerHeartbeat.objects.create(
        name="pinger-host.example.org:0/1", beat_at=timezone.now() - timedelta(seconds=1), interval=6, households=42
    )


# --- /metrics and /healthz: who is "local" -------------------------------------------------------------------


@pytest.mark.parametrize("header", FORWARDING_HEADERS)
def test_a_request_relayed_from_loopback_is_not_local(client, healthy, header):
    value = "for=198.51.100.4" if header == "Forwarded" else "1.1 proxy" if header == "Via" else "https"
    assert client.get("/metrics").status_code == 200  # a local scraper, no header
    relayed = client.get("/metrics", headers={header: value})
    assert relayed.status_code == 401
    health = client.get("/healthz", headers={header: value})
    assert json.loads(health.content) == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "pinger": "ok", "disk": "ok", "scheduler": "ok"},
    }


# --- /healthz: one word per part for anyone, details for staff, tokens and local scrapers -----------------------


def test_anonymous_healthz_says_one_word_per_part_and_nothing_about_the_installation(client, healthy, settings):
    response = client.get("/healthz", **REMOTE)
    assert response.status_code == 200
    assert json.loads(response.content) == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "pinger": "ok", "disk": "ok", "scheduler": "ok"},
    }
    text = response.content.decode()
    assert "postgresql" not in text and "pinger-host" not in text and "42" not in text

    settings.REDIS_URL = f"redis://127.0.0.1:{_free_port()}/0"
    failing = client.get("/healthz", **REMOTE)
    assert failing.status_code == 503
    body = json.loads(failing.content)
    assert body == {
        "status": "failing",
        "checks": {"database": "ok", "redis": "failing", "pinger": "ok", "disk": "ok", "scheduler": "ok"},
    }


def test_staff_tokens_and_local_scrapers_get_the_details(client, staff_client, healthy, api_token):
    for response in (
        staff_client.get("/healthz", **REMOTE),
        bearer(api_token).get("/healthz", **REMOTE),
        client.get("/healthz"),  # loopback, no proxy header
    ):
        body = json.loads(response.content)
        assert body["checks"]["database"]["detail"] == "postgresql"
        assert body["checks"]["pinger"]["data"]["households"] == 42


def test_a_wrong_token_gets_the_short_answer_not_a_401(client, healthy):
    response = bearer("iseif_not-a-real-token").get("/healthz")
    assert response.status_code == 200  # a health check never asks for credentials
    assert json.loads(response.content)["checks"]["database"] == "ok"


# --- a hung Redis ----------------------------------------------------------------------------------------------


class HungRedis:
    """Accepts connections and never completes an answer: ``trickle`` sends the start of a long reply a byte at a
    time (a socket timeout restarts with every byte), otherwise nothing at all. Notes when each connection was
    opened and when the client closed it."""

    def __init__(self, trickle: bool = False) -> None:
        self.trickle = trickle
        self.connections: list[socket.socket] = []
        self.spans: list[list[float]] = []  # [opened, closed] per connection (closed: inf while open)
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            span = [time.monotonic(), float("inf")]
            self.connections.append(connection)
            self.spans.append(span)
            threading.Thread(target=self._serve, args=(connection, span), daemon=True).start()

    def _serve(self, connection: socket.socket, span: list[float]) -> None:
        try:
            connection.recv(4096)
            if self.trickle:
                connection.sendall(b"$1000000\r\n")
                while not self._stop.wait(0.2):
                    connection.sendall(b"x")
            else:
                while connection.recv(4096):  # read what comes, answer nothing, until the client closes
                    pass
                span[1] = time.monotonic()
        except OSError:
            span[1] = min(span[1], time.monotonic())

    def most_at_once(self) -> int:
        """The largest number of connections that were open at the same moment."""
        return max(
            (sum(1 for other in self.spans if other[0] <= start < other[1]) for start, _ in self.spans), default=0
        )

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def hung_redis() -> Iterator[HungRedis]:
    server = HungRedis(trickle=True)
    yield server
    server.close()


def test_a_redis_trickling_its_answer_ends_the_health_check_in_time(client, settings, hung_redis):
    settings.REDIS_URL = hung_redis.url
    settings.HEALTH_REDIS_TIMEOUT = 0.5
    settings.HEALTH_REQUIRE_PINGER = False
    answers: list = []
    worker = threading.Thread(target=lambda: answers.append(client.get("/healthz", **REMOTE)), daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=10)
    assert answers, "/healthz was still waiting for Redis after 10 s"
    assert time.monotonic() - started < 2.0
    assert answers[0].status_code == 503
    assert json.loads(answers[0].content)["checks"]["redis"] == "failing"


@contextmanager
def gunicorn(tmp_path, **env: str) -> Iterator[str]:
    """The real web server with deploy/gunicorn.conf.py; yields its base URL."""
    port = _free_port()
    environment = subprocess_env(
        LOG_ROOT=str(tmp_path / "logs"), WEB_BIND=f"127.0.0.1:{port}", HOME=str(tmp_path), **env
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "--no-control-socket", "iseif.wsgi"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/no-such-page", timeout=20, allow_redirects=False)  # loads Django: slow
                break
            except requests.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_hung_redis_costs_one_connection_per_process_not_a_thread_per_request(tmp_path):
    """Eight /healthz at once on one worker of eight threads, Redis accepting and never answering: every answer
    is in time, and Redis never had more than one connection from the process open at once (each request used to
    open its own and wait on it)."""
    silent = HungRedis(trickle=False)
    try:
        env = {"REDIS_URL": silent.url, "HEALTH_REDIS_TIMEOUT": "1", "WEB_WORKERS": "1", "WEB_THREADS": "8"}
        with gunicorn(tmp_path, HEALTH_REQUIRE_PINGER="0", **env) as base:

            def probe(_: int) -> tuple[int, float]:
                started = time.monotonic()
                status = requests.get(f"{base}/healthz", timeout=20).status_code
                return status, time.monotonic() - started

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(probe, range(8)))
    finally:
        silent.close()
    assert [status for status, _ in results] == [503] * 8
    assert max(elapsed for _, elapsed in results) < 3.0, results
    assert silent.connections and silent.most_at_once() == 1, silent.spans


# --- gunicorn: who may say a request came over https ----------------------------------------------------------


def test_gunicorn_believes_x_forwarded_proto_only_behind_a_configured_proxy(tmp_path):
    """HTTPS=1 redirects plain http to https. A request from 127.0.0.1 claiming X-Forwarded-Proto: https skipped
    that redirect although USE_X_FORWARDED_PROTO was off: gunicorn believed the header from loopback."""
    spoofed = {"X-Forwarded-Proto": "https"}
    with gunicorn(tmp_path, HTTPS="1", USE_X_FORWARDED_PROTO="0") as base:
        plain = requests.get(f"{base}/admin/login/", allow_redirects=False, timeout=10)
        claimed = requests.get(f"{base}/admin/login/", headers=spoofed, allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    assert claimed.status_code == 301 and claimed.headers["Location"].startswith("https://")

    with gunicorn(tmp_path, HTTPS="1", USE_X_FORWARDED_PROTO="1", FORWARDED_ALLOW_IPS="127.0.0.1") as base:
        proxied = requests.get(f"{base}/admin/login/", headers=spoofed, allow_redirects=False, timeout=10)
        other_header = requests.get(
            f"{base}/admin/login/", headers={"X-Forwarded-Ssl": "on"}, allow_redirects=False, timeout=10
        )
    assert proxied.status_code == 200  # the configured proxy's word is taken
    assert other_header.status_code == 301  # only X-Forwarded-Proto, the header Django reads too
