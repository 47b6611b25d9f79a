"""Routes of the operations views: included at the site root by loggerapp/urls.py."""

from django.urls import path

from loggerapp.ops import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("status/", views.status_page, name="status"),
]
