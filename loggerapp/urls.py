"""Routes of the logger app. Each feature adds its own module of views."""

from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("api/", include("loggerapp.api.urls")),
    path("", include("loggerapp.ops.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
