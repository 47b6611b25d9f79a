"""Alerts: one mail when an alert starts, none while it lasts, one when it recovers (Django's test outbox)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone
from rq import Queue, SimpleWorker

from loggerapp.hourfiles.layout import hour_file_path
from loggerapp.models import AlertState, HourFile, HouseholdStats, PingerHeartbeat, Status
from loggerapp.ops.alerts import check_alerts, run_alerts_job
from tests.fixtures.core import redis_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def alert_settings(settings, log_root):
    settings.ALERT_EMAILS = ["ops@example.org", "pi@example.org"]
    settings.ALERT_SILENCE_MINUTES = 10
    settings.HEALTH_REQUIRE_PINGER = False  # each test states what it needs of the pinger
    settings.REDIS_URL = redis_url(13)


def fresh_pinger(age_s: float = 1) -> None:
    PingerHeartbeat.objects.update_or_create(
        name="host-a:0/1", defaults={"beat_at": timezone.now() - timedelta(seconds=age_s), "interval": 6}
    )


def read_at(household, minutes_ago: float, status: Status = Status.OK, error: str = "") -> None:
    HouseholdStats.objects.filter(household=household).update(
        last_timestamp=timezone.now() - timedelta(minutes=minutes_ago),
        status=status,
        last_error=error,
        last_error_kind="" if status == Status.OK else status.value,
    )


def test_a_silent_household_mails_once_on_start_and_once_on_recovery(make_household):
    fresh_pinger()
    quiet = make_household("002506", label="Pilot house", password="EAGLE-secret-pw-1")
    read_at(make_household("002507"), minutes_ago=1)
    read_at(quiet, minutes_ago=12, status=Status.UNREACHABLE, error="connection refused by the relay")

    report = check_alerts()
    assert [a.key for a in report.started] == ["silent:002506"]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "[ISEIF logger] 002506 is silent"
    assert message.to == ["ops@example.org", "pi@example.org"]
    assert "002506 (Pilot house): no reading for 12" in message.body
    assert "unreachable: connection refused by the relay" in message.body
    assert "EAGLE-secret" not in message.body
    assert AlertState.objects.get(key="silent:002506").firing

    for _ in range(3):  # still silent: nothing new
        assert check_alerts().started == []
    assert len(mail.outbox) == 1

    read_at(quiet, minutes_ago=0.1)
    report = check_alerts()
    assert [a.key for a in report.recovered] == ["silent:002506"]
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "[ISEIF logger] 002506 is reporting again"
    assert not AlertState.objects.get(key="silent:002506").firing
    check_alerts()
    assert len(mail.outbox) == 2


def test_many_households_going_silent_together_make_one_mail(make_household, settings):
    settings.ALERT_MAX_LISTED = 5
    fresh_pinger()
    for n in range(12):
        read_at(make_household(f"0010{n:02x}"), minutes_ago=15)
    report = check_alerts()
    assert len(report.started) == 12
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[ISEIF logger] 12 households are silent"
    assert "... and 7 more" in mail.outbox[0].body
    assert AlertState.objects.filter(firing=True, key__startswith="silent:").count() == 12
    # Half of them come back: one recovery mail for the six.
    for n in range(6):
        read_at(HouseholdStats.objects.get(household__cloud_id=f"0010{n:02x}").household, minutes_ago=0)
    check_alerts()
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "[ISEIF logger] 6 households are reporting again"


def test_a_new_household_gets_the_silence_period_before_it_alerts(make_household):
    fresh_pinger()
    make_household("002506")  # never read, created just now
    assert check_alerts().firing == []
    assert mail.outbox == []


def test_inactive_households_never_alert(make_household):
    fresh_pinger()
    read_at(make_household("002506", active=False), minutes_ago=600)
    assert check_alerts().firing == []


def test_a_stale_pinger_alerts_and_recovers(settings):
    settings.HEALTH_REQUIRE_PINGER = True
    fresh_pinger(age_s=120)
    check_alerts()
    assert [m.subject for m in mail.outbox] == ["[ISEIF logger] pinger heartbeat stale"]
    assert "host-a:0/1" in mail.outbox[0].body
    check_alerts()
    assert len(mail.outbox) == 1
    fresh_pinger(age_s=1)
    check_alerts()
    assert mail.outbox[1].subject == "[ISEIF logger] pinger heartbeat fresh again"


def test_no_pinger_at_all_is_an_alert_when_one_is_required(settings):
    settings.HEALTH_REQUIRE_PINGER = True
    report = check_alerts()
    assert [a.key for a in report.started] == ["pinger"]


def test_uploads_failing_for_over_an_hour_alert_and_recover(make_household, settings):
    settings.ALERT_UPLOAD_FAILING_MINUTES = 60
    settings.ROTATION_GRACE_SECONDS = 120
    fresh_pinger()
    household = make_household("002506")
    read_at(household, minutes_ago=0)
    now = timezone.now()
    recent = (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)  # due < 1 h ago: not yet
    old = recent - timedelta(hours=2)
    HourFile.objects.create(household=household, cloud_id="002506", hour=recent, state="failed", reason="timeout")
    assert check_alerts().firing == []
    row = HourFile.objects.create(
        household=household, cloud_id="002506", hour=old, state="failed", attempts=3, reason="S3: NoSuchBucket"
    )
    check_alerts()
    assert [m.subject for m in mail.outbox] == ["[ISEIF logger] uploads failing"]
    assert "1 failed" in mail.outbox[0].body and "NoSuchBucket" in mail.outbox[0].body
    check_alerts()
    assert len(mail.outbox) == 1
    row.state = HourFile.State.UPLOADED
    row.save()
    check_alerts()
    assert mail.outbox[1].subject == "[ISEIF logger] uploads recovered"


def test_files_left_on_disk_without_a_ledger_row_alert(make_household, log_root):
    fresh_pinger()
    read_at(make_household("002506"), minutes_ago=0)
    old = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    path = hour_file_path(log_root, "002506", old)
    path.parent.mkdir(parents=True)
    path.write_text('{"cloud_id":"002506","poll_time":1,"ok":true}\n')
    report = check_alerts()
    assert [a.key for a in report.started] == ["uploads"]
    assert "on local disk" in report.started[0].message


def test_report_only_mails_nothing_and_remembers_nothing(make_household):
    fresh_pinger()
    read_at(make_household("002506"), minutes_ago=30)
    out = call_command_output("check_alerts", "--report-only")
    assert "FIRING  silent:002506" in out
    assert mail.outbox == []
    assert not AlertState.objects.filter(firing=True).exists()
    out = call_command_output("check_alerts")
    assert "MAILED  [ISEIF logger] 002506 is silent" in out
    assert len(mail.outbox) == 1


def call_command_output(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_mail_server_outage_retries_the_alert_on_the_next_run(make_household, settings):
    fresh_pinger()
    read_at(make_household("002506"), minutes_ago=30)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    locmem = settings.MAILERS
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 2},
        }
    }
    with pytest.raises(CommandError, match="could not be sent"):
        call_command_output("check_alerts")
    assert not AlertState.objects.filter(key="silent:002506", firing=True).exists()
    settings.MAILERS = locmem
    report = check_alerts()
    assert [a.key for a in report.started] == ["silent:002506"]
    assert len(mail.outbox) == 1


def test_without_recipients_state_is_kept_and_nothing_is_sent(make_household, settings):
    settings.ALERT_EMAILS = []
    fresh_pinger()
    read_at(make_household("002506"), minutes_ago=30)
    report = check_alerts()
    assert not report.mailed and report.mails == []
    assert mail.outbox == []
    assert AlertState.objects.get(key="silent:002506").firing


def test_the_rq_job_runs_on_a_real_worker(make_household):
    """The cron job's function, enqueued in real Redis and run by an RQ worker (in-process, same database)."""
    fresh_pinger()
    read_at(make_household("002506"), minutes_ago=30)
    connection = redis.Redis.from_url(redis_url(13))
    queue = Queue("ops-test-alerts", connection=connection)
    queue.empty()
    job = queue.enqueue(run_alerts_job)
    SimpleWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.is_finished, job.latest_result()
    assert job.return_value() == "1 firing, 1 started, 0 recovered, 1 mail(s) sent"
    assert len(mail.outbox) == 1
    queue.delete(delete_jobs=True)


def test_the_cron_module_registers_the_job_once(settings):
    """rqcron loads loggerapp.cron: the alert job once, our function, the configured cron string."""
    from rq.cron import CronScheduler

    connection = redis.Redis.from_url(redis_url(13))
    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file("loggerapp.cron")
    jobs = [job for job in scheduler.get_jobs() if job.name == "iseif-check-alerts"]
    assert [(job.func_name, job.cron, job.queue_name) for job in jobs] == [
        ("loggerapp.ops.alerts.run_alerts_job", settings.ALERT_CRON, settings.ALERT_QUEUE)
    ]
