"""django-rq's dashboard (queues, jobs, workers, cron schedulers) behind its own permission.

django-rq itself checks only staff status, so any staff user, even one who may only view households, could
empty the upload queue or delete and requeue jobs. Here every dashboard view, at both of its addresses
(``/admin/django-rq/...`` from iseif/urls.py and ``/admin/django_rq/dashboard/...`` from the admin site), needs
django-rq's own permission ``django_rq.admin`` ("Access admin page"): superusers have it, anyone else is given
it in the admin (Users, user permissions). Without it a signed-in staff user gets 403 and the admin's index
does not list the dashboard. django-rq's token access to its JSON and Prometheus views (RQ_API_TOKEN) is not
used by this project and is closed the same way.

django-rq's pages carry inline scripts and styles without CSP nonces, so they are served with a policy that
allows inline code on these pages only (``dashboard_csp``); everything else keeps the strict site policy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, reverse
from django.utils.csp import CSP
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

QUEUE_PERMISSION = "django_rq.admin"


def may_manage_queues(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm(QUEUE_PERMISSION))


def dashboard_csp() -> dict[str, list[str]]:
    """The site policy with inline scripts and styles allowed (and no nonce, which would disable them)."""
    policy = {name: list(values) for name, values in settings.SECURE_CSP.items()}
    for directive in ("script-src", "style-src"):
        kept = [value for value in policy.get(directive, [CSP.SELF]) if value != CSP.NONCE]
        policy[directive] = [*kept, CSP.UNSAFE_INLINE]
    return policy


def require_queue_permission(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: the admin's sign-in page; signed in without the permission: 403; else the view."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not may_manage_queues(user):
            raise PermissionDenied("Managing the job queues needs the django_rq.admin permission.")
        response = view(request, *args, **kwargs)
        if settings.SECURE_CSP:
            response._csp_config = dashboard_csp()
        return response

    return guarded


def guarded_patterns(patterns: list[URLPattern]) -> list[URLPattern]:
    """The same routes, every view behind require_queue_permission."""
    return [
        URLPattern(pattern.pattern, require_queue_permission(pattern.callback), pattern.default_args, pattern.name)
        for pattern in patterns
    ]


def dashboard_urls() -> tuple[list[URLPattern], str]:
    """django-rq's standalone routes, guarded, for ``include()`` at /admin/django-rq/ (namespace django_rq)."""
    from django_rq import urls

    return guarded_patterns(urls.urlpatterns), urls.app_name


class GuardedQueueAdmin(QueueAdmin):
    """django-rq's admin entry, with every route behind the permission and the index link only for holders."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_manage_queues(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_manage_queues(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_manage_queues(request.user)

    def get_urls(self) -> list[URLPattern]:
        return guarded_patterns(super().get_urls())


if admin.site.is_registered(Dashboard):  # django-rq registers it unless RQ_SHOW_ADMIN_LINK is off
    admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, GuardedQueueAdmin)
