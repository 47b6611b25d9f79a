"""JSON responses with the API's headers: every answer, error or not, is JSON and is never cached."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

# Kinds of error the API reports in {"error": {"kind": ..., "message": ...}}; the EAGLE kinds are the
# Status values of loggerapp.models (unreachable, bad_credentials, meter_not_joined, bad_response).
INVALID_CLOUD_ID = "invalid_cloud_id"
INVALID_PARAMETER = "invalid_parameter"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
THROTTLED = "throttled"
THROTTLE_UNAVAILABLE = "throttle_unavailable"
ARCHIVE_UNAVAILABLE = "archive_unavailable"
INTERNAL_ERROR = "internal_error"

# What an API client is told about a failed read (a live read's error, a household's last error): the kind and
# one fixed sentence per kind. The client's own text can carry gateway addresses and whatever a gateway wrote,
# so it stays with staff (the admin) and the logs.
EAGLE_ERROR_MESSAGES = {
    "unreachable": "The gateway or the cloud relay could not be reached, or did not answer in time.",
    "bad_credentials": "The gateway or the cloud relay refused the household's credentials.",
    "meter_not_joined": "The gateway answered, but it has no connection to the meter.",
    "bad_response": "The gateway or the cloud relay answered, but not with a reading.",
}
OTHER_EAGLE_ERROR = "The read failed."


def eagle_error_message(kind: str) -> str:
    """The fixed message of an EAGLE error kind (a kind added later still gets a neutral sentence)."""
    return EAGLE_ERROR_MESSAGES.get(kind, OTHER_EAGLE_ERROR)


class ApiError(Exception):
    """An answer other than the view's own: raised anywhere in a view, turned into JSON by api_endpoint."""

    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers
        self.extra = extra

    def response(self) -> JsonResponse:
        return api_error(self.status, self.kind, self.message, headers=self.headers, **self.extra)


API_HEADERS = {
    # Readings and household records are per-user data: no browser or proxy may keep a copy.
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    # SecurityMiddleware sets nosniff too; repeated here so the API keeps it if that setting changes.
    "X-Content-Type-Options": "nosniff",
    # A JSON document never needs to load anything nor be framed.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def api_json(payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse(payload, status=status)
    for name, value in {**API_HEADERS, **(headers or {})}.items():
        response[name] = value
    return response


def api_error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JsonResponse:
    """The one error shape: {"error": {"kind": ..., "message": ..., ...extra}}. Messages never hold secrets."""
    return api_json({"error": {"kind": kind, "message": message, **extra}}, status=status, headers=headers)
