"""Thin views: check the method, authenticate, validate the input, call one function, return JSON.

Every answer under /api/ is JSON, including 401/403/404/405/500 (see api_endpoint and not_found), and carries
the headers of responses.API_HEADERS. A view answers anything but its own result by raising ApiError (a 400,
404, 429, 502...), which api_endpoint turns into the one error shape; no helper returns "a household or a
response".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from loggerapp.api import responses as r
from loggerapp.api.auth import AuthenticationFailed, authenticate
from loggerapp.api.latest import latest_reading
from loggerapp.api.readings import API_FORMATS, readings_response
from loggerapp.api.responses import ApiError
from loggerapp.api.schema import openapi_document
from loggerapp.api.serializers import household_to_dict, latest_to_dict, live_read_to_dict
from loggerapp.api.throttle import Throttled, ThrottleUnavailable, acquire_live_read
from loggerapp.export.ranges import BadRange, parse_span
from loggerapp.live import deadline_in, live_read
from loggerapp.models import Household, Status
from loggerapp.validators import is_cloud_id

logger = logging.getLogger(__name__)

READ_METHODS = ("GET", "HEAD")
# Live-read failures: the device or relay is the upstream, so they are gateway errors.
EAGLE_ERROR_STATUS = {
    Status.UNREACHABLE: 504,
    Status.BAD_CREDENTIALS: 502,
    Status.METER_NOT_JOINED: 502,
    Status.BAD_RESPONSE: 502,
}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, r.INVALID_PARAMETER, message)


def api_endpoint(methods: tuple[str, ...] = READ_METHODS) -> Callable:
    """Wrap a view: 405 for other methods, 401 unless authenticated (403 without the permission), any ApiError
    as its JSON answer, JSON 500 instead of an HTML page.

    csrf_exempt: no API view changes state (GET/HEAD only), and without it a POST would meet the CSRF
    middleware's HTML 403 instead of our JSON 405.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                return r.api_error(
                    405,
                    r.METHOD_NOT_ALLOWED,
                    f"{request.method} is not allowed here; use {', '.join(methods)}.",
                    headers={"Allow": ", ".join(methods)},
                )
            try:
                request.api_principal = authenticate(request)
            except AuthenticationFailed as exc:
                if exc.forbidden:
                    return r.api_error(403, r.FORBIDDEN, exc.message)
                return r.api_error(401, r.UNAUTHORIZED, exc.message, {"WWW-Authenticate": exc.www_authenticate})
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except Exception:
                logger.exception("api: %s %s failed", request.method, request.path)
                return r.api_error(500, r.INTERNAL_ERROR, "Internal error; it has been logged.")

        return wrapper

    return decorate


def parse_cloud_id(value: str) -> str | None:
    """The normalised cloud id, or None. ASCII only, so no Unicode case mapping can turn into hex digits."""
    if not value.isascii():
        return None
    value = value.lower()
    return value if is_cloud_id(value) else None


def find_household(raw_cloud_id: str, households=None) -> Household:
    """The household named in the URL; ApiError 400 for a malformed id (before any query), 404 for one not in
    ``households`` (default: all)."""
    cloud_id = parse_cloud_id(raw_cloud_id)
    if cloud_id is None:
        raise ApiError(400, r.INVALID_CLOUD_ID, "A cloud id is exactly 6 hexadecimal digits, for example 002506.")
    household = (households if households is not None else Household.objects).filter(cloud_id=cloud_id).first()
    if household is None:
        raise ApiError(404, r.NOT_FOUND, f"No household with cloud id {cloud_id}.")
    return household


