"""The admin's "download readings" action (a form, then the file) and the household page's chart of a chosen day,
both read from the archive and the local hour files together."""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import Permission

from loggerapp.hourfiles.layout import HOUR, archive_key
from loggerapp.models import Household
from tests.fixtures.s3 import hour_content

pytestmark = pytest.mark.django_db

H = datetime(2026, 3, 9, 23, tzinfo=UTC)
CHANGELIST = "/admin/loggerapp/household/"


@pytest.fixture
def households(folder_archive, make_household, write_hour_file, settings):
    """002506 and 00ab12: 23:00 on March 9 archived, 00:00 on March 10 still on disk."""
    settings.ARCHIVE_PREFIX = "rainforest-logs"
    made = []
    for cloud_id in ("002506", "00ab12"):
        made.append(make_household(cloud_id))
        key = folder_archive / archive_key(cloud_id, H)
        key.parent.mkdir(parents=True)
        key.write_bytes(hour_content(cloud_id, H, lines=600, failed_every=10))
        write_hour_file(cloud_id, H + HOUR, lines=300)
    return made


def selected(households, **extra) -> dict:
    return {"action": "download_readings", "_selected_action": [h.pk for h in households], **extra}


def test_the_action_asks_for_days_and_format_then_sends_the_file(staff_client, households, caplog):
    form_page = staff_client.post(CHANGELIST, selected(households))
    assert form_page.status_code == 200
    page = form_page.content.decode()
    assert "Download readings" in page and "002506, 00ab12" in page and 'type="date"' in page
    with caplog.at_level(logging.INFO, logger="loggerapp.admin.downloads"):
        response = staff_client.post(
            CHANGELIST,
            selected(households, download="Download", first_day="2026-03-09", last_day="2026-03-10", format="csv"),
        )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="readings-2-households-2026-03-09_2026-03-11.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["cloud_id"] for row in rows] == ["002506"] * 900 + ["00ab12"] * 900
    assert sum(row["ok"] == "false" for row in rows) == 60 * 2
    assert "researcher downloaded the readings of 002506, 00ab12 (2026-03-09_2026-03-11) as csv" in caplog.text


def test_parquet_download_reads_back(staff_client, households):
    response = staff_client.post(
        CHANGELIST,
        selected(households[:1], download="1", first_day="2026-03-10", last_day="2026-03-10", format="parquet"),
    )
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(b"".join(response.streaming_content)))
    assert table.num_rows == 300 and set(table.column("cloud_id").to_pylist()) == {"002506"}


@pytest.mark.parametrize(
    ("first_day", "last_day", "says"),
    [
        ("2026-03-10", "2026-03-09", "The last day must not be before the first day."),
        ("2026-01-01", "2026-03-09", "at most 31 days may be exported at once"),
        ("", "2026-03-09", "This field is required."),
    ],
)
def test_bad_days_show_the_form_again_with_the_reason(staff_client, households, first_day, last_day, says):
    response = staff_client.post(
        CHANGELIST, selected(households, download="1", first_day=first_day, last_day=last_day, format="csv")
    )
    assert response.status_code == 200 and not response.streaming
    assert says in response.content.decode()


def test_too_many_households_at_once_are_refused_with_a_message(staff_client, households, settings):
    settings.EXPORT_WEB_MAX_HOUSEHOLDS = 1
    response = staff_client.post(CHANGELIST, selected(households), follow=True)
    assert "At most 1 households can be downloaded at once" in response.content.decode()


def test_a_view_only_user_may_download(client, households, django_user_model):
    viewer = django_user_model.objects.create_user(username="viewer", password="viewer pass phrase", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_household"))
    client.force_login(viewer)
    changelist = client.get(CHANGELIST).content.decode()
    assert 'value="download_readings"' in changelist and 'value="activate"' not in changelist
    response = client.post(
        CHANGELIST, selected(households, download="1", first_day="2026-03-09", last_day="2026-03-09", format="jsonl")
    )
    assert response.status_code == 200 and len(b"".join(response.streaming_content).splitlines()) == 1200


def test_the_household_page_draws_a_chosen_day_from_the_archive_and_the_disk(staff_client, households):
    household = Household.objects.get(cloud_id="002506")
    url = f"/admin/loggerapp/household/{household.pk}/change/"
    page = staff_client.get(url, {"day": "2026-03-09"}).content.decode()
    assert "Demand (UTC) on 2026-03-09" in page
    assert 'aria-label="demand of 002506 on 2026-03-09 (UTC)"' in page and "no readings in this period" not in page
    assert 'class="failed-polls"' in page  # the archived hour's failed polls
    assert 'href="?day=2026-03-08"' in page and 'href="?day=2026-03-10"' in page
    assert 'form="demand-day"' in page and '<form id="demand-day" method="get"' in page
    next_day = staff_client.get(url, {"day": "2026-03-10"}).content.decode()
    assert "no readings in this period" not in next_day  # the local hour
    empty = staff_client.get(url, {"day": "2026-03-01"}).content.decode()
    assert "no readings in this period" in empty
    today = datetime.now(UTC).date()
    assert (
        'href="?day=' + (today + timedelta(days=1)).isoformat()
        not in staff_client.get(url, {"day": today.isoformat()}).content.decode()
    )  # no "next day" into the future


def test_a_day_that_is_not_a_date_falls_back_to_the_last_hours(staff_client, households):
    household = Household.objects.get(cloud_id="002506")
    page = staff_client.get(f"/admin/loggerapp/household/{household.pk}/change/", {"day": "<b>x"}).content.decode()
    assert "That is not a date (YYYY-MM-DD); showing the last hours." in page
    assert "Demand (UTC), last 6 hours" in page and "<b>x" not in page
    assert f'href="?day={datetime.now(UTC).date().isoformat()}">today</a>' in page
