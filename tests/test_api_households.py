"""Households, their latest logged reading, input validation and the API's HTTP behaviour."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loggerapp.api.latest import latest_from_files, lines_backwards
from loggerapp.hourfiles.layout import hour_file_path
from loggerapp.models import Household, HouseholdStats, Status
from tests.fixtures.api import api_get, check_response

pytestmark = pytest.mark.django_db

LIST, DETAIL, LATEST, EVENT = "/households/", "/households/{cloud_id}", "/households/{cloud_id}/latest", None
HOUR = datetime(2026, 11, 28, 10, tzinfo=UTC)


def write_lines(log_root, cloud_id, hour, records, tail: str = "") -> None:
    path = hour_file_path(log_root, cloud_id, hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(record) + "\n" for record in records) + tail)


def ok_line(cloud_id, poll_time, demand_kw, **extra):
    return {
        "cloud_id": cloud_id,
        "poll_time": poll_time,
        "ok": True,
        "meter_time": int(poll_time) - 3,
        "demand_kw": demand_kw,
        "latency_ms": 12.5,
        "repeat": False,
        "protocol": "cloud",
        "Demand": 1234,
        **extra,
    }


def failed_line(cloud_id, poll_time, kind="unreachable"):
    return {
        "cloud_id": cloud_id,
        "poll_time": poll_time,
        "ok": False,
        "error_kind": kind,
        "error": "x",
        "latency_ms": 1,
    }


# --- list and detail -----------------------------------------------------------------------------------------


def test_the_list_is_paginated_in_cloud_id_order(api_client, make_household):
    for n in range(7):
        make_household(f"00000{n}")
    status, body = api_get(api_client, "/api/households/?page_size=3", LIST)
    assert status == 200
    assert [h["cloud_id"] for h in body["results"]] == ["000000", "000001", "000002"]
    assert (body["count"], body["num_pages"], body["page"], body["previous"]) == (7, 3, 1, None)
    status, body = api_get(api_client, body["next"], LIST)
    assert [h["cloud_id"] for h in body["results"]] == ["000003", "000004", "000005"]
    _status, body = api_get(api_client, body["next"], LIST)
    assert [h["cloud_id"] for h in body["results"]] == ["000006"]
    assert body["next"] is None
    _status, body = api_get(api_client, "/api/households/?page=9&page_size=3", LIST)
    assert body["results"] == [] and body["count"] == 7
    assert body["previous"] == "/api/households/?page=3&page_size=3"


def test_the_default_page_size_and_its_maximum(api_client, make_household, settings):
    settings.API_PAGE_SIZE, settings.API_MAX_PAGE_SIZE = 2, 4
    for n in range(5):
        make_household(f"00000{n}")
    assert len(api_get(api_client, "/api/households", LIST)[1]["results"]) == 2
    assert len(api_get(api_client, "/api/households/?page_size=4", LIST)[1]["results"]) == 4
    status, body = api_get(api_client, "/api/households/?page_size=5", LIST)
    assert status == 400 and body["error"]["kind"] == "invalid_parameter"


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page_size=0",
        "page=%EF%BC%91",
        "page=" + "9" * 40,
        "status=happy",
        "status=OK",
        "active=maybe",
        "active=",
    ],
)
def test_bad_query_parameters_are_400(api_client, query):
    status, body = api_get(api_client, f"/api/households/?{query}", LIST)
    assert status == 400
    assert body["error"]["kind"] == "invalid_parameter"


def test_filters_by_status_and_active(api_client, make_household):
    make_household("000001")
    HouseholdStats.objects.filter(household__cloud_id="000001").update(status=Status.OK)
    make_household("000002", active=False)
    HouseholdStats.objects.filter(household__cloud_id="000002").update(status=Status.BAD_CREDENTIALS)
    make_household("000003")  # never polled, with a stats row
    Household.objects.create(cloud_id="000004", user_email="x@example.org", password="p")  # no stats row at all

    def ids(query):
        return [h["cloud_id"] for h in api_get(api_client, f"/api/households/?{query}", LIST)[1]["results"]]

    assert ids("status=ok") == ["000001"]
    assert ids("status=bad_credentials") == ["000002"]
    assert ids("status=never_polled") == ["000003", "000004"]
    assert ids("active=false") == ["000002"]
    assert ids("active=true") == ["000001", "000003", "000004"]
    assert ids("active=1&status=ok") == ["000001"]
    assert ids("status=unreachable") == []


def test_detail_has_status_and_statistics_but_no_credentials(api_client, make_household):
    make_household("00a1b2", label="Blue house", notes="dog in the yard", password="hunter2-secret-pw")
    now = timezone.now()
    HouseholdStats.objects.filter(household__cloud_id="00a1b2").update(
        status=Status.UNREACHABLE,
        total_events_logged=1234,
        first_timestamp=now - timedelta(days=3),
        last_timestamp=now,
        last_demand_kw=-1.234,
        last_error_kind=Status.UNREACHABLE,
        last_error="connection refused",
        consecutive_failures=4,
    )
    response = api_client.get("/api/households/00a1b2")
    body = check_response(response, DETAIL)
    assert response.status_code == 200
    assert body["status"] == "unreachable" and body["label"] == "Blue house"
    assert body["statistics"]["total_events_logged"] == 1234
    assert body["statistics"]["last_demand_kw"] == -1.234
    assert body["statistics"]["consecutive_failures"] == 4
    for secret in (b"hunter2-secret-pw", b"h00a1b2@example.org", b"dog in the yard"):
        assert secret not in response.content


def test_a_household_without_a_stats_row_is_never_polled(api_client):
    Household.objects.create(cloud_id="000004", user_email="x@example.org", password="p")
    status, body = api_get(api_client, "/api/households/000004/", DETAIL)
    assert status == 200 and body["status"] == "never_polled"
    assert body["statistics"]["total_events_logged"] == 0


def test_unknown_household_is_404(api_client):
    for url, template in [("/api/households/abcdef", DETAIL), ("/api/households/abcdef/latest", LATEST)]:
        status, body = api_get(api_client, url, template)
        assert status == 404 and body["error"]["kind"] == "not_found"


def test_upper_case_cloud_ids_are_accepted(api_client, make_household):
    make_household("00a1b2")
    status, body = api_get(api_client, "/api/v1/households/00A1B2", DETAIL)
    assert status == 200 and body["cloud_id"] == "00a1b2"


def test_v1_and_the_alias_answer_the_same(api_client, make_household):
    make_household("002506")
    assert api_get(api_client, "/api/v1/households/", LIST)[1] == api_get(api_client, "/api/households/", LIST)[1]


# --- hostile input -------------------------------------------------------------------------------------------

HOSTILE = [
    "00250",
    "0025067",
    "00 250",
    "..",
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "' OR 1=1 --",
    "0025%00",
    "002506;DROP TABLE loggerapp_household",
    "%EF%BC%90%EF%BC%90%EF%BC%92%EF%BC%95%EF%BC%90%EF%BC%96",  # full-width digits
    "00250%C4%B0",  # dotted capital I: lower() gives two characters
    "x" * 256,
    "%F0%9F%92%A5" * 6,
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("route", ["/api/households/{}", "/api/households/{}/latest", "/api/event/{}"])
def test_hostile_cloud_ids_are_answered_in_json_without_touching_households(api_client, make_household, value, route):
    make_household("002506")
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get(route.format(value))
    assert response.status_code in (400, 404)  # 404: a decoded '/' made it another (unknown) path
    body = check_response(response, None if response.status_code == 404 else DETAIL)
    assert body["error"]["kind"] in ("invalid_cloud_id", "not_found")
    assert not any("loggerapp_household" in q["sql"] for q in queries.captured_queries)
    assert "etc/passwd" not in response.content.decode() and "x" * 64 not in response.content.decode()


@pytest.mark.parametrize("value", ["00250", "0025067", "%20002506", "' OR 1=1 --", "x" * 256])
def test_malformed_cloud_ids_are_400(api_client, value):
    status, body = api_get(api_client, f"/api/households/{value}", DETAIL)
    assert status == 400 and body["error"]["kind"] == "invalid_cloud_id"


def test_a_huge_path_is_a_json_404(api_client):
    status, body = api_get(api_client, "/api/households/" + "a" * 10_000, None)
    assert status == 404 and body["error"]["kind"] == "not_found"


@pytest.mark.parametrize("url", ["/api/", "/api/v1/", "/api/nope", "/api/v1/households/002506/nope", "/api/v2/x"])
def test_unknown_api_paths_are_json_404(api_client, url):
    status, _body = api_get(api_client, url, None)
    assert status == 404


# --- methods, headers, errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize(
    "url",
    ["/api/households/", "/api/households/002506", "/api/households/002506/latest", "/api/event/002506", "/api/schema"],
)
def test_other_methods_are_json_405(api_token, method, url):
    # CSRF checks on, as in production: the answer must still be our JSON 405, not Django's HTML 403.
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {api_token}"})
    response = getattr(client, method)(url)
    assert response.status_code == 405
    assert "GET" in response["Allow"]
    check_response(response, None)


def test_a_session_post_without_csrf_token_is_also_json_405(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post("/api/households/")
    assert response.status_code == 405 and response["Content-Type"] == "application/json"


def test_head_is_allowed_on_reads_but_not_on_live_reads(api_client, make_household):
    make_household("002506")
    assert api_client.head("/api/households/").status_code == 200
    assert api_client.head("/api/event/002506").status_code == 405


def test_security_headers(api_client):
    response = api_client.get("/api/households/")
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response["X-Frame-Options"] == "DENY"


def test_an_internal_error_is_json_500_and_logged(api_client, make_household, tmp_path, settings, caplog):
    make_household("002506")
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    settings.LOG_ROOT = not_a_directory  # a broken deployment: listing hour directories fails
    status, body = api_get(api_client, "/api/households/002506/latest", LATEST)
    assert status == 500 and body["error"]["kind"] == "internal_error"
    assert any("failed" in r.getMessage() and r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)


# --- latest ----------------------------------------------------------------------------------------------------


def test_latest_reads_the_last_line_of_the_newest_hour_file(api_client, make_household, log_root):
    make_household("002506")
    t = HOUR.timestamp()
    write_lines(log_root, "002506", HOUR - timedelta(hours=1), [ok_line("002506", t - 100, 9.0)])
    write_lines(log_root, "002506", HOUR, [ok_line("002506", t + 6 * n, 0.5 + n) for n in range(600)])
    write_lines(log_root, "00ffff", HOUR + timedelta(hours=1), [ok_line("00ffff", t + 4000, 7.0)])  # another one
    (log_root / "not-an-hour").mkdir()
    status, body = api_get(api_client, "/api/households/002506/latest", LATEST)
    assert status == 200
    assert body["source"] == "hour_file"
    assert body["demand_kw"] == 599.5
    assert body["poll_time"] == datetime.fromtimestamp(t + 6 * 599, UTC).isoformat().replace("+00:00", "Z")
    assert body["meter_timestamp"] == int(t + 6 * 599) - 3
    assert body["hour_file"] == "iseif-rainforest-002506-2026-11-28-10.jl"
    assert body["last_poll"]["ok"] is True


def test_latest_skips_a_line_still_being_written_and_reports_a_later_failure(api_client, make_household, log_root):
    make_household("002506")
    t = HOUR.timestamp()
    write_lines(
        log_root,
        "002506",
        HOUR,
        [ok_line("002506", t, -1.234), failed_line("002506", t + 6, "bad_credentials")],
        tail='{"cloud_id": "002506", "poll_time": 17',
    )
    status, body = api_get(api_client, "/api/households/002506/latest", LATEST)
    assert status == 200
    assert body["demand_kw"] == -1.234
    assert body["last_poll"] == {
        "ok": False,
        "poll_time": datetime.fromtimestamp(t + 6, UTC).isoformat().replace("+00:00", "Z"),
        "error_kind": "bad_credentials",
    }


def test_latest_looks_one_file_back_when_the_newest_hour_only_failed(make_household, log_root):
    t = HOUR.timestamp()
    write_lines(log_root, "002506", HOUR - timedelta(hours=1), [ok_line("002506", t - 10, 2.0)])
    write_lines(log_root, "002506", HOUR, [failed_line("002506", t + 6 * n) for n in range(5)])
    latest = latest_from_files(log_root, "002506")
    assert latest.demand_kw == 2.0 and latest.last_poll["ok"] is False
    write_lines(log_root, "002506", HOUR + timedelta(hours=1), [failed_line("002506", t + 3600)])
    assert latest_from_files(log_root, "002506") is None  # only the two newest files are searched


def test_latest_falls_back_to_the_statistics(api_client, make_household, log_root):
    make_household("002506")
    meter_time = datetime(2026, 11, 28, 9, 59, 57, tzinfo=UTC)
    HouseholdStats.objects.filter(household__cloud_id="002506").update(last_demand_kw=3.5, last_meter_time=meter_time)
    status, body = api_get(api_client, "/api/households/002506/latest", LATEST)
    assert status == 200
    assert (body["source"], body["demand_kw"], body["meter_time"]) == ("statistics", 3.5, "2026-11-28T09:59:57Z")
    assert body["meter_timestamp"] == int(meter_time.timestamp())


def test_latest_is_404_when_nothing_was_logged(api_client, make_household, log_root):
    make_household("002506")
    write_lines(log_root, "002506", HOUR, [], tail="{half a line")
    status, body = api_get(api_client, "/api/households/002506/latest", LATEST)
    assert status == 404 and "No reading" in body["error"]["message"]


def test_latest_reads_only_the_tail_of_a_huge_file(make_household, log_root):
    """A 2 GB (sparse) file: reading it forwards would take seconds and gigabytes; backwards it is instant."""
    path = hour_file_path(log_root, "002506", HOUR)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        handle.truncate(2 * 1024**3)
        handle.seek(0, 2)
        handle.write(b"\n" + json.dumps(ok_line("002506", HOUR.timestamp(), 4.25)).encode() + b"\n")
    started = time.perf_counter()
    latest = latest_from_files(log_root, "002506")
    assert time.perf_counter() - started < 0.5
    assert latest.demand_kw == 4.25


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 8, 64, 8192])
def test_lines_backwards_at_every_block_boundary(tmp_path, block_size):
    path = tmp_path / "f.jl"
    path.write_bytes(b"first\nsecond\n\nthird line\nunfinished")
    assert list(lines_backwards(path, block_size)) == [b"third line", b"second", b"first"]
    path.write_bytes(b"only\n")
    assert list(lines_backwards(path, block_size)) == [b"only"]
    path.write_bytes(b"no newline at all")
    assert list(lines_backwards(path, block_size)) == []
    path.write_bytes(b"")
    assert list(lines_backwards(path, block_size)) == []
