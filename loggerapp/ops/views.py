"""/healthz, /metrics and /status/: thin views over health.py, metrics.py and status.py.

Who may read /metrics (decided here, documented in the README):
1. a signed-in active staff user who may view households (the admin's session; loggerapp.api.auth), or
2. an API token (`Authorization: Bearer <token>`, loggerapp.api.auth), which is what a Prometheus server on
   another host uses (`authorization: {credentials: ...}` in its scrape config), or
3. with METRICS_ALLOW_LOOPBACK (default on), a plain request from the loopback interface that carries no
   forwarding header at all: none of Forwarded, X-Forwarded-* (any of them: -For, -Proto, -Host...), X-Real-IP,
   Via and the client-address headers of common proxies and CDNs. A reverse proxy on the same host connects from
   loopback too; issue 11 found one adding only X-Forwarded-Proto, and /metrics open to the internet through it.
   A proxy that adds no header at all cannot be told from a local scraper: on a host with a local proxy, set
   METRICS_ALLOW_LOOPBACK=0 (README, docs/security.md).
A bad token is refused even from loopback (a client offering credentials wants them checked).
/status/ needs a staff session with the permission to view households (staff status alone is not enough).
/healthz needs no authentication, and to anyone else than those three it says only the status code and one word
per part ("ok" or "failing"): the database's type, shard (host) names and household counts are details for staff,
tokens and local scrapers. Details never hold a secret, a URL or an exception's text either way.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from loggerapp.api.auth import AuthenticationFailed, authenticate
from loggerapp.ops.health import run_health_checks
from loggerapp.ops.metrics import render_metrics
from loggerapp.ops.status import build_status_page

# Headers (as WSGI environ keys) that a proxy adds when it relays a request; any X-Forwarded-* counts as well.
PROXY_HEADERS = frozenset(
    "HTTP_" + name.upper().replace("-", "_")
    for name in (
        "Forwarded",
        "X-Real-IP",
        "Via",
        "X-Original-Forwarded-For",
        "True-Client-IP",
        "X-Client-IP",
        "Client-IP",
        "X-Cluster-Client-IP",
        "CF-Connecting-IP",
        "Fastly-Client-IP",
    )
)
FORWARDED_PREFIX = "HTTP_X_FORWARDED_"


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    report = run_health_checks()
    allowed, _challenge = metrics_allowed(request)  # the same rule as /metrics; never a 401 for a health check
    body = report.to_dict() if allowed else report.summary()
    return JsonResponse(body, status=200 if report.ok else 503)


def relayed(request: HttpRequest) -> bool:
    """True when the request carries any header a proxy adds (the module docstring lists them)."""
    return any(key in PROXY_HEADERS or key.startswith(FORWARDED_PREFIX) for key in request.META)


def is_local_request(request: HttpRequest) -> bool:
    """From the loopback interface and not relayed by a proxy (see the module docstring)."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback and not relayed(request)


def metrics_allowed(request: HttpRequest) -> tuple[bool, str]:
    """(allowed, WWW-Authenticate challenge for a refusal)."""
    try:
        authenticate(request)
        return True, ""
    except AuthenticationFailed as exc:
        if exc.invalid_token:
            return False, exc.www_authenticate
        if settings.METRICS_ALLOW_LOOPBACK and is_local_request(request):
            return True, ""
        return False, exc.www_authenticate


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    allowed, challenge = metrics_allowed(request)
    if not allowed:
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = challenge
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_safe
@staff_member_required
@permission_required("loggerapp.view_household", raise_exception=True)  # staff status alone is not enough
def status_page(request: HttpRequest) -> HttpResponse:
    status = build_status_page(
        page_number=request.GET.get("page", 1),
        problems_only=request.GET.get("problems") == "1",
        query=request.GET.get("q", "")[:100],
    )
    context = {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,  # the table needs the width
        "title": "Logger status",
        "status": status,
    }
    return render(request, "loggerapp/status.html", context)
