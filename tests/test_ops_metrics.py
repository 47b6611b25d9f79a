"""/metrics: who may read it, and what it says about the database's state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from loggerapp.models import ApiToken, HourFile, Household, HouseholdStats, PingerHeartbeat, Status

pytestmark = pytest.mark.django_db

REMOTE = {"REMOTE_ADDR": "203.0.113.7"}


def samples(response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    result = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


@pytest.fixture
def study(make_household):
    """Four active households in different states, one inactive, a ledger with every state, one pinger."""
    now = timezone.now()
    statuses = {"000001": Status.OK, "000002": Status.OK, "000003": Status.UNREACHABLE, "000004": None}
    for cloud_id, status in statuses.items():
        household = make_household(cloud_id)
        if status is None:
            HouseholdStats.objects.filter(household=household).delete()  # never polled: no stats row at all
            continue
        # 000002 said ok, but twenty minutes ago: silent.
        last = now - timedelta(minutes=20 if cloud_id == "000002" else 0, seconds=30)
        HouseholdStats.objects.filter(household=household).update(
            status=status, total_events_logged=100, last_timestamp=last
        )
    make_household("0000aa", active=False)
    hour = datetime(2026, 11, 1, 10, tzinfo=UTC)
    uploaded_at = datetime(2026, 11, 1, 11, 3, 7, tzinfo=UTC)
    rows = [
        ("000001", hour, HourFile.State.UPLOADED, 0, uploaded_at - timedelta(hours=1)),
        ("000002", hour, HourFile.State.UPLOADED, 1, uploaded_at),
        ("000001", hour + timedelta(hours=1), HourFile.State.PENDING, 0, None),
        ("000002", hour + timedelta(hours=1), HourFile.State.PENDING, 0, None),
        ("000003", hour - timedelta(hours=3), HourFile.State.FAILED, 4, None),
        ("000003", hour - timedelta(hours=2), HourFile.State.FAILED, 3, None),
    ]
    for cloud_id, at, state, attempts, done in rows:
        HourFile.objects.create(
            cloud_id=cloud_id,
            household=Household.objects.get(cloud_id=cloud_id),
            hour=at,
            state=state,
            attempts=attempts,
            uploaded_at=done,
            lines=600,
            ok_lines=590,
        )
    PingerHeartbeat.objects.create(
        name="host-a:0/1",
        beat_at=now - timedelta(seconds=4),
        interval=6,
        households=4,
        details={"polls": 40, "successes": 30, "failures": {"unreachable": 10}, "skipped": 1, "worst_lag": 0.25},
    )
    return {"uploaded_at": uploaded_at}


def test_metrics_content_reflects_the_database(client, study):
    values = samples(client.get("/metrics"))  # the test client comes from 127.0.0.1: a local scraper
    assert values[("iseif_database_up", ())] == 1
    households = {labels: v for (name, labels), v in values.items() if name == "iseif_households"}
    assert households[(("active", "true"), ("status", "ok"))] == 2
    assert households[(("active", "true"), ("status", "unreachable"))] == 1
    assert households[(("active", "true"), ("status", "never_polled"))] == 1
    assert households[(("active", "false"), ("status", "never_polled"))] == 1
    assert households[(("active", "true"), ("status", "bad_credentials"))] == 0
    assert values[("iseif_hour_files", (("state", "pending"),))] == 2
    assert values[("iseif_hour_files", (("state", "failed"),))] == 2
    assert values[("iseif_hour_files", (("state", "uploading"),))] == 0
    assert values[("iseif_upload_failures", ())] == 7
    assert values[("iseif_last_upload_timestamp_seconds", ())] == study["uploaded_at"].timestamp()
    oldest_failed = values[("iseif_hour_files_oldest_hour_age_seconds", (("state", "failed"),))]
    expected = (timezone.now() - datetime(2026, 11, 1, 7, tzinfo=UTC)).total_seconds()
    assert abs(oldest_failed - expected) < 60
    assert values[("iseif_events_logged", ())] == 300
    # 000002 is silent; 000004 was never read but was only just added, so it still has time.
    assert values[("iseif_households_silent", ())] == 1
    shard = (("shard", "host-a:0/1"),)
    assert 3 <= values[("iseif_pinger_heartbeat_age_seconds", shard)] < 30
    assert values[("iseif_pinger_households", shard)] == 4
    assert values[("iseif_pinger_detail", (("field", "failures.unreachable"), ("shard", "host-a:0/1")))] == 10
    assert values[("iseif_alerts_firing", ())] == 0


def test_without_uploads_the_last_upload_time_is_zero(client, db):
    values = samples(client.get("/metrics"))
    assert values[("iseif_last_upload_timestamp_seconds", ())] == 0
    assert values[("iseif_hour_files", (("state", "failed"),))] == 0


def test_anonymous_remote_requests_are_refused(client):
    response = client.get("/metrics", **REMOTE)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"iseif_" not in response.content


def test_loopback_through_a_reverse_proxy_is_not_trusted(client):
    response = client.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"})
    assert response.status_code == 401


def test_loopback_trust_can_be_switched_off(client, settings):
    settings.METRICS_ALLOW_LOOPBACK = False
    assert client.get("/metrics").status_code == 401


def test_staff_session_may_read_from_anywhere(staff_client):
    assert staff_client.get("/metrics", **REMOTE).status_code == 200


def test_a_non_staff_session_may_not(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="a-long-password-1"))
    assert client.get("/metrics", **REMOTE).status_code == 401


def test_api_token_may_read_and_a_bad_or_revoked_one_may_not(client, staff_user):
    token, raw = ApiToken.issue(staff_user, "prometheus")
    good = client.get("/metrics", headers={"Authorization": f"Bearer {raw}"}, **REMOTE)
    assert good.status_code == 200
    assert b"iseif_households" in good.content
    # A wrong token is refused even from loopback: offered credentials are always checked.
    bad = client.get("/metrics", headers={"Authorization": "Bearer iseif_not-a-real-token"})
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad["WWW-Authenticate"]
    token.revoke()
    assert client.get("/metrics", headers={"Authorization": f"Bearer {raw}"}, **REMOTE).status_code == 401


def test_metrics_never_show_secrets(client, make_household):
    make_household("00beef", password="Very-Secret-EAGLE-pw", label="Secret street 5")
    text = client.get("/metrics").content.decode()
    assert "Very-Secret" not in text and "h00beef@example.org" not in text


@pytest.mark.django_db(transaction=True)
def test_metrics_and_healthz_after_a_short_pinger_run(request, make_household, log_root, client, settings):
    """The real `runpinger` for five seconds against the simulator, then what the web side reports."""
    import subprocess

    from tests.fixtures.core import manage_command, redis_url, subprocess_env

    sim = request.getfixturevalue("eagle_simulator")
    for cloud_id in ("00e001", "00e002", "00e003"):
        email = f"h{cloud_id}@example.org"
        make_household(cloud_id, user_email=email, password=f"pw-{cloud_id}-secret")
        sim.add_household(cloud_id, protocol="cloud", user_email=email, password=f"pw-{cloud_id}-secret")
    sim.set_fault("00e003", "reset")
    env = subprocess_env(EAGLE_CLOUD_URL=sim.cloud_url, LOG_ROOT=str(log_root), REDIS_URL=redis_url(13))
    run = subprocess.run(
        manage_command("runpinger", "--duration", "5", "--interval", "1"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr[-2000:]

    settings.REDIS_URL = redis_url(13)
    settings.HEALTH_HEARTBEAT_MIN_SECONDS = 30  # the pinger stopped a moment ago; its last beat must count
    health = client.get("/healthz")
    assert health.status_code == 200, health.content
    assert json.loads(health.content)["checks"]["pinger"]["data"]["households"] == 3

    values = samples(client.get("/metrics"))
    active_ok = (("active", "true"), ("status", "ok"))
    active_unreachable = (("active", "true"), ("status", "unreachable"))
    assert values[("iseif_households", active_ok)] == 2
    assert values[("iseif_households", active_unreachable)] == 1
    assert values[("iseif_events_logged", ())] >= 2 * 3  # about five polls each for the two healthy ones
    details = {labels: v for (name, labels), v in values.items() if name == "iseif_pinger_detail"}
    polls = next(v for labels, v in details.items() if ("field", "polls") in labels)
    successes = next(v for labels, v in details.items() if ("field", "successes") in labels)
    assert polls >= 3 * 3 and 0 < successes < polls
    assert "pw-00e00" not in client.get("/metrics").content.decode()
