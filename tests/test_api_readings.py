"""GET /api/households/<cloud_id>/readings: streamed CSV or NDJSON equal to manage.py export_readings, the API's
authentication and error format, against real PostgreSQL, a real SeaweedFS and real hour files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime

import pytest
from django.test import Client
from jsonschema import Draft202012Validator

from loggerapp.hourfiles.layout import HOUR, archive_key
from tests.fixtures.api import FORMATS, REGISTRY, SPEC_URI, check_response
from tests.fixtures.core import manage_command, subprocess_env
from tests.fixtures.s3 import hour_content, s3_storage_options

TEMPLATE = "/households/{cloud_id}/readings"
H = datetime(2026, 3, 9, 22, tzinfo=UTC)
RANGE = "start=2026-03-09T22:30&end=2026-03-10T01:00Z"


@pytest.fixture
def readings(s3_archive, make_household, write_hour_file, settings):
    """002506: two hours archived, the next two on disk, and the first also still on disk (an upload being
    verified); a failed poll every tenth line."""
    settings.ARCHIVE_PREFIX = "rainforest-logs"
    household = make_household("002506")
    for hour in (H, H + HOUR):
        content = hour_content("002506", hour, lines=600, failed_every=10)
        s3_archive.client.put_object(Bucket=s3_archive.bucket, Key=archive_key("002506", hour), Body=content)
    for hour in (H, H + 2 * HOUR, H + 3 * HOUR):
        write_hour_file("002506", hour, lines=600, failed_every=10)
    return household


def get(client: Client, query: str, cloud_id: str = "002506", base: str = "/api"):
    return client.get(f"{base}/households/{cloud_id}/readings?{query}")


@pytest.mark.django_db(transaction=True)  # the command runs in another process: the household must be committed
def test_the_api_csv_equals_the_commands_csv_byte_for_byte(readings, api_client, s3_archive, log_root):
    response = get(api_client, RANGE)
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    command = subprocess.run(
        manage_command("export_readings", "002506", "--start", "2026-03-09T22:30", "--end", "2026-03-10T01:00Z"),
        env=subprocess_env(LOG_ROOT=str(log_root), **s3_archive.env()),
        capture_output=True,
        timeout=120,
    )
    assert command.returncode == 0, command.stderr.decode()
    assert body == command.stdout
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == 300 + 600 + 600  # the second half of 22:00, 23:00, and 00:00; 01:00 is past the end
    assert [row["poll_time"] for row in rows] == sorted(row["poll_time"] for row in rows)
    assert sum(row["ok"] == "false" for row in rows) == 30 + 60 + 60


@pytest.mark.django_db
def test_ndjson_is_one_reading_row_per_line_with_the_api_headers(readings, api_client):
    response = get(api_client, RANGE + "&format=ndjson", base="/api/v1")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="readings-002506-2026-03-09T223000_2026-03-10T010000.jsonl"'
    )
    assert response["Cache-Control"] == "no-store" and response["X-Content-Type-Options"] == "nosniff"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    validator = Draft202012Validator(
        {
            "$ref": SPEC_URI
            + "#/paths/~1households~1{cloud_id}~1readings/get/responses/200/content/application~1x-ndjson/schema"
        },
        registry=REGISTRY,
        format_checker=FORMATS,
    )
    assert len(lines) == 1500 and all(validator.is_valid(line) for line in lines)
    csv_response = get(api_client, RANGE + "&format=csv")
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert [row["poll_time"] for row in rows] == [line["poll_time"] for line in lines]


@pytest.mark.django_db
def test_a_deactivated_household_is_still_exported_and_an_empty_range_is_just_the_header(readings, api_client):
    readings.active = False
    readings.save(update_fields=["active"])
    response = get(api_client, "start=2026-01-01&end=2026-01-02")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode() == (
        "cloud_id,poll_time,meter_time,demand_kw,ok,error_kind,price,price_currency,summation_delivered_kwh,"
        "summation_received_kwh,record\n"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cloud_id", "query", "status", "kind", "says"),
    [
        ("0025XZ", RANGE, 400, "invalid_cloud_id", "6 hexadecimal digits"),
        ("0025aa", RANGE, 404, "not_found", "No household with cloud id 0025aa"),
        ("002506", "end=2026-03-10", 400, "invalid_parameter", "Start is missing"),
        ("002506", "start=2026-03-10&end=tomorrow", 400, "invalid_parameter", "'tomorrow' is not a date"),
        ("002506", "start=2026-03-10&end=2026-03-09", 400, "invalid_parameter", "must be after start"),
        ("002506", "start=2026-01-01&end=2026-02-01T00:00:01", 400, "invalid_parameter", "at most 31 days"),
        ("002506", RANGE + "&format=parquet", 400, "invalid_parameter", "format must be one of csv, ndjson"),
    ],
)
def test_bad_requests_get_the_apis_error_format(readings, api_client, cloud_id, query, status, kind, says):
    response = get(api_client, query, cloud_id=cloud_id)
    assert response.status_code == status
    body = check_response(response, TEMPLATE)
    assert body["error"]["kind"] == kind and says in body["error"]["message"]


@pytest.mark.django_db
def test_the_maximum_range_is_a_setting(readings, api_client, settings):
    settings.EXPORT_WEB_MAX_DAYS = 1
    response = get(api_client, "start=2026-03-09&end=2026-03-10T00:00:01")
    assert response.status_code == 400
    assert "at most 1 days" in check_response(response, TEMPLATE)["error"]["message"]
    assert get(api_client, "start=2026-03-09&end=2026-03-10").status_code == 200


@pytest.mark.django_db
def test_authentication_and_methods_are_the_apis(readings, client, django_user_model, api_client):
    anonymous = get(client, RANGE)
    assert anonymous.status_code == 401
    check_response(anonymous, TEMPLATE)
    nobody = django_user_model.objects.create_user(username="guest", password="guest pass phrase", is_staff=True)
    client.force_login(nobody)  # staff, but may not view households
    forbidden = get(client, RANGE)
    assert forbidden.status_code == 403
    check_response(forbidden, TEMPLATE)
    for method in (api_client.post, api_client.head):
        refused = method(f"/api/households/002506/readings?{RANGE}")
        assert refused.status_code == 405 and refused["Allow"] == "GET"
    assert get(Client(headers={"Authorization": "Bearer iseif_nope"}), RANGE).status_code == 401


@pytest.mark.django_db
def test_an_unreadable_archive_is_a_503_before_any_byte(readings, api_client, seaweedfs, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "archive": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": s3_storage_options(seaweedfs.endpoint, "no-such-bucket-here"),
        },
    }
    response = get(api_client, RANGE)
    assert response.status_code == 503
    body = check_response(response, TEMPLATE)
    assert body["error"] == {
        "kind": "archive_unavailable",
        "message": "The archive cannot be read right now; retry later.",
    }
