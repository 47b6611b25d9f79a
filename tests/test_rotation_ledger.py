"""The pure parts of the upload (finished hours) and the ledger's admin/coverage. Counting and merging lines are
the hour file's rules: tests/test_hourfiles.py and tests/test_hourfiles_lines.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

import loggerapp.admin  # noqa: F401  (registers HourFileAdmin)
from loggerapp.admin.ledger import HourFileInline, hour_coverage_strip, hours_for_household
from loggerapp.hourfiles.layout import hour_start
from loggerapp.models import HourFile
from loggerapp.rotation.discover import finished_hour_files, is_finished

HOUR = datetime(2026, 11, 28, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "grace", "finished"),
    [
        (HOUR + timedelta(minutes=59, seconds=59), 0, False),  # still running
        (HOUR + timedelta(hours=1), 0, True),
        (HOUR + timedelta(hours=1, seconds=119), 120, False),  # in its grace period
        (HOUR + timedelta(hours=1, seconds=120), 120, True),
        (HOUR + timedelta(days=3), 120, True),  # the backlog of an outage
        (HOUR + timedelta(minutes=30), -5, False),  # a negative grace never makes the current hour finished
    ],
)
def test_is_finished(now, grace, finished):
    assert is_finished(HOUR, now, grace) is finished


def test_discovery_ignores_what_is_not_a_finished_hour_file(tmp_path):
    for relative in [
        "2026-11-28-14/iseif-rainforest-002506-2026-11-28-14.jl",
        "2026-11-28-13/iseif-rainforest-00ab12-2026-11-28-13.jl",
        "2026-11-28-13/iseif-rainforest-002506-2026-11-28-12.jl",  # names another hour
        "2026-11-28-13/notes.txt",
        "2026-11-28-13/.iseif-rainforest-002506-2026-11-28-13.jl.tmp",
        "2026-11-28-15/iseif-rainforest-002506-2026-11-28-15.jl",  # the current hour
        "rotate/rotate.log",
        "pinger/2026-11-28-13.jl",
    ]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}\n")
    found = finished_hour_files(tmp_path, HOUR + timedelta(hours=1, minutes=5), grace_seconds=0)
    assert [(f.cloud_id, f"{f.hour:%H}") for f in found] == [("00ab12", "13"), ("002506", "14")]
    only = finished_hour_files(tmp_path, HOUR + timedelta(hours=2), 0, only_hour=HOUR - timedelta(hours=1))
    assert [f.cloud_id for f in only] == ["00ab12"]


@pytest.fixture
def ledger_rows(make_household):
    household = make_household("002506", label="Kitchen meter")
    now = hour_start(timezone.now())
    HourFile.objects.create(
        household=household, cloud_id="002506", hour=now - timedelta(hours=1), lines=600, ok_lines=540,
        state=HourFile.State.UPLOADED, key="rainforest-logs/002506/x.jl",
    )  # fmt: skip
    HourFile.objects.create(
        household=household, cloud_id="002506", hour=now - timedelta(hours=3), lines=12, ok_lines=6,
        state=HourFile.State.FAILED, reason="SignatureDoesNotMatch: refused",
    )  # fmt: skip
    HourFile.objects.create(cloud_id="00ab12", hour=now - timedelta(hours=1), state=HourFile.State.PENDING)
    HourFile.objects.create(
        household=household, cloud_id="002506", hour=now - timedelta(days=5), state=HourFile.State.UPLOADED
    )
    return household, now


def test_hours_for_household_shows_complete_hours_gaps_and_coverage(ledger_rows):
    household, now = ledger_rows
    hours = hours_for_household(household, days=1, now=now + timedelta(minutes=10))
    assert len(hours) == 24 and hours[0].hour == now - timedelta(hours=1)  # newest first, current hour excluded
    assert (hours[0].state, hours[0].complete, hours[0].coverage) == ("uploaded", True, pytest.approx(0.9))
    assert hours[1].state == "missing" and not hours[1].complete
    assert (hours[2].state, hours[2].coverage) == ("failed", pytest.approx(0.01))
    strip = str(hour_coverage_strip(household, days=1, now=now + timedelta(minutes=10)))
    assert strip.count("<rect") == 24 and "1 of 24 hours complete" in strip


def test_ledger_admin_lists_filters_and_searches(staff_client, ledger_rows):
    base = "/admin/loggerapp/hourfile/"
    page = staff_client.get(base)
    assert page.status_code == 200
    assert page.content.count(b'class="field-cloud_id"') == 4 and b"90%" in page.content
    failed = staff_client.get(base, {"state__exact": "failed"})
    assert failed.content.count(b'class="field-cloud_id"') == 1 and b"SignatureDoesNotMatch" in failed.content
    found = staff_client.get(base, {"q": "00ab12"})
    assert found.content.count(b'class="field-cloud_id"') == 1
    by_label = staff_client.get(base, {"q": "Kitchen"})
    assert by_label.content.count(b'class="field-cloud_id"') == 3
    hour = ledger_rows[1] - timedelta(days=5)
    by_day = staff_client.get(base, {"hour__year": hour.year, "hour__month": hour.month, "hour__day": hour.day})
    assert by_day.status_code == 200 and by_day.content.count(b'class="field-cloud_id"') >= 1
    row = HourFile.objects.get(cloud_id="00ab12")
    detail = staff_client.get(f"{base}{row.pk}/change/")
    assert detail.status_code == 200 and b'name="state"' not in detail.content  # read-only
    assert staff_client.get(f"{base}add/").status_code == 403


def test_ledger_admin_refuses_anonymous_users(client, ledger_rows):
    response = client.get("/admin/loggerapp/hourfile/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_inline_shows_the_households_recent_hours(ledger_rows, staff_user):
    from django.contrib import admin

    household, _ = ledger_rows
    inline = HourFileInline(HourFile, admin.site)
    request = RequestFactory().get("/")
    request.user = staff_user
    rows = inline.get_queryset(request).filter(household=household)
    assert [row.state for row in rows] == ["uploaded", "failed"]  # the five-day-old hour is beyond its window
    assert not inline.has_add_permission(request) and inline.get_readonly_fields(request) == inline.fields