def _int_param(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise invalid_parameter(f"{name} must be an integer from {low} to {high}.")
    value = int(raw)
    if not low <= value <= high:
        raise invalid_parameter(f"{name} must be an integer from {low} to {high}.")
    return value


def _page_link(request: HttpRequest, page: int | None) -> str | None:
    if page is None:
        return None
    query = request.GET.copy()
    query["page"] = str(page)
    return f"{request.path}?{urlencode(sorted(query.items()))}"


@api_endpoint()
def households(request: HttpRequest) -> HttpResponse:
    """Households, ordered by cloud id, a page at a time; ?status=<Status>, ?active=true|false."""
    page = _int_param(request, "page", 1, 1, 10**9)
    page_size = _int_param(request, "page_size", settings.API_PAGE_SIZE, 1, settings.API_MAX_PAGE_SIZE)
    queryset = Household.objects.select_related("stats").order_by("cloud_id")
    status = request.GET.get("status")
    if status is not None:
        if status not in Status.values:
            raise invalid_parameter(f"status must be one of {', '.join(Status.values)}.")
        matches = Q(stats__status=status)
        if status == Status.NEVER_POLLED:
            matches |= Q(stats__isnull=True)  # no statistics row yet: never polled either
        queryset = queryset.filter(matches)
    active = request.GET.get("active")
    if active is not None:
        if active.lower() not in _BOOLEANS:
            raise invalid_parameter("active must be true or false.")
        queryset = queryset.filter(active=_BOOLEANS[active.lower()])
    count = queryset.count()
    num_pages = max(1, -(-count // page_size))
    start = (page - 1) * page_size
    results = [household_to_dict(h) for h in queryset[start : start + page_size]] if start < count else []
    return r.api_json(
        {
            "count": count,
            "page": page,
            "page_size": page_size,
            "num_pages": num_pages,
            "next": _page_link(request, page + 1 if page < num_pages else None),
            "previous": _page_link(request, min(page - 1, num_pages) if page > 1 else None),
            "results": results,
        }
    )


@api_endpoint()
def household_detail(request: HttpRequest, cloud_id: str) -> HttpResponse:
    """One household with its status and statistics."""
    household = find_household(cloud_id, Household.objects.select_related("stats"))
    return r.api_json(household_to_dict(household))


@api_endpoint()
def household_latest(request: HttpRequest, cloud_id: str) -> HttpResponse:
    """The last logged reading (hour files, then statistics); never asks the device."""
    household = find_household(cloud_id)
    latest = latest_reading(household, settings.LOG_ROOT)
    if latest is None:
        raise ApiError(404, r.NOT_FOUND, f"No reading has been logged for {household.cloud_id} yet.")
    return r.api_json(latest_to_dict(latest))


@api_endpoint(methods=("GET",))  # not HEAD: a HEAD would read the archive for nothing
def household_readings(request: HttpRequest, cloud_id: str) -> HttpResponse:
    """Logged readings over ?start=&end= (UTC, at most EXPORT_WEB_MAX_DAYS days), ?format=csv|ndjson, streamed."""
    household = find_household(cloud_id)
    api_format = request.GET.get("format") or "csv"
    if api_format not in API_FORMATS:
        raise invalid_parameter(f"format must be one of {', '.join(API_FORMATS)}.")
    try:
        span = parse_span(request.GET.get("start", ""), request.GET.get("end", ""), settings.EXPORT_WEB_MAX_DAYS)
    except BadRange as exc:
        raise invalid_parameter(f"{str(exc)[:1].upper()}{str(exc)[1:]}") from None
    return readings_response(household.cloud_id, span, api_format)


@api_endpoint(methods=("GET",))  # not HEAD: a HEAD would spend a live read on nothing
def event(request: HttpRequest, cloud_id: str) -> HttpResponse:
    """A live read of the household's EAGLE now, rate limited per household and per client.

    Deactivated households (a participant who withdrew) are answered like unknown ones: nobody may ask their
    gateway any more, and the answer does not say whether the id was ever in the study.
    """
    household = find_household(cloud_id, Household.objects.filter(active=True))
    cloud_id = household.cloud_id  # normalised: the throttle and the log use one spelling
    try:
        acquire_live_read(cloud_id, request.api_principal.throttle_key)
    except Throttled as exc:
        what = "this household" if exc.scope == "household" else "this client"
        raise ApiError(
            429,
            r.THROTTLED,
            f"Too many live reads for {what}; retry after {exc.retry_after_header} s.",
            headers={"Retry-After": exc.retry_after_header},
            scope=exc.scope,
            retry_after=exc.retry_after_s,
        ) from None
    except ThrottleUnavailable as exc:
        logger.error("api: live-read rate limiter unavailable (%s); refusing live reads", exc)
        raise ApiError(503, r.THROTTLE_UNAVAILABLE, "Live reads are unavailable right now; retry later.") from None
    live = live_read(household, deadline_in())
    if not live.ok:
        logger.info("api: live read of %s failed: %s", cloud_id, live.error_kind)
        status = EAGLE_ERROR_STATUS.get(live.error_kind, 502)
        raise ApiError(status, live.error_kind, r.eagle_error_message(live.error_kind))
    return r.api_json(live_read_to_dict(live))


@api_endpoint()
def schema(request: HttpRequest) -> HttpResponse:
    """The OpenAPI 3.1 document. Authenticated like every endpoint: anonymous requests get 401, because a map of
    the API is of use only to those who may call it."""
    return r.api_json(openapi_document())


@csrf_exempt
def not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """Anything else under /api/: a JSON 404, never the site's HTML page."""
    return r.api_error(404, r.NOT_FOUND, "No such API endpoint; see /api/schema.")
