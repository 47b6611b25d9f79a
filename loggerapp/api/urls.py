"""API routes: /api/v1/... is canonical; /api/... is an alias of the current version (what the study's scripts
call). Ids are captured loosely (any 1-256 characters without a slash) so that the view, not the URL resolver,
answers a malformed one with a JSON 400; everything else under /api/ is a JSON 404."""

from django.urls import include, re_path

from loggerapp.api import views

CLOUD_ID = r"(?P<cloud_id>[^/]{1,256})"


def _routes(named: bool) -> list:
    def name(value: str) -> dict:
        return {"name": value} if named else {}

    return [
        re_path(rf"^event/{CLOUD_ID}/?$", views.event, **name("api-event")),
        re_path(r"^households/?$", views.households, **name("api-households")),
        re_path(rf"^households/{CLOUD_ID}/?$", views.household_detail, **name("api-household")),
        re_path(rf"^households/{CLOUD_ID}/latest/?$", views.household_latest, **name("api-household-latest")),
        re_path(rf"^households/{CLOUD_ID}/readings/?$", views.household_readings, **name("api-household-readings")),
        re_path(r"^schema/?$", views.schema, **name("api-schema")),
    ]


urlpatterns = [
    re_path(r"^v1/", include(_routes(named=True))),
    *_routes(named=False),
    re_path(r"^.*$", views.not_found),
]
