"""The admin for API tokens: create one (its raw value is shown once, on the page answering the save), see when it
was last used, revoke it. The stored hash is never displayed; the prefix is what staff recognise a token by.
Registered with the admin site when the loggerapp.admin package is imported."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from loggerapp.models import ApiToken


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix_shown", "state", "created", "last_used", "revoked_at"]
    list_filter = [RevokedFilter, "created"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    actions = ["revoke_tokens"]
    # key_hash appears in no field list, list column or search field: staff never see more than the prefix.
    add_fields = ["user", "name"]
    change_fields = ["user", "name", "prefix_shown", "state", "created", "last_used", "revoked_at"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return []
        # A token's owner and key are fixed; revoking goes through the action so it is always stamped now.
        return ["user", "prefix_shown", "state", "created", "last_used", "revoked_at"]

    @admin.display(description="prefix", ordering="prefix")
    def prefix_shown(self, token: ApiToken) -> str:
        return f"{token.prefix}…" if token.prefix else "—"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        return "active" if token.user.is_active else "user inactive"

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        """On creation: generate the key; only its hash is stored, response_add shows the raw value once."""
        raw = None if change else obj.assign_new_key()
        super().save_model(request, obj, form, change)
        if raw is not None:
            request._iseif_raw_token = raw  # for response_add, in this request only

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue=None) -> HttpResponse:
        """Show the raw token in the answer to the POST itself, not in a message after a redirect.

        A message would travel in the `messages` cookie (signed, not encrypted) or be stored in the session
        until it is displayed; this page is the only place the raw value ever appears, and it is not cached.
        """
        raw = getattr(request, "_iseif_raw_token", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API token created",
            "opts": self.opts,
            "token": obj,
            "raw_token": raw,
        }
        response = TemplateResponse(request, "loggerapp/apitoken_created.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
