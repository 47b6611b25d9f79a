"""Django permissions instead of bare staff status (issue 11): the status page and API sessions need "view
household", django-rq's dashboard its own "django_rq.admin" (a view-only staff user once emptied the upload
queue). Real views through Django's test client; the queue is a real RQ queue in the tests' Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
import rq
from django.contrib.auth.models import Permission

from tests.fixtures.api import api_get
from tests.fixtures.core import redis_url

pytestmark = pytest.mark.django_db

DASHBOARDS = ["/admin/django-rq/", "/admin/django_rq/dashboard/"]


@pytest.fixture
def make_staff(django_user_model, client):
    """Factory: a signed-in staff (not super) user with the given permissions ("app.codename")."""

    def make(*permissions: str):
        user = django_user_model.objects.create_user(
            f"staff-{uuid.uuid4().hex[:8]}", password="a-long-password-1", is_staff=True
        )
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client.force_login(user)
        return client

    return make


@pytest.fixture
def upload_queue(settings):
    """A queue of its own (the dashboard's queue 0), holding one job; deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    settings.RQ_QUEUES = {name: {"URL": redis_url(14)}}
    queue = rq.Queue(name, connection=redis.Redis.from_url(redis_url(14)))
    queue.enqueue("builtins.print", "an upload run")
    assert queue.count == 1
    yield queue
    queue.delete(delete_jobs=True)


def test_the_status_page_needs_the_view_household_permission(make_staff):
    client = make_staff()
    assert client.get("/status/").status_code == 403
    client = make_staff("loggerapp.view_household")
    assert client.get("/status/").status_code == 200


def test_an_api_session_needs_the_view_household_permission(make_staff, make_household):
    make_household("002506")
    client = make_staff()
    status, body = api_get(client, "/api/households/002506", "/households/{cloud_id}")
    assert status == 403 and body["error"]["kind"] == "forbidden"
    client = make_staff("loggerapp.view_household")
    assert api_get(client, "/api/households/002506", "/households/{cloud_id}")[0] == 200


@pytest.mark.parametrize("base", DASHBOARDS)
def test_a_view_only_staff_user_cannot_empty_the_upload_queue(make_staff, upload_queue, base):
    client = make_staff("loggerapp.view_household", "loggerapp.view_hourfile")
    assert client.get(base).status_code == 403
    assert client.post(f"{base}queues/0/empty/").status_code == 403
    assert upload_queue.count == 1


@pytest.mark.parametrize("base", DASHBOARDS)
def test_the_queue_permission_opens_the_dashboard(make_staff, upload_queue, base):
    client = make_staff("django_rq.admin")
    assert client.get(base).status_code == 200
    assert client.post(f"{base}queues/0/empty/").status_code == 302
    assert upload_queue.count == 0


def test_superusers_manage_the_queues(staff_client, upload_queue):
    assert staff_client.get(DASHBOARDS[0]).status_code == 200
    staff_client.post(f"{DASHBOARDS[0]}queues/0/empty/")
    assert upload_queue.count == 0


@pytest.mark.parametrize("base", DASHBOARDS)
def test_anonymous_visitors_are_sent_to_sign_in(client, base):
    response = client.get(f"{base}queues/0/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_index_lists_the_dashboard_only_for_permission_holders(make_staff):
    page = make_staff("loggerapp.view_household").get("/admin/").content.decode()
    assert "django_rq" not in page and "Households" in page
    page = make_staff("django_rq.admin").get("/admin/").content.decode()
    assert "/admin/django_rq/" in page
