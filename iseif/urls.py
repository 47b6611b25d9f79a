"""URL map. The app's own routes live in loggerapp.urls."""

from django.contrib import admin
from django.urls import include, path

from loggerapp.admin.queues import dashboard_urls

admin.site.site_header = "ISEIF Rainforest Logger"
admin.site.site_title = "ISEIF Rainforest Logger"
admin.site.index_title = "Households, uploads and tokens"

urlpatterns = [
    path("admin/django-rq/", include(dashboard_urls())),  # behind django_rq.admin (loggerapp/admin/queues.py)
    path("admin/", admin.site.urls),
    path("", include("loggerapp.urls")),
]
